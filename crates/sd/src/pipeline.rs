//! Sampling behind a step API: the caller drives one step at a time (progress, cancellation by
//! not calling again, a preview of the denoised latent after each step). The scalars of each
//! step come from [`keyshift_core::schedule::StepPlan`]; this module applies them to tensors.

use burn::tensor::{Device, Tensor, TensorData};
use keyshift_core::noise::TorchRng;
use keyshift_core::schedule::{StepCoefficients, StepPlan, needs_uncond};

use crate::embeddings::guidance_embedding;
use crate::hooks::AttentionHook;
use crate::unet::Unet;

/// Text conditioning of one step, for classifier-free guidance.
#[derive(Debug, Clone)]
pub struct Conditioning {
    /// The prompt's `AND` parts: embeddings `[b, tokens, dim]` and composable-diffusion weight.
    pub parts: Vec<(Tensor<3>, f64)>,
    /// The negative prompt's embeddings (same shape), used when guidance > 1.
    pub uncond: Tensor<3>,
}

impl Conditioning {
    /// A single prompt with weight 1.
    pub fn single(cond: Tensor<3>, uncond: Tensor<3>) -> Self {
        Self {
            parts: vec![(cond, 1.0)],
            uncond,
        }
    }
}

/// Fresh Gaussian noise for ancestral and stochastic steps.
pub trait NoiseSource {
    /// `len` standard normal values.
    fn next(&mut self, len: usize) -> Vec<f32>;
}

impl NoiseSource for TorchRng {
    fn next(&mut self, len: usize) -> Vec<f32> {
        self.randn(len)
    }
}

/// Noise given in advance, one tensor's worth per step (reference runs); zeros when exhausted.
#[derive(Debug, Clone, Default)]
pub struct FixedNoise {
    steps: std::collections::VecDeque<Vec<f32>>,
}

impl FixedNoise {
    /// The noise for each step, in order.
    pub fn new(steps: Vec<Vec<f32>>) -> Self {
        Self {
            steps: steps.into(),
        }
    }
}

impl NoiseSource for FixedNoise {
    fn next(&mut self, len: usize) -> Vec<f32> {
        let mut v = self.steps.pop_front().unwrap_or_default();
        v.resize(len, 0.0);
        v
    }
}

/// What one step produced.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// Index of the step in the plan (0-based).
    pub step: usize,
    /// Steps in the plan.
    pub total: usize,
    /// The model's estimate of the clean latent at this step (for previews).
    pub denoised: Tensor<4>,
}

/// A sampling run in progress.
#[derive(Debug)]
pub struct Sampling {
    plan: StepPlan,
    x: Tensor<4>,
    prev_denoised: Option<Tensor<4>>,
    next: usize,
    guidance: f64,
}

impl Sampling {
    /// Text-to-image: starts from `noise · init_noise_sigma`.
    ///
    /// # Shapes
    /// - `noise`: `[b, 4, h, w]`
    pub fn txt2img(plan: StepPlan, noise: Tensor<4>, guidance: f64) -> Self {
        let x = noise * plan.init_noise_sigma;
        Self {
            plan,
            x,
            prev_denoised: None,
            next: 0,
            guidance,
        }
    }

    /// Image-to-image: starts from the init latent noised to the first step's level.
    ///
    /// # Shapes
    /// - `init_latent`, `noise`: `[b, 4, h, w]`
    pub fn img2img(
        plan: StepPlan,
        init_latent: Tensor<4>,
        noise: Tensor<4>,
        guidance: f64,
    ) -> Self {
        let mix = plan.img2img_noise;
        let x = init_latent * mix.signal + noise * mix.noise;
        Self {
            plan,
            x,
            prev_denoised: None,
            next: 0,
            guidance,
        }
    }

    /// Index of the step [`Sampling::step`] runs next (for per-step conditioning).
    pub fn next_step(&self) -> usize {
        self.next
    }

    /// Whether every step has run.
    pub fn is_done(&self) -> bool {
        self.next >= self.plan.steps.len()
    }

    /// Steps in the plan.
    pub fn total_steps(&self) -> usize {
        self.plan.steps.len()
    }

    /// The current latent.
    pub fn latent(&self) -> &Tensor<4> {
        &self.x
    }

    /// Replaces the current latent (the sampler's history, if any, is kept).
    pub fn set_latent(&mut self, x: Tensor<4>) {
        self.x = x;
    }

