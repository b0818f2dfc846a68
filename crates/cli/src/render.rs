//! `keyshift render <mode>`: an animation on the render layer, written as a folder of PNGs in
//! video order with `frames.json` and the mode's files, as an animated GIF, or as a zip.
//! Frames are kept in a folder beside the output the moment they are finished; an interrupted
//! render continues with `--resume` (`--stop-after N` stops on purpose after N new frames).
//! `keyshift ssim A.png B.png`: the SSIM of two images, as torchmetrics computes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use keyshift_core::image::ssim;
use keyshift_core::share;
use keyshift_core::shift::{GapSettings, ShiftRequest};
use keyshift_render::store::{
    MANIFEST, StoredEnd, decode_png, frame_file, frame_index, frame_png, stored_frame,
};
use keyshift_render::{FrameSource, RenderSettings, ShiftOptions, ShiftSource, StoredFrame};

use keyshift_sd::hooks::NoHook;

use crate::args::Args;
use crate::engine::{ENGINE_OPTIONS, Engine, write};
use crate::temporal::TEMPORAL_OPTIONS;

const SHIFT_OPTIONS: &[&str] = &[
    "prompt",
    "negative",
    "shift-steps",
    "seed",
    "cfg",
    "ssim-threshold",
    "ssim-min-step",
    "ssim-min-pct",
    "lead",
    "mirror",
    "fps",
    "remove-zero",
    "upscale",
    "out",
    "resume",
    "stop-after",
    "project",
];

/// Where a render goes, from `--out`.
#[derive(Debug, Clone, PartialEq)]
enum Output {
    Folder(PathBuf),
    Gif(PathBuf),
    Zip(PathBuf),
}

impl Output {
    fn parse(text: &str) -> Self {
        let path = PathBuf::from(text);
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("gif") => Self::Gif(path),
            Some("zip") => Self::Zip(path),
            _ => Self::Folder(path),
        }
    }
}

/// `keyshift render <mode> …`.
pub fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("shift") => shift(&args[1..]),
        Some("travel") => crate::travel::run(&args[1..]),
        Some("parseq") => crate::parseq::run(&args[1..]),
        Some("video") => crate::video::run(&args[1..]),
        Some(other) => Err(format!(
            "unknown mode \"{other}\" (modes: shift, travel, parseq, video)"
        )),
        None => Err("which mode? (modes: shift, travel, parseq, video)".into()),
    }
}

fn shift(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args, &["mirror", "remove-zero", "resume"])?;
    let args = match args.get("project") {
        Some(link) => {
            let defaults = project_defaults(link)?;
            args.with_defaults(defaults)
        }
        None => args,
    };
    let known: Vec<&str> = SHIFT_OPTIONS
        .iter()
        .chain(ENGINE_OPTIONS)
        .chain(TEMPORAL_OPTIONS)
        .copied()
        .collect();
    if let Some(unknown) = args.unknown(&known) {
        return Err(unknown);
    }
    let options = shift_options(&args)?;
    let upscale = args.parsed("upscale", 1.0f64)?;
    if upscale.is_nan() || upscale <= 0.0 || upscale > 8.0 {
        return Err(format!(
            "--upscale: {upscale} is outside 0 to 8 (1 keeps the size)"
        ));
    }
    let engine = Engine::load(&args)?;
    let settings = engine.settings(&args, upscale)?;
    let source = ShiftSource::new(options, &settings).map_err(|e| format!("--prompt: {e}"))?;
    render_to(&args, &engine, settings, source)
}

