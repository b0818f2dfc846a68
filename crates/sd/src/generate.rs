//! One image from a request: prompt → conditioning, seed → noise, sampling, decoding. Used by the
//! CLI and the browser worker alike, so the same request gives the same pixels everywhere.

use std::ops::ControlFlow;

use burn::tensor::{Device, Tensor, TensorData};
use keyshift_core::noise::{NoiseError, NoiseSpec, TorchRng};
use keyshift_core::parameters::{Parameters, sampler_name};
use keyshift_core::schedule::{
    NoiseSchedule, Sampler, ScheduleConfig, ScheduleError, StepCoefficients, StepPlan,
};
use keyshift_core::tokens::{ClipTokenizer, ModelFamily, TokenChunk};

use crate::conditioning::{ConditioningError, PromptConditioning, TextEncoder, pad_to_same_length};
use crate::config::Activation;
use crate::hooks::NoHook;
use crate::model::{Prediction, SdModel};
use crate::pipeline::{
    Conditioning, Control, Controlled, Sampling, StepOutput, guided_together, same_parts,
};
use crate::taesd::Taesd;
use crate::taps::StepHook;
use crate::travel::{EncodedTravel, MixError, Travel};

pub use keyshift_core::image::RgbImage;

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
    /// Mixing two stages of a prompt travel.
    #[error("prompt travel: {0}")]
    Travel(#[from] MixError),
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

impl Request {
    /// A1111's `parameters` text for the image this request makes (`model`: the name shown as
    /// "Model").
    pub fn parameters(&self, model: &str) -> Parameters {
        let (name, schedule) = sampler_name(self.sampler);
        let mut fields = vec![
            ("Steps".to_owned(), self.steps.to_string()),
            ("Sampler".to_owned(), name.to_owned()),
        ];
        if let Some(s) = schedule {
            fields.push(("Schedule type".into(), s.into()));
        }
        fields.push(("CFG scale".into(), format!("{}", self.cfg)));
        fields.push(("Seed".into(), self.seed.to_string()));
        fields.push(("Size".into(), format!("{}x{}", self.width, self.height)));
        fields.push(("Model".into(), model.to_owned()));
        if let Some((seed, strength)) = self.subseed {
            fields.push(("Variation seed".into(), seed.to_string()));
            fields.push(("Variation seed strength".into(), format!("{strength}")));
        }
        if let Some(init) = &self.init {
            fields.push(("Denoising strength".into(), format!("{}", init.strength)));
        }
        if self.clip_skip > 1 {
            fields.push(("Clip skip".into(), self.clip_skip.to_string()));
        }
        fields.push((
            "Version".into(),
            format!("Keyshift {}", env!("CARGO_PKG_VERSION")),
        ));
        Parameters {
            prompt: self.prompt.clone(),
            negative: self.negative.clone(),
            fields,
        }
    }
}

/// The encoder's padding convention: OpenCLIP (GELU) pads with 0, OpenAI CLIP with end-of-text.
pub fn family(model: &SdModel) -> ModelFamily {
    match model.info.clip.hidden_act {
        Activation::Gelu => ModelFamily::Sd2,
        Activation::QuickGelu => ModelFamily::Sd1,
    }
}

/// Pixels per latent pixel, and the multiple sizes must have: the VAE's factor (8 for SD, as
/// A1111 accepts), whatever the UNet's depth (its upsamplers follow the skips' sizes).
pub fn size_multiple(model: &SdModel) -> (usize, usize) {
    let down = model.info.vae.downscale();
    (down, down)
}

/// One image being made, a step at a time: the worker drives it between messages (progress,
/// previews, cancel), [`generate`] drives it in one go.
#[derive(Debug)]
pub struct Generation<'m> {
    model: &'m SdModel,
    cond: PromptConditioning,
    uncond: PromptConditioning,
    empty: PromptConditioning,
    travel: Option<EncodedTravel>,
    run: Sampling,
    rng: TorchRng,
    control: Option<Control<'m>>,
}

