//! Samplers and their step plans: per step, the scalars that turn the UNet output into the next
//! latent.

use super::config::{Prediction, TimestepSpacing};
use super::table::NoiseSchedule;
use super::timesteps::{StrengthRule, check_strength};
use super::{ScheduleError, ve, vp};

/// A sampler, as diffusers or k-diffusion/A1111 runs it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampler {
    /// diffusers `DDIMScheduler` with η (0: deterministic; 1: DDPM-like noise).
    Ddim {
        /// η, at least 0.
        eta: f64,
    },
    /// diffusers `EulerDiscreteScheduler` (optionally `use_karras_sigmas`). SD-Turbo runs this
    /// with [`super::ScheduleConfig::sd_turbo`] and 1 step.
    Euler {
        /// Karras sigmas between the spaced schedule's σ ends.
        karras: bool,
    },
    /// diffusers `EulerAncestralDiscreteScheduler` (η 1).
    EulerAncestral,
    /// diffusers `DPMSolverMultistepScheduler` with its defaults: DPM-Solver++ order 2,
    /// midpoint, `lower_order_final`, final σ 0.
    DpmPp2m {
        /// `use_karras_sigmas`: Karras sigmas over the whole model range, timesteps rounded.
        karras: bool,
    },
    /// diffusers `LCMScheduler`.
    Lcm,
    /// k-diffusion's samplers as A1111 runs them (`CompVisDenoiser`, not quantized).
    KDiffusion {
        /// The sampling function.
        method: KMethod,
        /// `get_sigmas_karras` (A1111 "Karras"), else `get_sigmas` (log-σ interpolation).
        karras: bool,
    },
}

/// A k-diffusion sampling function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KMethod {
    /// `sample_euler` (A1111 "Euler").
    Euler,
    /// `sample_euler_ancestral`, η 1 (A1111 "Euler a").
    EulerAncestral,
    /// `sample_dpmpp_2m` (A1111 "DPM++ 2M").
    DpmPp2m,
}

impl Sampler {
    /// The spacing the diffusers class uses when the configuration names none: `leading` for
    /// DDIM and LCM, `linspace` for Euler, Euler ancestral and DPM-Solver (k-diffusion samplers
    /// do not use one).
    pub fn default_spacing(self) -> TimestepSpacing {
        match self {
            Sampler::Ddim { .. } | Sampler::Lcm => TimestepSpacing::Leading,
            _ => TimestepSpacing::Linspace,
        }
    }

    /// Where img2img strength starts: A1111's rule for k-diffusion samplers, diffusers'
    /// otherwise (LCM folds strength into its timesteps instead, as its diffusers pipeline does).
    pub fn strength_rule(self) -> StrengthRule {
        match self {
            Sampler::KDiffusion { .. } => StrengthRule::A1111,
            _ => StrengthRule::Diffusers,
        }
    }

    fn check(self) -> Result<(), ScheduleError> {
        match self {
            Sampler::Ddim { eta } if !(eta.is_finite() && eta >= 0.0) => {
                Err(ScheduleError::Eta(eta))
            }
            _ => Ok(()),
        }
    }
}

/// How to get the denoised estimate x̂₀ from the latent `x` and the (CFG-combined) model output
/// `m`: `x̂₀ = x·x + model·m`.
///
/// - Euler family (x = x₀ + σ·ε, k-diffusion `CompVisDenoiser`/`CompVisVDenoiser`):
///   ε: `x − σ·m`; v: `x/(σ²+1) − σ/√(σ²+1)·m`.
/// - DDIM, DPM-Solver, LCM (x = √ᾱ·x₀ + √(1−ᾱ)·ε): ε: `(x − √(1−ᾱ)·m)/√ᾱ`; v: `√ᾱ·x − √(1−ᾱ)·m`.
/// - LCM then applies its boundary condition `c_skip·x + c_out·x̂₀`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Denoise {
    /// Coefficient of the latent.
    pub x: f64,
    /// Coefficient of the model output.
    pub model: f64,
}

impl Denoise {
    /// `x·self.x + model·self.model`.
    pub fn apply(&self, x: f64, model: f64) -> f64 {
        self.x * x + self.model * model
    }
}

