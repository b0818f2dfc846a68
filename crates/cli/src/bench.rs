//! `keyshift bench unet`: time per UNet step (batch 2, as with classifier-free guidance), a VAE
//! decode, and the largest buffer allocated, for random weights of SD 1.5's, SD 2.1's, SD-Turbo's
//! or the tiny fixture's shape; `keyshift bench sequencer`.

use keyshift_sd::Device;
use keyshift_sd::clock::Stopwatch;
use keyshift_sd::config::UnetConfig;
use keyshift_sd::config::VaeConfig;
use keyshift_sd::hooks::NoHook;
use keyshift_sd::limits;
use keyshift_sd::pipeline;
use keyshift_sd::unet::Unet;
use keyshift_sd::vae::Vae;
use keyshift_sd::weights::{Loader, Precision, Prefixed, WeightStore};

use crate::args::Args;
use crate::backend::Backend;

/// The model shapes `--shape` names (random weights of that shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Sd15,
    Sd21,
    Turbo,
    Tiny,
}

impl Shape {
    fn parse(name: &str) -> Result<Self, String> {
        match name {
            "sd15" => Ok(Self::Sd15),
            "sd21" => Ok(Self::Sd21),
            "turbo" => Ok(Self::Turbo),
            "tiny" => Ok(Self::Tiny),
            other => Err(format!(
                "--shape: unknown shape \"{other}\" (sd15, sd21, turbo, tiny)"
            )),
        }
    }

    fn unet(self) -> UnetConfig {
        match self {
            Self::Sd15 => UnetConfig::sd1(),
            Self::Sd21 | Self::Turbo => UnetConfig::sd2(),
            Self::Tiny => tiny(),
        }
    }

    fn vae(self) -> VaeConfig {
        match self {
            Self::Tiny => VaeConfig {
                block_out_channels: vec![32, 64],
                layers_per_block: 1,
                ..VaeConfig::sd()
            },
            _ => VaeConfig::sd(),
        }
    }

    /// The image side the model was made for.
    fn native_side(self) -> usize {
        match self {
            Self::Sd21 => 768,
            Self::Tiny => 64,
            Self::Sd15 | Self::Turbo => 512,
        }
    }
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
pub fn run(args: &[String]) -> Result<(), String> {
    let Some((what, rest)) = args.split_first() else {
        return Err("bench needs a target: unet, sequencer, render, taps or shift".into());
    };
    match what.as_str() {
        "unet" => unet(rest),
        "sequencer" => sequencer(rest),
        "render" => crate::bench_render::run(rest),
        "taps" => crate::bench_taps::run(rest),
        "shift" => crate::bench_shift::run(rest),
        other => Err(format!(
            "unknown bench target \"{other}\" (unet, sequencer, render, taps, shift)"
        )),
    }
}

/// Where the run's largest buffer is read from.
enum Probe {
    /// The process's largest allocation (CPU tensors are allocations).
    Host,
    /// The wgpu device's allocator.
    #[cfg(feature = "wgpu")]
    Gpu(crate::gpu::Gpu),
}

impl Probe {
    fn open(backend: Backend, limit: u64) -> Result<(Device, Self), String> {
        match backend {
            Backend::Cpu => Ok((Device::flex(), Self::Host)),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => {
                let gpu = crate::gpu::Gpu::open(limit)?;
                Ok((gpu.device.clone(), Self::Gpu(gpu)))
            }
            #[cfg(not(feature = "wgpu"))]
            Backend::Wgpu => {
                let _ = limit;
                Err(crate::backend::NO_WGPU.to_owned())
            }
        }
    }

    fn start(&self) {
        crate::alloc::reset();
    }

