//! `UNet2DConditionModel` for SD 1.x and 2.x (diffusers `unet_2d_condition.py`,
//! `unet_2d_blocks.py`): down blocks with resnets (and cross-attention transformers), a middle
//! block, up blocks fed by skip connections, nearest-neighbour upsampling.

use burn::module::Module;
use burn::nn::GroupNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use crate::config::UnetConfig;
use crate::controlnet::Residuals;
use crate::embeddings::{TimestepEmbedding, timestep_projection};
use crate::hooks::AttentionHook;
use crate::nn::{ConvSpec, conv2d, group_norm};
use crate::resnet::{ResnetBlock, ResnetSpec};
use crate::transformer::{SpatialTransformer, TransformerSpec};
use crate::weights::{LoadError, Loader};

/// A transformer layer of the UNet: its diffusers name (what taps and hooks use), its name in
/// the original (ldm) layout, and how much smaller than the latent its maps are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttentionLayer {
    /// `down_blocks.1.attentions.0`, `mid_block.attentions.0`, `up_blocks.2.attentions.1`.
    pub name: String,
    /// `input_blocks.4.1`, `middle_block.1`, `output_blocks.7.1` (A1111's and VXA's modules are
    /// `model.diffusion_model.<this>.transformer_blocks.0.attn2`).
    pub ldm_name: String,
    /// The latent's size over the layer's (1, 2, 4, 8).
    pub downscale: usize,
    /// Channels (heads × head width).
    pub channels: usize,
    /// Attention heads.
    pub heads: usize,
}

impl AttentionLayer {
    /// The cross-attention module's name as A1111 and VXA list it.
    pub fn vxa_name(&self) -> String {
        format!(
            "model.diffusion_model.{}.transformer_blocks.0.attn2",
            self.ldm_name
        )
    }

    /// Whether `name` names this layer: its diffusers or ldm name, with or without
    /// `model.diffusion_model.` before and `.transformer_blocks.N.attn2` after.
    pub fn is_named(&self, name: &str) -> bool {
        let name = name.strip_prefix("model.diffusion_model.").unwrap_or(name);
        let name = name
            .split_once(".transformer_blocks.")
            .map_or(name, |(layer, _)| layer);
        name == self.name || name == self.ldm_name
    }
}

/// The transformer layers a UNet of config `c` has, as [`Unet::attention_layers`] lists them
/// for a loaded one (without loading any weights: for estimates such as SD 1.5's memory).
pub fn attention_layers_of(c: &UnetConfig) -> Vec<AttentionLayer> {
    let n = c.levels();
    let lpb = c.layers_per_block;
    let deepest = 1usize << n.saturating_sub(1);
    let layer = |name: String, ldm: String, downscale: usize, level: usize| AttentionLayer {
        name,
        ldm_name: ldm,
        downscale,
        channels: c.block_out_channels.get(level).copied().unwrap_or(0),
        heads: c.attention_heads.get(level).copied().unwrap_or(1),
    };
    let mut out = Vec::new();
    let mut input_block = 1;
    for i in 0..n {
        if c.cross_attention.get(i).copied().unwrap_or(false) {
            for j in 0..lpb {
                let (name, ldm) = (
                    format!("down_blocks.{i}.attentions.{j}"),
                    format!("input_blocks.{}.1", input_block + j),
                );
                out.push(layer(name, ldm, 1 << i, i));
            }
        }
        input_block += lpb + usize::from(i + 1 < n);
    }
    let mid = (
        "mid_block.attentions.0".to_owned(),
        "middle_block.1".to_owned(),
    );
    out.push(layer(mid.0, mid.1, deepest, n.saturating_sub(1)));
    for i in 0..n {
        let level = n - 1 - i;
        if c.cross_attention.get(level).copied().unwrap_or(false) {
            for j in 0..=lpb {
                let (name, ldm) = (
                    format!("up_blocks.{i}.attentions.{j}"),
                    format!("output_blocks.{}.1", i * (lpb + 1) + j),
                );
                out.push(layer(name, ldm, deepest >> i, level));
            }
        }
    }
    out
}

/// One resolution level on the way down or up.
#[derive(Module, Debug)]
pub struct Level {
    resnets: Vec<ResnetBlock>,
    attentions: Vec<SpatialTransformer>,
    resample: Option<Conv2d>,
}

/// The middle block: resnet, transformer, resnet.
#[derive(Module, Debug)]
pub struct MidBlock {
    resnet_1: ResnetBlock,
    attention: SpatialTransformer,
    resnet_2: ResnetBlock,
}

/// The denoising UNet.
#[derive(Module, Debug)]
pub struct Unet {
    time_embedding: TimestepEmbedding,
    conv_in: Conv2d,
    down: Vec<Level>,
    mid: MidBlock,
    up: Vec<Level>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    time_proj_dim: usize,
    flip_sin_to_cos: bool,
    freq_shift: f64,
    guidance_dim: Option<usize>,
}

