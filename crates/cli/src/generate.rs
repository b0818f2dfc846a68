//! `keyshift generate`: one image to a PNG carrying A1111's `parameters` text — a one-frame plan
//! on the render layer.

use std::collections::BTreeMap;
use std::path::Path;

use keyshift_core::pngtext;
use keyshift_render::{FrameSpec, SingleFrame};
use keyshift_sd::generate::{InitImage, RgbImage};

use keyshift_sd::hooks::NoHook;
use keyshift_sd::taps::{CrossAttentionTap, Filter, OverlayMode, StepHook, TapConfig};

use crate::args::Args;
use crate::control::{CONTROL_OPTIONS, CONTROL_SWITCHES, image_hint};
use crate::engine::{ENGINE_OPTIONS, Engine, write};
use crate::heatmap::{generation_tap, write_png};

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
    "heatmap-tokens",
    "heatmap-out",
    "heatmap-opacity",
    "heatmap-layers",
    "heatmap-steps",
];

/// Runs the command; the error is the message to print.
pub fn run(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args, CONTROL_SWITCHES)?;
    let known: Vec<&str> = KNOWN
        .iter()
        .chain(ENGINE_OPTIONS)
        .chain(CONTROL_OPTIONS)
        .copied()
        .collect();
    if let Some(unknown) = args.unknown(&known) {
        return Err(unknown);
    }
    let out = args.required("out")?.to_owned();
    let engine = Engine::load(&args)?;
    let settings = engine.settings(&args, 1.0)?;
    let spec = spec(&args, settings.width, settings.height)?;
    let heatmap = heatmap_options(&args, &spec)?;
    let mut tap = heatmap
        .as_ref()
        .map(|(config, _, _)| CrossAttentionTap::new(config.clone()));
    let mut no_hook = NoHook;
    let hook: &mut dyn StepHook = match tap.as_mut() {
        Some(tap) => tap,
        None => &mut no_hook,
    };
    let mut png = None;
    let mut image = None;
    let source = SingleFrame::new(spec);
    engine.render(
        settings,
        source,
        BTreeMap::new(),
        None,
        hook,
        &mut |frame| {
            let img = &frame.image;
            let bytes = pngtext::encode_rgb(
                img.width,
                img.height,
                &img.data,
                &[("parameters", &frame.parameters)],
            )
            .map_err(|e| e.to_string())?;
            png = Some(bytes);
            image = Some(frame.image);
            Ok(())
        },
    )?;
    write(Path::new(&out), &png.ok_or("no image was made")?)?;
    if let (Some(tap), Some((_, path, opacity)), Some(image)) = (tap, heatmap, image) {
        let maps =
            pollster::block_on(tap.finish()).map_err(|e| format!("--heatmap-tokens: {e}"))?;
        let map = maps.maps.first().ok_or("no heatmap was made")?;
        eprintln!(
            "heatmap: {} attention calls summed, {}x{} map, peak {:.4}",
            maps.layer_calls, maps.width, maps.height, map.peak
        );
        let drawn = map.overlay(&image, OverlayMode::Heat { opacity }, Filter::Bilinear);
        write_png(&path, &drawn)?;
    }
    Ok(())
}

/// `--heatmap-tokens` (with `--heatmap-out`, `--heatmap-opacity`, `--heatmap-layers`,
/// `--heatmap-steps`): the tap, where its overlay goes, and the colour's opacity.
fn heatmap_options(
    args: &Args,
    spec: &FrameSpec,
) -> Result<Option<(TapConfig, String, f32)>, String> {
    let Some(config) = generation_tap(args, &spec.prompt, spec.cfg)? else {
        for flag in [
            "heatmap-out",
            "heatmap-opacity",
            "heatmap-layers",
            "heatmap-steps",
        ] {
            if args.get(flag).is_some() {
                return Err(format!("--{flag} needs --heatmap-tokens"));
            }
        }
        return Ok(None);
    };
    let out = args
        .get("heatmap-out")
        .ok_or("--heatmap-tokens needs --heatmap-out FILE.png")?;
    let opacity: f32 = args.parsed("heatmap-opacity", 0.5)?;
    if !(0.0..=1.0).contains(&opacity) {
        return Err(format!("--heatmap-opacity: {opacity} (use 0 to 1)"));
    }
    Ok(Some((config, out.to_owned(), opacity)))
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
        extra: BTreeMap::new(),
        hint: image_hint(args, width, height, init.as_ref().map(|i| &i.image))?,
        init,
        travel: None,
        direct: None,
        output_size: None,
    })
}
