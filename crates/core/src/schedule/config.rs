//! The scheduler configuration: the fields of a diffusers `scheduler_config.json` that shape the
//! noise schedule and the step plan, with presets for the checkpoints Keyshift targets.

use serde::{Deserialize, Serialize};

use super::ScheduleError;
use super::plan::Sampler;

/// The largest `num_train_timesteps` accepted (tables are allocated from it; SD uses 1000).
pub const MAX_TRAIN_TIMESTEPS: usize = 10_000;

/// How β_t runs over the training timesteps (diffusers `beta_schedule`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// `β_t = (√β_start + t/(T−1)·(√β_end − √β_start))²`, the latent-diffusion schedule.
    ScaledLinear,
    /// `β_t = β_start + t/(T−1)·(β_end − β_start)`.
    Linear,
}

/// What the UNet predicts (diffusers `prediction_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Prediction {
    /// The added noise ε (SD 1.x, SD 2.x base, SD-Turbo).
    #[serde(rename = "epsilon")]
    Epsilon,
    /// The velocity `v = √ᾱ·ε − √(1−ᾱ)·x₀` (SD 2.x 768-v).
    #[serde(rename = "v_prediction")]
    V,
}

/// How inference timesteps are spread over the training timesteps (diffusers
/// `timestep_spacing`, Table 2 of Lin et al. 2023, "Common Diffusion Noise Schedules and Sample
/// Steps are Flawed").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestepSpacing {
    /// `(0..N)·(T div N) + steps_offset`, reversed: 951, 901, … 1 for 20 steps of SD 1.5.
    Leading,
    /// `linspace(0, T−1, N)`, reversed: 999 … 0.
    Linspace,
    /// `round(arange(T, 0, −T/N)) − 1`: 999, 949, … 49.
    Trailing,
}

/// A diffusers scheduler configuration, validated.
///
/// Read one with [`ScheduleConfig::from_json`] (or serde, which writes the diffusers field names
/// back so that the output reads again); fields missing from the file take the
/// defaults of diffusers' `DDIMScheduler`/`EulerDiscreteScheduler` constructors, except
/// `clip_sample`, read as `false` when absent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawConfig")]
pub struct ScheduleConfig {
    /// `_class_name`: the diffusers scheduler the file was written for (e.g. `PNDMScheduler`).
    #[serde(rename = "_class_name")]
    pub class_name: Option<String>,
    /// `num_train_timesteps` T (1000 for SD).
    pub num_train_timesteps: usize,
    /// `beta_start` (0.00085 for SD).
    pub beta_start: f64,
    /// `beta_end` (0.012 for SD).
    pub beta_end: f64,
    /// `beta_schedule`.
    pub beta_schedule: BetaSchedule,
    /// `prediction_type`.
    #[serde(rename = "prediction_type")]
    pub prediction: Prediction,
    /// `steps_offset`, added to `leading` timesteps (1 for SD).
    pub steps_offset: usize,
    /// `set_alpha_to_one`: DDIM's ᾱ after its last step is 1 (true) or ᾱ₀ (false, SD).
    pub set_alpha_to_one: bool,
    /// `timestep_spacing`; `None` when the file has none, and each sampler uses its diffusers
    /// class default ([`Sampler::default_spacing`]).
    pub timestep_spacing: Option<TimestepSpacing>,
    /// `use_karras_sigmas` (Euler and DPM-Solver classes).
    pub use_karras_sigmas: bool,
    /// `clip_sample` (DDIM, LCM): clamp x₀ to ±1. Not linear, so DDIM/LCM plans refuse it.
    pub clip_sample: bool,
    /// `thresholding` (DDIM, DPM-Solver, LCM): dynamic thresholding. Refused like `clip_sample`.
    pub thresholding: bool,
    /// LCM `original_inference_steps` (50): the distillation schedule it samples from.
    pub original_inference_steps: usize,
    /// LCM `timestep_scaling` (10): scales t in the boundary condition c_skip/c_out.
    pub timestep_scaling: f64,
}

impl ScheduleConfig {
    /// SD 1.5 (`runwayml/stable-diffusion-v1-5` `scheduler/scheduler_config.json`, the same as
    /// `fixtures/tiny-sd1`): `PNDMScheduler`, scaled_linear 0.00085…0.012 over 1000 steps, ε
    /// prediction, `steps_offset` 1, `set_alpha_to_one` false, no `timestep_spacing`. SD 2.x base
    /// (512, ε) has the same fields.
    pub fn sd15() -> Self {
        Self {
            class_name: Some("PNDMScheduler".to_owned()),
            num_train_timesteps: 1000,
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: BetaSchedule::ScaledLinear,
            prediction: Prediction::Epsilon,
            steps_offset: 1,
            set_alpha_to_one: false,
            timestep_spacing: None,
            use_karras_sigmas: false,
            clip_sample: false,
            thresholding: false,
            original_inference_steps: 50,
            timestep_scaling: 10.0,
        }
    }

