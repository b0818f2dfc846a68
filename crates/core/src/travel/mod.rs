//! Prompt travel (seeds.md §2): stages, one per prompt line, and the frames between them with
//! their interpolation weights, for every mode and frame genesis of Kahsolt's prompt-travel, plus
//! easing and per-stage seeds. Pure planning: the engine mixes the encoded conditioning.
//!
//! - [`editor`]: the stage editor's edits of the prompt lines and steps text.
//! - [`stages`]: prompt lines → [`Stage`]s (negatives padded, `THEN(seed=…, cfg=…)` options) and
//!   the travel-steps text.
//! - [`frames`]: the frames of each genesis in generation and video order, with α.
//! - [`easing`]: α curves (linear, ease in/out, cubic Bézier as Parseq's `bez()`).
//! - [`slice`]: "pick frames by slice", Python's `start:stop:step`.
//! - [`replace`]: replace mode's element order (token / channel / element; random / similar /
//!   different), with NumPy's `RandomState` for the random order.

pub mod easing;
pub mod editor;
pub mod frames;
pub mod replace;
pub mod slice;
pub mod stages;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use easing::Easing;
pub use frames::{FrameKind, TravelFrame, TravelPlan, plan};
pub use replace::{ReplaceDim, ReplaceOrder, TokenOrder};

pub use slice::Slice;
pub use stages::{MAX_TRAVEL_FRAMES, Stage, parse_steps, stages};

/// How the conditioning goes from one stage to the next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TravelMode {
    /// Interpolate the encoded conditioning (lerp or slerp).
    #[default]
    Linear,
    /// Replace elements of the encoded conditioning by the next stage's, a few more each frame.
    Replace,
    /// The old (v1.2) replace: token IDs of the prompt take the next stage's, a few more each
    /// frame, and the prompt is encoded again.
    ReplaceIds,
    /// Walk the prompt's conditioning towards the next stage by gradient steps (prompt-travel
    /// v1.1): the training loss of the next stage's image plus the L1 distance of the conds.
    Grad,
}

/// Linear mode's interpolation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interp {
    /// `(1 − α)·A + α·B`.
    #[default]
    Lerp,
    /// Spherical, per token row (lerp where the rows are nearly parallel).
    Slerp,
}

/// How each frame starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Genesis {
    /// Every frame from the same noise.
    #[default]
    Fixed,
    /// Each frame is img2img of the one before.
    Successive,
    /// Two stages; every frame shares the latent of a half-way render at the embryo step.
    Embryo,
}

macro_rules! names {
    ($ty:ty { $($variant:ident = $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value with its name.
            pub const ALL: &'static [($ty, &'static str)] = &[$((<$ty>::$variant, $name)),+];

            /// The name used on the command line and in the UI.
            pub fn name(self) -> &'static str {
                Self::ALL.iter().find(|(v, _)| *v == self).map_or("", |(_, n)| n)
            }

            /// The value of a name.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().find(|(_, n)| *n == name).map(|(v, _)| *v)
            }
        }
    };
}
pub(crate) use names;

names!(TravelMode {
    Linear = "linear",
    Replace = "replace",
    ReplaceIds = "replace-ids",
    Grad = "grad",
});
names!(GradMethod { Clip = "clip", Sign = "sign", Tanh = "tanh" });

/// How a grad-mode step turns the gradient into a move.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GradMethod {
    /// `(g > 1e-5)·clamp(g, 0.2, 1) + (g < −1e-5)·clamp(g, −1, −0.2)`.
    #[default]
    Clip,
    /// `sign(g)`.
    Sign,
    /// `tanh(g)`.
    Tanh,
}

/// Grad mode's options (the original's defaults: 1 iteration, α 0.01, clip, weights 1 and 1).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradOptions {
    /// PGD iterations per frame.
    pub iterations: usize,
    /// Step size.
    pub alpha: f64,
    /// Step method.
    pub method: GradMethod,
    /// Weight of the latent (training) loss.
    pub w_latent: f64,
    /// Weight of the L1 conditioning loss.
    pub w_cond: f64,
}

impl Default for GradOptions {
    fn default() -> Self {
        Self {
            iterations: 1,
            alpha: 0.01,
            method: GradMethod::Clip,
            w_latent: 1.0,
            w_cond: 1.0,
        }
    }
}
names!(Interp { Lerp = "lerp", Slerp = "slerp" });
names!(Genesis { Fixed = "fixed", Successive = "successive", Embryo = "embryo" });

/// The embryo step: a step count, or a ratio of the sampling steps when below 1.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbryoStep(pub f64);

impl Default for EmbryoStep {
    fn default() -> Self {
        Self(8.0)
    }
}

impl EmbryoStep {
    /// Reads the text of "Denoise steps for embryo".
    pub fn parse(text: &str) -> Result<Self, TravelError> {
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| TravelError::EmbryoStep(format!("{text:?} is not a number")))?;
        if !(value.is_finite() && value > 0.0) {
            return Err(TravelError::EmbryoStep(format!("{text} must be above 0")));
        }
        Ok(Self(value))
    }

    /// The step (0-based: the latent before this step runs) for `steps` sampling steps: `n` as
    /// given when ≥ 1 (whole), `round(x · steps)` for a ratio; it must fall inside the run.
    pub fn resolve(self, steps: usize) -> Result<usize, TravelError> {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "positive, small values"
        )]
        let step = if self.0 >= 1.0 {
            self.0 as usize
        } else {
            (self.0 * steps as f64).round_ties_even() as usize
        };
        if step == 0 || step >= steps {
            return Err(TravelError::EmbryoStep(format!(
                "{} gives step {step}, which must be between 1 and {} for {steps} sampling steps",
                self.0,
                steps.saturating_sub(1)
            )));
        }
        Ok(step)
    }
}

/// Why a travel cannot be planned.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum TravelError {
    /// Fewer stages than the mode needs.
    #[error("prompt travel needs at least two stages, one per line of the prompt (got {0})")]
    TooFewStages(usize),
    /// Embryo genesis with other than two stages.
    #[error("embryo genesis travels between exactly two stages (got {0})")]
    EmbryoStages(usize),
    /// Replace mode with embryo genesis.
    #[error("embryo genesis works with linear travel only")]
    EmbryoReplace,
    /// Grad mode with another genesis than fixed.
    #[error("grad mode works with fixed genesis only")]
    GradGenesis,
    /// The travel-steps text.
    #[error("travel steps: {0}")]
    Steps(String),
    /// A stage's `THEN(...)` options.
    #[error("stage {stage}: {message}")]
    StageOptions {
        /// Stage number (1-based, as the user counts lines).
        stage: usize,
        /// What is wrong.
        message: String,
    },
    /// The embryo step.
    #[error("embryo step: {0}")]
    EmbryoStep(String),
    /// The easing.
    #[error("easing: {0}")]
    Easing(String),
    /// The frame slice.
    #[error("slice: {0}")]
    Slice(String),
}
