//! `keyshift generate`: one image to a PNG carrying A1111's `parameters` text.

use std::ops::ControlFlow;
use std::path::Path;

use keyshift_core::parameters::parse_sampler;
use keyshift_core::pngtext;
use keyshift_core::tokens::ClipTokenizer;
use keyshift_sd::generate::{InitImage, Request, RgbImage, generate};
use keyshift_sd::hooks::NoHook;
use keyshift_sd::model::SdModel;
use keyshift_sd::weights::Precision;

use crate::args::{Args, parse_size};
use crate::backend::Backend;
use crate::load::load_model;

const KNOWN: &[&str] = &[
    "model",
    "prompt",
    "negative",
    "steps",
    "sampler",
    "cfg",
    "seed",
    "subseed",
    "subseed-strength",
    "size",
    "init",
    "strength",
    "clip-skip",
    "quant",
    "backend",
    "out",
];

/// Runs the command; the error is the message to print.
pub fn run(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args, &[])?;
    if let Some(unknown) = args.unknown(KNOWN) {
        return Err(unknown);
    }
    let device = Backend::parse(args.get("backend").unwrap_or("cpu"))?.device()?;
    let model_path = Path::new(args.required("model")?);
    let model = load_model(model_path, precision(&args)?, &device)?;
    let request = request(&args, &model)?;
    let out = args.required("out")?;
    let tokenizer = ClipTokenizer::embedded().map_err(|e| e.to_string())?;
    let total = request.steps;
    let mut on_step = |s: &keyshift_sd::pipeline::StepOutput| {
        eprint!("\rstep {}/{total}", s.step + 1);
        ControlFlow::Continue(())
    };
    let generated = pollster::block_on(generate(
        &model,
        &tokenizer,
        &request,
        &device,
        &mut NoHook,
        &mut on_step,
    ))
    .map_err(|e| e.to_string())?
    .ok_or("cancelled")?;
    eprintln!();
    let stem = model_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = request.parameters(&stem).to_text();
    let img = &generated.image;
    let png = pngtext::encode_rgb(img.width, img.height, &img.data, &[("parameters", &text)])
        .map_err(|e| e.to_string())?;
    write(Path::new(out), &png)
}

/// `--quant`: `f32` (the default) or `int8`.
pub fn precision(args: &Args) -> Result<Precision, String> {
    let text = args.get("quant").unwrap_or("f32");
    Precision::parse(text).ok_or_else(|| format!("--quant: expected int8 or f32, got \"{text}\""))
}

#[allow(
    clippy::disallowed_methods,
    reason = "the native CLI writes the file it is asked to"
)]
fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[allow(
    clippy::disallowed_methods,
    reason = "the native CLI reads the image it is given"
)]
fn read_init(path: &str, width: usize, height: usize, strength: f64) -> Result<InitImage, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let (w, h, rgb) = pngtext::decode_rgb(&bytes).map_err(|e| format!("{path}: {e}"))?;
    let image = keyshift_core::pngtext::resize_rgb(&rgb, w, h, width, height);
    Ok(InitImage {
        image: RgbImage {
            width,
            height,
            data: image,
        },
        strength,
    })
}

fn request(args: &Args, model: &SdModel) -> Result<Request, String> {
    let sampler_arg = args.get("sampler").unwrap_or("Euler a");
    let sampler = parse_sampler(sampler_arg, None).ok_or_else(|| format!("--sampler: unknown sampler \"{sampler_arg}\" (Euler, Euler a, DDIM, DPM++ 2M, DPM++ 2M Karras, LCM)"))?;
    let (downscale, _) = keyshift_sd::generate::size_multiple(model);
    let native = 64 * downscale;
    let (width, height) = match args.get("size") {
        Some(s) => parse_size(s)?,
        None => (native, native),
    };
    let strength = args.parsed("strength", 0.75)?;
    let init = match args.get("init") {
        Some(path) => Some(read_init(path, width, height, strength)?),
        None => None,
    };
    let subseed = match args.get("subseed") {
        Some(s) => Some((
            s.parse()
                .map_err(|_| format!("--subseed: cannot read \"{s}\""))?,
            args.parsed("subseed-strength", 0.0f32)?,
        )),
        None => None,
    };
    Ok(Request {
        prompt: args.required("prompt")?.to_owned(),
        negative: args.get("negative").unwrap_or("").to_owned(),
        steps: args.parsed("steps", 20usize)?,
        sampler,
        cfg: args.parsed("cfg", 7.0)?,
        seed: args.parsed("seed", 0u64)?,
        subseed,
        width,
        height,
        clip_skip: args.parsed("clip-skip", 0usize)?,
        init,
        schedule: model.info.schedule.clone(),
    })
}