    /// SD 2.1 768-v (`stabilityai/stable-diffusion-2-1` `scheduler/scheduler_config.json`):
    /// `DDIMScheduler`, the SD 1.5 betas, `prediction_type` `v_prediction`, `steps_offset` 1,
    /// `set_alpha_to_one` false, `clip_sample` false.
    pub fn sd21_v() -> Self {
        Self {
            class_name: Some("DDIMScheduler".to_owned()),
            prediction: Prediction::V,
            ..Self::sd15()
        }
    }

    /// SD-Turbo (`stabilityai/sd-turbo` `scheduler/scheduler_config.json`):
    /// `EulerDiscreteScheduler`, the SD 1.5 betas, ε prediction, `timestep_spacing` `trailing`
    /// (so one step runs at t = 999, σ = σ_max), `steps_offset` 1.
    pub fn sd_turbo() -> Self {
        Self {
            class_name: Some("EulerDiscreteScheduler".to_owned()),
            timestep_spacing: Some(TimestepSpacing::Trailing),
            ..Self::sd15()
        }
    }

    /// Reads a diffusers `scheduler_config.json`, ignoring fields that do not change the
    /// schedule and refusing those that change it in ways this module does not model.
    pub fn from_json(text: &str) -> Result<Self, ScheduleError> {
        let raw: RawConfig =
            serde_json::from_str(text).map_err(|e| ScheduleError::Json(e.to_string()))?;
        Self::try_from(raw)
    }

    /// The sampler diffusers would run for `_class_name` with this file, if this module has it:
    /// `DDIMScheduler` (η 0), `EulerDiscreteScheduler`, `EulerAncestralDiscreteScheduler`,
    /// `DPMSolverMultistepScheduler`, `LCMScheduler`. `None` for others, e.g. SD 1.5's
    /// `PNDMScheduler` (PLMS), which has no plan here.
    pub fn diffusers_sampler(&self) -> Option<Sampler> {
        let karras = self.use_karras_sigmas;
        match self.class_name.as_deref()? {
            "DDIMScheduler" => Some(Sampler::Ddim { eta: 0.0 }),
            "EulerDiscreteScheduler" => Some(Sampler::Euler { karras }),
            "EulerAncestralDiscreteScheduler" => Some(Sampler::EulerAncestral),
            "DPMSolverMultistepScheduler" => Some(Sampler::DpmPp2m { karras }),
            "LCMScheduler" => Some(Sampler::Lcm),
            _ => None,
        }
    }

    /// Checks the numbers: T in 2..=[`MAX_TRAIN_TIMESTEPS`], 0 < β_start ≤ β_end < 1, LCM fields.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        let t = self.num_train_timesteps;
        if !(2..=MAX_TRAIN_TIMESTEPS).contains(&t) {
            return Err(ScheduleError::TrainTimesteps(t));
        }
        let (start, end) = (self.beta_start, self.beta_end);
        if !(start > 0.0 && start <= end && end < 1.0) {
            return Err(ScheduleError::Betas { start, end });
        }
        let lcm_steps = self.original_inference_steps;
        if lcm_steps == 0 || lcm_steps > t {
            return Err(ScheduleError::LcmOriginalSteps {
                original: lcm_steps,
                train: t,
            });
        }
        if !self.timestep_scaling.is_finite() {
            return Err(ScheduleError::unsupported(
                "timestep_scaling",
                self.timestep_scaling,
            ));
        }
        Ok(())
    }
}

/// `scheduler_config.json` as written; `TryFrom` validates it into a [`ScheduleConfig`].
#[derive(Deserialize)]
struct RawConfig {
    #[serde(rename = "_class_name")]
    class_name: Option<String>,
    num_train_timesteps: Option<usize>,
    beta_start: Option<f64>,
    beta_end: Option<f64>,
    beta_schedule: Option<String>,
    trained_betas: Option<serde_json::Value>,
    prediction_type: Option<String>,
    steps_offset: Option<usize>,
    set_alpha_to_one: Option<bool>,
    timestep_spacing: Option<String>,
    use_karras_sigmas: Option<bool>,
    clip_sample: Option<bool>,
    thresholding: Option<bool>,
    original_inference_steps: Option<usize>,
    timestep_scaling: Option<f64>,
    #[serde(flatten)]
    refused: RefusedFields,
}

