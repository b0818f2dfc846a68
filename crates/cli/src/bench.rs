//! `keyshift bench unet`: time per UNet step (batch 2, as with classifier-free guidance) and peak
//! memory, for the tiny fixture model and SD 1.5-shaped random weights.

use keyshift_sd::Device;
use keyshift_sd::clock::Stopwatch;
use keyshift_sd::config::UnetConfig;
use keyshift_sd::hooks::NoHook;
use keyshift_sd::unet::Unet;
use keyshift_sd::weights::{Loader, Precision, Prefixed, WeightStore};

use crate::args::Args;
use crate::backend::Backend;

/// One configuration to measure.
struct Case {
    name: &'static str,
    config: UnetConfig,
    latent: usize,
}

/// The tiny fixture's UNet shape.
pub(crate) fn tiny() -> UnetConfig {
    UnetConfig {
        block_out_channels: vec![32, 64],
        cross_attention: vec![false, true],
        attention_heads: vec![8, 8],
        cross_attention_dim: 32,
        ..UnetConfig::sd1()
    }
}

/// Runs the command; the error is the message to print.
#[allow(clippy::print_stdout, reason = "a command line prints its results")]
pub fn run(args: &[String]) -> Result<(), String> {
    let Some((what, rest)) = args.split_first() else {
        return Err("bench needs a target: unet, sequencer, render or taps".into());
    };
    if what == "sequencer" {
        return sequencer(rest);
    }
    if what == "render" {
        return crate::bench_render::run(rest);
    }
    if what == "taps" {
        return crate::bench_taps::run(rest);
    }
    if what != "unet" {
        return Err(format!(
            "unknown bench target \"{what}\" (unet, sequencer, render, taps)"
        ));
    }
    let args = Args::parse(rest, &[])?;
    if let Some(e) = args.unknown(&["backend", "sizes", "steps", "quant"]) {
        return Err(e);
    }
    let backend = args.get("backend").unwrap_or("cpu");
    let device = Backend::parse(backend)?.device()?;
    let steps: usize = args.parsed("steps", 3)?;
    let precision = crate::engine::precision(&args)?;
    let sizes = args.get("sizes").unwrap_or("tiny,256,512");
    for size in sizes.split(',') {
        let case = match size.trim() {
            "tiny" => Case {
                name: "tiny-sd1 32x32 latent",
                config: tiny(),
                latent: 32,
            },
            "256" => Case {
                name: "sd15 256x256",
                config: UnetConfig::sd1(),
                latent: 32,
            },
            "512" => Case {
                name: "sd15 512x512",
                config: UnetConfig::sd1(),
                latent: 64,
            },
            other => {
                return Err(format!(
                    "--sizes: unknown size \"{other}\" (tiny, 256, 512)"
                ));
            }
        };
        let ms = measure(&case, &device, steps, precision)?;
        let peak = peak_rss_mb();
        println!(
            "unet_step_ms{{model=\"{}\",backend=\"{backend}\",quant=\"{}\",batch=2}}: {ms:.1}  (peak RSS {peak:.0} MB)",
            case.name,
            precision.name()
        );
    }
    Ok(())
}

fn measure(
    case: &Case,
    device: &Device,
    steps: usize,
    precision: Precision,
) -> Result<f64, String> {
    let mut store = WeightStore::synthetic(7);
    let map = Prefixed::default();
    let unet = Unet::load(
        &mut Loader::new(&mut store, &map, device).with_precision(precision),
        &case.config,
    )
    .map_err(|e| e.to_string())?;
    let n = case.latent;
    let c = case.config.cross_attention_dim;
    let x = keyshift_sd::pipeline::latent(vec![0.1; 2 * 4 * n * n], [2, 4, n, n], device);
    let ctx = keyshift_sd::pipeline::context(vec![0.01; 2 * 77 * c], [2, 77, c], device);
    let run = |t: f64| -> Result<(), String> {
        let out = unet.forward(x.clone(), t, &ctx, &mut NoHook);
        out.into_data()
            .try_to_vec::<f32>()
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
    };
    run(999.0)?; // warm-up: kernels compiled, memory pools filled
    let clock = Stopwatch::start();
    for i in 0..steps.max(1) {
        run(900.0 - i as f64)?;
    }
    Ok(clock.elapsed_ms() / steps.max(1) as f64)
}

/// The process's peak resident memory in MB (Linux), 0 where unknown.
#[allow(clippy::disallowed_methods, reason = "native-only: reads /proc")]
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `keyshift bench sequencer [--runs N] [--document OUT.json]`: renders the 10,000-frame,
/// 20-field Parseq benchmark document and prints the median time (or writes the document). The target (≤ 50 ms) is for an optimised build:
/// `cargo run --release -p keyshift-core --example parseq_bench` measures the same render.
#[allow(clippy::print_stdout, reason = "a command line prints its results")]
fn sequencer(rest: &[String]) -> Result<(), String> {
    use keyshift_core::parseq::bench::{bench_document, render_bench};
    let args = Args::parse(rest, &[])?;
    if let Some(e) = args.unknown(&["runs", "document"]) {
        return Err(e);
    }
    let runs: usize = args.parsed("runs", 9)?;
    let doc = bench_document().map_err(|e| e.to_string())?;
    if let Some(path) = args.get("document") {
        // The document itself, for the browser's keystroke benchmark.
        return crate::engine::write(
            std::path::Path::new(path),
            doc.to_json().to_string().as_bytes(),
        );
    }
    render_bench(&doc).map_err(|e| e.to_string())?;
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let clock = Stopwatch::start();
        render_bench(&doc).map_err(|e| e.to_string())?;
        times.push(clock.elapsed_ms());
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
    println!("sequencer_render_ms: {median:.2}");
    Ok(())
}