    /// The largest buffer so far (sampled after each step on wgpu, where pools keep their pages).
    fn largest(&self, so_far: u64) -> u64 {
        #[cfg(not(feature = "wgpu"))]
        let _ = so_far;
        match self {
            Self::Host => crate::alloc::largest(),
            #[cfg(feature = "wgpu")]
            Self::Gpu(gpu) => so_far.max(gpu.largest_buffer().unwrap_or(0)),
        }
    }
}

/// `keyshift bench unet`: per size, the median time of a UNet step with CFG (batch 2) and of a VAE
/// decode, and the largest buffer allocated, for random weights of a model's shape or a model's own
/// (`--model`).
#[allow(clippy::print_stdout, reason = "a command line prints its results")]
fn unet(rest: &[String]) -> Result<(), String> {
    let args = Args::parse(rest, &["no-vae"])?;
    if let Some(e) = args.unknown(&[
        "backend",
        "shape",
        "sizes",
        "steps",
        "quant",
        "buffer-limit",
        "model",
        "no-vae",
    ]) {
        return Err(e);
    }
    let backend = Backend::parse(args.get("backend").unwrap_or("cpu"))?;
    let limit: u64 = args.parsed("buffer-limit", limits::WEBGPU_DEFAULT)?;
    let steps: usize = args.parsed("steps", 3)?;
    let precision = crate::engine::precision(&args)?;
    let shape = Shape::parse(args.get("shape").unwrap_or("sd15"))?;
    let (device, probe) = Probe::open(backend, limit)?;
    let sizes = match args.get("sizes") {
        Some(list) => parse_sizes(list)?,
        None => vec![shape.native_side()],
    };
    let bench = Bench {
        shape,
        device,
        probe,
        steps: steps.max(1),
        precision,
        vae: args.get("no-vae").is_none(),
    };
    println!(
        "{} backend: {} quant: {} buffer_limit_bytes: {limit}",
        match args.get("model") {
            Some(path) => format!("model: {path}"),
            None => format!("shape: {}", args.get("shape").unwrap_or("sd15")),
        },
        args.get("backend").unwrap_or("cpu"),
        precision.name()
    );
    limits::with_buffer_limit(limit, || {
        let weights = match args.get("model") {
            Some(path) => bench.model(path)?,
            None => bench.synthetic()?,
        };
        for side in sizes {
            let result = bench.measure(&weights, side)?;
            println!("size: {side}");
            println!("ms_per_step: {:.1}", result.ms_per_step);
            if let Some(ms) = result.vae_ms {
                println!("vae_decode_ms: {ms:.1}");
            }
            println!("max_buffer_bytes: {}", result.max_buffer);
            println!("checksum: {:.6}", result.checksum);
            println!("peak_rss_mb: {:.0}", peak_rss_mb());
        }
        Ok(())
    })
}

/// `--sizes 256,512`: image sides (multiples of 8; `tiny` for the tiny model's 64 is kept from the
/// older form).
fn parse_sizes(list: &str) -> Result<Vec<usize>, String> {
    list.split(',')
        .map(|s| match s.trim() {
            "tiny" => Ok(64),
            s => s
                .parse::<usize>()
                .ok()
                .filter(|&n| n >= 8 && n % 8 == 0)
                .ok_or_else(|| format!("--sizes: \"{s}\" is not an image side (a multiple of 8)")),
        })
        .collect()
}

struct Bench {
    shape: Shape,
    device: Device,
    probe: Probe,
    steps: usize,
    precision: Precision,
    vae: bool,
}

struct Measured {
    ms_per_step: f64,
    /// The sum of the output's first 16 values (the browser's benchmark reports the same).
    checksum: f64,
    vae_ms: Option<f64>,
    max_buffer: u64,
}

/// The networks measured: random weights of a shape, or a model's own.
struct Weights {
    unet: Unet,
    vae: Option<Vae>,
    context_width: usize,
    downscale: usize,
}

impl Bench {
    /// Random weights of the shape (the VAE only when it is measured).
    fn synthetic(&self) -> Result<Weights, String> {
        let mut store = WeightStore::synthetic(7);
        let map = Prefixed::default();
        let config = self.shape.unet();
        let unet = Unet::load(
            &mut Loader::new(&mut store, &map, &self.device).with_precision(self.precision),
            &config,
        )
        .map_err(|e| e.to_string())?;
        let vae_config = self.shape.vae();
        let vae = match self.vae {
            true => Some(
                Vae::load(
                    &mut Loader::new(&mut store, &map, &self.device).with_precision(self.precision),
                    &vae_config,
                    false,
                )
                .map_err(|e| e.to_string())?,
            ),
            false => None,
        };
        Ok(Weights {
            unet,
            vae,
            context_width: config.cross_attention_dim,
            downscale: vae_config.downscale(),
        })
    }

    /// A model's UNet and VAE (`--model`).
    fn model(&self, path: &str) -> Result<Weights, String> {
        let model =
            crate::load::load_model(std::path::Path::new(path), self.precision, &self.device)?;
        Ok(Weights {
            context_width: model.info.unet.cross_attention_dim,
            downscale: model.info.vae.downscale(),
            unet: model.unet,
            vae: self.vae.then_some(model.vae),
        })
    }

    /// Median time of a UNet step with CFG (after a warm-up step), and of a decode.
    fn measure(&self, weights: &Weights, side: usize) -> Result<Measured, String> {
        let n = side / weights.downscale.max(1);
        let c = weights.context_width;
        let x = pipeline::latent(vec![0.1; 2 * 4 * n * n], [2, 4, n, n], &self.device);
        let ctx = pipeline::context(vec![0.01; 2 * 77 * c], [2, 77, c], &self.device);
        self.probe.start();
        let mut largest = 0;
        let mut run = || -> Result<(f64, Vec<f32>), String> {
            let clock = Stopwatch::start();
            let out = weights.unet.forward(x.clone(), 900.0, &ctx, &mut NoHook);
            let values = read(out.into_data().try_to_vec::<f32>())?;
            largest = self.probe.largest(largest);
            Ok((clock.elapsed_ms(), values))
        };
        // Warm-up: kernels compiled, memory pools filled. Every step gets the same inputs, as
        // the peers' benchmark and the browser's (`ToWorker::Benchmark`) do.
        let (_, first) = run()?;
        let times = (0..self.steps)
            .map(|_| run().map(|(ms, _)| ms))
            .collect::<Result<Vec<f64>, String>>()?;
        let vae_ms = match &weights.vae {
            Some(vae) => Some(self.decode(vae, n, &mut largest)?),
            None => None,
        };
        Ok(Measured {
            ms_per_step: median(times),
            checksum: first.iter().take(16).map(|&v| f64::from(v)).sum(),
            vae_ms,
            max_buffer: largest,
        })
    }

    /// Times one decode of an `n`×`n` latent (after a warm-up decode).
    fn decode(&self, vae: &Vae, n: usize, largest: &mut u64) -> Result<f64, String> {
        let z = pipeline::latent(vec![0.1; 4 * n * n], [1, 4, n, n], &self.device);
        let mut times = Vec::new();
        for _ in 0..2 {
            let clock = Stopwatch::start();
            read(vae.decode(z.clone()).into_data().try_to_vec::<f32>())?;
            times.push(clock.elapsed_ms());
            *largest = self.probe.largest(*largest);
        }
        Ok(times.last().copied().unwrap_or(0.0))
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// A read-back's result: reading forces the work to finish.
fn read<E: std::fmt::Debug>(values: Result<Vec<f32>, E>) -> Result<Vec<f32>, String> {
    values.map_err(|e| format!("{e:?}"))
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
