//! Samplers on `x = x₀ + σ·ε` (k-diffusion's form): diffusers Euler and Euler ancestral, and
//! k-diffusion's Euler, Euler ancestral and DPM++ 2M as A1111 runs them.

use super::config::{Prediction, TimestepSpacing};
use super::plan::{Denoise, KMethod, NoiseMix, Parts, Sampler, StepCoefficients, Update};
use super::table::{NoiseSchedule, ancestral_step, karras_sigmas, linspace};
use super::timesteps::spaced_timesteps;
use super::{ScheduleError, plan::check_timesteps};

/// Karras ρ in diffusers and k-diffusion.
const RHO: f64 = 7.0;

/// A full schedule: the UNet timesteps and σ, with σ one longer (the final 0).
struct SigmaRun {
    timesteps: Vec<f64>,
    sigmas: Vec<f64>,
}

impl SigmaRun {
    fn new(timesteps: Vec<f64>, mut sigmas: Vec<f64>) -> Self {
        sigmas.push(0.0);
        Self { timesteps, sigmas }
    }

    fn max_sigma(&self) -> f64 {
        self.sigmas.iter().copied().fold(0.0, f64::max)
    }
}

/// diffusers `EulerDiscreteScheduler` (`ancestral`: `EulerAncestralDiscreteScheduler`).
///
/// σ is read linearly in t at the spaced timesteps; with Karras, σ runs from the first to the
/// last of those and the timesteps are `sigma_to_t(σ)`. `init_noise_sigma` is σ_max, or
/// √(σ_max²+1) with `leading` spacing.
pub(super) fn diffusers_euler(
    schedule: &NoiseSchedule,
    steps: usize,
    start: usize,
    karras: bool,
    ancestral: bool,
) -> Result<Parts, ScheduleError> {
    let config = schedule.config();
    let sampler = Sampler::Euler { karras };
    let spacing = config.timestep_spacing.unwrap_or(sampler.default_spacing());
    let train = schedule.train_timesteps();
    let timesteps = spaced_timesteps(spacing, train, steps, config.steps_offset, false);
    check_timesteps(&timesteps, train)?;
    let run = diffusers_run(schedule, timesteps, karras);
    let init_noise_sigma = match spacing {
        TimestepSpacing::Leading => run.max_sigma().hypot(1.0),
        _ => run.max_sigma(),
    };
    let method = if ancestral {
        KMethod::EulerAncestral
    } else {
        KMethod::Euler
    };
    Ok(parts(
        schedule,
        &run,
        start,
        init_noise_sigma,
        method,
        |_| ancestral,
    ))
}

fn diffusers_run(schedule: &NoiseSchedule, timesteps: Vec<f64>, karras: bool) -> SigmaRun {
    let sigmas: Vec<f64> = timesteps
        .iter()
        .map(|&t| schedule.sigma_linear(t))
        .collect();
    let (Some(&max), Some(&min), true) = (sigmas.first(), sigmas.last(), karras) else {
        return SigmaRun::new(timesteps, sigmas);
    };
    let sigmas = karras_sigmas(sigmas.len(), min, max, RHO);
    let timesteps = sigmas.iter().map(|&s| schedule.sigma_to_t(s)).collect();
    SigmaRun::new(timesteps, sigmas)
}

/// k-diffusion as A1111 runs it: σ from `get_sigmas` (`t_to_sigma(linspace(T−1, 0, N))`, log-σ
/// interpolation) or `get_sigmas_karras(N, σ_min, σ_max)` over the model's range; the UNet gets
/// `sigma_to_t(σ)`; the initial latent is `noise·σ₀`.
pub(super) fn k_diffusion(
    schedule: &NoiseSchedule,
    steps: usize,
    start: usize,
    method: KMethod,
    karras: bool,
) -> Parts {
    let sigmas = match karras {
        true => {
            let (min, max) = (schedule.model_sigma_min(), schedule.model_sigma_max());
            karras_sigmas(steps, min, max, RHO)
        }
        false => linspace((schedule.train_timesteps() - 1) as f64, 0.0, steps)
            .into_iter()
            .map(|t| schedule.sigma_log_linear(t))
            .collect(),
    };
    let timesteps = sigmas.iter().map(|&s| schedule.sigma_to_t(s)).collect();
    let run = SigmaRun::new(timesteps, sigmas);
    let init_noise_sigma = run.sigmas[0];
    let draws_noise = |i: usize| method == KMethod::EulerAncestral && run.sigmas[i + 1] > 0.0;
    parts(schedule, &run, start, init_noise_sigma, method, draws_noise)
}