pub(crate) struct Specs<'a> {
    pub(crate) c: &'a UnetConfig,
}

impl Specs<'_> {
    fn resnet(&self, c_in: usize, c_out: usize) -> ResnetSpec {
        ResnetSpec {
            c_in,
            c_out,
            temb: Some(self.c.time_embed_dim()),
            groups: self.c.norm_num_groups,
            eps: self.c.norm_eps,
        }
    }

    fn transformer(&self, level: usize) -> TransformerSpec {
        TransformerSpec {
            channels: self.c.block_out_channels[level],
            heads: self.c.attention_heads[level],
            context_dim: self.c.cross_attention_dim,
            groups: self.c.norm_num_groups,
        }
    }
}

impl Unet {
    /// Loads the UNet from diffusers names (mapped by the loader).
    pub fn load(l: &mut Loader, c: &UnetConfig) -> Result<Self, LoadError> {
        check_config(c)?;
        let s = Specs { c };
        let ch = &c.block_out_channels;
        let first = ch[0];
        let down = (0..c.levels())
            .map(|i| load_down(l, &s, i))
            .collect::<Result<Vec<_>, _>>()?;
        let up = (0..c.levels())
            .map(|i| load_up(l, &s, i))
            .collect::<Result<Vec<_>, _>>()?;
        let mid = MidBlock::load(l, &s)?;
        Ok(Self {
            time_embedding: TimestepEmbedding::load(
                l,
                "time_embedding",
                first,
                c.time_embed_dim(),
                c.time_cond_proj_dim,
            )?,
            conv_in: conv2d(l, "conv_in", ConvSpec::same(c.in_channels, first, 3))?,
            down,
            mid,
            up,
            norm_out: group_norm(l, "conv_norm_out", c.norm_num_groups, first, c.norm_eps)?,
            conv_out: conv2d(l, "conv_out", ConvSpec::same(first, c.out_channels, 3))?,
            time_proj_dim: first,
            flip_sin_to_cos: c.flip_sin_to_cos,
            freq_shift: c.freq_shift,
            guidance_dim: c.time_cond_proj_dim,
        })
    }

    /// The width of the guidance embedding an LCM-distilled UNet takes, `None` for ordinary ones.
    pub fn guidance_dim(&self) -> Option<usize> {
        self.guidance_dim
    }

    /// Every transformer (cross-attention) layer in the order the UNet runs them.
    pub fn attention_layers(&self) -> Vec<AttentionLayer> {
        let mut out = Vec::new();
        let mut input_block = 1;
        for (i, level) in self.down.iter().enumerate() {
            for (j, t) in level.attentions.iter().enumerate() {
                out.push(AttentionLayer {
                    name: format!("down_blocks.{i}.attentions.{j}"),
                    ldm_name: format!("input_blocks.{}.1", input_block + j),
                    downscale: 1 << i,
                    channels: t.channels(),
                    heads: t.heads(),
                });
            }
            input_block += level.resnets.len() + usize::from(level.resample.is_some());
        }
        let deepest = 1 << self.down.len().saturating_sub(1);
        out.push(AttentionLayer {
            name: "mid_block.attentions.0".into(),
            ldm_name: "middle_block.1".into(),
            downscale: deepest,
            channels: self.mid.attention.channels(),
            heads: self.mid.attention.heads(),
        });
        let mut output_block = 0;
        for (i, level) in self.up.iter().enumerate() {
            for (j, t) in level.attentions.iter().enumerate() {
                out.push(AttentionLayer {
                    name: format!("up_blocks.{i}.attentions.{j}"),
                    ldm_name: format!("output_blocks.{}.1", output_block + j),
                    downscale: deepest >> i,
                    channels: t.channels(),
                    heads: t.heads(),
                });
            }
            output_block += level.resnets.len();
        }
        out
    }

    /// The timestep embedding after the MLP.
    ///
    /// # Shapes
    /// - returns `[timesteps.len(), 4·c0]`
    pub fn time_embedding(&self, timesteps: &[f64]) -> Tensor<2> {
        self.time_embedding
            .forward(self.time_projection(timesteps), None)
    }

    /// The sinusoidal timestep projection.
    ///
    /// # Shapes
    /// - returns `[timesteps.len(), c0]`
    pub fn time_projection(&self, timesteps: &[f64]) -> Tensor<2> {
        let device = self.conv_in.weight.val().device();
        timestep_projection(
            timesteps,
            self.time_proj_dim,
            self.flip_sin_to_cos,
            self.freq_shift,
            &device,
        )
    }

