//! `keyshift bench shift`: frames per minute of a shift-attention animation with the text
//! encoder's cache off (every frame encodes its prompts) and on (rows shared with earlier frames
//! are reused), on the same model and settings in one run, and whether the frames are the same;
//! then with `--batch N` frames (4 unless given) sharing each UNet call, and how far their
//! pixels are from the frames made one at a time; with `--taesd DIR`, a last run decodes the
//! frames with TAESD (and how far they are from the VAE's, in PSNR).

use std::collections::BTreeMap;

use keyshift_core::shift::{GapSettings, ShiftRequest};
use keyshift_render::{ShiftOptions, ShiftSource};
use keyshift_sd::clip::CACHED_ROWS;
use keyshift_sd::clock::Stopwatch;
use keyshift_sd::hooks::NoHook;

use crate::args::Args;
use crate::engine::{ENGINE_OPTIONS, Engine};

/// Runs the command; prints one line per measure.
#[allow(clippy::print_stdout, reason = "a command line prints its results")]
pub fn run(rest: &[String]) -> Result<(), String> {
    let args = Args::parse(rest, &[])?;
    let known: Vec<&str> = ENGINE_OPTIONS
        .iter()
        .chain(&["frames", "prompt"])
        .copied()
        .collect();
    if let Some(e) = args.unknown(&known) {
        return Err(e);
    }
    let frames: i64 = args.parsed("frames", 16)?;
    if frames < 2 {
        return Err(format!("--frames: {frames} (at least 2)"));
    }
    let prompt = args
        .get("prompt")
        .unwrap_or("a photo of a (cat:1~0), (dog:0~1), best quality");
    let mut engine = Engine::load(&args)?;
    let taesd = engine.taesd.take();
    let options = ShiftOptions {
        request: ShiftRequest {
            prompt: prompt.to_owned(),
            negative_prompt: "blurry".into(),
            steps: frames - 1,
            seed: 7,
            cfg_scale: 7.0,
            remove_zero_strength: false,
        },
        gap: GapSettings {
            threshold: 0.0,
            min_step: 0.0001,
            min_threshold_pct: 75.0,
        },
        mirror: false,
        fps: 0.0,
        lead: 0,
    };
    let cache = engine.model.clip.cache();
    let batch = engine.batch.unwrap_or(4);
    let mut runs = Vec::new();
    for rows in [0, CACHED_ROWS] {
        cache.set_capacity(rows);
        engine.batch = Some(1);
        let (hits, misses) = cache.counts();
        let (ms, images) = render(&engine, &args, &options)?;
        let (h, m) = cache.counts();
        runs.push((ms, images, h - hits, m - misses));
    }
    let per_minute = |ms: f64, n: usize| n as f64 * 60_000.0 / ms.max(1e-9);
    for (name, (ms, images, hits, misses)) in ["before", "after"].iter().zip(&runs) {
        println!(
            "frames_per_minute_{name}: {:.1}  ({} frames in {ms:.0} ms; rows encoded {misses}, reused {hits})",
            per_minute(*ms, images.len()),
            images.len()
        );
    }
    let same = runs[0].1 == runs[1].1;
    println!("frames_identical: {same}");
    engine.batch = Some(batch);
    let (ms, images) = render(&engine, &args, &options)?;
    let most = images
        .iter()
        .zip(&runs[1].1)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)))
        .max()
        .unwrap_or(0);
    println!(
        "frames_per_minute_batched: {:.1}  ({} frames in {ms:.0} ms, {batch} per UNet call; largest \
         pixel difference from the frames made one at a time: {most})",
        per_minute(ms, images.len()),
        images.len()
    );
    engine.batch = Some(1);
    if taesd.is_some() {
        engine.taesd = taesd;
        let (ms, images) = render(&engine, &args, &options)?;
        let worst = images
            .iter()
            .zip(&runs[1].1)
            .map(|(a, b)| psnr(a, b))
            .fold(f64::INFINITY, f64::min);
        println!(
            "frames_per_minute_taesd: {:.1}  ({} frames in {ms:.0} ms; lowest PSNR against the VAE's frames {worst:.1} dB)",
            per_minute(ms, images.len()),
            images.len()
        );
    }
    Ok(())
}

/// The PSNR of two 8-bit images of the same size, in dB (infinite when they are equal).
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let n = a.len().min(b.len()).max(1) as f64;
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / n;
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

/// Renders the animation; its time and its frames' pixels in order.
fn render(
    engine: &Engine,
    args: &Args,
    options: &ShiftOptions,
) -> Result<(f64, Vec<Vec<u8>>), String> {
    let settings = engine.settings(args, 1.0)?;
    let source = ShiftSource::new(options.clone(), &settings).map_err(|e| e.to_string())?;
    let mut images = BTreeMap::new();
    let clock = Stopwatch::start();
    engine.render(
        settings,
        source,
        BTreeMap::new(),
        None,
        &mut NoHook,
        &mut |frame| {
            images.insert(frame.record.generation_index, frame.image.data.clone());
            Ok(())
        },
    )?;
    Ok((clock.elapsed_ms(), images.into_values().collect()))
}
