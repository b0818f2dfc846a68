//! Cross-attention maps per token: Visualize Cross-Attention (seeds.md §3) and its aggregation
//! over a whole generation (many layers and steps, as DAAM does).
//!
//! For each attention call it selects, the tap reads the probabilities `[b, heads, h·w, keys]`,
//! keeps the batch rows of the conditional prompt ([`BatchLayout`]), averages over those rows and
//! the heads, sums the chosen token positions of each map, resizes the `h×w` maps to the
//! aggregation resolution ([`Resolution`]) by nearest neighbour, and adds them to one running sum
//! `[maps, H, W]` on the device. Memory is that sum plus a `[keys, maps]` selection matrix, for
//! any number of layers and steps. [`CrossAttentionTap::maps`] reads the sum back and divides each
//! map by its maximum, as VXA does.
//!
//! Nearest neighbour (not bilinear) because it is VXA's upsampling (`img[i // s][j // s]`), and
//! because for the integer ratios between UNet levels it composes exactly: a sum kept at 32² and
//! later enlarged to 64² equals the sum of every map enlarged to 64² directly. Smoothing is left
//! to the display ([`super::heatmap::Filter::Bilinear`]).

use std::ops::Range;

use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor, TensorData};
use keyshift_core::schedule::needs_uncond;

use super::heatmap::TokenMap;
use super::{LayerFilter, StepFilter, StepHook};
use crate::generate::{RgbImage, rgb_to_tensor, size_multiple};
use crate::hooks::{AttentionHook, AttentionKind, AttentionSite};
use crate::model::SdModel;
use crate::pipeline::Conditioning;

/// VXA's default layer (`model.diffusion_model.middle_block.1.transformer_blocks.0.attn2`) by its
/// diffusers name.
pub const VXA_DEFAULT_LAYER: &str = "mid_block.attentions.0";

/// The token positions one map sums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tokens {
    /// These positions in the `77·k` context (0 is the start token; a repeated index counts
    /// twice, as in VXA's `attn[:, :, idxs].sum(-1)`).
    At(Vec<usize>),
    /// Every position but the first: VXA's blank field, which includes the end and padding tokens.
    AllButFirst,
}

impl Tokens {
    /// One position.
    pub fn one(index: usize) -> Self {
        Self::At(vec![index])
    }

    /// VXA's "Indices of tokens to be visualized": a comma list such as `1, 3`, empty fields
    /// ignored; a blank text is [`Tokens::AllButFirst`].
    pub fn parse(text: &str) -> Result<Self, TapError> {
        let fields: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .collect();
        if fields.is_empty() {
            return Ok(Self::AllButFirst);
        }
        let parse = |f: &&str| f.parse().map_err(|_| TapError::BadIndex((*f).to_owned()));
        Ok(Self::At(
            fields.iter().map(parse).collect::<Result<_, _>>()?,
        ))
    }

    /// The positions among `keys` context tokens.
    fn positions(&self, keys: usize) -> Result<Vec<usize>, TapError> {
        match self {
            Self::AllButFirst => Ok((1..keys).collect()),
            Self::At(indices) => match indices.iter().find(|&&i| i >= keys) {
                Some(&index) => Err(TapError::TokenOutOfRange { index, keys }),
                None => Ok(indices.clone()),
            },
        }
    }
}

/// How the UNet batch is stacked, and which rows the tap reads. [`crate::pipeline::Sampling`]
/// stacks `groups` equal groups of rows: `[uncond, cond_1, …, cond_n]` under classifier-free
/// guidance, `[cond_1, …, cond_n]` without. The tap averages the rows of groups
/// `first_read..groups`. The hook only sees the batch size, so the caller states the layout (in
/// [`TapConfig::batch`] or with [`CrossAttentionTap::set_batch`]); [`BatchLayout::of`] derives
/// it from the same rule the sampler uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLayout {
    /// Equal groups stacked along the batch.
    pub groups: usize,
    /// The first group read; it and every later group are averaged.
    pub first_read: usize,
}

impl BatchLayout {
    /// One group, every row read: an unguided run with one prompt, or VXA's probe.
    pub const WHOLE: Self = Self {
        groups: 1,
        first_read: 0,
    };

