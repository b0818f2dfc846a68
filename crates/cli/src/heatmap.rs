//! `keyshift heatmap`: Visualize Cross-Attention's probe of an image (seeds.md §3), the layer
//! list, and what `generate --heatmap-tokens` needs to sum attention over a whole generation.

use std::path::Path;

use keyshift_core::pngtext;
use keyshift_sd::conditioning::TextEncoder;
use keyshift_sd::generate::{RgbImage, family};
use keyshift_sd::pipeline::Context;
use keyshift_sd::taps::cross::{VXA_DEFAULT_LAYER, probe};
use keyshift_sd::taps::{
    Filter, LayerFilter, OverlayMode, StepFilter, TapConfig, Tokens, VaeInput,
};
use keyshift_sd::unet::AttentionLayer;

use crate::args::Args;
use crate::engine::{Engine, write};

const KNOWN: &[&str] = &[
    "model",
    "image",
    "prompt",
    "tokens",
    "time",
    "layer",
    "mode",
    "vae-input",
    "out",
    "list-layers",
    "quant",
    "backend",
    "clip-skip",
];

/// Runs `keyshift heatmap …`.
pub fn run(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args, &["list-layers"])?;
    if let Some(unknown) = args.unknown(KNOWN) {
        return Err(unknown);
    }
    let engine = Engine::load(&args)?;
    let layers = engine.model.unet.attention_layers();
    if args.get("list-layers").is_some() {
        for layer in &layers {
            println!("{}", layer.name);
        }
        return Ok(());
    }
    let layer = find_layer(&layers, args.get("layer").unwrap_or(VXA_DEFAULT_LAYER))?;
    let tokens =
        Tokens::parse(args.get("tokens").unwrap_or("")).map_err(|e| format!("--tokens: {e}"))?;
    let time: f64 = args.parsed("time", 1.0)?;
    let mode = match args.get("mode").unwrap_or("masked") {
        "masked" => OverlayMode::Masked,
        "grey" | "gray" => OverlayMode::Grey,
        other => return Err(format!("--mode: \"{other}\" (use masked or grey)")),
    };
    let vae_input = args.get("vae-input").unwrap_or("signed");
    let vae_input = VaeInput::from_name(vae_input)
        .ok_or_else(|| format!("--vae-input: \"{vae_input}\" (use signed or unit)"))?;
    let path = args.required("image")?;
    let image = crate::video::read_image(std::path::Path::new(path))
        .map_err(|e| format!("--image: {e}"))?;
    let context = encode(&engine, &args, args.required("prompt")?)?;
    let config = TapConfig::vxa(&layer.name, tokens);
    let maps = pollster::block_on(probe(
        &engine.model,
        &image,
        &context,
        time,
        config,
        vae_input,
    ))
    .map_err(|e| e.to_string())?;
    let map = maps.maps.first().ok_or("no map was made")?;
    eprintln!(
        "{} ({}), {}x{} map, peak {:.4}",
        layer.name,
        layer.vxa_name(),
        maps.width,
        maps.height,
        map.peak
    );
    let drawn = map.overlay(&image, mode, Filter::Nearest);
    write_png(args.required("out")?, &drawn)
}

/// The layer `name` names (diffusers or A1111/VXA name), or the list of names.
pub fn find_layer<'l>(
    layers: &'l [AttentionLayer],
    name: &str,
) -> Result<&'l AttentionLayer, String> {
    layers.iter().find(|l| l.is_named(name)).ok_or_else(|| {
        let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
        format!(
            "--layer: \"{name}\" is not a cross-attention layer of this model; it has {}",
            names.join(", ")
        )
    })
}

/// The context of the prompt's first `AND` part (A1111 weights and 75-token chunks).
fn encode(engine: &Engine, args: &Args, prompt: &str) -> Result<Context, String> {
    let encoder = TextEncoder {
        clip: &engine.model.clip,
        tokenizer: &engine.tokenizer,
        family: family(&engine.model),
        clip_skip: args
            .parsed("clip-skip", engine.model.info.native_clip_skip)?
            .max(1),
    };
    let conditioning = encoder
        .prompt(prompt, 1)
        .map_err(|e| format!("--prompt: {e}"))?;
    let parts = conditioning.at_step(0);
    let (context, _) = parts.first().ok_or("--prompt: no prompt to encode")?;
    Ok(context.clone())
}

/// What `generate --heatmap-tokens` sums: the tokens' attention over every chosen layer and step
/// of the prompt's conditional rows, at the largest layer's resolution.
pub fn generation_tap(args: &Args, prompt: &str, cfg: f64) -> Result<Option<TapConfig>, String> {
    let Some(tokens) = args.get("heatmap-tokens") else {
        return Ok(None);
    };
    let tokens = Tokens::parse(tokens).map_err(|e| format!("--heatmap-tokens: {e}"))?;
    let mut config = TapConfig::generation(tokens, cfg, prompt);
    if let Some(layers) = args.get("heatmap-layers") {
        config = config.with_layers(LayerFilter::Prefixes(
            layers.split(',').map(|s| s.trim().to_owned()).collect(),
        ));
    }
    if let Some(steps) = args.get("heatmap-steps") {
        config = config.with_steps(step_range(steps)?);
    }
    Ok(Some(config))
}

/// `A..B` (steps A to B−1, counted from 0) or `A..=B`.
fn step_range(text: &str) -> Result<StepFilter, String> {
    let bad = || format!("--heatmap-steps: \"{text}\" (use A..B, steps counted from 0)");
    let (a, b) = text.split_once("..").ok_or_else(bad)?;
    let start: usize = a.trim().parse().map_err(|_| bad())?;
    let end: usize = match b.strip_prefix('=') {
        Some(b) => b.trim().parse::<usize>().map_err(|_| bad())? + 1,
        None => b.trim().parse().map_err(|_| bad())?,
    };
    if start >= end {
        return Err(bad());
    }
    Ok(StepFilter::Range(start..end))
}

/// Writes an RGB image as a PNG.
pub fn write_png(path: &str, image: &RgbImage) -> Result<(), String> {
    let png = pngtext::encode_rgb(image.width, image.height, &image.data, &[])
        .map_err(|e| e.to_string())?;
    write(Path::new(path), &png)
}
