//! `keyshift render travel`: prompt travel between the stages of `--prompt` (one per line).

use keyshift_core::shift::GapSettings;
use keyshift_core::travel::easing::Easing;
use keyshift_core::travel::{
    EmbryoStep, Genesis, GradMethod, GradOptions, Interp, ReplaceDim, ReplaceOrder, Slice,
    TokenOrder, TravelMode,
};
use keyshift_render::{TravelGapOptions, TravelOptions, TravelSource};

use crate::args::Args;
use crate::engine::{ENGINE_OPTIONS, Engine};
use crate::render::{random_seed, render_to};

const TRAVEL_OPTIONS: &[&str] = &[
    "prompt",
    "negative",
    "travel-steps",
    "mode",
    "interp",
    "easing",
    "replace-dim",
    "replace-order",
    "genesis",
    "denoise",
    "embryo-step",
    "seed",
    "cfg",
    "pad",
    "slice",
    "fps",
    "ssim-threshold",
    "ssim-min-step",
    "ssim-min-pct",
    "ssim-blur",
    "ssim-crop",
    "grad-iter",
    "grad-alpha",
    "grad-method",
    "grad-w-latent",
    "grad-w-cond",
    "subseed",
    "subseed-strength",
    "upscale",
    "out",
    "resume",
    "stop-after",
];

/// `keyshift render travel …`.
pub fn run(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args, &["resume"])?;
    let known: Vec<&str> = TRAVEL_OPTIONS
        .iter()
        .chain(ENGINE_OPTIONS)
        .chain(crate::temporal::TEMPORAL_OPTIONS)
        .copied()
        .collect();
    if let Some(unknown) = args.unknown(&known) {
        return Err(unknown);
    }
    let options = options(&args)?;
    let upscale = args.parsed("upscale", 1.0f64)?;
    if upscale.is_nan() || upscale <= 0.0 || upscale > 8.0 {
        return Err(format!(
            "--upscale: {upscale} is outside 0 to 8 (1 keeps the size)"
        ));
    }
    let engine = Engine::load(&args)?;
    let settings = engine.settings(&args, upscale)?;
    let source = TravelSource::new(options, &settings).map_err(|e| e.to_string())?;
    render_to(&args, &engine, settings, source)
}

/// A named choice: `--flag NAME` among `all`.
fn choice<T: Copy + Default>(
    args: &Args,
    flag: &str,
    all: &[(T, &'static str)],
) -> Result<T, String> {
    let Some(text) = args.get(flag) else {
        return Ok(T::default());
    };
    all.iter()
        .find(|(_, name)| *name == text)
        .map(|(v, _)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|(_, n)| *n).collect();
            format!("--{flag}: \"{text}\" is not one of {}", names.join(", "))
        })
}

fn options(args: &Args) -> Result<TravelOptions, String> {
    let seed = match args.parsed("seed", -1i64)? {
        -1 => u64::from(random_seed()),
        s if !(0..=i64::from(u32::MAX)).contains(&s) => {
            return Err(format!(
                "--seed: {s} (0 to 4294967295, or -1 for a random seed)"
            ));
        }
        s => s.unsigned_abs(),
    };
    let easing = match args.get("easing") {
        Some(text) => Easing::parse(text).map_err(|e| format!("--{e}"))?,
        None => Easing::Linear,
    };
    let embryo_step = match args.get("embryo-step") {
        Some(text) => EmbryoStep::parse(text).map_err(|e| format!("--{e}"))?,
        None => EmbryoStep::default(),
    };
    let slice = Slice::parse(args.get("slice").unwrap_or("")).map_err(|e| format!("--{e}"))?;
    let fps = args.parsed("fps", 10.0f64)?;
    if !(fps.is_finite() && fps > 0.0) {
        return Err(format!("--fps: {fps} must be above 0"));
    }
    let steps = args.required("travel-steps")?;
    let mode = match args.get("mode") {
        // Grad options alone choose grad mode.
        None if args.get("grad-iter").is_some() => TravelMode::Grad,
        _ => choice::<TravelMode>(args, "mode", TravelMode::ALL)?,
    };
    let gap = TravelGapOptions {
        gap: GapSettings {
            threshold: in_range(args, "ssim-threshold", 0.0, 0.0, 1.0)?,
            min_step: in_range(args, "ssim-min-step", 0.0001, 1e-9, 1.0)?,
            min_threshold_pct: in_range(args, "ssim-min-pct", 75.0, 0.0, 100.0)?,
        },
        blur: in_range(args, "ssim-blur", 0.0, 0.0, 20.0)?,
        crop: in_range(args, "ssim-crop", 0.0, 0.0, 100.0)?,
    };
    Ok(TravelOptions {
        prompt: args.required("prompt")?.to_owned(),
        negative: args.get("negative").unwrap_or("").to_owned(),
        steps: steps.to_owned(),
        mode,
        interp: choice::<Interp>(args, "interp", Interp::ALL)?,
        easing,
        replace_dim: choice::<ReplaceDim>(args, "replace-dim", ReplaceDim::ALL)?,
        replace_order: match mode {
            TravelMode::ReplaceIds => ReplaceOrder::default(),
            _ => choice::<ReplaceOrder>(args, "replace-order", ReplaceOrder::ALL)?,
        },
        token_order: match (mode, args.get("replace-order")) {
            (TravelMode::ReplaceIds, Some("similar")) => TokenOrder::MostSimilar,
            (TravelMode::ReplaceIds, Some("different")) => TokenOrder::MostDifferent,
            (TravelMode::ReplaceIds, _) => {
                choice::<TokenOrder>(args, "replace-order", TokenOrder::ALL)?
            }
            _ => TokenOrder::default(),
        },
        genesis: choice::<Genesis>(args, "genesis", Genesis::ALL)?,
        denoise: args.parsed("denoise", 1.0f64)?,
        embryo_step,
        seed,
        cfg: args.parsed("cfg", 7.0)?,
        pad: args.parsed("pad", 0usize)?,
        slice,
        fps,
        gap,
        subseed: match args.parsed("subseed", -1i64)? {
            -1 => None,
            s => Some(
                u64::try_from(s)
                    .ok()
                    .filter(|s| *s <= u64::from(u32::MAX))
                    .ok_or_else(|| {
                        format!(
                            "--subseed: {s} (0 to 4294967295, or -1 for a random one per frame)"
                        )
                    })?,
            ),
        },
        subseed_strength: in_range(args, "subseed-strength", 0.0, 0.0, 1.0)?,
        grad: GradOptions {
            iterations: args.parsed("grad-iter", 1usize)?,
            alpha: in_range(args, "grad-alpha", 0.01, 0.0, 10.0)?,
            method: choice::<GradMethod>(args, "grad-method", GradMethod::ALL)?,
            w_latent: in_range(args, "grad-w-latent", 1.0, 0.0, 1000.0)?,
            w_cond: in_range(args, "grad-w-cond", 1.0, 0.0, 1000.0)?,
        },
    })
}

/// `--flag X` within `lo..=hi`, or `default`.
fn in_range(args: &Args, flag: &str, default: f64, lo: f64, hi: f64) -> Result<f64, String> {
    let value = args.parsed(flag, default)?;
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(value)
    } else {
        Err(format!("--{flag}: {value} is outside {lo} to {hi}"))
    }
}
