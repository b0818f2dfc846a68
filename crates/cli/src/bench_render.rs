//! `keyshift bench render`: the render layer's cost per frame against a bare `Generation` loop on
//! the same model and settings (the target is at most 2 % more). Frames alternate between the two
//! so that both see the same machine; medians are reported.

use std::collections::BTreeMap;

use keyshift_render::{Event, FrameSpec, SingleFrame};
use keyshift_sd::clock::Stopwatch;
use keyshift_sd::generate::Generation;
use keyshift_sd::hooks::NoHook;

use crate::args::Args;
use crate::engine::{ENGINE_OPTIONS, Engine};

fn spec(seed: u64) -> FrameSpec {
    FrameSpec {
        index: 0,
        prompt: "a photo of a (cat:1.2), best quality".into(),
        negative: "blurry".into(),
        seed,
        subseed: seed + 1,
        subseed_strength: 0.25,
        cfg: 7.0,
        init: None,
        extra: BTreeMap::new(),
        travel: None,
        direct: None,
        output_size: None,
        hint: None,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs the command; prints one line per measure.
#[allow(clippy::print_stdout, reason = "a command line prints its results")]
pub fn run(rest: &[String]) -> Result<(), String> {
    let args = Args::parse(rest, &[])?;
    let known: Vec<&str> = ENGINE_OPTIONS.iter().chain(&["frames"]).copied().collect();
    if let Some(e) = args.unknown(&known) {
        return Err(e);
    }
    let frames: u64 = args.parsed("frames", 10)?;
    let engine = Engine::load(&args)?;
    let settings = engine.settings(&args, 1.0)?;
    let (mut bare, mut layered) = (Vec::new(), Vec::new());
    for seed in 0..frames {
        let clock = Stopwatch::start();
        let mut session = keyshift_render::RenderSession::new(
            &engine.model,
            &engine.tokenizer,
            &engine.device,
            settings.clone(),
            SingleFrame::new(spec(seed)),
        );
        let request = session.request(&spec(seed));
        loop {
            let event =
                pollster::block_on(session.advance(&mut NoHook)).map_err(|e| e.to_string())?;
            if matches!(event, Event::Done(_)) {
                break;
            }
        }
        layered.push(clock.elapsed_ms());
        let clock = Stopwatch::start();
        let mut generation =
            Generation::new(&engine.model, &engine.tokenizer, &request, &engine.device)
                .map_err(|e| e.to_string())?;
        while generation
            .step(&mut NoHook)
            .map_err(|e| e.to_string())?
            .is_some()
        {}
        pollster::block_on(generation.finish()).map_err(|e| e.to_string())?;
        bare.push(clock.elapsed_ms());
    }
    let (b, l) = (median(bare), median(layered));
    println!("bare_generation_ms_per_frame {b:.2}");
    println!("render_layer_ms_per_frame {l:.2}");
    println!("render_layer_overhead_pct {:.2}", (l / b - 1.0) * 100.0);
    Ok(())
}
