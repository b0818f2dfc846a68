//! `keyshift bench taps`: what the heatmap tap and attention interpolation add to a UNet step of
//! the tiny model (batch 2, as with CFG), and the memory interpolation keeps for the previous
//! frame, measured on the tiny model and estimated for SD 1.5 at 512².

use keyshift_sd::Device;
use keyshift_sd::clock::Stopwatch;
use keyshift_sd::config::UnetConfig;
use keyshift_sd::hooks::NoHook;
use keyshift_sd::taps::blend::storage_floats;
use keyshift_sd::taps::{
    BatchLayout, CrossAttentionTap, FrameBlend, FrameBlendConfig, StepHook, TapConfig,
};
use keyshift_sd::unet::{Unet, attention_layers_of};
use keyshift_sd::weights::{Loader, Precision, Prefixed, WeightStore};

use crate::args::Args;
use crate::backend::Backend;

struct Bench {
    unet: Unet,
    x: keyshift_sd::pipeline::Context4,
    /// The sampler's latent (one row), for the latent blend.
    latent: keyshift_sd::pipeline::Context4,
    ctx: keyshift_sd::pipeline::Context,
    steps: usize,
}

impl Bench {
    /// Mean milliseconds of one UNet call over `rounds` runs of `steps` steps with `hook`.
    fn time(&self, hook: &mut dyn StepHook, rounds: usize) -> Result<f64, String> {
        let clock = Stopwatch::start();
        for _ in 0..rounds {
            self.run(hook)?;
        }
        Ok(clock.elapsed_ms() / (rounds * self.steps) as f64)
    }

    fn run(&self, hook: &mut dyn StepHook) -> Result<(), String> {
        for step in 0..self.steps {
            hook.set_step(step);
            let out = self
                .unet
                .forward(self.x.clone(), 900.0 - step as f64, &self.ctx, hook);
            out.into_data()
                .try_to_vec::<f32>()
                .map_err(|e| format!("{e:?}"))?;
            let _ = hook.stepped(step, self.latent.clone());
        }
        Ok(())
    }
}

/// Runs the command.
#[allow(clippy::print_stdout, reason = "a command line prints its results")]
pub fn run(rest: &[String]) -> Result<(), String> {
    let args = Args::parse(rest, &[])?;
    if let Some(e) = args.unknown(&["backend", "steps", "rounds"]) {
        return Err(e);
    }
    let backend = args.get("backend").unwrap_or("cpu");
    let device: Device = Backend::parse(backend)?.device()?;
    let steps: usize = args.parsed("steps", 4)?.max(2);
    let rounds: usize = args.parsed("rounds", 5)?.max(1);
    let config = crate::bench::tiny();
    let mut store = WeightStore::synthetic(7);
    let unet = Unet::load(
        &mut Loader::new(&mut store, &Prefixed::default(), &device).with_precision(Precision::F32),
        &config,
    )
    .map_err(|e| e.to_string())?;
    let n = 32;
    let c = config.cross_attention_dim;
    let bench = Bench {
        unet,
        x: keyshift_sd::pipeline::latent(vec![0.1; 2 * 4 * n * n], [2, 4, n, n], &device),
        latent: keyshift_sd::pipeline::latent(vec![0.1; 4 * n * n], [1, 4, n, n], &device),
        ctx: keyshift_sd::pipeline::context(vec![0.01; 2 * 77 * c], [2, 77, c], &device),
        steps,
    };
    bench.run(&mut NoHook)?; // warm-up
    let base = bench.time(&mut NoHook, rounds)?;
    let mut tap =
        CrossAttentionTap::new(TapConfig::tokens(&[1, 2]).with_batch(BatchLayout::guided(7.5, 1)));
    let heat = bench.time(&mut tap, rounds)?;
    let blend_config = FrameBlendConfig::unet_defaults(steps).with_default_latents();
    let mut blend = FrameBlend::new(blend_config.clone());
    bench.run(&mut blend)?; // the first frame records
    blend.next_frame();
    let clock = Stopwatch::start();
    for _ in 0..rounds {
        bench.run(&mut blend)?;
        blend.next_frame();
    }
    let interp = clock.elapsed_ms() / (rounds * steps) as f64;
    let label = format!("model=\"tiny-sd1\",backend=\"{backend}\",batch=2");
    let pct = |t: f64| 100.0 * (t - base) / base;
    println!("unet_step_ms{{{label},hook=\"none\"}}: {base:.2}");
    println!(
        "unet_step_ms{{{label},hook=\"heatmap\"}}: {heat:.2}  ({:+.1} %)",
        pct(heat)
    );
    println!(
        "unet_step_ms{{{label},hook=\"interpolation\"}}: {interp:.2}  ({:+.1} %)",
        pct(interp)
    );
    println!(
        "temporal_storage_mb{{model=\"tiny-sd1\",size=\"64x64\",steps={steps}}}: {:.2} (measured {:.2})",
        mb(storage_floats(
            &blend_config,
            &bench.unet.attention_layers(),
            (n, n),
            2,
            steps
        )),
        mb(blend.stored_floats())
    );
    sd15_storage();
    Ok(())
}

fn mb(floats: usize) -> f64 {
    4.0 * floats as f64 / (1024.0 * 1024.0)
}

/// The storage of SD 1.5 at 512² (64² latent, CFG batch 2) for the original's defaults and lighter
/// configurations, 25 and 20 steps.
#[allow(clippy::print_stdout, reason = "a command line prints its results")]
fn sd15_storage() {
    let layers = attention_layers_of(&UnetConfig::sd1());
    for steps in [25, 20] {
        let defaults = FrameBlendConfig::unet_defaults(steps).with_default_latents();
        let cases = [
            (
                "default (probs at <=32x32, out_linear, latents)",
                defaults.clone(),
            ),
            (
                "attention_res 16",
                FrameBlendConfig {
                    attention_res: 16,
                    ..defaults.clone()
                },
            ),
            (
                "out_linear and latents only",
                FrameBlendConfig {
                    blend_probabilities: false,
                    ..defaults.clone()
                },
            ),
        ];
        for (name, config) in cases {
            let floats = storage_floats(&config, &layers, (64, 64), 2, steps);
            println!(
                "temporal_storage_mb{{model=\"sd15\",size=\"512x512\",steps={steps},config=\"{name}\"}}: {:.0}",
                mb(floats)
            );
        }
    }
}
