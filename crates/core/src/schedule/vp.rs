//! Samplers on `x = √ᾱ·x₀ + √(1−ᾱ)·ε` (diffusers' DDPM form): DDIM, DPM-Solver++ (2M) and LCM.
//! The UNet input is the latent itself (c_in 1) and the initial latent is plain noise.

use super::config::{Prediction, TimestepSpacing};
use super::plan::{Denoise, NoiseMix, Parts, Sampler, StepCoefficients, Update, check_timesteps};
use super::table::{NoiseSchedule, karras_sigmas};
use super::timesteps::{dpm_timesteps, lcm_timesteps, spaced_timesteps};
use super::{ScheduleConfig, ScheduleError};

/// A noise level in both forms: `alpha` = √ᾱ, `sigma` = √(1−ᾱ) (diffusers DPM-Solver's
/// α_t and σ_t).
#[derive(Clone, Copy)]
struct Level {
    alpha: f64,
    sigma: f64,
}

impl Level {
    fn from_alpha_cumprod(acp: f64) -> Self {
        Self {
            alpha: acp.sqrt(),
            sigma: (1.0 - acp).sqrt(),
        }
    }

    /// From k-diffusion's σ: α = 1/√(σ²+1), σ_t = σ·α (DPM-Solver `_sigma_to_alpha_sigma_t`).
    fn from_k_sigma(k_sigma: f64) -> Self {
        let alpha = 1.0 / k_sigma.hypot(1.0);
        Self {
            alpha,
            sigma: k_sigma * alpha,
        }
    }

    fn k_sigma(self) -> f64 {
        self.sigma / self.alpha
    }

    /// img2img `add_noise`: `√ᾱ·x₀ + √(1−ᾱ)·z`.
    fn noise_mix(self) -> NoiseMix {
        NoiseMix {
            signal: self.alpha,
            noise: self.sigma,
        }
    }
}

/// x̂₀ from the model output (diffusers DDIM/DPM-Solver/LCM `step`): ε: `(x − σ_t·m)/α_t`;
/// v: `α_t·x − σ_t·m`.
fn denoise(prediction: Prediction, level: Level) -> Denoise {
    match prediction {
        Prediction::Epsilon => Denoise {
            x: 1.0 / level.alpha,
            model: -level.sigma / level.alpha,
        },
        Prediction::V => Denoise {
            x: level.alpha,
            model: -level.sigma,
        },
    }
}

fn refuse_x0_clamp(config: &ScheduleConfig) -> Result<(), ScheduleError> {
    match (config.clip_sample, config.thresholding) {
        (true, _) => Err(ScheduleError::unsupported("clip_sample", true)),
        (_, true) => Err(ScheduleError::unsupported("thresholding", true)),
        _ => Ok(()),
    }
}

/// The ᾱ at an integer timestep (DDIM: below 0 the final one).
fn acp(schedule: &NoiseSchedule, t: f64) -> f64 {
    schedule.alpha_cumprod_at(t as i64).unwrap_or(1.0)
}

fn step(
    index: usize,
    timestep: f64,
    (from, to): (Level, Level),
    prediction: Prediction,
) -> StepCoefficients {
    StepCoefficients {
        index,
        timestep,
        sigma: from.k_sigma(),
        sigma_next: to.k_sigma(),
        c_in: 1.0,
        denoise: denoise(prediction, from),
        update: Update::default(),
        draws_noise: false,
    }
}

/// Plain noise to start txt2img; img2img noised to the first step's level.
fn parts(first: Level, steps: Vec<StepCoefficients>) -> Parts {
    Parts {
        init_noise_sigma: 1.0,
        img2img_noise: first.noise_mix(),
        steps,
    }
}

