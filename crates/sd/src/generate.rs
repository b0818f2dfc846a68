//! One image from a request: prompt → conditioning, seed → noise, sampling, decoding. Used by the
//! CLI and the browser worker alike, so the same request gives the same pixels everywhere.

use std::ops::ControlFlow;

use burn::tensor::{Device, Tensor, TensorData};
use keyshift_core::noise::{NoiseError, NoiseSpec};
use keyshift_core::schedule::{NoiseSchedule, Sampler, ScheduleConfig, ScheduleError, StepPlan};
use keyshift_core::tokens::{ClipTokenizer, ModelFamily};

use crate::conditioning::{ConditioningError, PromptConditioning, TextEncoder, pad_to_same_length};
use crate::config::Activation;
use crate::model::{Prediction, SdModel};
use crate::pipeline::{Conditioning, Sampling, StepOutput};
use crate::taps::StepHook;

/// An 8-bit RGB image, rows top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width·height·3` bytes.
    pub data: Vec<u8>,
}

/// The starting image of img2img.
#[derive(Debug, Clone)]
pub struct InitImage {
    /// The image, resized to the request's size by the caller.
    pub image: RgbImage,
    /// How much to change it: 0 keeps it, 1 ignores it.
    pub strength: f64,
}

/// Everything that decides an image.
#[derive(Debug, Clone)]
pub struct Request {
    /// Prompt in A1111 syntax.
    pub prompt: String,
    /// Negative prompt in A1111 syntax.
    pub negative: String,
    /// Sampling steps.
    pub steps: usize,
    /// Sampler.
    pub sampler: Sampler,
    /// Classifier-free guidance scale (≤ 1 skips the negative prompt).
    pub cfg: f64,
    /// Noise seed (A1111: only its low 32 bits count).
    pub seed: u64,
    /// A1111 variation seed and strength.
    pub subseed: Option<(u64, f32)>,
    /// Output width in pixels (a multiple of the VAE's downscale × 2^(UNet levels − 1)).
    pub width: usize,
    /// Output height in pixels.
    pub height: usize,
    /// A1111 CLIP skip; 0 uses the model's native layer.
    pub clip_skip: usize,
    /// img2img input.
    pub init: Option<InitImage>,
    /// The noise schedule (betas, prediction, spacing).
    pub schedule: ScheduleConfig,
}