impl<'m> Generation<'m> {
    /// Checks the request, encodes the prompts and draws the initial noise.
    pub fn new(
        model: &'m SdModel,
        tokenizer: &ClipTokenizer,
        request: &Request,
        device: &Device,
    ) -> Result<Self, GenerateError> {
        Self::travelling(model, tokenizer, request, None, device)
    }

    /// The same, for a frame of a prompt travel: every step's conditioning mixes the request's
    /// prompts with `travel`'s target stage.
    pub fn travelling(
        model: &'m SdModel,
        tokenizer: &ClipTokenizer,
        request: &Request,
        travel: Option<&Travel>,
        device: &Device,
    ) -> Result<Self, GenerateError> {
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
        let encoder = encoder(model, tokenizer, request);
        let steps = u32::try_from(request.steps).unwrap_or(u32::MAX);
        let cond = encoder.prompt(&request.prompt, steps)?;
        let uncond = encoder.prompt(&request.negative, steps)?;
        let empty = encoder.prompt("", 1)?;
        let travel = match travel {
            Some(t) => Some(EncodedTravel {
                to: encoder.prompt(&t.prompt, steps)?,
                to_uncond: encoder.prompt(&t.negative, steps)?,
                travel: t.clone(),
            }),
            None => None,
        };
        let plan = plan(model, request)?;
        let spec = noise_spec(request);
        let noise = latent4(spec.latent_noise(shape)?, shape, device);
        let rng = spec.sampler_rng(shape, 0)?;
        let run = match &request.init {
            None => Sampling::txt2img(plan, noise, request.cfg),
            Some(init) => Sampling::img2img(
                plan,
                encode_init(model, &init.image, device)?,
                noise,
                request.cfg,
            ),
        };
        Ok(Self {
            model,
            cond,
            uncond,
            empty,
            travel,
            run,
            rng,
            control: None,
        })
    }

    /// Guides every following step with a ControlNet.
    pub fn set_control(&mut self, control: Control<'m>) {
        self.control = Some(control);
    }

    /// Index of the step [`Generation::step`] runs next.
    pub fn next_step(&self) -> usize {
        self.run.next_step()
    }

    /// Replaces the current latent (embryo genesis swaps in the shared latent).
    ///
    /// # Shapes
    /// - `latent`: `[1, 4, h, w]`, as [`Generation::latent`]
    pub fn set_latent(&mut self, latent: Tensor<4>) {
        self.run.set_latent(latent);
    }

    /// Steps in the plan.
    pub fn total_steps(&self) -> usize {
        self.run.total_steps()
    }

    /// Whether every step has run.
    pub fn is_done(&self) -> bool {
        self.run.is_done()
    }

    /// Runs the next step (`hook` is told which step first); `None` once done. The work is
    /// queued on the device; read something back (a preview) to wait for it.
    pub fn step(&mut self, hook: &mut dyn StepHook) -> Result<Option<StepOutput>, GenerateError> {
        self.step_controlled(hook, &mut NoHook)
    }

    /// [`Generation::step`], with `control_hook` called by the ControlNet's attention layers
    /// (when [`Generation::set_control`] gave one; told the step first).
    pub fn step_controlled(
        &mut self,
        hook: &mut dyn StepHook,
        control_hook: &mut dyn StepHook,
    ) -> Result<Option<StepOutput>, GenerateError> {
        if self.run.is_done() {
            return Ok(None);
        }
        let step = self.run.next_step();
        let cond = self.conditioning(step)?;
        hook.set_step(step);
        control_hook.set_step(step);
        let controlled = self.control.as_ref().map(|control| Controlled {
            control,
            hook: control_hook,
        });
        let output =
            self.run
                .step_controlled(&self.model.unet, &cond, &mut self.rng, hook, controlled);
        let latent = hook.stepped(step, self.run.latent().clone());
        self.run.set_latent(latent);
        Ok(output)
    }

