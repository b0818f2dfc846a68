//! Diffusion noise schedules and sampler steps as scalar math (f64), no tensors.
//!
//! The engine (`crates/sd`) runs each step as a few tensor operations with scalars from a
//! [`StepPlan`]:
//!
//! ```text
//! x        = noise · init_noise_sigma                       (txt2img)
//!          | init_latent · img2img_noise.signal + noise · img2img_noise.noise   (img2img)
//! for step in plan.steps:
//!     out      = unet(x · c_in, timestep, cond)             (CFG combines the raw outputs)
//!     denoised = denoise.x · x + denoise.model · out        (x₀ estimate, ε or v models alike)
//!     x        = update.x · x + update.denoised · denoised
//!              + update.prev_denoised · previous denoised + update.noise · fresh noise
//! ```
//!
//! CFG is linear and its weights sum to 1, so combining raw outputs (`u + g·(c − u)`) and
//! combining denoised estimates give the same result.
//!
//! - [`config`]: [`ScheduleConfig`] from a diffusers `scheduler_config.json`, presets.
//! - [`table`]: [`NoiseSchedule`] (β, ᾱ, σ and their interpolations), Karras sigmas, the
//!   ancestral split.
//! - [`timesteps`]: spacings and [`StrengthRule`].
//! - [`plan`]: [`Sampler`], [`StepPlan`], [`StepCoefficients`].

pub mod config;
pub mod plan;
pub mod table;
pub mod timesteps;
mod ve;
mod vp;

#[cfg(test)]
mod tests;

pub use config::{BetaSchedule, Prediction, ScheduleConfig, TimestepSpacing};
pub use plan::{
    Denoise, FusedUpdate, KMethod, NoiseMix, Sampler, StepCoefficients, StepPlan, Update,
};
pub use table::{AncestralStep, NoiseSchedule, ancestral_step, karras_sigmas, sigma_of};
pub use timesteps::StrengthRule;

/// Whether classifier-free guidance at `guidance_scale` needs the unconditional pass.
///
/// diffusers (`do_classifier_free_guidance = guidance_scale > 1`) runs the conditional pass
/// alone at ≤ 1: at exactly 1 `u + 1·(c − u) = c`, so nothing changes; below 1 (SD-Turbo's 0)
/// diffusers ignores the scale, where A1111 would still blend towards the unconditional output.
pub fn needs_uncond(guidance_scale: f64) -> bool {
    guidance_scale > 1.0
}

/// Why a schedule or a plan could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// The configuration text is not JSON of the expected shape.
    #[error("the scheduler configuration could not be read: {0}")]
    Json(String),
    /// `beta_schedule` names a schedule this module does not have.
    #[error("beta_schedule {0:?} is not supported (expected \"scaled_linear\" or \"linear\")")]
    UnknownBetaSchedule(String),
    /// `prediction_type` is neither `epsilon` nor `v_prediction`.
    #[error("prediction_type {0:?} is not supported (expected \"epsilon\" or \"v_prediction\")")]
    UnknownPrediction(String),
    /// `timestep_spacing` is not `leading`, `linspace` or `trailing`.
    #[error("timestep_spacing {0:?} is not one of \"leading\", \"linspace\", \"trailing\"")]
    UnknownSpacing(String),
    /// A field set to a value whose maths this module does not model.
    #[error("{field} = {value} is not supported")]
    Unsupported {
        /// The field, as diffusers names it.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// `num_train_timesteps` out of range.
    #[error("num_train_timesteps must be 2..={max}, got {0}", max = config::MAX_TRAIN_TIMESTEPS)]
    TrainTimesteps(usize),
    /// β_start and β_end do not bound a schedule.
    #[error("beta_start {start} and beta_end {end} must satisfy 0 < beta_start <= beta_end < 1")]
    Betas {
        /// `beta_start`.
        start: f64,
        /// `beta_end`.
        end: f64,
    },
    /// Given ᾱ values of the wrong count.
    #[error("alphas_cumprod has {found} values; the configuration has {expected} timesteps")]
    AlphasCumprodLength {
        /// Values given.
        found: usize,
        /// `num_train_timesteps`.
        expected: usize,
    },
    /// ᾱ leaves (0, 1) or stops decreasing, so σ is not a usable schedule.
    #[error(
        "alphas_cumprod must decrease strictly inside (0, 1); it does not at timestep {timestep}"
    )]
    DegenerateSchedule {
        /// The first timestep where it fails.
        timestep: usize,
    },
    /// Zero inference steps.
    #[error("the number of steps must be at least 1")]
    ZeroSteps,
    /// More inference steps than the sampler can place.
    #[error("{steps} steps is more than this sampler can place (at most {max})")]
    TooManySteps {
        /// Steps asked for.
        steps: usize,
        /// The most it takes.
        max: usize,
    },
    /// A spacing produced a timestep past the training range (e.g. `steps_offset` 1 with T steps).
    #[error("timestep {timestep} is past the last training timestep {last}")]
    TimestepOutOfRange {
        /// The timestep.
        timestep: f64,
        /// T − 1.
        last: usize,
    },
    /// img2img strength outside [0, 1].
    #[error("strength must be between 0 and 1, got {0}")]
    Strength(f64),
    /// The strength leaves no step to run.
    #[error("strength {strength} leaves none of the {steps} steps to run")]
    NoStepsLeft {
        /// Steps asked for.
        steps: usize,
        /// The strength.
        strength: f64,
    },
    /// DDIM η negative or not finite.
    #[error("DDIM eta must be a finite number >= 0, got {0}")]
    Eta(f64),
    /// LCM `original_inference_steps` out of range.
    #[error("LCM original_inference_steps must be 1..={train}, got {original}")]
    LcmOriginalSteps {
        /// `original_inference_steps`.
        original: usize,
        /// `num_train_timesteps`.
        train: usize,
    },
    /// More LCM steps than its distillation schedule holds at this strength.
    #[error(
        "LCM takes at most int({original} x strength {strength}) steps and at most {original}; got {steps}"
    )]
    LcmSteps {
        /// Steps asked for.
        steps: usize,
        /// `original_inference_steps`.
        original: usize,
        /// The strength.
        strength: f64,
    },
}

impl ScheduleError {
    fn unsupported(field: &'static str, value: impl std::fmt::Display) -> Self {
        ScheduleError::Unsupported {
            field,
            value: value.to_string(),
        }
    }
}