/// Why an image could not be made.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The prompt or negative prompt.
    #[error(transparent)]
    Conditioning(#[from] ConditioningError),
    /// The sampler settings.
    #[error("sampler settings: {0}")]
    Schedule(#[from] ScheduleError),
    /// The noise.
    #[error("noise: {0}")]
    Noise(#[from] NoiseError),
    /// Size or init image.
    #[error("{0}")]
    Invalid(String),
    /// Reading a result back from the device.
    #[error("reading the result from the device failed: {0}")]
    ReadBack(String),
}

/// The result.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The decoded image.
    pub image: RgbImage,
    /// The final latent, `[4, h, w]` flattened.
    pub latent: Vec<f32>,
}

/// The encoder's padding convention: OpenCLIP (GELU) pads with 0, OpenAI CLIP with end-of-text.
pub fn family(model: &SdModel) -> ModelFamily {
    match model.info.clip.hidden_act {
        Activation::Gelu => ModelFamily::Sd2,
        Activation::QuickGelu => ModelFamily::Sd1,
    }
}

/// Pixels per latent pixel, and the multiple sizes must have.
pub fn size_multiple(model: &SdModel) -> (usize, usize) {
    let down = model.info.vae.downscale();
    (down, down << model.info.unet.levels().saturating_sub(1))
}

/// Makes one image, calling `on_step` after each step; `ControlFlow::Break` cancels and returns
/// `Ok(None)`. `hook` (heatmap taps, frame blending) is told each step before it runs. Async only to read the result back from a GPU in the browser; natively, block on it.
pub async fn generate(
    model: &SdModel,
    tokenizer: &ClipTokenizer,
    request: &Request,
    device: &Device,
    hook: &mut dyn StepHook,
    on_step: &mut dyn FnMut(&StepOutput) -> ControlFlow<()>,
) -> Result<Option<Generated>, GenerateError> {
    let (down, multiple) = size_multiple(model);
    if request.width == 0
        || request.height == 0
        || !request.width.is_multiple_of(multiple)
        || !request.height.is_multiple_of(multiple)
    {
        let (w, h) = (request.width, request.height);
        return Err(GenerateError::Invalid(format!(
            "size {w}x{h} must be a positive multiple of {multiple}"
        )));
    }
    let shape = [
        model.info.unet.in_channels,
        request.height / down,
        request.width / down,
    ];
    let encoder = TextEncoder {
        clip: &model.clip,
        tokenizer,
        family: family(model),
        clip_skip: if request.clip_skip == 0 {
            model.info.native_clip_skip
        } else {
            request.clip_skip
        },
    };
    let steps = u32::try_from(request.steps).unwrap_or(u32::MAX);
    let cond = encoder.prompt(&request.prompt, steps)?;
    let uncond = encoder.prompt(&request.negative, steps)?;
    let empty = encoder.prompt("", 1)?;
    let plan = plan(model, request)?;
    let spec = noise_spec(request);
    let noise = latent4(spec.latent_noise(shape)?, shape, device);
    let mut rng = spec.sampler_rng(shape, 0)?;
    let mut run = match &request.init {
        None => Sampling::txt2img(plan, noise, request.cfg),
        Some(init) => Sampling::img2img(
            plan,
            encode_init(model, &init.image, device)?,
            noise,
            request.cfg,
        ),
    };
    while !run.is_done() {
        let step_cond = conditioning_at(&cond, &uncond, &empty, run.next_step())?;
        hook.set_step(run.next_step());
        let Some(out) = run.step(&model.unet, &step_cond, &mut rng, hook) else {
            break;
        };
        if on_step(&out).is_break() {
            return Ok(None);
        }
    }
    let latent = run.latent().clone();
    let image = decode_to_rgb(model, latent.clone()).await?;
    let latent = read(latent).await?;
    Ok(Some(Generated { image, latent }))
}

fn noise_spec(request: &Request) -> NoiseSpec {
    let spec = NoiseSpec::new(request.seed);
    match request.subseed {
        Some((seed, strength)) if strength != 0.0 => spec.with_subseed(seed, strength),
        _ => spec,
    }
}

/// The step plan for a request, with the model's prediction type.
pub fn plan(model: &SdModel, request: &Request) -> Result<StepPlan, GenerateError> {
    let mut config = request.schedule.clone();
    config.prediction = match model.info.prediction {
        Prediction::Epsilon => keyshift_core::schedule::Prediction::Epsilon,
        Prediction::V => keyshift_core::schedule::Prediction::V,
    };
    let schedule = NoiseSchedule::new(config)?;
    let strength = request.init.as_ref().map_or(1.0, |i| i.strength);
    Ok(StepPlan::new(
        &schedule,
        request.sampler,
        request.steps,
        strength,
    )?)
}

fn conditioning_at(
    cond: &PromptConditioning,
    uncond: &PromptConditioning,
    empty: &PromptConditioning,
    step: usize,
) -> Result<Conditioning, GenerateError> {
    let parts = cond.at_step(step);
    let negative = uncond.at_step(step).into_iter().next().map(|(t, _)| t);
    let empty = empty.at_step(0).into_iter().next().map(|(t, _)| t);
    let (Some(negative), Some(empty)) = (negative, empty) else {
        return Err(GenerateError::Invalid(
            "the negative prompt gave no conditioning".into(),
        ));
    };
    let weights: Vec<f64> = parts.iter().map(|(_, w)| *w).collect();
    let mut all: Vec<Tensor<3>> = parts.into_iter().map(|(t, _)| t).collect();
    all.insert(0, negative);
    let mut padded = pad_to_same_length(all, &empty).into_iter();
    let uncond = padded.next().unwrap_or(empty);
    Ok(Conditioning {
        parts: padded.zip(weights).collect(),
        uncond,
    })
}

fn latent4(values: Vec<f32>, shape: [usize; 3], device: &Device) -> Tensor<4> {
    Tensor::<4>::from_data(
        TensorData::new(values, [1, shape[0], shape[1], shape[2]]),
        device,
    )
}

/// The init latent for img2img: the VAE encoder's mean, times the scaling factor.
fn encode_init(
    model: &SdModel,
    image: &RgbImage,
    device: &Device,
) -> Result<Tensor<4>, GenerateError> {
    let pixels = rgb_to_tensor(image, device);
    let moments = model
        .vae
        .encode_moments(pixels)
        .ok_or_else(|| GenerateError::Invalid("this model has no VAE encoder".into()))?;
    let [b, c, h, w] = moments.dims();
    let mean = moments.slice([0..b, 0..c / 2, 0..h, 0..w]);
    Ok(mean * model.info.vae.scaling_factor)
}

/// An RGB image as a `[1, 3, h, w]` tensor in [−1, 1].
pub fn rgb_to_tensor(image: &RgbImage, device: &Device) -> Tensor<4> {
    let (w, h) = (image.width, image.height);
    let mut values = vec![0f32; 3 * w * h];
    for (i, px) in image.data.chunks_exact(3).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            values[c * w * h + i] = f32::from(v) / 127.5 - 1.0;
        }
    }
    Tensor::<4>::from_data(TensorData::new(values, [1, 3, h, w]), device)
}

/// Decodes a latent and converts to 8-bit RGB as A1111 does: `(x + 1) / 2` clamped to [0, 1],
/// times 255, truncated.
pub async fn decode_to_rgb(model: &SdModel, latent: Tensor<4>) -> Result<RgbImage, GenerateError> {
    let image = model.vae.decode(latent / model.info.vae.scaling_factor);
    let [_, _, h, w] = image.dims();
    let values = read(image).await?;
    Ok(tensor_to_rgb(&values, w, h))
}

/// `[3, h, w]` values in about [−1, 1] → 8-bit RGB.
pub fn tensor_to_rgb(values: &[f32], width: usize, height: usize) -> RgbImage {
    let plane = width * height;
    let mut data = Vec::with_capacity(plane * 3);
    for i in 0..plane {
        for c in 0..3 {
            let v = values.get(c * plane + i).copied().unwrap_or(0.0);
            data.push((((v + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0) as u8);
        }
    }
    RgbImage {
        width,
        height,
        data,
    }
}

async fn read<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, GenerateError> {
    t.into_data_async()
        .await
        .map_err(|e| GenerateError::ReadBack(format!("{e:?}")))?
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| GenerateError::ReadBack(format!("{e:?}")))
}