fn parts(
    schedule: &NoiseSchedule,
    run: &SigmaRun,
    start: usize,
    init_noise_sigma: f64,
    method: KMethod,
    draws_noise: impl Fn(usize) -> bool,
) -> Parts {
    let prediction = schedule.config().prediction;
    let steps = (start..run.timesteps.len())
        .map(|i| StepCoefficients {
            draws_noise: draws_noise(i),
            ..step(run, i, prediction, update(run, i, start, method))
        })
        .collect();
    let img2img_noise = NoiseMix {
        signal: 1.0,
        noise: run.sigmas[start],
    };
    Parts {
        init_noise_sigma,
        img2img_noise,
        steps,
    }
}

fn step(run: &SigmaRun, i: usize, prediction: Prediction, update: Update) -> StepCoefficients {
    let sigma = run.sigmas[i];
    StepCoefficients {
        index: i,
        timestep: run.timesteps[i],
        sigma,
        sigma_next: run.sigmas[i + 1],
        c_in: 1.0 / sigma.hypot(1.0),
        denoise: denoise(prediction, sigma),
        update,
        draws_noise: false,
    }
}

/// x̂₀ from the model output at σ (diffusers Euler `step`, k-diffusion `CompVisDenoiser` and
/// `CompVisVDenoiser` with σ_data 1): ε: `x − σ·m`; v: `x/(σ²+1) − σ/√(σ²+1)·m`.
fn denoise(prediction: Prediction, sigma: f64) -> Denoise {
    match prediction {
        Prediction::Epsilon => Denoise {
            x: 1.0,
            model: -sigma,
        },
        Prediction::V => {
            let var = sigma * sigma + 1.0;
            Denoise {
                x: 1.0 / var,
                model: -sigma / var.sqrt(),
            }
        }
    }
}

fn update(run: &SigmaRun, i: usize, start: usize, method: KMethod) -> Update {
    let (sigma, next) = (run.sigmas[i], run.sigmas[i + 1]);
    match method {
        KMethod::Euler => euler(sigma, next),
        KMethod::EulerAncestral => {
            let split = ancestral_step(sigma, next);
            Update {
                noise: split.sigma_up,
                ..euler(sigma, split.sigma_down)
            }
        }
        KMethod::DpmPp2m if i == start || next == 0.0 => euler(sigma, next),
        KMethod::DpmPp2m => dpmpp_2m(run.sigmas[i - 1], sigma, next),
    }
}

/// Euler (Karras et al. 2022 Algorithm 2 without churn): `d = (x − x̂₀)/σ`,
/// `x' = x + d·(σ' − σ) = (σ'/σ)·x + (1 − σ'/σ)·x̂₀`.
fn euler(sigma: f64, next: f64) -> Update {
    let ratio = next / sigma;
    Update {
        x: ratio,
        denoised: 1.0 - ratio,
        ..Update::default()
    }
}

/// k-diffusion `sample_dpmpp_2m`, second order (t = −log σ, h = t' − t, r = h_prev/h):
/// `x' = (σ'/σ)·x − expm1(−h)·((1 + 1/(2r))·x̂₀ − 1/(2r)·x̂₀_prev)`. Repeated σ (r = 0) falls
/// back to the first-order step instead of dividing by 0.
fn dpmpp_2m(prev: f64, sigma: f64, next: f64) -> Update {
    let h = (sigma / next).ln();
    let r = (prev / sigma).ln() / h;
    if !(r.is_finite() && r > 0.0) {
        return euler(sigma, next);
    }
    let weight = -(-h).exp_m1();
    Update {
        x: next / sigma,
        denoised: weight * (1.0 + 1.0 / (2.0 * r)),
        prev_denoised: -weight / (2.0 * r),
        noise: 0.0,
    }
}
