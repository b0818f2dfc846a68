//! Sampling behind a step API: the caller drives one step at a time (progress, cancellation by
//! not calling again, a preview of the denoised latent after each step). The scalars of each
//! step come from [`keyshift_core::schedule::StepPlan`]; this module applies them to tensors.

use burn::tensor::{Device, Tensor, TensorData};
use keyshift_core::noise::TorchRng;
use keyshift_core::schedule::{StepCoefficients, StepPlan, needs_uncond};

use crate::controlnet::{ControlNet, Residuals, Strength};
use crate::embeddings::guidance_embedding;
use crate::hooks::AttentionHook;
use crate::unet::Unet;

/// A ControlNet guiding a sampling run: its hint, strength and the steps it acts on
/// (A1111's "Control Weight", "Guess Mode", "Starting/Ending Control Step").
#[derive(Debug, Clone)]
pub struct Control<'a> {
    /// The net.
    pub net: &'a ControlNet,
    /// The hint image, `[1, 3, H, W]` in [0, 1] (RGB) at the output size.
    pub hint: Tensor<4>,
    /// `controlnet_conditioning_scale`.
    pub scale: f64,
    /// Guess mode: the net sees only the prompt's rows, its residuals grow from 0.1× at the
    /// first skip to 1× at the middle block, and the negative prompt's rows get none.
    pub guess_mode: bool,
    /// The fraction of the steps before which the net does not act (`control_guidance_start`).
    pub start: f64,
    /// The fraction of the steps after which it stops (`control_guidance_end`).
    pub end: f64,
}

impl Control<'_> {
    /// The scale at step `step` of `total`: diffusers' `controlnet_keep` (0 where
    /// `step / total < start` or `(step + 1) / total > end`) times [`Control::scale`].
    pub fn scale_at(&self, step: usize, total: usize) -> f64 {
        if control_acts(step, total, self.start, self.end) {
            self.scale
        } else {
            0.0
        }
    }
}

/// Whether a ControlNet acts at step `step` of `total` between the fractions `start` and `end`
/// of the run: not where `step / total < start` or `(step + 1) / total > end` (diffusers).
pub fn control_acts(step: usize, total: usize, start: f64, end: f64) -> bool {
    let total = total.max(1) as f64;
    let step = step as f64;
    !(step / total < start || (step + 1.0) / total > end)
}

