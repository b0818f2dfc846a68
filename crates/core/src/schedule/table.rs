//! The noise schedule over the training timesteps: β_t, ᾱ_t, σ_t = √((1−ᾱ_t)/ᾱ_t), and the two
//! ways of reading σ between integer timesteps (diffusers: linear in σ; k-diffusion: linear in
//! log σ), plus the Karras et al. sigmas and the ancestral split of a step.

use super::ScheduleError;
use super::config::{BetaSchedule, ScheduleConfig};

/// The training-time noise schedule of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseSchedule {
    config: ScheduleConfig,
    betas: Vec<f64>,
    alphas_cumprod: Vec<f64>,
    /// σ_t, increasing in t.
    sigmas: Vec<f64>,
    log_sigmas: Vec<f64>,
}

impl NoiseSchedule {
    /// Builds the tables as diffusers does in torch float32: β_t rounded to f32, `1 − β_t` in f32,
    /// the cumulative product accumulated in double and stored as f32 (torch's CPU `cumprod`).
    /// Everything derived from them is f64. This matches diffusers' `alphas_cumprod` to a few
    /// f32 ulps; computing the product in f64 instead moves σ near t = 0 by ~1e-5 relative.
    pub fn new(config: ScheduleConfig) -> Result<Self, ScheduleError> {
        config.validate()?;
        let betas: Vec<f64> = beta_values(&config).into_iter().map(round_f32).collect();
        let mut product = 1.0_f64;
        let alphas_cumprod = betas
            .iter()
            .map(|&beta| {
                product *= round_f32(1.0 - beta);
                round_f32(product)
            })
            .collect();
        Self::from_parts(config, betas, alphas_cumprod)
    }

    /// Uses given ᾱ_t, e.g. the float32 `alphas_cumprod` buffer of an original (LDM) checkpoint,
    /// which was computed in f64 and stored as f32. β_t is derived: `1 − ᾱ_t/ᾱ_{t−1}`.
    pub fn from_alphas_cumprod(
        config: ScheduleConfig,
        alphas_cumprod: Vec<f64>,
    ) -> Result<Self, ScheduleError> {
        config.validate()?;
        let betas = alphas_cumprod
            .iter()
            .scan(1.0, |prev, &acp| {
                let beta = 1.0 - acp / *prev;
                *prev = acp;
                Some(beta)
            })
            .collect();
        Self::from_parts(config, betas, alphas_cumprod)
    }

    fn from_parts(
        config: ScheduleConfig,
        betas: Vec<f64>,
        alphas_cumprod: Vec<f64>,
    ) -> Result<Self, ScheduleError> {
        check_alphas_cumprod(&alphas_cumprod, config.num_train_timesteps)?;
        let sigmas: Vec<f64> = alphas_cumprod.iter().map(|&a| sigma_of(a)).collect();
        let log_sigmas = sigmas.iter().map(|s| s.ln()).collect();
        Ok(Self {
            config,
            betas,
            alphas_cumprod,
            sigmas,
            log_sigmas,
        })
    }

    /// The configuration the tables were built from.
    pub fn config(&self) -> &ScheduleConfig {
        &self.config
    }

    /// T, the number of training timesteps.
    pub fn train_timesteps(&self) -> usize {
        self.alphas_cumprod.len()
    }

    /// β_t for t in 0..T.
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }

    /// ᾱ_t = ∏_{s≤t} (1 − β_s) for t in 0..T.
    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }

    /// σ_t = √((1 − ᾱ_t)/ᾱ_t) for t in 0..T (increasing).
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    /// DDIM's `final_alpha_cumprod`: the ᾱ it steps to after t = 0 — 1 with `set_alpha_to_one`,
    /// else ᾱ₀ (SD: 0.99915).
    pub fn final_alpha_cumprod(&self) -> f64 {
        match self.config.set_alpha_to_one {
            true => 1.0,
            false => self.alphas_cumprod[0],
        }
    }

    /// ᾱ at an integer timestep as DDIM reads it: [`Self::final_alpha_cumprod`] below 0, `None`
    /// at or past T.
    pub fn alpha_cumprod_at(&self, t: i64) -> Option<f64> {
        match usize::try_from(t) {
            Ok(t) => self.alphas_cumprod.get(t).copied(),
            Err(_) => Some(self.final_alpha_cumprod()),
        }
    }

    /// k-diffusion's `sigma_min` = σ₀ (0.0291675 for SD).
    pub fn model_sigma_min(&self) -> f64 {
        self.sigmas[0]
    }

    /// k-diffusion's `sigma_max` = σ_{T−1} (14.6146 for SD).
    pub fn model_sigma_max(&self) -> f64 {
        self.sigmas[self.sigmas.len() - 1]
    }

    /// σ at a fractional timestep, linear in σ (diffusers: `np.interp(t, arange(T), sigmas)`;
    /// t is clamped to 0..=T−1).
    pub fn sigma_linear(&self, t: f64) -> f64 {
        let (low, w) = self.split(t);
        let (a, b) = (
            self.sigmas[low],
            self.sigmas[(low + 1).min(self.sigmas.len() - 1)],
        );
        a + (b - a) * w
    }

    /// σ at a fractional timestep, linear in log σ (k-diffusion `DiscreteSchedule.t_to_sigma`;
    /// t is clamped to 0..=T−1).
    pub fn sigma_log_linear(&self, t: f64) -> f64 {
        let (low, w) = self.split(t);
        let high = (low + 1).min(self.log_sigmas.len() - 1);
        ((1.0 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp()
    }

    /// The fractional timestep of a σ, linear in log σ between the two table entries around it
    /// (k-diffusion `DiscreteSchedule.sigma_to_t`, diffusers `_sigma_to_t`); clamped to 0..=T−1.
    pub fn sigma_to_t(&self, sigma: f64) -> f64 {
        let log_sigma = sigma.max(1e-10).ln();
        let ls = &self.log_sigmas;
        let below = ls.partition_point(|&l| l <= log_sigma);
        let low = below.saturating_sub(1).min(ls.len() - 2);
        let (lo, hi) = (ls[low], ls[low + 1]);
        let w = ((lo - log_sigma) / (lo - hi)).clamp(0.0, 1.0);
        (1.0 - w) * low as f64 + w * (low + 1) as f64
    }

    /// Splits a timestep into a table index and the fraction towards the next one.
    fn split(&self, t: f64) -> (usize, f64) {
        let last = (self.sigmas.len() - 1) as f64;
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, last) };
        (t.floor() as usize, t - t.floor())
    }
}

