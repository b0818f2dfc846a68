//! Temporal consistency settings: Attention-Interpolation's configuration blocks (seeds.md §4:
//! `pipe_config` for the latents, `unet_config` and `controlnet_config` for attention) with the
//! same keys and the defaults of its `default.yaml`, and the colour space every frame is
//! histogram-matched to the first in. Plain data: the render layer turns it into engine hooks,
//! the CLI reads it from the original's YAML, the app edits it in its panel.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::image::ColourSpace;

/// How the weight towards the previous frame decays over the steps (`interpolation_scheduler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    /// `ema · eta^index`.
    #[default]
    Ema,
    /// `(cos(π·v/total) + 1) · ema / 2`, `v = linspace(0, total, total)[index]`.
    Cos,
    /// `linspace(ema, 0, total)[index]`.
    Linear,
}

/// Which tensors of an attention layer are blended (`use_interpolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UseInterpolation {
    /// The keys.
    pub key: bool,
    /// The queries.
    pub query: bool,
    /// The values.
    pub value: bool,
    /// The attention probabilities.
    pub attention_probs: bool,
    /// The output after the output projection.
    pub out_linear: bool,
}

/// A UNet part whose self-attention is blended (`allow_names`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnetPart {
    /// `down_blocks.*`.
    Down,
    /// `mid_block`.
    Mid,
    /// `up_blocks.*`.
    Up,
}

impl UnetPart {
    /// The diffusers name prefix of the part's layers.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Down => "down_blocks",
            Self::Mid => "mid_block",
            Self::Up => "up_blocks",
        }
    }
}

/// One configuration block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Block {
    /// The weight's decay.
    pub interpolation_scheduler: Scheduler,
    /// The starting weight towards the previous frame (0 turns the block off).
    pub ema: f64,
    /// The `ema` scheduler's decay per step.
    pub eta: f64,
    /// Blending runs only after this step (strict).
    pub start_step: usize,
    /// Blending runs only before this step (strict); `None`: the number of steps.
    pub end_step: Option<usize>,
    /// Steps the weight holds before it decays.
    pub const_steps: usize,
    /// Tensors blended (attention blocks only).
    pub use_interpolation: UseInterpolation,
    /// Probabilities are blended only where the keys number at most `attention_res²`.
    pub attention_res: usize,
    /// UNet parts blended (attention blocks only).
    pub allow_names: Vec<UnetPart>,
}

impl Block {
    /// `pipe_config` of `default.yaml`: the latents, from 0.35 with eta 0.75.
    pub fn pipe() -> Self {
        Self {
            interpolation_scheduler: Scheduler::Ema,
            ema: 0.35,
            eta: 0.75,
            start_step: 0,
            end_step: None,
            const_steps: 0,
            use_interpolation: UseInterpolation::default(),
            attention_res: 32,
            allow_names: Vec::new(),
        }
    }

    /// `unet_config` of `default.yaml`: probabilities and projected outputs of the down, mid and
    /// up blocks, from 0.625 with eta 0.875, `attention_res` 32.
    pub fn unet() -> Self {
        Self {
            ema: 0.625,
            eta: 0.875,
            use_interpolation: UseInterpolation {
                attention_probs: true,
                out_linear: true,
                ..UseInterpolation::default()
            },
            allow_names: vec![UnetPart::Down, UnetPart::Mid, UnetPart::Up],
            ..Self::pipe()
        }
    }

    /// `controlnet_config` of `default.yaml`: nothing blended, down and mid allowed.
    pub fn controlnet() -> Self {
        Self {
            use_interpolation: UseInterpolation::default(),
            allow_names: vec![UnetPart::Down, UnetPart::Mid],
            ..Self::unet()
        }
    }

    /// Whether the block changes anything: a positive weight and, for attention, a tensor.
    pub fn is_on(&self, attention: bool) -> bool {
        let u = self.use_interpolation;
        let any = u.key || u.query || u.value || u.attention_probs || u.out_linear;
        self.ema > 0.0 && (!attention || (any && !self.allow_names.is_empty()))
    }
}