    /// The text conditioning of sampling step `step` (0-based): the prompt's schedule entry
    /// for that step, mixed with the travel target's entry for the same step.
    pub fn conditioning(&self, step: usize) -> Result<Conditioning, GenerateError> {
        match &self.travel {
            None => conditioning_at(&self.cond, &self.uncond, &self.empty, step),
            Some(travel) => self.travel_at(travel, step),
        }
    }

    fn travel_at(
        &self,
        travel: &EncodedTravel,
        step: usize,
    ) -> Result<Conditioning, GenerateError> {
        let empty = first_entry(&self.empty)?;
        let (parts, negative) = travel.at_step(&self.cond, &self.uncond, &empty, step)?;
        let negative = negative.ok_or_else(no_negative)?;
        Ok(assemble(parts, negative, empty))
    }

    /// The current latent, `[1, 4, h, w]`.
    pub fn latent(&self) -> &Tensor<4> {
        self.run.latent()
    }

    /// Decodes the final latent with the VAE.
    pub async fn finish(self) -> Result<Generated, GenerateError> {
        self.finish_with(None).await
    }

    /// Decodes the final latent with `taesd` when given (A1111's `VAE Decoder: TAESD`: several
    /// times faster, approximate), else with the VAE.
    pub async fn finish_with(self, taesd: Option<&Taesd>) -> Result<Generated, GenerateError> {
        let latent = self.run.latent().clone();
        let image = match taesd {
            Some(taesd) => taesd.preview(latent.clone()).await?,
            None => decode_to_rgb(self.model, latent.clone()).await?,
        };
        let latent = read(latent).await?;
        Ok(Generated { image, latent })
    }
}

/// Runs the next step of several generations with one UNet call where they allow it (the same
/// step of the same plan and guidance, no ControlNet, latents and conditionings of the same
/// shapes), else one after another; `None` for a generation that is done. Each keeps its own
/// noise, so its image is the one it makes alone (up to the float rounding of a larger batch).
/// `hook` sees the batch's rows together: give a hook that looks at rows only one frame.
pub fn step_together(
    frames: &mut [&mut Generation<'_>],
    hook: &mut dyn StepHook,
) -> Result<Vec<Option<StepOutput>>, GenerateError> {
    let Some(coefficients) = shared_coefficients(frames) else {
        return frames.iter_mut().map(|g| g.step(hook)).collect();
    };
    let step = frames.first().map_or(0, |g| g.run.next_step());
    let conds = frames
        .iter()
        .map(|g| g.conditioning(step))
        .collect::<Result<Vec<_>, _>>()?;
    if !same_parts(&conds) {
        return frames.iter_mut().map(|g| g.step(hook)).collect();
    }
    let (Some(first), xs) = (
        frames.first(),
        frames
            .iter()
            .map(|g| g.latent().clone())
            .collect::<Vec<_>>(),
    ) else {
        return Ok(Vec::new());
    };
    let (unet, guidance) = (&first.model.unet, first.run.guidance());
    hook.set_step(step);
    let outputs = guided_together(unet, &xs, &coefficients, &conds, guidance, hook);
    let mut done = Vec::with_capacity(frames.len());
    for (g, model_out) in frames.iter_mut().zip(outputs) {
        let output = g.run.advance(&coefficients, model_out, &mut g.rng);
        let latent = hook.stepped(step, g.run.latent().clone());
        g.run.set_latent(latent);
        done.push(Some(output));
    }
    Ok(done)
}

/// The step coefficients every generation runs next, when they can share a UNet call.
fn shared_coefficients(frames: &[&mut Generation<'_>]) -> Option<StepCoefficients> {
    let first = frames.first()?;
    let c = first.run.coefficients()?;
    let alike = |g: &&mut Generation<'_>| {
        g.control.is_none()
            && g.run.next_step() == first.run.next_step()
            && g.run.total_steps() == first.run.total_steps()
            && g.run.coefficients() == Some(c)
            && g.run.guidance() == first.run.guidance()
            && g.latent().dims() == first.latent().dims()
            && std::ptr::eq(g.model, first.model)
    };
    (frames.len() > 1 && frames.iter().all(alike)).then_some(c)
}

/// Makes one image, calling `on_step` after each step; `ControlFlow::Break` cancels and returns
/// `Ok(None)`. `hook` (heatmap taps, frame blending) is told each step before it runs. Async only
/// to read the result back from a GPU in the browser; natively, block on it.
pub async fn generate(
    model: &SdModel,
    tokenizer: &ClipTokenizer,
    request: &Request,
    device: &Device,
    hook: &mut dyn StepHook,
    on_step: &mut dyn FnMut(&StepOutput) -> ControlFlow<()>,
) -> Result<Option<Generated>, GenerateError> {
    let mut generation = Generation::new(model, tokenizer, request, device)?;
    while let Some(out) = generation.step(hook)? {
        if on_step(&out).is_break() {
            return Ok(None);
        }
    }
    generation.finish().await.map(Some)
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
    let negative = negative.ok_or_else(no_negative)?;
    Ok(assemble(parts, negative, first_entry(empty)?))
}

fn no_negative() -> GenerateError {
    GenerateError::Invalid("the negative prompt gave no conditioning".into())
}

fn first_entry(conditioning: &PromptConditioning) -> Result<Tensor<3>, GenerateError> {
    conditioning
        .at_step(0)
        .into_iter()
        .next()
        .map(|(t, _)| t)
        .ok_or_else(no_negative)
}

/// The parts and the negative padded to one token count (A1111: empty chunks appended).
fn assemble(parts: Vec<(Tensor<3>, f64)>, negative: Tensor<3>, empty: Tensor<3>) -> Conditioning {
    let weights: Vec<f64> = parts.iter().map(|(_, w)| *w).collect();
    let mut all: Vec<Tensor<3>> = parts.into_iter().map(|(t, _)| t).collect();
    all.insert(0, negative);
    let mut padded = pad_to_same_length(all, &empty).into_iter();
    let uncond = padded.next().unwrap_or(empty);
    Conditioning {
        parts: padded.zip(weights).collect(),
        uncond,
    }
}

fn encoder<'a>(
    model: &'a SdModel,
    tokenizer: &'a ClipTokenizer,
    request: &Request,
) -> TextEncoder<'a> {
    TextEncoder {
        clip: &model.clip,
        tokenizer,
        family: family(model),
        clip_skip: if request.clip_skip == 0 {
            model.info.native_clip_skip
        } else {
            request.clip_skip
        },
    }
}

