//! `keyshift generate`: one image to a PNG carrying A1111's `parameters` text — a one-frame plan
//! on the render layer.

use std::collections::BTreeMap;
use std::path::Path;

use keyshift_core::pngtext;
use keyshift_render::{FrameSpec, SingleFrame};
use keyshift_sd::generate::{InitImage, RgbImage};

use crate::args::Args;
use crate::engine::{ENGINE_OPTIONS, Engine, write};

const KNOWN: &[&str] = &[
    "prompt",
    "negative",
    "cfg",
    "seed",
    "subseed",
    "subseed-strength",
    "init",
    "strength",
    "out",
];

/// Runs the command; the error is the message to print.
pub fn run(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args, &[])?;
    let known: Vec<&str> = KNOWN.iter().chain(ENGINE_OPTIONS).copied().collect();
    if let Some(unknown) = args.unknown(&known) {
        return Err(unknown);
    }
    let out = args.required("out")?.to_owned();
    let engine = Engine::load(&args)?;
    let settings = engine.settings(&args, 1.0)?;
    let spec = spec(&args, settings.width, settings.height)?;
    let mut png = None;
    let source = SingleFrame::new(spec);
    engine.render(settings, source, BTreeMap::new(), None, &mut |frame| {
        let img = &frame.image;
        let bytes = pngtext::encode_rgb(
            img.width,
            img.height,
            &img.data,
            &[("parameters", &frame.parameters)],
        )
        .map_err(|e| e.to_string())?;
        png = Some(bytes);
        Ok(())
    })?;
    write(Path::new(&out), &png.ok_or("no image was made")?)
}

#[allow(
    clippy::disallowed_methods,
    reason = "the native CLI reads the image it is given"
)]
fn read_init(path: &str, width: usize, height: usize, strength: f64) -> Result<InitImage, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("--init: cannot read {path}: {e}"))?;
    let (w, h, rgb) = pngtext::decode_rgb(&bytes).map_err(|e| format!("--init: {path}: {e}"))?;
    let image = RgbImage {
        width: w,
        height: h,
        data: rgb,
    };
    // A1111 resizes an init image with Lanczos ("Just resize"); the web app does the same.
    let image = if (w, h) == (width, height) {
        image
    } else {
        keyshift_core::image::lanczos_resize(&image, width, height)
    };
    Ok(InitImage { image, strength })
}

fn spec(args: &Args, width: usize, height: usize) -> Result<FrameSpec, String> {
    let strength = args.parsed("strength", 0.75)?;
    let init = match args.get("init") {
        Some(path) => Some(read_init(path, width, height, strength)?),
        None => None,
    };
    let seed = args.parsed("seed", 0u64)?;
    Ok(FrameSpec {
        index: 0,
        prompt: args.required("prompt")?.to_owned(),
        negative: args.get("negative").unwrap_or("").to_owned(),
        seed,
        subseed: args.parsed("subseed", seed)?,
        subseed_strength: args.parsed("subseed-strength", 0.0)?,
        cfg: args.parsed("cfg", 7.0)?,
        init,
        extra: BTreeMap::new(),
        travel: None,
        direct: None,
    })
}