    /// Predicts the noise (or v) in `x` at `timestep` given the text `context`.
    ///
    /// # Shapes
    /// - `x`: `[b, in, h, w]` with `h`, `w` divisible by 2^(levels−1); `context`: `[b, tokens, dim]`
    /// - returns `[b, out, h, w]`
    pub fn forward(
        &self,
        x: Tensor<4>,
        timestep: f64,
        context: &Tensor<3>,
        hook: &mut dyn AttentionHook,
    ) -> Tensor<4> {
        self.forward_guided(x, timestep, context, None, hook)
    }

    /// [`Unet::forward`] with an LCM guidance embedding ([`crate::embeddings::guidance_embedding`])
    /// for a UNet that takes one (ignored by others).
    ///
    /// # Shapes
    /// - `x`: `[b, in, h, w]`; `context`: `[b, tokens, dim]`; `guidance`: `[b, guidance_dim]`
    /// - returns `[b, out, h, w]`
    pub fn forward_guided(
        &self,
        x: Tensor<4>,
        timestep: f64,
        context: &Tensor<3>,
        guidance: Option<Tensor<2>>,
        hook: &mut dyn AttentionHook,
    ) -> Tensor<4> {
        self.forward_controlled(x, timestep, context, guidance, None, hook)
    }

    /// [`Unet::forward_guided`] with a ControlNet's residuals added to every skip connection
    /// and to the middle block's output (diffusers' `down_block_additional_residuals`,
    /// `mid_block_additional_residual`).
    ///
    /// # Shapes
    /// - as [`Unet::forward_guided`]; `residuals` as [`crate::controlnet::Residuals`] for `x`
    pub fn forward_controlled(
        &self,
        x: Tensor<4>,
        timestep: f64,
        context: &Tensor<3>,
        guidance: Option<Tensor<2>>,
        residuals: Option<&Residuals>,
        hook: &mut dyn AttentionHook,
    ) -> Tensor<4> {
        let [b, _, _, _] = x.dims();
        let temb = match guidance {
            None => self.time_embedding(&[timestep]).repeat_dim(0, b),
            Some(g) => self
                .time_embedding
                .forward(self.time_projection(&[timestep]).repeat_dim(0, b), Some(g)),
        };
        let h = self.conv_in.forward(x);
        let (mut h, mut skips) = down_path(&self.down, h, &temb, context, hook);
        h = self.mid.forward(h, &temb, context, hook);
        if let Some(r) = residuals {
            skips = skips
                .into_iter()
                .zip(&r.down)
                .map(|(skip, add)| skip + add.clone())
                .collect();
            h = h + r.mid.clone();
        }
        for (i, level) in self.up.iter().enumerate() {
            for (j, resnet) in level.resnets.iter().enumerate() {
                let skip = skips.pop().unwrap_or_else(|| h.clone());
                h = resnet.forward(Tensor::cat(vec![h, skip], 1), Some(&temb));
                if let Some(attn) = level.attentions.get(j) {
                    h = attn.forward(h, context, &format!("up_blocks.{i}.attentions.{j}"), hook);
                }
            }
            if let Some(up) = &level.resample {
                // diffusers' `upsample_size`: to the next skip's size, which is not twice the
                // input where a latent side is not divisible by 2^(levels − 1).
                let [_, _, uh, uw] = h.dims();
                let size = skips
                    .last()
                    .map_or([2 * uh, 2 * uw], |s| [s.dims()[2], s.dims()[3]]);
                h = up.forward(upsample_to(h, size));
            }
        }
        self.conv_out.forward(silu(self.norm_out.forward(h)))
    }
}

/// The down path: every level's resnets and transformers, and its downsampler. Returns the
/// output and the skip connections (`x` first, then one per resnet and downsampler).
///
/// # Shapes
/// - `x`: `[b, c0, h, w]`; `temb`: `[b, 4·c0]`; `context`: `[b, tokens, dim]`
pub(crate) fn down_path(
    levels: &[Level],
    x: Tensor<4>,
    temb: &Tensor<2>,
    context: &Tensor<3>,
    hook: &mut dyn AttentionHook,
) -> (Tensor<4>, Vec<Tensor<4>>) {
    let mut h = x;
    let mut skips = vec![h.clone()];
    for (i, level) in levels.iter().enumerate() {
        for (j, resnet) in level.resnets.iter().enumerate() {
            h = resnet.forward(h, Some(temb));
            if let Some(attn) = level.attentions.get(j) {
                h = attn.forward(h, context, &format!("down_blocks.{i}.attentions.{j}"), hook);
            }
            skips.push(h.clone());
        }
        if let Some(down) = &level.resample {
            h = down.forward(h);
            skips.push(h.clone());
        }
    }
    (h, skips)
}