/// Renders `source` to `--out`, keeping frames as they finish (`--resume`, `--stop-after`).
pub fn render_to<S: FrameSource>(
    args: &Args,
    engine: &Engine,
    mut settings: RenderSettings,
    source: S,
) -> Result<(), String> {
    settings.temporal = crate::temporal::temporal(args)?;
    let output = Output::parse(args.required("out")?);
    let stop_after = match args.get("stop-after") {
        Some(_) => Some(args.parsed("stop-after", 1usize)?.max(1)),
        None => None,
    };
    let partial = Partial::new(&output, args.get("resume").is_some())?;
    let mut frames = BTreeMap::new();
    let stored = partial.stored()?;
    if !stored.is_empty() {
        eprintln!("resuming: {} frames were rendered before", stored.len());
    }
    let finished = engine.render(
        settings,
        source,
        stored,
        stop_after,
        &mut NoHook,
        &mut |frame| {
            let png = frame_png(&frame)?;
            if !frame.resumed {
                partial.keep(frame.record.generation_index, &png)?;
            }
            frames.insert(frame.record.generation_index, png);
            Ok(())
        },
    )?;
    let Some(finished) = finished else {
        eprintln!(
            "stopped after {} frames; run the same command with --resume to continue",
            frames.len()
        );
        return Ok(());
    };
    write_output(&output, &StoredEnd::from(&finished), &frames)?;
    partial.remove()
}

/// The folder where frames go the moment they are finished (by generation index), so that an
/// interrupted render resumes with `--resume`; removed when the output is written.
struct Partial {
    dir: PathBuf,
}

#[allow(
    clippy::disallowed_methods,
    reason = "the native CLI keeps its frames in progress beside its output"
)]
impl Partial {
    fn new(output: &Output, resume: bool) -> Result<Self, String> {
        let dir = match output {
            Output::Folder(dir) => dir.join(".in-progress"),
            Output::Gif(path) | Output::Zip(path) => path.with_extension("in-progress"),
        };
        if !resume && dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Self { dir })
    }

    fn keep(&self, index: usize, png: &[u8]) -> Result<(), String> {
        write(&self.dir.join(frame_file(index)), png)
    }

    /// The frames kept by an earlier run.
    fn stored(&self) -> Result<BTreeMap<usize, StoredFrame>, String> {
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let mut stored = BTreeMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(index) = path
                .file_name()
                .and_then(|s| s.to_str())
                .and_then(frame_index)
            else {
                continue;
            };
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            stored.insert(
                index,
                stored_frame(&bytes).map_err(|e| format!("{}: {e}", path.display()))?,
            );
        }
        Ok(stored)
    }

    fn remove(&self) -> Result<(), String> {
        std::fs::remove_dir_all(&self.dir)
            .map_err(|e| format!("cannot remove {}: {e}", self.dir.display()))
    }
}

/// The options a share link (`#v2.…`, a whole URL, or a file holding one) sets; flags given on
/// the command line win.
fn project_defaults(link: &str) -> Result<Vec<(&'static str, String)>, String> {
    let text = read_link(link)?;
    let decoded = share::decode(&text).map_err(|e| format!("--project: {e}"))?;
    for warning in &decoded.warnings {
        eprintln!("--project: {warning}");
    }
    let p = decoded.project;
    let (g, a) = (&p.settings, &p.animation.shift);
    let mut pairs = vec![
        ("prompt", p.prompt.clone()),
        ("negative", p.negative_prompt.clone()),
        ("steps", g.steps.to_string()),
        ("sampler", g.sampler.name().to_owned()),
        ("cfg", g.cfg_scale.to_string()),
        ("seed", g.seed.to_a1111().to_string()),
        ("size", format!("{}x{}", g.width_px, g.height_px)),
        ("shift-steps", a.shift_steps.to_string()),
        ("fps", a.fps.to_string()),
        ("lead", a.lead.to_string()),
        ("upscale", a.upscale.to_string()),
        ("ssim-threshold", a.ssim_threshold.to_string()),
        ("ssim-min-step", a.ssim_min_step.to_string()),
        ("ssim-min-pct", a.ssim_min_pct.to_string()),
    ];
    for (flag, on) in [("mirror", a.mirror), ("remove-zero", a.remove_zero)] {
        if on {
            pairs.push((flag, "true".to_owned()));
        }
    }
    Ok(pairs)
}

/// A link given as is, or the path of a file holding one.
#[allow(
    clippy::disallowed_methods,
    reason = "the native CLI reads the file it is given"
)]
fn read_link(link: &str) -> Result<String, String> {
    if !Path::new(link).is_file() {
        return Ok(link.to_owned());
    }
    std::fs::read_to_string(link).map_err(|e| format!("--project: cannot read {link}: {e}"))
}