/// diffusers `DDIMScheduler` (Song et al. 2021 eq. 12): from t to `t − T div N` (below 0:
/// `final_alpha_cumprod`), `σ_t = η·√((1−ᾱ')/(1−ᾱ)·(1 − ᾱ/ᾱ'))`,
/// `x' = √ᾱ'·x̂₀ + √(1−ᾱ'−σ_t²)·ε̂ + σ_t·z` with `ε̂ = (x − √ᾱ·x̂₀)/√(1−ᾱ)`.
pub(super) fn ddim(
    schedule: &NoiseSchedule,
    steps: usize,
    start: usize,
    eta: f64,
) -> Result<Parts, ScheduleError> {
    let config = schedule.config();
    refuse_x0_clamp(config)?;
    let spacing = config
        .timestep_spacing
        .unwrap_or(Sampler::Ddim { eta }.default_spacing());
    let train = schedule.train_timesteps();
    let timesteps = spaced_timesteps(spacing, train, steps, config.steps_offset, true);
    check_timesteps(&timesteps, train)?;
    let jump = (train / steps) as f64;
    let coefficients = (start..timesteps.len())
        .map(|i| ddim_step(schedule, i, timesteps[i], jump, eta))
        .collect();
    let first = Level::from_alpha_cumprod(acp(schedule, timesteps[start]));
    Ok(parts(first, coefficients))
}

fn ddim_step(
    schedule: &NoiseSchedule,
    index: usize,
    t: f64,
    jump: f64,
    eta: f64,
) -> StepCoefficients {
    let (now, prev) = (acp(schedule, t), acp(schedule, t - jump));
    let levels = (
        Level::from_alpha_cumprod(now),
        Level::from_alpha_cumprod(prev),
    );
    StepCoefficients {
        update: ddim_update(now, prev, eta),
        draws_noise: eta > 0.0,
        ..step(index, t, levels, schedule.config().prediction)
    }
}

fn ddim_update(acp: f64, acp_prev: f64, eta: f64) -> Update {
    let variance = (1.0 - acp_prev) / (1.0 - acp) * (1.0 - acp / acp_prev);
    let std_dev = eta * variance.max(0.0).sqrt();
    let direction = (1.0 - acp_prev - std_dev * std_dev).max(0.0).sqrt();
    let x = direction / (1.0 - acp).sqrt();
    Update {
        x,
        denoised: acp_prev.sqrt() - x * acp.sqrt(),
        prev_denoised: 0.0,
        noise: std_dev,
    }
}

/// diffusers `DPMSolverMultistepScheduler` defaults (Lu et al. 2022, DPM-Solver++(2M),
/// midpoint): with λ = log(α_t/σ_t), h = λ' − λ, r = h_prev/h,
/// `x' = (σ_t'/σ_t)·x + α_t'·(1 − e^{−h})·((1 + 1/(2r))·x̂₀ − 1/(2r)·x̂₀_prev)`, first order
/// (`x̂₀_prev` unused) on the first step that runs and on the last (final σ 0).
pub(super) fn dpm_solver(
    schedule: &NoiseSchedule,
    steps: usize,
    start: usize,
    karras: bool,
) -> Result<Parts, ScheduleError> {
    let prediction = schedule.config().prediction;
    refuse_x0_clamp(schedule.config())?;
    let (timesteps, mut sigmas) = dpm_schedule(schedule, steps, karras);
    check_timesteps(&timesteps, schedule.train_timesteps())?;
    sigmas.push(0.0);
    let coefficients = (start..timesteps.len())
        .map(|i| {
            let levels = (
                Level::from_k_sigma(sigmas[i]),
                Level::from_k_sigma(sigmas[i + 1]),
            );
            let prev = (i > start).then(|| sigmas[i - 1]);
            let update = dpm_update(prev, sigmas[i], sigmas[i + 1]);
            StepCoefficients {
                update,
                ..step(i, timesteps[i], levels, prediction)
            }
        })
        .collect();
    Ok(parts(Level::from_k_sigma(sigmas[start]), coefficients))
}