/// The token chunks of the request's prompt and of `to_prompt` (first `AND` part, first
/// scheduled step), the shorter padded with the empty prompt's chunk.
pub fn stage_tokens(
    model: &SdModel,
    tokenizer: &ClipTokenizer,
    request: &Request,
    to_prompt: &str,
) -> Result<(Vec<TokenChunk>, Vec<TokenChunk>), GenerateError> {
    let encoder = encoder(model, tokenizer, request);
    let steps = u32::try_from(request.steps).unwrap_or(u32::MAX);
    let mut a = encoder.tokens(&request.prompt, steps)?;
    let mut b = encoder.tokens(to_prompt, steps)?;
    let empty = encoder.tokens("", 1)?;
    let n = a.len().max(b.len());
    for chunks in [&mut a, &mut b] {
        while chunks.len() < n {
            chunks.extend(empty.first().cloned());
        }
    }
    Ok((a, b))
}

/// Encodes token chunks as the request's encoder does (CLIP skip, emphasis per chunk).
///
/// # Shapes
/// - returns `[1, 77·chunks, dim]`
pub fn encode_tokens(
    model: &SdModel,
    tokenizer: &ClipTokenizer,
    request: &Request,
    chunks: &[TokenChunk],
) -> Tensor<3> {
    encoder(model, tokenizer, request).encode_chunks(chunks)
}

