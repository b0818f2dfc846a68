//! The sequencer benchmark: a deterministic 10,000-frame document with 20 managed fields, each
//! driven by formulas (a mix of `L`, `C`, `S`, `bez`, `sin` and `rand`), and a render that returns
//! a summary independent of timing. `keyshift bench sequencer` times [`render_bench`].

use serde_json::{Value as Json, json};

use super::document::{Document, DocumentError};
use super::render::{RenderError, Sequencer};

/// Frames of the benchmark document.
pub const BENCH_FRAMES: i64 = 10_000;
/// Managed fields of the benchmark document.
pub const BENCH_FIELDS: [&str; 20] = [
    "seed",
    "scale",
    "noise",
    "strength",
    "contrast",
    "angle",
    "zoom",
    "translation_x",
    "translation_y",
    "translation_z",
    "rotation_3d_x",
    "rotation_3d_y",
    "rotation_3d_z",
    "fov",
    "near",
    "far",
    "antiblur_amount",
    "prompt_weight_1",
    "prompt_weight_2",
    "perspective_flip_theta",
];

const FORMULAS: [&str; 10] = [
    "L",
    "C",
    "S",
    "bez()",
    "sin(p=2s, a=0.5) + L",
    "rand(min=-1, max=1, s=42, h=12)",
    "L + sin(p=1b) * 0.1",
    "bez(c=\"easeInOutCubic\")",
    "S + rand(s=7, h=4) * 0.2",
    "C * 0.5 + L * 0.5",
];

/// Keyframe spacing of the benchmark document.
const SPACING: i64 = 100;

/// The benchmark document (always the same).
pub fn bench_document() -> Result<Document, DocumentError> {
    let mut keyframes = Vec::new();
    let mut frame = 0;
    let mut k = 0usize;
    while frame < BENCH_FRAMES {
        keyframes.push(keyframe(frame, k));
        frame += SPACING;
        k += 1;
    }
    keyframes.push(keyframe(BENCH_FRAMES - 1, k));
    Document::from_json(json!({
        "options": {"output_fps": 30, "bpm": 120, "cadence": 1},
        "managedFields": BENCH_FIELDS,
        "prompts": {
            "format": "v2",
            "enabled": true,
            "commonPrompt": {"name": "Common", "positive": "", "negative": "", "allFrames": true,
                "from": 0, "to": 0, "overlap": {"inFrames": 0, "outFrames": 0, "type": "none", "custom": ""}},
            "commonPromptPos": "append",
            "promptList": [{"name": "Prompt 1", "positive": "a cat, (dog:${prompt_weight_1})",
                "negative": "blurry", "allFrames": true, "from": 0, "to": BENCH_FRAMES - 1,
                "overlap": {"inFrames": 0, "outFrames": 0, "type": "none", "custom": ""}}]
        },
        "keyframes": keyframes,
    }))
}

fn keyframe(frame: i64, k: usize) -> Json {
    let mut kf = serde_json::Map::new();
    kf.insert("frame".to_owned(), json!(frame));
    for (i, field) in BENCH_FIELDS.iter().enumerate() {
        let value = ((i * 7 + k * 13) % 17) as f64 / 4.0;
        kf.insert((*field).to_owned(), json!(value));
        if k.is_multiple_of(10) {
            // Each field cycles through three neighbouring formulas, so some fields use `C`
            // (which reads every keyframe) and others only local ones.
            let formula = FORMULAS[(i * 3 + (k / 10) % 3) % FORMULAS.len()];
            kf.insert(format!("{field}_i"), json!(formula));
        }
    }
    Json::Object(kf)
}

/// What a benchmark render produced (for checking that runs agree, not for timing).
#[derive(Clone, Debug, PartialEq)]
pub struct BenchSummary {
    /// Frames rendered.
    pub frames: usize,
    /// Fields rendered.
    pub fields: usize,
    /// Sum of every finite field value.
    pub value_sum: f64,
    /// Total bytes of the rendered prompts.
    pub prompt_bytes: usize,
}

/// Renders a document completely (what the benchmark times) and summarises the result.
pub fn render_bench(doc: &Document) -> Result<BenchSummary, RenderError> {
    let mut s = Sequencer::new(doc.clone())?;
    s.render_all()?;
    let r = s.rendered();
    Ok(BenchSummary {
        frames: r.frame_count,
        fields: r.fields.len(),
        value_sum: r
            .fields
            .iter()
            .flat_map(|f| f.values.iter())
            .filter(|v| v.is_finite())
            .sum(),
        prompt_bytes: r
            .prompts
            .as_ref()
            .map_or(0, |p| p.iter().map(String::len).sum()),
    })
}