fn shift_options(args: &Args) -> Result<ShiftOptions, String> {
    let steps: i64 = args
        .get("shift-steps")
        .ok_or("--shift-steps is required")?
        .parse()
        .map_err(|_| "--shift-steps: expected a whole number".to_owned())?;
    if steps < 1 {
        return Err(format!("--shift-steps must be at least 1, got {steps}"));
    }
    let seed = match args.parsed("seed", -1i64)? {
        -1 => i64::from(random_seed()),
        s if s < 0 => return Err(format!("--seed: {s} (use -1 for a random seed)")),
        s => s,
    };
    let gap = GapSettings {
        threshold: args.parsed("ssim-threshold", 0.0)?,
        min_step: args.parsed("ssim-min-step", 0.0001)?,
        min_threshold_pct: args.parsed("ssim-min-pct", 75.0)?,
    };
    if !(0.0..=1.0).contains(&gap.threshold) {
        return Err(format!(
            "--ssim-threshold: {} is outside 0 to 1",
            gap.threshold
        ));
    }
    if gap.min_step.is_nan() || gap.min_step <= 0.0 {
        return Err(format!("--ssim-min-step: {} must be above 0", gap.min_step));
    }
    if !(0.0..=100.0).contains(&gap.min_threshold_pct) {
        return Err(format!(
            "--ssim-min-pct: {} is outside 0 to 100",
            gap.min_threshold_pct
        ));
    }
    let fps = args.parsed("fps", 30.0f64)?;
    if !fps.is_finite() {
        return Err("--fps: must be a number".into());
    }
    Ok(ShiftOptions {
        request: ShiftRequest {
            prompt: args.required("prompt")?.to_owned(),
            negative_prompt: args.get("negative").unwrap_or("").to_owned(),
            steps,
            seed,
            cfg_scale: args.parsed("cfg", 7.0)?,
            remove_zero_strength: args.get("remove-zero").is_some(),
        },
        gap,
        mirror: args.get("mirror").is_some(),
        fps,
        lead: args.parsed("lead", 0usize)?,
    })
}

/// A seed as A1111 draws one for -1.
#[allow(
    clippy::disallowed_methods,
    clippy::cast_possible_truncation,
    reason = "the native CLI reads the clock; any 32 bits of it make a seed"
)]
pub fn random_seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32));
    nanos % 4_294_967_294
}

/// The finished render as `--out` asks: a folder of PNGs in video order with `frames.json`
/// and the mode's files, a GIF, or a zip.
fn write_output(
    output: &Output,
    end: &StoredEnd,
    frames: &BTreeMap<usize, Vec<u8>>,
) -> Result<(), String> {
    match output {
        Output::Folder(dir) => write_folder(dir, end, frames),
        Output::Zip(path) => write(path, &end.zip(frames)?),
        Output::Gif(path) => write(path, &end.gif(frames)?),
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the native CLI writes the folder it is asked to"
)]
fn write_folder(
    dir: &Path,
    end: &StoredEnd,
    frames: &BTreeMap<usize, Vec<u8>>,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (name, png) in end.in_order(frames)? {
        write(&dir.join(name), png)?;
    }
    write(&dir.join(MANIFEST), end.manifest(frames)?.as_bytes())?;
    for (name, text) in &end.files {
        write(&dir.join(name), text.as_bytes())?;
    }
    Ok(())
}

/// `keyshift ssim A.png B.png`: prints the SSIM.
#[allow(
    clippy::disallowed_methods,
    reason = "the native CLI reads the images it is given"
)]
pub fn ssim_command(args: &[String]) -> Result<f64, String> {
    let [a, b] = args else {
        return Err("usage: keyshift ssim A.png B.png".into());
    };
    let read = |path: &String| {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        decode_png(&bytes).map_err(|e| format!("{path}: {e}"))
    };
    let (x, y) = (read(a)?, read(b)?);
    ssim(&x, &y).ok_or_else(|| {
        format!(
            "the images differ in size: {}x{} and {}x{}",
            x.width, x.height, y.width, y.height
        )
    })
}