/// Timesteps and k-diffusion σ (without the final 0). Karras: σ over the model's whole range,
/// timesteps `round(sigma_to_t(σ))` while σ stays Karras; else σ at the integer timesteps.
fn dpm_schedule(schedule: &NoiseSchedule, steps: usize, karras: bool) -> (Vec<f64>, Vec<f64>) {
    if karras {
        let (min, max) = (schedule.model_sigma_min(), schedule.model_sigma_max());
        let sigmas = karras_sigmas(steps, min, max, 7.0);
        let timesteps = sigmas
            .iter()
            .map(|&s| schedule.sigma_to_t(s).round_ties_even())
            .collect();
        return (timesteps, sigmas);
    }
    let config = schedule.config();
    let spacing = config.timestep_spacing.unwrap_or(TimestepSpacing::Linspace);
    let timesteps = dpm_timesteps(
        spacing,
        schedule.train_timesteps(),
        steps,
        config.steps_offset,
    );
    let sigmas = timesteps
        .iter()
        .map(|&t| schedule.sigma_linear(t))
        .collect();
    (timesteps, sigmas)
}

fn dpm_update(prev: Option<f64>, sigma: f64, next: f64) -> Update {
    let (from, to) = (Level::from_k_sigma(sigma), Level::from_k_sigma(next));
    let weight = to.alpha * (1.0 - next / sigma);
    let first = Update {
        x: to.sigma / from.sigma,
        denoised: weight,
        ..Update::default()
    };
    let Some(prev) = prev.filter(|_| next > 0.0) else {
        return first;
    };
    let r = (prev / sigma).ln() / (sigma / next).ln();
    if !(r.is_finite() && r > 0.0) {
        return first;
    }
    let half_over_r = 0.5 / r;
    Update {
        denoised: weight * (1.0 + half_over_r),
        prev_denoised: -weight * half_over_r,
        ..first
    }
}

/// diffusers `LCMScheduler` (Luo et al. 2023): x̂₀ as DDIM, then the boundary condition
/// `x̂ = c_skip·x + c_out·x̂₀` with `c_skip = σ_d²/((s·t)² + σ_d²)`,
/// `c_out = s·t/√((s·t)² + σ_d²)` (σ_d 0.5, s `timestep_scaling`); before the last step
/// `x' = √ᾱ_next·x̂ + √(1−ᾱ_next)·z` with fresh noise z, on the last `x' = x̂`. Strength shortens
/// the distillation schedule (diffusers LCM img2img), so every computed step runs.
pub(super) fn lcm(
    schedule: &NoiseSchedule,
    steps: usize,
    strength: f64,
) -> Result<Parts, ScheduleError> {
    let config = schedule.config();
    refuse_x0_clamp(config)?;
    let train = schedule.train_timesteps();
    let timesteps = lcm_timesteps(train, config.original_inference_steps, steps, strength)?;
    let coefficients = (0..timesteps.len())
        .map(|i| lcm_step(schedule, i, &timesteps))
        .collect();
    Ok(parts(
        Level::from_alpha_cumprod(acp(schedule, timesteps[0])),
        coefficients,
    ))
}

fn lcm_step(schedule: &NoiseSchedule, index: usize, timesteps: &[f64]) -> StepCoefficients {
    const SIGMA_DATA_SQ: f64 = 0.25;
    let config = schedule.config();
    let t = timesteps[index];
    let next = timesteps.get(index + 1).copied();
    let to = Level::from_alpha_cumprod(next.map_or(1.0, |n| acp(schedule, n)));
    let base = step(
        index,
        t,
        (Level::from_alpha_cumprod(acp(schedule, t)), to),
        config.prediction,
    );
    let scaled_t = t * config.timestep_scaling;
    let c_skip = SIGMA_DATA_SQ / (scaled_t * scaled_t + SIGMA_DATA_SQ);
    let c_out = scaled_t / (scaled_t * scaled_t + SIGMA_DATA_SQ).sqrt();
    let denoise = Denoise {
        x: c_skip + c_out * base.denoise.x,
        model: c_out * base.denoise.model,
    };
    let update = match next {
        None => Update {
            denoised: 1.0,
            ..Update::default()
        },
        Some(_) => Update {
            denoised: to.alpha,
            noise: to.sigma,
            ..Update::default()
        },
    };
    StepCoefficients {
        denoise,
        update,
        draws_noise: next.is_some(),
        ..base
    }
}
