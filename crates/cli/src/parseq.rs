//! `keyshift render parseq DOC.json --model DIR …`: a Parseq document rendered as Deforum's 2D
//! animation renders its manifest (see `keyshift_render::ParseqSource`).

use keyshift_core::image::Border;
use keyshift_core::parseq::document::Document;
use keyshift_core::share::parse_frames;
use keyshift_render::{ParseqOptions, ParseqSource};

use crate::args::Args;
use crate::engine::{ENGINE_OPTIONS, Engine};
use crate::render::render_to;

const PARSEQ_OPTIONS: &[&str] = &[
    "frames",
    "seed",
    "border",
    "color-coherence",
    "prompt",
    "negative",
    "out",
    "resume",
    "stop-after",
];

#[allow(
    clippy::disallowed_methods,
    reason = "the native CLI reads the document it is given"
)]
fn read_document(path: &str) -> Result<Document, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    Document::from_json_str(&text).map_err(|e| format!("{path}: {e}"))
}

/// `keyshift render parseq …`.
pub fn run(args: &[String]) -> Result<(), String> {
    let Some((doc_path, rest)) = args.split_first().filter(|(a, _)| !a.starts_with("--")) else {
        return Err(
            "usage: keyshift render parseq DOC.json --model DIR [--size WxH] \
                    [--steps K] [--sampler NAME] [--frames A..B] --out DIR|FILE.gif|FILE.zip"
                .into(),
        );
    };
    let args = Args::parse(rest, &["resume"])?;
    let known: Vec<&str> = PARSEQ_OPTIONS
        .iter()
        .chain(ENGINE_OPTIONS)
        .chain(crate::temporal::TEMPORAL_OPTIONS)
        .copied()
        .collect();
    if let Some(unknown) = args.unknown(&known) {
        return Err(unknown);
    }
    let doc = read_document(doc_path)?;
    let mut options = ParseqOptions::for_document(&doc).map_err(|e| format!("{doc_path}: {e}"))?;
    if let Some(frames) = args.get("frames") {
        options.range = parse_frames(frames, options.frames.len()).map_err(|e| format!("--{e}"))?;
    }
    if let Some(seed) = args.get("seed") {
        options.base_seed = seed
            .parse()
            .map_err(|_| format!("--seed: \"{seed}\" is not a whole number of 0 or more"))?;
    }
    let border = args.get("border").unwrap_or("replicate");
    options.border = Border::from_name(border)
        .ok_or_else(|| format!("--border: \"{border}\" (use replicate or wrap)"))?;
    options.colour_coherence = match args.get("color-coherence").unwrap_or("lab") {
        "lab" | "LAB" => true,
        "none" | "None" => false,
        other => return Err(format!("--color-coherence: \"{other}\" (use lab or none)")),
    };
    options.fallback = (
        args.get("prompt").unwrap_or("").to_owned(),
        args.get("negative").unwrap_or("").to_owned(),
    );
    let engine = Engine::load(&args)?;
    let settings = engine.settings(&args, 1.0)?;
    let source = ParseqSource::new(options, &settings).map_err(|e| e.to_string())?;
    render_to(&args, &engine, settings, source)
}