    /// The layout `Sampling::step` uses for `cond` at `guidance`; the prompt's groups are read.
    pub fn of(guidance: f64, cond: &Conditioning) -> Self {
        Self::guided(guidance, cond.parts.len())
    }

    /// The layout for `parts` `AND` parts at `guidance`: the negative prompt's group comes first
    /// when guidance > 1 and is skipped.
    pub fn guided(guidance: f64, parts: usize) -> Self {
        match (parts, needs_uncond(guidance)) {
            (0, _) => Self::WHOLE,
            (_, true) => Self {
                groups: parts + 1,
                first_read: 1,
            },
            (_, false) => Self {
                groups: parts,
                first_read: 0,
            },
        }
    }

    /// The rows read from a batch of `batch` rows.
    fn rows(&self, batch: usize) -> Result<Range<usize>, TapError> {
        let fits = self.groups > 0 && batch > 0 && batch.is_multiple_of(self.groups);
        if !fits || self.first_read >= self.groups {
            return Err(TapError::Batch {
                batch,
                groups: self.groups,
                first_read: self.first_read,
            });
        }
        Ok(batch / self.groups * self.first_read..batch)
    }
}

/// The resolution maps are summed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolution {
    /// The largest layer resolution seen so far (the sum is enlarged when a larger layer comes).
    #[default]
    Largest,
    /// A given size; smaller layers are enlarged (nearest), larger ones reduced (block means for
    /// integer ratios, nearest otherwise).
    Fixed {
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
    },
}

/// What a [`CrossAttentionTap`] reads.
#[derive(Debug, Clone, PartialEq)]
pub struct TapConfig {
    /// Layers read.
    pub layers: LayerFilter,
    /// Steps read (the tap learns the step from [`StepHook::set_step`]; 0 until then).
    pub steps: StepFilter,
    /// One map per entry.
    pub maps: Vec<Tokens>,
    /// Which batch rows are read.
    pub batch: BatchLayout,
    /// Aggregation resolution.
    pub resolution: Resolution,
}

impl TapConfig {
    /// One map per token position; every layer and step; the whole batch; the largest resolution.
    pub fn tokens(indices: &[usize]) -> Self {
        Self {
            layers: LayerFilter::All,
            steps: StepFilter::All,
            maps: indices.iter().map(|&i| Tokens::one(i)).collect(),
            batch: BatchLayout::WHOLE,
            resolution: Resolution::Largest,
        }
    }

    /// VXA (seeds.md §3): one layer (a diffusers transformer name such as
    /// [`VXA_DEFAULT_LAYER`]), one map summing `tokens`, every row of the batch, the layer's own
    /// resolution. Use it with [`probe`] (one UNet forward) or with a one-step [`StepFilter`].
    pub fn vxa(layer: &str, tokens: Tokens) -> Self {
        Self {
            layers: LayerFilter::prefix(layer),
            maps: vec![tokens],
            ..Self::tokens(&[])
        }
    }

    /// Heatmaps over a generation: one map of `tokens`, every layer and step, the rows of
    /// `prompt`'s `AND` parts at `guidance` (not the negative prompt's), the largest resolution.
    pub fn generation(tokens: Tokens, guidance: f64, prompt: &str) -> Self {
        let parts = keyshift_core::prompt::split_and(prompt).len().max(1);
        Self {
            maps: vec![tokens],
            ..Self::tokens(&[])
        }
        .with_batch(BatchLayout::guided(guidance, parts))
    }

    /// With these layers.
    pub fn with_layers(self, layers: LayerFilter) -> Self {
        Self { layers, ..self }
    }

    /// With these steps.
    pub fn with_steps(self, steps: StepFilter) -> Self {
        Self { steps, ..self }
    }

    /// With this batch layout.
    pub fn with_batch(self, batch: BatchLayout) -> Self {
        Self { batch, ..self }
    }

    /// With this aggregation resolution.
    pub fn with_resolution(self, resolution: Resolution) -> Self {
        Self { resolution, ..self }
    }
}