/// σ = √((1 − ᾱ)/ᾱ): the noise level of `x = x₀ + σ·ε`, the k-diffusion form of a VP step.
pub fn sigma_of(alpha_cumprod: f64) -> f64 {
    ((1.0 - alpha_cumprod) / alpha_cumprod).sqrt()
}

/// Karras et al. (2022) eq. 5 sigmas with ρ (7 in diffusers and k-diffusion `get_sigmas_karras`):
/// `σ_i = (σ_max^{1/ρ} + i/(n−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ` for i in 0..n, without the
/// trailing 0. One step gives σ_max.
pub fn karras_sigmas(n: usize, sigma_min: f64, sigma_max: f64, rho: f64) -> Vec<f64> {
    let (min_inv, max_inv) = (sigma_min.powf(1.0 / rho), sigma_max.powf(1.0 / rho));
    linspace(0.0, 1.0, n)
        .into_iter()
        .map(|ramp| (max_inv + ramp * (min_inv - max_inv)).powf(rho))
        .collect()
}

/// The ancestral split of a step from σ to σ' (η = 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AncestralStep {
    /// σ_down: the deterministic step goes to this level.
    pub sigma_down: f64,
    /// σ_up: then fresh noise of this size is added, so that σ_down² + σ_up² = σ'².
    pub sigma_up: f64,
}

/// k-diffusion `get_ancestral_step(σ, σ', eta=1)` and diffusers Euler ancestral:
/// `σ_up = min(σ', √(σ'²·(σ² − σ'²)/σ²))`, `σ_down = √(σ'² − σ_up²)`.
pub fn ancestral_step(sigma: f64, sigma_next: f64) -> AncestralStep {
    let up_sq =
        sigma_next * sigma_next * (sigma * sigma - sigma_next * sigma_next) / (sigma * sigma);
    let sigma_up = sigma_next.min(up_sq.max(0.0).sqrt());
    let sigma_down = (sigma_next * sigma_next - sigma_up * sigma_up)
        .max(0.0)
        .sqrt();
    AncestralStep {
        sigma_down,
        sigma_up,
    }
}

/// `numpy.linspace(start, stop, num)` bit for bit: `i·((stop − start)/(num − 1)) + start`, the
/// last value set to `stop`; one value gives `[start]`.
pub(super) fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / num.saturating_sub(1).max(1) as f64;
    let mut values: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let (true, Some(last)) = (num > 1, values.last_mut()) {
        *last = stop;
    }
    values
}

/// β_t in f64 before rounding (torch.linspace over √β or β).
fn beta_values(config: &ScheduleConfig) -> Vec<f64> {
    let t = config.num_train_timesteps;
    let (start, end) = (config.beta_start, config.beta_end);
    match config.beta_schedule {
        BetaSchedule::Linear => linspace(start, end, t),
        BetaSchedule::ScaledLinear => {
            let roots = linspace(round_f32(start.sqrt()), round_f32(end.sqrt()), t);
            roots
                .into_iter()
                .map(|r| round_f32(r) * round_f32(r))
                .collect()
        }
    }
}

/// ᾱ must have T values, each in (0, 1), strictly decreasing (so σ is strictly increasing and
/// log σ can be searched).
fn check_alphas_cumprod(values: &[f64], train: usize) -> Result<(), ScheduleError> {
    if values.len() != train {
        return Err(ScheduleError::AlphasCumprodLength {
            found: values.len(),
            expected: train,
        });
    }
    let in_range = |a: f64| a > 0.0 && a < 1.0;
    for (t, pair) in values.windows(2).enumerate() {
        if !(in_range(pair[0]) && in_range(pair[1]) && pair[1] < pair[0]) {
            return Err(ScheduleError::DegenerateSchedule { timestep: t + 1 });
        }
    }
    Ok(())
}

/// Rounds to the nearest f32, as torch float32 tensors hold numbers.
fn round_f32(value: f64) -> f64 {
    value as f32 as f64
}
