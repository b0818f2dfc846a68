//! Inference timesteps per spacing, as each diffusers scheduler class computes them, and where
//! img2img `strength` starts the schedule.

use super::ScheduleError;
use super::config::TimestepSpacing;
use super::table::linspace;

/// Where img2img `strength` makes the schedule start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrengthRule {
    /// diffusers `get_timesteps`: `init = min(int(N·strength), N)`; the first `N − init` steps
    /// are skipped. Strength 0 leaves no step (an error).
    Diffusers,
    /// A1111 `setup_img2img_steps` (k-diffusion samplers): `t_enc = int(min(strength, 0.999)·N)`;
    /// sampling starts at σ index `N − t_enc − 1`, so `t_enc + 1` steps run.
    A1111,
}

impl StrengthRule {
    /// The index of the first step that runs, of `steps`.
    pub fn start_index(self, steps: usize, strength: f64) -> Result<usize, ScheduleError> {
        check_strength(strength)?;
        match self {
            StrengthRule::Diffusers => {
                let init = ((steps as f64 * strength) as usize).min(steps);
                match init {
                    0 => Err(ScheduleError::NoStepsLeft { steps, strength }),
                    _ => Ok(steps - init),
                }
            }
            StrengthRule::A1111 => {
                let t_enc = (steps as f64 * strength.min(0.999)) as usize;
                Ok(steps.saturating_sub(t_enc + 1))
            }
        }
    }
}

/// Errs unless `strength` is in [0, 1].
pub(super) fn check_strength(strength: f64) -> Result<(), ScheduleError> {
    match (0.0..=1.0).contains(&strength) {
        true => Ok(()),
        false => Err(ScheduleError::Strength(strength)),
    }
}

/// Timesteps of DDIM, Euler and Euler ancestral (descending); `steps` is at least 1 (checked by
/// the caller).
///
/// - `Linspace`: `linspace(0, T−1, N)` reversed; fractional (Euler) unless `round` (DDIM rounds
///   half to even, as `np.round`).
/// - `Leading`: `(0..N)·(T div N)` reversed, plus `steps_offset`.
/// - `Trailing`: `round(T − i·T/N) − 1` for i in 0..N (numpy's `arange(T, 0, −T/N)`; for a few N,
///   e.g. 61, numpy's arange yields one value more, ending at −1; this keeps N).
pub(super) fn spaced_timesteps(
    spacing: TimestepSpacing,
    train: usize,
    steps: usize,
    offset: usize,
    round: bool,
) -> Vec<f64> {
    let mut timesteps = match spacing {
        TimestepSpacing::Linspace => linspace(0.0, (train - 1) as f64, steps),
        TimestepSpacing::Leading => leading(train / steps, steps, offset),
        TimestepSpacing::Trailing => trailing(train, steps),
    };
    timesteps.reverse();
    if round {
        timesteps.iter_mut().for_each(|t| *t = t.round_ties_even());
    }
    timesteps
}

/// DPMSolverMultistepScheduler's timesteps (integers, descending), which take N of N + 1 points:
///
/// - `Linspace`: `round(linspace(0, T−1, N+1))` reversed, the last (0) dropped.
/// - `Leading`: `(1..=N)·(T div (N+1))` reversed, plus `steps_offset`.
/// - `Trailing`: as for Euler.
pub(super) fn dpm_timesteps(
    spacing: TimestepSpacing,
    train: usize,
    steps: usize,
    offset: usize,
) -> Vec<f64> {
    let mut timesteps = match spacing {
        TimestepSpacing::Linspace => linspace(0.0, (train - 1) as f64, steps + 1)
            .into_iter()
            .skip(1)
            .map(f64::round_ties_even)
            .collect(),
        TimestepSpacing::Leading => leading(train / (steps + 1), steps + 1, offset)
            .into_iter()
            .skip(1)
            .collect(),
        TimestepSpacing::Trailing => trailing(train, steps),
    };
    timesteps.reverse();
    timesteps
}

/// `(0..count)·ratio + offset`, ascending.
fn leading(ratio: usize, count: usize, offset: usize) -> Vec<f64> {
    (0..count).map(|i| (i * ratio + offset) as f64).collect()
}

/// `round(T − i·T/N) − 1` for i in 0..N, ascending.
fn trailing(train: usize, steps: usize) -> Vec<f64> {
    let ratio = train as f64 / steps as f64;
    let mut values: Vec<f64> = (0..steps)
        .map(|i| (train as f64 - i as f64 * ratio).round_ties_even() - 1.0)
        .collect();
    values.reverse();
    values
}

/// LCMScheduler's timesteps (descending): the distillation schedule
/// `(1..=int(orig·strength))·(T div orig) − 1`, reversed, sampled at
/// `floor(linspace(0, len, N, endpoint=False))`.
pub(super) fn lcm_timesteps(
    train: usize,
    original_steps: usize,
    steps: usize,
    strength: f64,
) -> Result<Vec<f64>, ScheduleError> {
    check_strength(strength)?;
    let k = train / original_steps;
    let len = (original_steps as f64 * strength) as usize;
    if steps == 0 || steps > original_steps || len / steps == 0 {
        return Err(ScheduleError::LcmSteps {
            steps,
            original: original_steps,
            strength,
        });
    }
    let origin: Vec<usize> = (1..=len).rev().map(|i| i * k - 1).collect();
    let stride = len as f64 / steps as f64;
    let pick = |i: usize| origin.get((i as f64 * stride).floor() as usize).copied();
    let picked: Option<Vec<usize>> = (0..steps).map(pick).collect();
    let picked = picked.ok_or(ScheduleError::LcmSteps {
        steps,
        original: original_steps,
        strength,
    })?;
    Ok(picked.into_iter().map(|t| t as f64).collect())
}