/// The update of a step:
/// `x_next = x·x + denoised·x̂₀ + prev_denoised·x̂₀_prev + noise·z`, with `x̂₀_prev` the previous
/// step's denoised estimate (DPM++ 2M) and `z` fresh standard normal noise.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Update {
    /// Coefficient of the current latent.
    pub x: f64,
    /// Coefficient of this step's denoised estimate.
    pub denoised: f64,
    /// Coefficient of the previous step's denoised estimate (0 unless DPM++ 2M's second order).
    pub prev_denoised: f64,
    /// Coefficient of fresh noise (Euler ancestral σ_up, DDIM η·σ_t, LCM √(1−ᾱ_prev)).
    pub noise: f64,
}

impl Update {
    /// `x·self.x + denoised·self.denoised + prev_denoised·self.prev_denoised + noise·self.noise`.
    pub fn apply(&self, x: f64, denoised: f64, prev_denoised: f64, noise: f64) -> f64 {
        self.x * x
            + self.denoised * denoised
            + self.prev_denoised * prev_denoised
            + self.noise * noise
    }
}

/// A step's update with the denoised estimate folded in:
/// `x_next = x·x + model·m + prev_denoised·x̂₀_prev + noise·z`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FusedUpdate {
    /// Coefficient of the current latent.
    pub x: f64,
    /// Coefficient of the model output.
    pub model: f64,
    /// Coefficient of the previous step's denoised estimate.
    pub prev_denoised: f64,
    /// Coefficient of fresh noise.
    pub noise: f64,
}

/// `signal·x₀ + noise·z`: how img2img noises the init latent to the first step's level
/// (diffusers `add_noise`; DDIM/LCM: √ᾱ_t and √(1−ᾱ_t); Euler family: 1 and σ).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoiseMix {
    /// Coefficient of the init latent.
    pub signal: f64,
    /// Coefficient of the noise.
    pub noise: f64,
}

/// The scalars of one sampler step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepCoefficients {
    /// Position in the full `num_inference_steps` schedule (diffusers `step_index`).
    pub index: usize,
    /// The timestep fed to the UNet: diffusers `scheduler.timesteps[i]` (fractional for Euler
    /// `linspace` and Karras), k-diffusion `sigma_to_t(σ)`.
    pub timestep: f64,
    /// σ of the latent at this step in k-diffusion terms (√((1−ᾱ)/ᾱ) for DDIM and LCM).
    pub sigma: f64,
    /// σ after the step (0 after the last).
    pub sigma_next: f64,
    /// The UNet input is `c_in·x`: 1/√(σ²+1) for the Euler family, 1 otherwise.
    pub c_in: f64,
    /// Model output → denoised estimate.
    pub denoise: Denoise,
    /// The update.
    pub update: Update,
    /// Whether the reference implementation draws fresh noise at this step, even with a 0
    /// coefficient (diffusers Euler ancestral on its last step), so seeded noise streams stay
    /// aligned.
    pub draws_noise: bool,
}

impl StepCoefficients {
    /// The update in terms of the raw model output.
    pub fn fused(&self) -> FusedUpdate {
        FusedUpdate {
            x: self.update.x + self.update.denoised * self.denoise.x,
            model: self.update.denoised * self.denoise.model,
            prev_denoised: self.update.prev_denoised,
            noise: self.update.noise,
        }
    }

    /// One step on scalars: `(x_next, denoised)`. A reference for the engine's tensor version.
    pub fn apply(&self, x: f64, model: f64, prev_denoised: f64, noise: f64) -> (f64, f64) {
        let denoised = self.denoise.apply(x, model);
        (
            self.update.apply(x, denoised, prev_denoised, noise),
            denoised,
        )
    }
}

/// Every step of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct StepPlan {
    /// The sampler.
    pub sampler: Sampler,
    /// What the model predicts.
    pub prediction: Prediction,
    /// Steps asked for (the full schedule's length).
    pub num_inference_steps: usize,
    /// Index of the first step that runs (0 for txt2img).
    pub start_index: usize,
    /// txt2img: the initial latent is `noise·init_noise_sigma` (1 for DDIM, DPM-Solver, LCM;
    /// σ_max for Euler `linspace`/`trailing` and k-diffusion; √(σ_max²+1) for Euler `leading`).
    pub init_noise_sigma: f64,
    /// img2img: the initial latent is `init_latent·signal + noise·noise` at the first step.
    pub img2img_noise: NoiseMix,
    /// The steps that run, in order.
    pub steps: Vec<StepCoefficients>,
}