/// The three blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interpolation {
    /// The latents after each sampler step.
    pub pipe_config: Block,
    /// The UNet's self-attention.
    pub unet_config: Block,
    /// A ControlNet's self-attention.
    pub controlnet_config: Block,
}

impl Default for Interpolation {
    fn default() -> Self {
        Self {
            pipe_config: Block::pipe(),
            unet_config: Block::unet(),
            controlnet_config: Block::controlnet(),
        }
    }
}

/// Temporal consistency for a render of several frames.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Temporal {
    /// Attention interpolation with the previous frames; `None` is off.
    pub interpolation: Option<Interpolation>,
    /// Every frame after the first histogram-matched to the first in this space; `None` is off.
    pub colour: Option<ColourSpace>,
}

impl Temporal {
    /// Whether anything is on.
    pub fn is_on(&self) -> bool {
        self.interpolation.is_some() || self.colour.is_some()
    }
}

/// A block as written in a file: every key optional, unknown ones kept to be reported.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawBlock {
    interpolation_scheduler: Option<Scheduler>,
    ema: Option<f64>,
    eta: Option<f64>,
    start_step: Option<usize>,
    end_step: Option<usize>,
    const_steps: Option<usize>,
    use_interpolation: Option<UseInterpolation>,
    attention_res: Option<usize>,
    allow_names: Option<Vec<UnetPart>>,
    /// The original copies its step count here; the render's own is used.
    total_steps: Option<usize>,
    #[serde(flatten)]
    unknown: BTreeMap<String, serde_json::Value>,
}

/// The original's configuration file as read: its three blocks (any may be missing), and its
/// other top-level keys (`pipeline`, `common`), which Keyshift takes from its own options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawInterpolation {
    pipe_config: Option<RawBlock>,
    unet_config: Option<RawBlock>,
    controlnet_config: Option<RawBlock>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

/// Why a configuration cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemporalError {
    /// A value out of its range.
    #[error("{block}.{key}: {value} ({expected})")]
    Range {
        /// The block.
        block: &'static str,
        /// The key.
        key: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
}

impl RawBlock {
    /// The block over `defaults`; unknown keys are appended to `warnings`.
    fn resolve(
        self,
        name: &'static str,
        defaults: Block,
        warnings: &mut Vec<String>,
    ) -> Result<Block, TemporalError> {
        for key in self.unknown.keys() {
            warnings.push(format!(
                "{name}.{key} is not a setting of this block; ignored"
            ));
        }
        let _ = self.total_steps;
        let block = Block {
            interpolation_scheduler: self
                .interpolation_scheduler
                .unwrap_or(defaults.interpolation_scheduler),
            ema: self.ema.unwrap_or(defaults.ema),
            eta: self.eta.unwrap_or(defaults.eta),
            start_step: self.start_step.unwrap_or(defaults.start_step),
            end_step: self.end_step.or(defaults.end_step),
            const_steps: self.const_steps.unwrap_or(defaults.const_steps),
            use_interpolation: self.use_interpolation.unwrap_or(defaults.use_interpolation),
            attention_res: self.attention_res.unwrap_or(defaults.attention_res),
            allow_names: self.allow_names.unwrap_or(defaults.allow_names),
        };
        let range = |key, value: f64, expected| TemporalError::Range {
            block: name,
            key,
            value: value.to_string(),
            expected,
        };
        if !(0.0..=1.0).contains(&block.ema) {
            return Err(range("ema", block.ema, "a weight from 0 to 1"));
        }
        if !(block.eta.is_finite() && block.eta >= 0.0) {
            return Err(range("eta", block.eta, "0 or more"));
        }
        Ok(block)
    }
}

impl RawInterpolation {
    /// The configuration over `default.yaml`'s, and what was ignored.
    pub fn resolve(self) -> Result<(Interpolation, Vec<String>), TemporalError> {
        let mut warnings = Vec::new();
        for key in self.other.keys() {
            if !matches!(key.as_str(), "pipeline" | "common") {
                warnings.push(format!("{key} is not a configuration block; ignored"));
            }
        }
        let block = |raw: Option<RawBlock>, name, defaults, warnings: &mut Vec<String>| {
            raw.unwrap_or_default().resolve(name, defaults, warnings)
        };
        let config = Interpolation {
            pipe_config: block(
                self.pipe_config,
                "pipe_config",
                Block::pipe(),
                &mut warnings,
            )?,
            unet_config: block(
                self.unet_config,
                "unet_config",
                Block::unet(),
                &mut warnings,
            )?,
            controlnet_config: block(
                self.controlnet_config,
                "controlnet_config",
                Block::controlnet(),
                &mut warnings,
            )?,
        };
        Ok((config, warnings))
    }
}

