//! Prompt travel's grad mode (prompt-travel v1.1, seeds.md §2.3): the prompt's conditioning `c`
//! walks towards the next stage by projected gradient steps on burn's autodiff. The loss is
//! `w_latent · loss_latent + w_cond · loss_cond`: the training loss of the next stage's image
//! latent under `c` (MSE of the predicted against the true noise — or v — at a timestep) and the
//! L1 distance of `c` to the next stage's conditioning. The UNet's weights stay constants (no
//! autodiff on them); only `c` requires a gradient.

use burn::tensor::{Tensor, TensorData};
use keyshift_core::noise::TorchRng;
use keyshift_core::schedule::NoiseSchedule;
use keyshift_core::travel::{GradMethod, GradOptions};

use crate::hooks::NoHook;
use crate::model::{Prediction, SdModel};

/// The two losses of one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradLosses {
    /// The training loss of the target image's latent.
    pub latent: f64,
    /// The L1 distance to the target conditioning.
    pub cond: f64,
}

/// What one step is measured against: the target stage's conditioning and image latent.
pub struct GradTarget<'a> {
    /// The model.
    pub model: &'a SdModel,
    /// The noise schedule (its ᾱ_t noise the latent).
    pub schedule: &'a NoiseSchedule,
    /// The target stage's conditioning, `[1, tokens, dim]` (padded like `c`).
    pub cond: Tensor<3>,
    /// The target image's latent, `[1, 4, h, w]` (VAE mean × scaling factor).
    pub latent: Tensor<4>,
}

/// The gradient of the weighted loss with respect to `c` at timestep `t` with noise `noise`, and
/// the losses (read back from the device: async for WebGPU; natively, block on it).
///
/// # Shapes
/// - `c`: `[1, tokens, dim]`, `noise`: as the target latent → gradient as `c`
pub async fn gradient(
    target: &GradTarget<'_>,
    c: Tensor<3>,
    t: usize,
    noise: Tensor<4>,
    options: &GradOptions,
) -> Result<(Tensor<3>, GradLosses), String> {
    let ac: f64 = target
        .schedule
        .alphas_cumprod()
        .get(t)
        .copied()
        .ok_or_else(|| format!("timestep {t} is outside the schedule"))?;
    let (signal, sigma) = (ac.sqrt(), (1.0 - ac).sqrt());
    let noisy = target.latent.clone() * signal + noise.clone() * sigma;
    let wanted = match target.model.info.prediction {
        Prediction::Epsilon => noise,
        Prediction::V => noise * signal - target.latent.clone() * sigma,
    };
    let c = c.autodiff().require_grad();
    #[allow(clippy::cast_precision_loss, reason = "timesteps are below 1000")]
    let predicted = target.model.unet.forward(noisy, t as f64, &c, &mut NoHook);
    let loss_latent = (predicted - wanted).square().mean();
    let loss_cond = (c.clone() - target.cond.clone()).abs().mean();
    let total = loss_latent.clone() * options.w_latent + loss_cond.clone() * options.w_cond;
    let grads = total.backward();
    let g = c
        .grad(&grads)
        .ok_or("the conditioning got no gradient")?
        .without_autodiff();
    let losses = GradLosses {
        latent: scalar(loss_latent).await?,
        cond: scalar(loss_cond).await?,
    };
    Ok((g, losses))
}

async fn scalar(t: Tensor<1>) -> Result<f64, String> {
    let v = crate::generate::read(t.without_autodiff())
        .await
        .map_err(|e| e.to_string())?;
    Ok(v.first().copied().map_or(f64::NAN, f64::from))
}

/// The move for gradient `g` (before the step size).
pub fn step(g: Tensor<3>, method: GradMethod) -> Tensor<3> {
    match method {
        GradMethod::Sign => g.sign(),
        GradMethod::Tanh => g.tanh(),
        GradMethod::Clip => {
            let up = g.clone().greater_elem(1e-5).float() * g.clone().clamp(0.2, 1.0);
            let down = g.clone().lower_elem(-1e-5).float() * g.clamp(-1.0, -0.2);
            up + down
        }
    }
}

/// `options.iterations` PGD steps from `c`, each at a timestep and noise drawn from `rng`
/// (`t = u32 % timesteps`, then the noise): the walked conditioning and each step's losses.
pub async fn walk(
    target: &GradTarget<'_>,
    mut c: Tensor<3>,
    options: &GradOptions,
    rng: &mut TorchRng,
) -> Result<(Tensor<3>, Vec<GradLosses>), String> {
    let shape = target.latent.dims();
    let timesteps = target.schedule.train_timesteps().max(1);
    let mut losses = Vec::with_capacity(options.iterations);
    for _ in 0..options.iterations {
        let t = rng.next_u32() as usize % timesteps;
        let values = rng.randn(shape.iter().product());
        let noise = Tensor::<4>::from_data(TensorData::new(values, shape), &c.device());
        let (g, l) = gradient(target, c.clone(), t, noise, options).await?;
        c = c - step(g, options.method) * options.alpha;
        losses.push(l);
    }
    Ok((c, losses))
}