    /// Runs the next step, or returns `None` when done.
    pub fn step(
        &mut self,
        unet: &Unet,
        cond: &Conditioning,
        noise: &mut dyn NoiseSource,
        hook: &mut dyn AttentionHook,
    ) -> Option<StepOutput> {
        let coefficients = *self.plan.steps.get(self.next)?;
        let model_out = guided(unet, &self.x, &coefficients, cond, self.guidance, hook);
        let denoised =
            self.x.clone() * coefficients.denoise.x + model_out * coefficients.denoise.model;
        self.x = self.update(&coefficients, denoised.clone(), noise);
        self.prev_denoised = Some(denoised.clone());
        let step = self.next;
        self.next += 1;
        Some(StepOutput {
            step,
            total: self.plan.steps.len(),
            denoised,
        })
    }

    fn update(
        &self,
        c: &StepCoefficients,
        denoised: Tensor<4>,
        noise: &mut dyn NoiseSource,
    ) -> Tensor<4> {
        let u = c.update;
        let mut x = self.x.clone() * u.x + denoised * u.denoised;
        if let (Some(prev), true) = (&self.prev_denoised, u.prev_denoised != 0.0) {
            x = x + prev.clone() * u.prev_denoised;
        }
        if c.draws_noise || u.noise != 0.0 {
            let z = noise_like(&self.x, noise);
            if u.noise != 0.0 {
                x = x + z * u.noise;
            }
        }
        x
    }
}

/// A tensor of `noise`'s next values in the shape of `like`.
pub fn noise_like(like: &Tensor<4>, noise: &mut dyn NoiseSource) -> Tensor<4> {
    let shape = like.dims();
    let values = noise.next(shape.iter().product());
    Tensor::<4>::from_data(TensorData::new(values, shape), &like.device())
}

/// The model output with classifier-free guidance: one UNet call on the batch
/// `[uncond, cond_1, …, cond_n]`, then `u + g·Σ wᵢ·(cᵢ − u)` (A1111's composable diffusion; one
/// part of weight 1 is ordinary CFG). Guidance ≤ 1 skips the uncond pass and returns the
/// weighted mean of the parts.
fn guided(
    unet: &Unet,
    x: &Tensor<4>,
    c: &StepCoefficients,
    cond: &Conditioning,
    guidance: f64,
    hook: &mut dyn AttentionHook,
) -> Tensor<4> {
    let input = x.clone() * c.c_in;
    let [b, ch, h, w] = input.dims();
    // An LCM-distilled UNet takes the guidance scale as an input instead of an unconditional
    // pass (diffusers `LatentConsistencyModelPipeline`: w = scale − 1, no CFG).
    let embedded = unet
        .guidance_dim()
        .map(|dim| (dim, guidance_embedding(guidance - 1.0, dim, 1, &x.device())));
    let with_uncond = embedded.is_none() && (needs_uncond(guidance) || cond.parts.is_empty());
    let mut contexts: Vec<Tensor<3>> = Vec::new();
    if with_uncond {
        contexts.push(cond.uncond.clone());
    }
    contexts.extend(cond.parts.iter().map(|(t, _)| t.clone()));
    if contexts.is_empty() {
        contexts.push(cond.uncond.clone());
    }
    let n = contexts.len();
    let batch = Tensor::cat(vec![input; n], 0);
    let rows = n * b;
    let out = unet.forward_guided(
        batch,
        c.timestep,
        &Tensor::cat(contexts, 0),
        embedded.map(|(_, e)| e.repeat_dim(0, rows)),
        hook,
    );
    let slice = |i: usize| out.clone().slice([i * b..(i + 1) * b, 0..ch, 0..h, 0..w]);
    if with_uncond {
        let uncond = slice(0);
        let mut result = uncond.clone();
        for (i, (_, weight)) in cond.parts.iter().enumerate() {
            result = result + (slice(i + 1) - uncond.clone()) * (weight * guidance);
        }
        return result;
    }
    let Some((_, first)) = cond.parts.first() else {
        return slice(0);
    };
    let total: f64 = cond.parts.iter().map(|(_, w)| w).sum();
    let norm = if total == 0.0 { 1.0 } else { total };
    let mut result = slice(0) * (first / norm);
    for (i, (_, weight)) in cond.parts.iter().enumerate().skip(1) {
        result = result + slice(i) * (weight / norm);
    }
    result
}

/// A latent tensor from flat values.
///
/// # Shapes
/// - returns `shape`
pub fn latent(values: Vec<f32>, shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::<4>::from_data(TensorData::new(values, shape), device)
}

/// A text-embedding tensor `[b, tokens, dim]`.
pub type Context = Tensor<3>;

/// A conditioning tensor from flat values (e.g. interpolated by prompt travel).
///
/// # Shapes
/// - returns `shape` = `[b, tokens, dim]`
pub fn context(values: Vec<f32>, shape: [usize; 3], device: &Device) -> Context {
    Tensor::<3>::from_data(TensorData::new(values, shape), device)
}

/// A latent or image tensor `[b, c, h, w]`.
pub type Context4 = Tensor<4>;
