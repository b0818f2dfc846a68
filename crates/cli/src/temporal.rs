//! `--interp-config FILE.yaml|default|none` and `--hist lab|hsv|rgb|none`: temporal consistency
//! for every animation command (attention and latent interpolation with the previous frames, and
//! histogram matching of every frame to the first). The file is Attention-Interpolation's own
//! YAML: its `pipe_config`, `unet_config` and `controlnet_config` blocks, same keys, same defaults.

use keyshift_core::image::ColourSpace;
use keyshift_core::temporal::{Interpolation, Temporal};

use crate::args::Args;

/// The options every animation command takes.
pub const TEMPORAL_OPTIONS: &[&str] = &["interp-config", "hist"];

/// The temporal consistency the arguments ask for (both off when not given).
pub fn temporal(args: &Args) -> Result<Temporal, String> {
    let interpolation = match args.get("interp-config") {
        None | Some("none") => None,
        Some("default") => Some(Interpolation::default()),
        Some(path) => Some(read_config(path)?),
    };
    let colour = match args.get("hist").unwrap_or("none") {
        "none" => None,
        name => Some(
            ColourSpace::from_name(name)
                .ok_or_else(|| format!("--hist: \"{name}\" (use lab, hsv, rgb or none)"))?,
        ),
    };
    Ok(Temporal {
        interpolation,
        colour,
    })
}

#[allow(
    clippy::disallowed_methods,
    reason = "the native CLI reads the configuration file it is given"
)]
fn read_config(path: &str) -> Result<Interpolation, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--interp-config: cannot read {path}: {e}"))?;
    parse_config(&text).map_err(|e| format!("--interp-config: {path}: {e}"))
}

/// The configuration in `text` (YAML); what was ignored is printed as a warning.
pub fn parse_config(text: &str) -> Result<Interpolation, String> {
    let (config, warnings) = keyshift_core::temporal::parse_yaml(text)?;
    for warning in warnings {
        eprintln!("--interp-config: {warning}");
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyshift_core::temporal::{Block, Scheduler, UnetPart};

    /// The original's `configs/default.yaml`, as shipped (comments and all).
    const DEFAULT_YAML: &str = "pipeline: StableDiffusion \n\ncommon:\n  prompt: an iron man\n  \
        seed: 17\n  guess_mode: True\n  hist_normalize: lab  # rgb, hsv\n  unet_from: null\n\n\
        pipe_config:\n  interpolation_scheduler: ema\n  ema: 0.35 # 0.35, 0.45 - good alternatives\n  \
        eta: 0.75\n  start_step: 0\n  end_step: 25\n  const_steps: 0\n\nunet_config:\n  \
        interpolation_scheduler: ema\n  ema: 0.625\n  eta: 0.875\n  start_step: 0\n  end_step: 25\n  \
        const_steps: 0\n  use_interpolation:\n    key: false\n    query: false\n    value: false\n    \
        attention_probs: true\n    out_linear: true\n  attention_res: 32\n  allow_names:\n  - down\n  \
        - mid\n  - up\n\ncontrolnet_config:\n  interpolation_scheduler: ema\n  ema: 0.625\n  eta: 0.875\n  \
        start_step: 0\n  end_step: 25\n  const_steps: 0\n  use_interpolation:\n    key: false\n    \
        query: false\n    value: false\n    attention_probs: false\n    out_linear: false\n  \
        attention_res: 32\n  allow_names:\n  - down\n  - mid\n";

    #[test]
    fn the_originals_default_file_is_the_default() {
        let config = parse_config(DEFAULT_YAML).unwrap_or_else(|e| panic!("{e}"));
        let at_25 = |b: Block| Block {
            end_step: Some(25),
            ..b
        };
        assert_eq!(config.pipe_config, at_25(Block::pipe()));
        assert_eq!(config.unet_config, at_25(Block::unet()));
        assert_eq!(config.controlnet_config, at_25(Block::controlnet()));
    }

    #[test]
    fn a_partial_file_keeps_the_other_defaults_and_bad_values_are_named() {
        let config =
            parse_config("unet_config:\n  interpolation_scheduler: cos\n  allow_names: [up]\n")
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.unet_config.interpolation_scheduler, Scheduler::Cos);
        assert_eq!(config.unet_config.allow_names, [UnetPart::Up]);
        assert_eq!(config.unet_config.ema, 0.625);
        let err = parse_config("pipe_config:\n  ema: 2\n").unwrap_err();
        assert!(err.contains("pipe_config.ema"), "{err}");
        assert!(parse_config("unet_config: [1, 2]\n").is_err());
    }
}