/// The first `AND` part's step-0 conditioning of the request's prompt and of `to_prompt`,
/// padded to the same token count (replace mode measures its distances on these).
///
/// # Shapes
/// - returns two `[1, 77·k, dim]`
pub fn stage_pair(
    model: &SdModel,
    tokenizer: &ClipTokenizer,
    request: &Request,
    to_prompt: &str,
) -> Result<(Tensor<3>, Tensor<3>), GenerateError> {
    let encoder = encoder(model, tokenizer, request);
    let steps = u32::try_from(request.steps).unwrap_or(u32::MAX);
    let a = first_entry(&encoder.prompt(&request.prompt, steps)?)?;
    let b = first_entry(&encoder.prompt(to_prompt, steps)?)?;
    let empty = first_entry(&encoder.prompt("", 1)?)?;
    let mut padded = pad_to_same_length(vec![a, b], &empty).into_iter();
    match (padded.next(), padded.next()) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(no_negative()),
    }
}

fn latent4(values: Vec<f32>, shape: [usize; 3], device: &Device) -> Tensor<4> {
    Tensor::<4>::from_data(
        TensorData::new(values, [1, shape[0], shape[1], shape[2]]),
        device,
    )
}

/// The init latent for img2img: the VAE encoder's mean, times the scaling factor.
pub fn encode_init(
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
    image_tensor(image, device, |v| f32::from(v) / 127.5 - 1.0)
}

/// An RGB image as a `[1, 3, h, w]` tensor (channels first) of `value(byte)`.
pub fn image_tensor(image: &RgbImage, device: &Device, value: impl Fn(u8) -> f32) -> Tensor<4> {
    let (w, h) = (image.width, image.height);
    let mut values = vec![0f32; 3 * w * h];
    for (i, px) in image.data.chunks_exact(3).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            values[c * w * h + i] = value(v);
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

/// Reads a tensor back to the host (waiting for the device to finish it).
pub async fn read<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, GenerateError> {
    t.into_data_async()
        .await
        .map_err(|e| GenerateError::ReadBack(format!("{e:?}")))?
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| GenerateError::ReadBack(format!("{e:?}")))
}

/// A1111's "Approx cheap" preview: each pixel of a `[4, h, w]` SD latent mapped linearly to RGB
/// (A1111's fixed SD 1.x/2.x coefficients), then scaled up `scale` times. Instant, rough colours.
pub fn approx_rgb(latent: &[f32], h: usize, w: usize, scale: usize) -> RgbImage {
    const COEFFS: [[f32; 3]; 4] = [
        [0.298, 0.207, 0.208],
        [0.187, 0.286, 0.173],
        [-0.158, 0.189, 0.264],
        [-0.184, -0.271, -0.473],
    ];
    let scale = scale.max(1);
    let (width, height) = (w * scale, h * scale);
    let mut data = vec![0u8; width * height * 3];
    for y in 0..height {
        for x in 0..width {
            let at = (y / scale) * w + x / scale;
            for (c, out) in data[(y * width + x) * 3..][..3].iter_mut().enumerate() {
                let v: f32 = (0..4)
                    .map(|ch| latent.get(ch * h * w + at).copied().unwrap_or(0.0) * COEFFS[ch][c])
                    .sum();
                *out = ((v + 1.0) * 127.5).clamp(0.0, 255.0) as u8;
            }
        }
    }
    RgbImage {
        width,
        height,
        data,
    }
}

#[cfg(test)]
mod approx_tests {
    #[test]
    fn approx_preview_maps_each_latent_pixel_to_a_block_of_colour() {
        // Latent 1x2: pixel 0 all zero (grey), pixel 1 channel 0 = 1.
        let latent = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let img = super::approx_rgb(&latent, 1, 2, 2);
        assert_eq!((img.width, img.height), (4, 2));
        assert_eq!(&img.data[0..3], &[127, 127, 127]);
        // (1 + 0.298) * 127.5 = 165.4; (1 + 0.207) * 127.5 = 153.9; (1 + 0.208) * 127.5 = 154.0
        assert_eq!(&img.data[6..9], &[165, 153, 154]);
        assert_eq!(&img.data[12..15], &[127, 127, 127]);
    }
}