impl StepPlan {
    /// The plan for text-to-image: `new(…, 1.0)`.
    pub fn txt2img(
        schedule: &NoiseSchedule,
        sampler: Sampler,
        steps: usize,
    ) -> Result<Self, ScheduleError> {
        Self::new(schedule, sampler, steps, 1.0)
    }

    /// The plan for `steps` inference steps at img2img `strength` (1: the whole schedule), which
    /// starts per [`Sampler::strength_rule`].
    pub fn new(
        schedule: &NoiseSchedule,
        sampler: Sampler,
        steps: usize,
        strength: f64,
    ) -> Result<Self, ScheduleError> {
        sampler.check()?;
        check_steps(schedule, sampler, steps)?;
        check_strength(strength)?;
        let start = match sampler {
            Sampler::Lcm => 0,
            _ => sampler.strength_rule().start_index(steps, strength)?,
        };
        let parts = build(schedule, sampler, steps, start, strength)?;
        Ok(Self {
            sampler,
            prediction: schedule.config().prediction,
            num_inference_steps: steps,
            start_index: start,
            init_noise_sigma: parts.init_noise_sigma,
            img2img_noise: parts.img2img_noise,
            steps: parts.steps,
        })
    }

    /// The timesteps fed to the UNet, in order.
    pub fn timesteps(&self) -> Vec<f64> {
        self.steps.iter().map(|s| s.timestep).collect()
    }

    /// σ at each step, then σ after the last (k-diffusion's `sigmas` from the start index).
    pub fn sigmas(&self) -> Vec<f64> {
        let last = self.steps.last().map(|s| s.sigma_next);
        self.steps.iter().map(|s| s.sigma).chain(last).collect()
    }
}

/// What a sampler module hands back.
pub(super) struct Parts {
    pub init_noise_sigma: f64,
    pub img2img_noise: NoiseMix,
    pub steps: Vec<StepCoefficients>,
}

fn build(
    schedule: &NoiseSchedule,
    sampler: Sampler,
    steps: usize,
    start: usize,
    strength: f64,
) -> Result<Parts, ScheduleError> {
    match sampler {
        Sampler::Ddim { eta } => vp::ddim(schedule, steps, start, eta),
        Sampler::Euler { karras } => ve::diffusers_euler(schedule, steps, start, karras, false),
        Sampler::EulerAncestral => ve::diffusers_euler(schedule, steps, start, false, true),
        Sampler::DpmPp2m { karras } => vp::dpm_solver(schedule, steps, start, karras),
        Sampler::Lcm => vp::lcm(schedule, steps, strength),
        Sampler::KDiffusion { method, karras } => {
            Ok(ve::k_diffusion(schedule, steps, start, method, karras))
        }
    }
}

/// At least 1 step, and no more than distinct timesteps allow: T (DPM-Solver: T − 1, as it
/// spaces N + 1 points).
fn check_steps(
    schedule: &NoiseSchedule,
    sampler: Sampler,
    steps: usize,
) -> Result<(), ScheduleError> {
    let train = schedule.train_timesteps();
    let max = match sampler {
        Sampler::DpmPp2m { .. } => train - 1,
        _ => train,
    };
    match steps {
        0 => Err(ScheduleError::ZeroSteps),
        s if s > max => Err(ScheduleError::TooManySteps { steps, max }),
        _ => Ok(()),
    }
}

/// Errs if a diffusers timestep is past T − 1.
pub(super) fn check_timesteps(timesteps: &[f64], train: usize) -> Result<(), ScheduleError> {
    let last = train - 1;
    match timesteps.iter().find(|&&t| t > last as f64) {
        Some(&timestep) => Err(ScheduleError::TimestepOutOfRange { timestep, last }),
        None => Ok(()),
    }
}