/// The deepest nesting a configuration file may have (its blocks are two levels deep): deeper
/// input is refused before the reader's recursion can use up a thread's stack.
#[cfg(not(target_arch = "wasm32"))]
const YAML_MAX_DEPTH: usize = 16;

#[cfg(not(target_arch = "wasm32"))]
/// Reads the original's configuration file (YAML): the configuration, and what was ignored as
/// warnings. An error names the line and column, or the block and key, at fault.
pub fn parse_yaml(text: &str) -> Result<(Interpolation, Vec<String>), String> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: YAML_MAX_DEPTH,
            flow_nesting_limit: YAML_MAX_DEPTH,
        },
    };
    let raw: RawInterpolation =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| e.to_string())?;
    raw.resolve().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<(Interpolation, Vec<String>), TemporalError> {
        serde_json::from_str::<RawInterpolation>(json)
            .map_err(|e| TemporalError::Range {
                block: "file",
                key: "json",
                value: e.to_string(),
                expected: "valid",
            })?
            .resolve()
    }

    #[test]
    fn missing_blocks_and_keys_take_the_original_defaults() {
        let (config, warnings) = read(r#"{"common": {"seed": 3}}"#).unwrap();
        assert_eq!(config, Interpolation::default());
        assert!(warnings.is_empty());
        let (config, _) =
            read(r#"{"unet_config": {"ema": 0.5, "use_interpolation": {"value": true}}}"#).unwrap();
        assert_eq!(config.unet_config.ema, 0.5);
        assert_eq!(config.unet_config.eta, 0.875);
        // A given `use_interpolation` replaces the default one whole, as the original reads it.
        assert!(config.unet_config.use_interpolation.value);
        assert!(!config.unet_config.use_interpolation.attention_probs);
        assert_eq!(config.pipe_config, Block::pipe());
    }

    #[test]
    fn mistakes_are_named() {
        let (_, warnings) = read(r#"{"unet_config": {"emma": 0.5}, "unet": {}}"#).unwrap();
        assert_eq!(
            warnings,
            [
                "unet is not a configuration block; ignored",
                "unet_config.emma is not a setting of this block; ignored"
            ]
        );
        let err = read(r#"{"pipe_config": {"ema": 1.5}}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pipe_config.ema: 1.5 (a weight from 0 to 1)"
        );
        assert!(read(r#"{"unet_config": {"interpolation_scheduler": "tanh"}}"#).is_err());
    }

    #[test]
    fn blocks_are_on_with_a_weight_and_a_tensor() {
        assert!(Block::pipe().is_on(false));
        assert!(Block::unet().is_on(true));
        assert!(!Block::controlnet().is_on(true));
        assert!(
            !Block {
                ema: 0.0,
                ..Block::unet()
            }
            .is_on(true)
        );
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn yaml_is_read_and_deep_nesting_is_refused() {
        let (config, warnings) =
            parse_yaml("pipe_config:\n  interpolation_scheduler: cos\n").unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            config,
            read(r#"{"pipe_config": {"interpolation_scheduler": "cos"}}"#)
                .unwrap()
                .0
        );
        let deep = format!("pipe_config: {}{}", "{a: ".repeat(200), "}".repeat(200));
        let err = parse_yaml(&deep).unwrap_err();
        assert!(err.contains("depth") || err.contains("nesting"), "{err}");
        let deep_block = format!(
            "pipe_config:\n{}",
            (1..60)
                .map(|i| format!("{}a{i}:\n", "  ".repeat(i)))
                .collect::<String>()
        );
        let err = parse_yaml(&deep_block).unwrap_err();
        assert!(err.contains("depth") || err.contains("nesting"), "{err}");
    }
}