/// Why maps could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TapError {
    /// A token position past the context.
    #[error("token index {index} is outside the context of {keys} tokens")]
    TokenOutOfRange {
        /// The position asked for.
        index: usize,
        /// Context tokens.
        keys: usize,
    },
    /// A token field that is not a whole number.
    #[error("token index {0:?} is not a whole number")]
    BadIndex(String),
    /// The batch layout does not fit the UNet batch.
    #[error(
        "a batch of {batch} rows does not split into {groups} groups to read from group {first_read}"
    )]
    Batch {
        /// Rows in the UNet batch.
        batch: usize,
        /// Groups in the layout.
        groups: usize,
        /// First group read.
        first_read: usize,
    },
    /// Probabilities whose pixel count does not match the layer's resolution.
    #[error("layer {layer}: {pixels} query rows for a {height}x{width} resolution")]
    Shape {
        /// The layer.
        layer: String,
        /// Query rows.
        pixels: usize,
        /// Latent rows.
        height: usize,
        /// Latent columns.
        width: usize,
    },
    /// A fixed resolution with no pixels.
    #[error("the aggregation resolution {height}x{width} is empty")]
    EmptyResolution {
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
    },
    /// No attention call matched the layers and steps (e.g. a misspelt layer).
    #[error("no cross-attention layer matched the tap's layers and steps")]
    NothingSeen,
    /// The image given to [`probe`].
    #[error("the image cannot be probed: {0}")]
    Image(String),
    /// Reading the sum back from the device.
    #[error("reading the maps from the device failed: {0}")]
    ReadBack(String),
}

/// The maps of one tap.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionMaps {
    /// Rows of every map.
    pub height: usize,
    /// Columns of every map.
    pub width: usize,
    /// Attention calls summed.
    pub layer_calls: usize,
    /// One per [`TapConfig::maps`] entry, in order.
    pub maps: Vec<TokenMap>,
}

/// Sums cross-attention maps per token over the chosen layers and steps.
#[derive(Debug)]
pub struct CrossAttentionTap {
    config: TapConfig,
    step: usize,
    sum: Option<Tensor<3>>,
    selection: Option<(usize, Tensor<2>)>,
    layer_calls: usize,
    error: Option<TapError>,
}

impl CrossAttentionTap {
    /// An empty tap.
    pub fn new(config: TapConfig) -> Self {
        Self {
            config,
            step: 0,
            sum: None,
            selection: None,
            layer_calls: 0,
            error: None,
        }
    }

    /// Changes the batch layout for the next UNet calls (e.g. when guidance changes).
    pub fn set_batch(&mut self, batch: BatchLayout) {
        self.config.batch = batch;
    }

    /// The configuration.
    pub fn config(&self) -> &TapConfig {
        &self.config
    }

    /// Attention calls read so far.
    pub fn layer_calls(&self) -> usize {
        self.layer_calls
    }

    /// The current aggregation resolution (none before the first call).
    pub fn resolution(&self) -> Option<(usize, usize)> {
        self.sum.as_ref().map(|s| {
            let [_, h, w] = s.dims();
            (h, w)
        })
    }

    /// Floats the tap holds on the device: the running sum and the token selection matrix.
    pub fn stored_floats(&self) -> usize {
        let sum = self.sum.as_ref().map_or(0, |s| s.dims().iter().product());
        let selection = self
            .selection
            .as_ref()
            .map_or(0, |(_, s)| s.dims().iter().product());
        sum + selection
    }

    /// Forgets everything read (the configuration stays).
    pub fn reset(&mut self) {
        *self = Self::new(self.config.clone());
    }

