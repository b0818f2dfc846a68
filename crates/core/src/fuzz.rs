//! The bodies of the fuzz targets, one function per target: each takes arbitrary bytes, drives one
//! untrusted-input reader of Keyshift the way the app or the CLI does, and panics only on a
//! finding (a crash of ours, or a broken round trip). The libFuzzer targets in `fuzz/` call them;
//! so does the corpus regression test (`tests/fuzz_corpus.rs`), on the stable toolchain, over
//! every kept input and a fixed number of mutations of them.
//!
//! Inputs carry several fields separated by NUL bytes ([`fields`]); numbers come from a trailing
//! field's bytes ([`Knobs`]), so the fuzzer can shape both the text and the options.

use crate::export::{EncodedFrame, VideoCodec, WebmVideo, demux_webm, mux_webm, read_webm};
use crate::parseq::{document::Document, render::render};
use crate::prompt::{
    Fidelity, ParsedPrompt, ScheduleOptions, parse_attention, prompt_schedule, split_and,
};
use crate::share::{self, ShiftSettings, TravelSettings};
use crate::shift::run::{RunFrame, RunSettings, ShiftSequence, ShiftStep};
use crate::shift::{GapSettings, ShiftRequest, remove_zero_strength};
use crate::travel::editor::rows;
use crate::travel::{Easing, Slice, TravelMode, parse_steps, stages};

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target, by the name its libFuzzer binary and corpus folder have.
pub const TARGETS: &[(&str, Target)] = &[
    ("prompt", prompt),
    ("shift", shift),
    ("travel", travel),
    ("parseq_lang", parseq_lang),
    ("parseq_doc", parseq_doc),
    ("share", share_link),
    ("png", png),
    ("webm_demux", webm_demux),
    ("webm_mux", webm_mux),
    ("safetensors", safetensors),
    ("yaml", yaml),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// `data` split at NUL bytes into `n` text fields (missing ones empty, the last keeps the rest),
/// read as UTF-8 with invalid sequences replaced.
pub fn fields(data: &[u8], n: usize) -> Vec<String> {
    let mut out: Vec<String> = data
        .splitn(n, |&b| b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    out.resize(n, String::new());
    out
}

/// Option values drawn from bytes, cycling; zeros when there are none.
struct Knobs<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Knobs<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn byte(&mut self) -> u8 {
        let b = self.bytes.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// A value in `0..=max`.
    fn upto(&mut self, max: u32) -> u32 {
        let v = u32::from(self.byte()) | (u32::from(self.byte()) << 8);
        v % (max + 1)
    }

    fn fidelity(&mut self) -> Fidelity {
        if self.flag() {
            Fidelity::Original
        } else {
            Fidelity::Keyshift
        }
    }
}

/// The A1111 prompt grammar: prompt editing, alternation, attention, `AND`, `BREAK`.
/// Fields: prompt, knobs.
pub fn prompt(data: &[u8]) {
    let f = fields(data, 2);
    let mut k = Knobs::new(f[1].as_bytes());
    let options = ScheduleOptions {
        base_steps: 1 + k.upto(149),
        hires_steps: k.flag().then(|| 1 + k.upto(149)),
        old_scheduling: k.flag(),
    };
    let fidelity = k.fidelity();
    let _ = prompt_schedule(&f[0], options);
    let _ = ParsedPrompt::parse(&f[0], options, fidelity);
    let _ = parse_attention(&f[0], fidelity);
    let parts = split_and(&f[0]);
    assert!(!parts.is_empty(), "split_and returned no part");
}

/// Frames one shift input may render: gap filling at the default minimum step can ask for 16,384
/// frames per gap, and an adversarial similarity asks for all of them.
const SHIFT_RENDERS: usize = 20_000;

/// Shift-attention: ranges `(cat:1~0)`, `THEN(seed=…)` segments, gap filling, mirroring, the
/// frame counts the Animate page shows. Fields: prompt, negative prompt, knobs.
pub fn shift(data: &[u8]) {
    let f = fields(data, 3);
    let mut k = Knobs::new(f[2].as_bytes());
    let request = ShiftRequest {
        prompt: f[0].clone(),
        negative_prompt: f[1].clone(),
        steps: i64::from(1 + k.upto(63)),
        seed: i64::from(k.upto(u32::from(u16::MAX))),
        cfg_scale: f64::from(k.upto(30)),
        remove_zero_strength: k.flag(),
    };
    let settings = RunSettings {
        gap: GapSettings {
            threshold: f64::from(k.upto(100)) / 100.0,
            min_step: f64::from(1 + k.upto(1000)) / 10_000.0,
            min_threshold_pct: f64::from(k.upto(100)),
        },
        mirror: k.flag(),
        video_fps: f64::from(k.upto(60)),
    };
    let fidelity = k.fidelity();
    let salt = k.byte();
    // A similarity that depends on both frames, so gap filling splits some gaps and not others.
    #[allow(clippy::cast_precision_loss, reason = "below 101")]
    let mut similarity = |a: &RunFrame, b: &RunFrame| {
        let h = a.frame.prompt.len() * 31 + b.frame.prompt.len() * 7 + usize::from(salt);
        (h % 101) as f64 / 100.0
    };
    // Driven as the renderer drives it, up to SHIFT_RENDERS frames: a user stops there long
    // before (each frame is a render), and the budget still shows planning that grows faster
    // than the frames (a quadratic insert took 3 s at 16k frames).
    if let Ok(mut sequence) = ShiftSequence::new(&request, settings, fidelity) {
        for _ in 0..SHIFT_RENDERS {
            if !matches!(sequence.next(&mut similarity), Ok(ShiftStep::Render(_))) {
                break;
            }
        }
        let _ = sequence.finish();
    }
    let _ = ShiftSettings::default().counts(&request);
    let _ = remove_zero_strength(&f[0]);
}

/// Prompt travel: stage lists, step lists, slices, easing, and the plan behind the frame counts.
/// Fields: prompt, negative prompt, steps, slice, easing, knobs.
pub fn travel(data: &[u8]) {
    let f = fields(data, 6);
    let mut k = Knobs::new(f[5].as_bytes());
    let _ = rows(&f[0]);
    let _ = stages(&f[0], &f[1]).map(|s| parse_steps(&f[2], s.len()));
    let _ = Slice::parse(&f[3]);
    let _ = Easing::parse(&f[4])
        .and_then(|e| e.curve())
        .map(|c| c.at(0.5));
    let mut settings = TravelSettings {
        steps: f[2].clone(),
        slice: f[3].clone(),
        pad: k.upto(1000),
        ..TravelSettings::default()
    };
    if k.flag() {
        settings.mode = TravelMode::Replace;
    }
    if let Ok(easing) = Easing::parse(&f[4]) {
        settings.easing = easing;
    }
    let _ = settings.counts(&f[0], &f[1]);
}

/// The Parseq language: a formula interpolating a field between two keyframes, rendered over the
/// frames between them. Fields: formula, knobs.
pub fn parseq_lang(data: &[u8]) {
    let f = fields(data, 2);
    let mut k = Knobs::new(f[1].as_bytes());
    let last = 1 + k.upto(40);
    let field = ["strength", "seed", "angle", "noise"][usize::from(k.byte() % 4)];
    let doc = serde_json::json!({
        "keyframes": [
            { "frame": 0, field: f64::from(k.upto(100)) / 10.0, format!("{field}_i"): f[0] },
            { "frame": last, field: 1 },
        ],
    });
    if let Ok(doc) = Document::from_json(doc) {
        let _ = render(&doc);
    }
}

/// Parseq documents as files and links carry them: loaded, rendered, written back.
/// Fields: the document's JSON.
pub fn parseq_doc(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(doc) = Document::from_json_str(text) else {
        return;
    };
    let _ = doc.prompts();
    if let Ok((_, rendered)) = render(&doc) {
        // Every frame is rendered; the JSON of the first and last few is written (each frame's
        // is the same code: writing all of a long document's took half the time of an input).
        let n = rendered.frame_count;
        for i in (0..n.min(JSON_FRAMES)).chain(n.saturating_sub(JSON_FRAMES).max(JSON_FRAMES)..n) {
            let _ = rendered.frame_json(i);
        }
        let _ = rendered.meta_json();
    }
}

/// How many frames at each end of a rendered Parseq document the `parseq_doc` target writes.
const JSON_FRAMES: usize = 32;

/// Share links and project files (a project file holds a link): any text, and JSON payloads of
/// every schema version. A project that decodes must encode and decode to itself.
/// Fields: a version byte, then the text or JSON.
pub fn share_link(data: &[u8]) {
    let Some((&tag, payload)) = data.split_first() else {
        return;
    };
    let decoded = match tag % 8 {
        0..=3 => share::decode_payload(u32::from(tag % 4) + 1, payload),
        _ => share::decode(&String::from_utf8_lossy(payload)),
    };
    let Ok(decoded) = decoded else {
        return;
    };
    let Ok(link) = share::encode(&decoded.project) else {
        panic!("a decoded project does not encode");
    };
    match share::decode(&link) {
        Ok(again) => assert!(
            same_project(&again.project, &decoded.project),
            "round trip changed it"
        ),
        // Numbers may be written longer than the link spelled them (`1E15`), past the limit.
        Err(share::ShareError::TooLarge { .. } | share::ShareError::TooLong { .. }) => {}
        Err(e) => panic!("an encoded project does not decode: {e}"),
    }
}

/// Whether two projects are the same up to the last bit of their numbers: serde_json reads a
/// number to within one unit in the last place, so one written and read again may move by it.
/// Text that holds JSON (a Parseq document) is compared the same way.
fn same_project(a: &share::Project, b: &share::Project) -> bool {
    let json = |p: &share::Project| serde_json::to_value(share::wire::ProjectV4::from(p)).ok();
    matches!((json(a), json(b)), (Some(x), Some(y)) if same_json(&x, &y))
}

fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::String(x), Value::String(y)) if x != y => {
            match (serde_json::from_str(x), serde_json::from_str(y)) {
                (Ok(x), Ok(y)) => same_json(&x, &y),
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => crate::conformance::json_close(a, b),
    }
}

/// Image files: PNG text chunks (A1111's `parameters`), the parameters text, the pixels, and the
/// size any image header claims.
/// Fields: the file.
pub fn png(data: &[u8]) {
    if let Ok(texts) = crate::pngtext::read_texts(data) {
        for (_, text) in texts {
            let _ = crate::parameters::Parameters::parse(&text).to_text();
        }
    }
    let _ = crate::parameters::Parameters::parse(&String::from_utf8_lossy(data));
    let _ = crate::pngtext::decode_rgb(data);
    let _ = crate::image::claimed_size(data);
}

/// WebM files given as video input: the container reader and the demuxer.
/// Fields: the file.
pub fn webm_demux(data: &[u8]) {
    let _ = read_webm(data);
    let _ = demux_webm(data);
}

/// The WebM muxer's inputs: frames of any size, timestamps and keyframe flags; what it writes
/// must demux to the same frames. Fields: knobs, then frame payloads.
pub fn webm_mux(data: &[u8]) {
    let mut parts = data.split(|&b| b == 0);
    let mut k = Knobs::new(parts.next().unwrap_or(&[]));
    let codec = [VideoCodec::Vp8, VideoCodec::Vp9][usize::from(k.byte() % 2)];
    let video = WebmVideo {
        codec,
        width: 1 + k.upto(4095),
        height: 1 + k.upto(4095),
        fps: f64::from(1 + k.upto(119)),
    };
    let mut t = 0u64;
    let frames: Vec<EncodedFrame> = parts
        .take(64)
        .map(|payload| {
            t += u64::from(k.upto(5000));
            EncodedFrame {
                timestamp_ms: t,
                keyframe: k.flag(),
                data: payload.to_vec(),
            }
        })
        .collect();
    let Ok(bytes) = mux_webm(video, &frames) else {
        return;
    };
    let track = match demux_webm(&bytes) {
        Ok(track) => track,
        Err(e) => panic!("muxed WebM does not demux: {e}"),
    };
    let got: Vec<(&[u8], bool)> = track
        .frames
        .iter()
        .map(|f| (f.data.as_slice(), f.keyframe))
        .collect();
    let want: Vec<(&[u8], bool)> = frames
        .iter()
        .map(|f| (f.data.as_slice(), f.keyframe))
        .collect();
    assert_eq!(got, want, "frames changed through mux and demux");
}

/// Safetensors files: the header, the tensor index, and every tensor read as the loaders read
/// them. Fields: the file.
pub fn safetensors(data: &[u8]) {
    use crate::weights::{MemorySource, SafetensorsFile};
    let Ok(mut file) = SafetensorsFile::open("fuzz", Box::new(MemorySource::new(data.to_vec())))
    else {
        return;
    };
    let keys: Vec<String> = file.entries().keys().cloned().collect();
    for key in keys {
        let _ = file.read_bytes(&key);
        let _ = file.read_f32(&key);
    }
}

/// YAML: the temporal-consistency configuration (`--interp-config`) and a checkpoint's
/// `.yaml`. Fields: the text.
pub fn yaml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    #[cfg(not(target_arch = "wasm32"))]
    let _ = crate::temporal::parse_yaml(&text);
    let _ = crate::weights::YamlHints::parse(&text);
}