/// Fields whose non-default values change the maths in ways this module does not model.
#[derive(Deserialize)]
struct RefusedFields {
    rescale_betas_zero_snr: Option<bool>,
    use_exponential_sigmas: Option<bool>,
    use_beta_sigmas: Option<bool>,
    use_lu_lambdas: Option<bool>,
    interpolation_type: Option<String>,
    final_sigmas_type: Option<String>,
    timestep_type: Option<String>,
    algorithm_type: Option<String>,
    solver_type: Option<String>,
    solver_order: Option<u32>,
}

impl RefusedFields {
    /// Errs on the first field set to something other than the diffusers default.
    fn check(&self) -> Result<(), ScheduleError> {
        refuse_true("rescale_betas_zero_snr", self.rescale_betas_zero_snr)?;
        refuse_true("use_exponential_sigmas", self.use_exponential_sigmas)?;
        refuse_true("use_beta_sigmas", self.use_beta_sigmas)?;
        refuse_true("use_lu_lambdas", self.use_lu_lambdas)?;
        refuse_other("interpolation_type", &self.interpolation_type, "linear")?;
        refuse_other("final_sigmas_type", &self.final_sigmas_type, "zero")?;
        refuse_other("timestep_type", &self.timestep_type, "discrete")?;
        refuse_other("algorithm_type", &self.algorithm_type, "dpmsolver++")?;
        refuse_other("solver_type", &self.solver_type, "midpoint")?;
        match self.solver_order {
            Some(order) if order != 2 => Err(ScheduleError::unsupported("solver_order", order)),
            _ => Ok(()),
        }
    }
}

fn refuse_true(field: &'static str, value: Option<bool>) -> Result<(), ScheduleError> {
    match value {
        Some(true) => Err(ScheduleError::unsupported(field, true)),
        _ => Ok(()),
    }
}

fn refuse_other(
    field: &'static str,
    value: &Option<String>,
    default: &str,
) -> Result<(), ScheduleError> {
    match value {
        Some(v) if v != default => Err(ScheduleError::unsupported(field, format!("{v:?}"))),
        _ => Ok(()),
    }
}

impl TryFrom<RawConfig> for ScheduleConfig {
    type Error = ScheduleError;

    fn try_from(raw: RawConfig) -> Result<Self, ScheduleError> {
        raw.refused.check()?;
        if raw.trained_betas.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(ScheduleError::unsupported("trained_betas", "a list"));
        }
        let config = Self {
            class_name: raw.class_name,
            num_train_timesteps: raw.num_train_timesteps.unwrap_or(1000),
            beta_start: raw.beta_start.unwrap_or(0.0001),
            beta_end: raw.beta_end.unwrap_or(0.02),
            beta_schedule: parse_beta_schedule(raw.beta_schedule.as_deref())?,
            prediction: parse_prediction(raw.prediction_type.as_deref())?,
            steps_offset: raw.steps_offset.unwrap_or(0),
            set_alpha_to_one: raw.set_alpha_to_one.unwrap_or(true),
            timestep_spacing: parse_spacing(raw.timestep_spacing.as_deref())?,
            use_karras_sigmas: raw.use_karras_sigmas.unwrap_or(false),
            clip_sample: raw.clip_sample.unwrap_or(false),
            thresholding: raw.thresholding.unwrap_or(false),
            original_inference_steps: raw.original_inference_steps.unwrap_or(50),
            timestep_scaling: raw.timestep_scaling.unwrap_or(10.0),
        };
        config.validate()?;
        Ok(config)
    }
}

fn parse_beta_schedule(name: Option<&str>) -> Result<BetaSchedule, ScheduleError> {
    match name {
        None | Some("linear") => Ok(BetaSchedule::Linear),
        Some("scaled_linear") => Ok(BetaSchedule::ScaledLinear),
        Some(other) => Err(ScheduleError::UnknownBetaSchedule(other.to_owned())),
    }
}

fn parse_prediction(name: Option<&str>) -> Result<Prediction, ScheduleError> {
    match name {
        None | Some("epsilon") => Ok(Prediction::Epsilon),
        Some("v_prediction") => Ok(Prediction::V),
        Some(other) => Err(ScheduleError::UnknownPrediction(other.to_owned())),
    }
}

fn parse_spacing(name: Option<&str>) -> Result<Option<TimestepSpacing>, ScheduleError> {
    match name {
        None => Ok(None),
        Some("leading") => Ok(Some(TimestepSpacing::Leading)),
        Some("linspace") => Ok(Some(TimestepSpacing::Linspace)),
        Some("trailing") => Ok(Some(TimestepSpacing::Trailing)),
        Some(other) => Err(ScheduleError::UnknownSpacing(other.to_owned())),
    }
}