    /// The maps so far, each divided by its maximum. The tap keeps reading (previews).
    pub async fn maps(&self) -> Result<AttentionMaps, TapError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        let Some(sum) = &self.sum else {
            return self.empty_maps();
        };
        let [_, height, width] = sum.dims();
        let values = read(sum.clone()).await?;
        let maps = (self.config.maps.iter())
            .zip(values.chunks(height * width))
            .map(|(tokens, raw)| TokenMap::normalised(tokens.clone(), height, width, raw))
            .collect();
        Ok(AttentionMaps {
            height,
            width,
            layer_calls: self.layer_calls,
            maps,
        })
    }

    /// The final maps.
    pub async fn finish(self) -> Result<AttentionMaps, TapError> {
        self.maps().await
    }

    fn empty_maps(&self) -> Result<AttentionMaps, TapError> {
        if self.layer_calls == 0 {
            return Err(TapError::NothingSeen);
        }
        Ok(AttentionMaps {
            height: 0,
            width: 0,
            layer_calls: self.layer_calls,
            maps: Vec::new(),
        })
    }

    fn wants(&self, site: &AttentionSite) -> bool {
        site.kind == AttentionKind::CrossAttention
            && self.config.layers.matches(&site.layer)
            && self.config.steps.contains(self.step)
    }

    /// Adds one call's maps to the sum.
    ///
    /// # Shapes
    /// - `probs`: `[b, heads, h·w, keys]`
    fn accumulate(&mut self, site: &AttentionSite, probs: Tensor<4>) -> Result<(), TapError> {
        let [batch, heads, pixels, keys] = probs.dims();
        let (height, width) = (site.height, site.width);
        if pixels == 0 || pixels != height * width {
            let layer = site.layer.clone();
            return Err(TapError::Shape {
                layer,
                pixels,
                height,
                width,
            });
        }
        let rows = self.config.batch.rows(batch)?;
        let maps = self.config.maps.len();
        if maps == 0 {
            return Ok(());
        }
        let mean = probs
            .slice([rows, 0..heads, 0..pixels, 0..keys])
            .mean_dim(1)
            .mean_dim(0);
        let selection = self.selection(keys, &mean.device())?;
        let per_token = mean.reshape([pixels, keys]).matmul(selection);
        self.add(per_token.swap_dims(0, 1).reshape([maps, height, width]))
    }

    /// The `[keys, maps]` matrix of token counts, built once per context length.
    fn selection(&mut self, keys: usize, device: &Device) -> Result<Tensor<2>, TapError> {
        if let Some((k, s)) = &self.selection
            && *k == keys
        {
            return Ok(s.clone());
        }
        let maps = self.config.maps.len();
        let mut counts = vec![0f32; keys * maps];
        for (m, tokens) in self.config.maps.iter().enumerate() {
            for p in tokens.positions(keys)? {
                if let Some(c) = counts.get_mut(p * maps + m) {
                    *c += 1.0;
                }
            }
        }
        let s = Tensor::<2>::from_data(TensorData::new(counts, [keys, maps]), device);
        self.selection = Some((keys, s.clone()));
        Ok(s)
    }

    /// # Shapes
    /// - `maps`: `[maps, h, w]`
    fn add(&mut self, maps: Tensor<3>) -> Result<(), TapError> {
        let [_, h, w] = maps.dims();
        let target = self.target(h, w)?;
        let maps = resize(maps, target);
        self.sum = Some(match self.sum.take() {
            Some(sum) => resize(sum, target) + maps,
            None => maps,
        });
        Ok(())
    }

    fn target(&self, h: usize, w: usize) -> Result<(usize, usize), TapError> {
        match (self.config.resolution, &self.sum) {
            (Resolution::Fixed { height, width }, _) if height == 0 || width == 0 => {
                Err(TapError::EmptyResolution { height, width })
            }
            (Resolution::Fixed { height, width }, _) => Ok((height, width)),
            (Resolution::Largest, Some(sum)) => {
                let [_, sh, sw] = sum.dims();
                Ok(if h * w > sh * sw { (h, w) } else { (sh, sw) })
            }
            (Resolution::Largest, None) => Ok((h, w)),
        }
    }
}

impl AttentionHook for CrossAttentionTap {
    fn wants_probabilities(&self, site: &AttentionSite, _: usize) -> bool {
        self.wants(site)
    }

    fn probabilities(&mut self, site: &AttentionSite, probs: Tensor<4>) -> Tensor<4> {
        if self.wants(site) {
            self.layer_calls += 1;
            if let Err(error) = self.accumulate(site, probs.clone()) {
                self.error.get_or_insert(error);
            }
        }
        probs
    }
}

impl StepHook for CrossAttentionTap {
    fn set_step(&mut self, step: usize) {
        self.step = step;
    }
}