/// A [`Control`] with the hook its attention layers call (a second frame blend for
/// `controlnet_config`, or [`crate::hooks::NoHook`]).
pub struct Controlled<'c, 'a> {
    /// The ControlNet and its settings.
    pub control: &'c Control<'a>,
    /// Called by the ControlNet's attention layers.
    pub hook: &'c mut dyn AttentionHook,
}

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
        self.step_controlled(unet, cond, noise, hook, None)
    }

    /// [`Sampling::step`] guided by a ControlNet.
    pub fn step_controlled(
        &mut self,
        unet: &Unet,
        cond: &Conditioning,
        noise: &mut dyn NoiseSource,
        hook: &mut dyn AttentionHook,
        control: Option<Controlled>,
    ) -> Option<StepOutput> {
        let coefficients = self.coefficients()?;
        let control = control.map(|c| {
            let scale = c.control.scale_at(self.next, self.plan.steps.len());
            (c, scale)
        });
        let model_out = guided(
            unet,
            &self.x,
            &coefficients,
            cond,
            self.guidance,
            hook,
            control,
        );
        Some(self.advance(&coefficients, model_out, noise))
    }

    /// The next step's scalars, or `None` when done.
    pub fn coefficients(&self) -> Option<StepCoefficients> {
        self.plan.steps.get(self.next).copied()
    }

    /// The guidance scale.
    pub fn guidance(&self) -> f64 {
        self.guidance
    }

    /// The second half of a step, after the model: the denoised estimate from the guided model
    /// output, then the sampler's update (drawing noise from `noise` if it needs any).
    ///
    /// # Shapes
    /// - `model_out`: as [`Sampling::latent`]
    pub fn advance(
        &mut self,
        coefficients: &StepCoefficients,
        model_out: Tensor<4>,
        noise: &mut dyn NoiseSource,
    ) -> StepOutput {
        let denoised =
            self.x.clone() * coefficients.denoise.x + model_out * coefficients.denoise.model;
        self.x = self.update(coefficients, denoised.clone(), noise);
        self.prev_denoised = Some(denoised.clone());
        let step = self.next;
        self.next += 1;
        StepOutput {
            step,
            total: self.plan.steps.len(),
            denoised,
        }
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
    control: Option<(Controlled, f64)>,
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
    let batch = Tensor::cat(vec![input.clone(); n], 0);
    let rows = n * b;
    let residuals = control.and_then(|(controlled, scale)| {
        let skip = usize::from(with_uncond);
        control_residuals(controlled, scale, &input, &contexts, c.timestep, skip)
    });
    let out = unet.forward_controlled(
        batch,
        c.timestep,
        &Tensor::cat(contexts, 0),
        embedded.map(|(_, e)| e.repeat_dim(0, rows)),
        residuals.as_ref(),
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

/// The guided model outputs of several latents in one UNet call: each frame's rows follow one
/// another within each guidance part (`[u₁…u_k, c₁…c_k]`), so every row sees the same work as in
/// its own call. The frames share `c` and `guidance`, and their conditionings have the same parts
/// (count, weights, shapes): [`same_parts`] says so.
///
/// # Shapes
/// - `xs`: each `[1, 4, h, w]`; returns one output of that shape per frame
pub fn guided_together(
    unet: &Unet,
    xs: &[Tensor<4>],
    c: &StepCoefficients,
    conds: &[Conditioning],
    guidance: f64,
    hook: &mut dyn AttentionHook,
) -> Vec<Tensor<4>> {
    let part = |i: usize| {
        let rows = conds.iter().filter_map(|cond| cond.parts.get(i));
        Tensor::cat(rows.map(|(t, _)| t.clone()).collect(), 0)
    };
    let weights = conds.first().map_or(&[][..], |first| &first.parts);
    let cond = Conditioning {
        parts: (0..weights.len())
            .zip(weights)
            .map(|(i, (_, w))| (part(i), *w))
            .collect(),
        uncond: Tensor::cat(conds.iter().map(|cond| cond.uncond.clone()).collect(), 0),
    };
    let x = Tensor::cat(xs.to_vec(), 0);
    let out = guided(unet, &x, c, &cond, guidance, hook, None);
    out.split(1, 0)
}

/// Whether conditionings can share a UNet call ([`guided_together`]): the same number of parts
/// with the same weights, and every tensor of the same shape.
pub fn same_parts(conds: &[Conditioning]) -> bool {
    let Some(first) = conds.first() else {
        return false;
    };
    conds.iter().all(|cond| {
        cond.uncond.dims() == first.uncond.dims()
            && cond.parts.len() == first.parts.len()
            && cond
                .parts
                .iter()
                .zip(&first.parts)
                .all(|((t, w), (t0, w0))| w == w0 && t.dims() == t0.dims())
    })
}

/// The ControlNet's residuals for the guidance batch (`contexts`, each `input`'s batch `b`
/// rows; the first `uncond` of them the negative prompt's): `None` at scale 0. In guess mode
/// the net runs on the prompt's rows only and the negative prompt's rows get zeros.
fn control_residuals(
    controlled: Controlled,
    scale: f64,
    input: &Tensor<4>,
    contexts: &[Tensor<3>],
    timestep: f64,
    uncond: usize,
) -> Option<Residuals> {
    if scale == 0.0 {
        return None;
    }
    let Controlled { control, hook } = controlled;
    let guess = control.guess_mode || control.net.global_pool();
    let [b, _, _, _] = input.dims();
    let skip = if guess { uncond } else { 0 };
    let used = contexts.get(skip..).unwrap_or_default().to_vec();
    let n = used.len();
    if n == 0 {
        return None;
    }
    let residuals = control.net.forward(
        Tensor::cat(vec![input.clone(); n], 0),
        timestep,
        &Tensor::cat(used, 0),
        control.hint.clone().repeat_dim(0, n * b),
        Strength {
            scale,
            guess_mode: guess,
        },
        hook,
    );
    Some(if skip > 0 {
        residuals.after_zeros(skip * b)
    } else {
        residuals
    })
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