impl MidBlock {
    pub(crate) fn load(l: &mut Loader, s: &Specs) -> Result<Self, LoadError> {
        let c = s.c;
        let last = c.block_out_channels[c.levels() - 1];
        Ok(Self {
            resnet_1: ResnetBlock::load(l, "mid_block.resnets.0", s.resnet(last, last))?,
            attention: SpatialTransformer::load(
                l,
                "mid_block.attentions.0",
                s.transformer(c.levels() - 1),
            )?,
            resnet_2: ResnetBlock::load(l, "mid_block.resnets.1", s.resnet(last, last))?,
        })
    }

    /// # Shapes
    /// - `h`: `[b, c_last, h, w]` → the same
    pub(crate) fn forward(
        &self,
        h: Tensor<4>,
        temb: &Tensor<2>,
        context: &Tensor<3>,
        hook: &mut dyn AttentionHook,
    ) -> Tensor<4> {
        let h = self.resnet_1.forward(h, Some(temb));
        let h = self
            .attention
            .forward(h, context, "mid_block.attentions.0", hook);
        self.resnet_2.forward(h, Some(temb))
    }
}

pub(crate) fn check_config(c: &UnetConfig) -> Result<(), LoadError> {
    let n = c.levels();
    if n == 0 || c.attention_heads.len() != n || c.cross_attention.len() != n {
        return Err(LoadError::Unrecognised(format!(
            "UNet config with {n} levels, {} head counts",
            c.attention_heads.len()
        )));
    }
    Ok(())
}

pub(crate) fn load_down(l: &mut Loader, s: &Specs, i: usize) -> Result<Level, LoadError> {
    let c = s.c;
    let out = c.block_out_channels[i];
    let mut c_in = if i == 0 {
        out
    } else {
        c.block_out_channels[i - 1]
    };
    let mut resnets = Vec::new();
    let mut attentions = Vec::new();
    for j in 0..c.layers_per_block {
        resnets.push(ResnetBlock::load(
            l,
            &format!("down_blocks.{i}.resnets.{j}"),
            s.resnet(c_in, out),
        )?);
        if c.cross_attention[i] {
            attentions.push(SpatialTransformer::load(
                l,
                &format!("down_blocks.{i}.attentions.{j}"),
                s.transformer(i),
            )?);
        }
        c_in = out;
    }
    let resample = if i + 1 < c.levels() {
        let spec = ConvSpec {
            stride: 2,
            ..ConvSpec::same(out, out, 3)
        };
        Some(conv2d(
            l,
            &format!("down_blocks.{i}.downsamplers.0.conv"),
            spec,
        )?)
    } else {
        None
    };
    Ok(Level {
        resnets,
        attentions,
        resample,
    })
}

/// Up block `i` mirrors level `levels − 1 − i`; its resnets take the previous output concatenated
/// with a skip connection (the skips are popped in reverse order of the down path).
fn load_up(l: &mut Loader, s: &Specs, i: usize) -> Result<Level, LoadError> {
    let c = s.c;
    let n = c.levels();
    let level = n - 1 - i;
    let out = c.block_out_channels[level];
    let prev_out = c.block_out_channels[(level + 1).min(n - 1)];
    let mut resnets = Vec::new();
    let mut attentions = Vec::new();
    for j in 0..=c.layers_per_block {
        let skip = if j == c.layers_per_block {
            c.block_out_channels[level.saturating_sub(1)]
        } else {
            out
        };
        let skip = if j == c.layers_per_block && level == 0 {
            out
        } else {
            skip
        };
        let c_in = if j == 0 { prev_out } else { out };
        resnets.push(ResnetBlock::load(
            l,
            &format!("up_blocks.{i}.resnets.{j}"),
            s.resnet(c_in + skip, out),
        )?);
        if c.cross_attention[level] {
            attentions.push(SpatialTransformer::load(
                l,
                &format!("up_blocks.{i}.attentions.{j}"),
                s.transformer(level),
            )?);
        }
    }
    let resample = if level > 0 {
        Some(conv2d(
            l,
            &format!("up_blocks.{i}.upsamplers.0.conv"),
            ConvSpec::same(out, out, 3),
        )?)
    } else {
        None
    };
    Ok(Level {
        resnets,
        attentions,
        resample,
    })
}

/// Nearest-neighbour upsampling by 2.
///
/// # Shapes
/// - `x`: `[b, c, h, w]` → `[b, c, 2h, 2w]`
pub fn upsample_nearest(x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    upsample_to(x, [2 * h, 2 * w])
}

/// Nearest-neighbour upsampling to `size` (torch's `interpolate(…, size, mode="nearest")`:
/// source index `⌊i · in / out⌋`).
///
/// # Shapes
/// - `x`: `[b, c, h, w]` → `[b, c, size[0], size[1]]`
pub fn upsample_to(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Nearest).with_output_size(size),
    )
}