/// Nearest-neighbour resize: repetition for integer enlargements (VXA's `img[i // s][j // s]`),
/// block means for integer reductions, burn's nearest interpolation otherwise.
///
/// # Shapes
/// - `maps`: `[n, h, w]` → `[n, height, width]`
fn resize(maps: Tensor<3>, (height, width): (usize, usize)) -> Tensor<3> {
    let [n, h, w] = maps.dims();
    if (h, w) == (height, width) {
        return maps;
    }
    if height.is_multiple_of(h) && width.is_multiple_of(w) {
        let wide = maps.reshape([n, h, 1, w, 1]);
        let wide = wide.repeat_dim(2, height / h).repeat_dim(4, width / w);
        return wide.reshape([n, height, width]);
    }
    if h.is_multiple_of(height) && w.is_multiple_of(width) {
        let blocks = maps.reshape([n, height, h / height, width, w / width]);
        return blocks.mean_dim(4).mean_dim(2).reshape([n, height, width]);
    }
    let options =
        InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([height, width]);
    interpolate(maps.reshape([1, n, h, w]), options).reshape([n, height, width])
}

async fn read(t: Tensor<3>) -> Result<Vec<f32>, TapError> {
    let data = t.into_data_async().await;
    let data = data.map_err(|e| TapError::ReadBack(format!("{e:?}")))?;
    (data.convert::<f32>().try_into_vec::<f32>()).map_err(|e| TapError::ReadBack(format!("{e:?}")))
}

/// How a probed image goes to the VAE encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VaeInput {
    /// In [−1, 1], the range the VAE was trained on and every other path of the engine uses.
    #[default]
    Signed,
    /// In [0, 1], as VXA's original passes it (`image / 255` straight to the encoder): its
    /// latent is off the range the UNet knows, so its maps differ; kept to compare with it.
    Unit,
}

impl VaeInput {
    /// `signed` or `unit`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "signed" => Some(Self::Signed),
            "unit" => Some(Self::Unit),
            _ => None,
        }
    }
}

/// VXA (seeds.md §3): the clean latent of `image` (the VAE encoder's mean × the scaling factor; no
/// noise is added), one UNet forward at `timestep` (0–999 scale) with `context`
/// (`[1, 77·k, dim]`, e.g. from [`crate::conditioning::TextEncoder`]) and a tap of `config`
/// ([`TapConfig::vxa`] for VXA's single layer). The image goes to the VAE as `input` says:
/// [`VaeInput::Signed`] unless the original's quirk is wanted.
pub async fn probe(
    model: &SdModel,
    image: &RgbImage,
    context: &Tensor<3>,
    timestep: f64,
    config: TapConfig,
    input: VaeInput,
) -> Result<AttentionMaps, TapError> {
    let latent = clean_latent(model, image, input, &context.device())?;
    let mut tap = CrossAttentionTap::new(config);
    let _noise = model.unet.forward(latent, timestep, context, &mut tap);
    tap.finish().await
}

/// # Shapes
/// - returns `[1, latent, height / s, width / s]`
fn clean_latent(
    model: &SdModel,
    image: &RgbImage,
    input: VaeInput,
    device: &Device,
) -> Result<Tensor<4>, TapError> {
    let (_, multiple) = size_multiple(model);
    let (w, h) = (image.width, image.height);
    let sized = w > 0 && h > 0 && w.is_multiple_of(multiple) && h.is_multiple_of(multiple);
    if !sized || image.data.len() != w * h * 3 {
        return Err(TapError::Image(format!(
            "{w}x{h} with {} bytes: sides must be positive multiples of {multiple}",
            image.data.len()
        )));
    }
    let pixels = match input {
        VaeInput::Signed => rgb_to_tensor(image, device),
        VaeInput::Unit => (rgb_to_tensor(image, device) + 1.0) / 2.0,
    };
    let moments = (model.vae.encode_moments(pixels))
        .ok_or_else(|| TapError::Image("this model has no VAE encoder".into()))?;
    let [b, c, lh, lw] = moments.dims();
    Ok(moments.slice([0..b, 0..c / 2, 0..lh, 0..lw]) * model.info.vae.scaling_factor)
}
