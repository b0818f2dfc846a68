//! ControlNet for SD 1.x/2.x (diffusers `ControlNetModel`; the original `cldm.ControlNet`): a copy
//! of the UNet's down path and middle block that sees the latent plus an encoded hint image, and
//! whose zero convolutions give one residual per skip connection of the UNet and one for its
//! middle block ([`crate::unet::Unet::forward_controlled`] adds them).
//!
//! Loaded from a diffusers folder (`config.json` + `diffusion_pytorch_model.safetensors`) or from
//! the original single file (`control_model.input_blocks…`, `input_hint_block`, `zero_convs`,
//! `middle_block_out`, with or without the `control_model.` prefix).

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor};
use serde::Deserialize;

use crate::config::UnetConfig;
use crate::embeddings::{TimestepEmbedding, timestep_projection};
use crate::hooks::AttentionHook;
use crate::model::Folder;
use crate::nn::{ConvSpec, conv2d};
use crate::unet::{Level, MidBlock, Specs, check_config, down_path, load_down};
use crate::weights::layout::ControlLayout;
use crate::weights::{LoadError, Loader, Precision, Prefixed, SafetensorsFile, WeightStore};

/// The shape of a ControlNet.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlNetConfig {
    /// Its down path and middle block, shaped as the UNet's (`out_channels` unused).
    pub unet: UnetConfig,
    /// The hint encoder's channels per level (`conditioning_embedding_out_channels`; 16, 32, 96,
    /// 256 for SD 1.5's): it halves the hint once per level after the first.
    pub hint_channels: Vec<usize>,
    /// Channels of the hint image (3).
    pub conditioning_channels: usize,
    /// Residuals averaged over the image (shuffle models); implies guess mode.
    pub global_pool: bool,
    /// The hint is BGR (`controlnet_conditioning_channel_order: "bgr"`).
    pub bgr: bool,
}

#[derive(Deserialize)]
struct RawControl {
    #[serde(default = "sd_hint")]
    conditioning_embedding_out_channels: Vec<usize>,
    #[serde(default = "three")]
    conditioning_channels: usize,
    #[serde(default)]
    global_pool_conditions: bool,
    #[serde(default)]
    controlnet_conditioning_channel_order: Option<String>,
}

fn sd_hint() -> Vec<usize> {
    vec![16, 32, 96, 256]
}

fn three() -> usize {
    3
}

impl ControlNetConfig {
    /// Parses a diffusers ControlNet `config.json`; `file` names it in errors.
    pub fn from_json(file: &str, text: &str) -> Result<Self, LoadError> {
        let unet = UnetConfig::from_json(file, text)?;
        let raw: RawControl = serde_json::from_str(text).map_err(|e| LoadError::Config {
            file: file.to_owned(),
            problem: e.to_string(),
        })?;
        Ok(Self {
            unet,
            hint_channels: raw.conditioning_embedding_out_channels,
            conditioning_channels: raw.conditioning_channels,
            global_pool: raw.global_pool_conditions,
            bgr: raw.controlnet_conditioning_channel_order.as_deref() == Some("bgr"),
        })
    }

    /// How much smaller than the hint the latent is (2^(levels − 1) of the hint encoder).
    pub fn hint_downscale(&self) -> usize {
        1 << self.hint_channels.len().saturating_sub(1)
    }

    /// Whether the ControlNet can guide `model`: it copies its UNet (channels, resnets, text
    /// width) and sees hints at the image's size; otherwise why not.
    pub fn check_fits(&self, model: &crate::model::ModelInfo) -> Result<(), String> {
        let (net, unet) = (&self.unet, &model.unet);
        if net.block_out_channels != unet.block_out_channels
            || net.layers_per_block != unet.layers_per_block
            || net.cross_attention_dim != unet.cross_attention_dim
        {
            return Err(format!(
                "it was made for another model (channels {:?}, text width {}; this model has \
                 {:?}, {})",
                net.block_out_channels,
                net.cross_attention_dim,
                unet.block_out_channels,
                unet.cross_attention_dim
            ));
        }
        let vae = model.vae.downscale();
        if self.hint_downscale() != vae {
            return Err(format!(
                "its hint encoder shrinks images {}× but this model's latents are {vae}× smaller",
                self.hint_downscale()
            ));
        }
        Ok(())
    }
}

/// How strongly a ControlNet's residuals count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Strength {
    /// `conditioning_scale`.
    pub scale: f64,
    /// Guess mode's growing scales (see [`Residuals::scaled`]).
    pub guess_mode: bool,
}

/// What a ControlNet adds to the UNet: one tensor per skip connection (in the order the down
/// path makes them) and one for the middle block's output.
#[derive(Debug, Clone)]
pub struct Residuals {
    /// Per skip connection, `[b, c_i, h_i, w_i]`.
    pub down: Vec<Tensor<4>>,
    /// `[b, c_last, h_last, w_last]`.
    pub mid: Tensor<4>,
}

impl Residuals {
    /// Multiplied by `scale`; in guess mode by `scale · 10^(−1 + i/n)` from 0.1 for the first
    /// skip to 1 for the middle block (diffusers' `torch.logspace(-1, 0, n + 1)`).
    pub fn scaled(self, scale: f64, guess_mode: bool) -> Self {
        let n = self.down.len();
        let factor = |i: usize| {
            if guess_mode && n > 0 {
                scale * 10f64.powf(-1.0 + i as f64 / n as f64)
            } else {
                scale
            }
        };
        Self {
            down: self
                .down
                .into_iter()
                .enumerate()
                .map(|(i, t)| t * factor(i))
                .collect(),
            mid: self.mid * factor(n),
        }
    }

    /// With `rows` rows of zeros before each tensor's batch (guess mode's unconditional rows).
    pub fn after_zeros(self, rows: usize) -> Self {
        let pad = |t: Tensor<4>| {
            let [_, c, h, w] = t.dims();
            let zeros = Tensor::<4>::zeros([rows, c, h, w], &t.device());
            Tensor::cat(vec![zeros, t], 0)
        };
        Self {
            down: self.down.into_iter().map(pad).collect(),
            mid: pad(self.mid),
        }
    }

    fn pooled(self) -> Self {
        let pool = |t: Tensor<4>| {
            let dims = t.dims();
            t.mean_dim(2).mean_dim(3).expand(dims)
        };
        Self {
            down: self.down.into_iter().map(pool).collect(),
            mid: pool(self.mid),
        }
    }
}

/// The hint encoder: 3×3 convolutions with SiLU, halving the size at each new channel count,
/// and a (zero-initialised) convolution to the UNet's first channel count.
#[derive(Module, Debug)]
struct HintEncoder {
    conv_in: Conv2d,
    blocks: Vec<Conv2d>,
    conv_out: Conv2d,
}

impl HintEncoder {
    fn load(l: &mut Loader, c: &ControlNetConfig) -> Result<Self, LoadError> {
        let p = "controlnet_cond_embedding";
        let ch = &c.hint_channels;
        let first = ch.first().copied().unwrap_or(16);
        let mut blocks = Vec::new();
        for (i, pair) in ch.windows(2).enumerate() {
            let (c_in, c_out) = (pair[0], pair[1]);
            let same = ConvSpec::same(c_in, c_in, 3);
            blocks.push(conv2d(l, &format!("{p}.blocks.{}", 2 * i), same)?);
            let down = ConvSpec {
                stride: 2,
                ..ConvSpec::same(c_in, c_out, 3)
            };
            blocks.push(conv2d(l, &format!("{p}.blocks.{}", 2 * i + 1), down)?);
        }
        let last = ch.last().copied().unwrap_or(first);
        let out = c.unet.block_out_channels.first().copied().unwrap_or(0);
        Ok(Self {
            conv_in: conv2d(
                l,
                &format!("{p}.conv_in"),
                ConvSpec::same(c.conditioning_channels, first, 3),
            )?,
            blocks,
            conv_out: conv2d(l, &format!("{p}.conv_out"), ConvSpec::same(last, out, 3))?,
        })
    }

    /// # Shapes
    /// - `hint`: `[b, 3, H, W]` → `[b, c0, H / 2^(levels−1), W / 2^(levels−1)]`
    fn forward(&self, hint: Tensor<4>) -> Tensor<4> {
        let mut h = silu(self.conv_in.forward(hint));
        for block in &self.blocks {
            h = silu(block.forward(h));
        }
        self.conv_out.forward(h)
    }
}

/// A loaded ControlNet.
#[derive(Module, Debug)]
pub struct ControlNet {
    time_embedding: TimestepEmbedding,
    conv_in: Conv2d,
    hint: HintEncoder,
    down: Vec<Level>,
    mid: MidBlock,
    zero_convs: Vec<Conv2d>,
    mid_out: Conv2d,
    time_proj_dim: usize,
    flip_sin_to_cos: bool,
    freq_shift: f64,
    global_pool: bool,
    bgr: bool,
}

/// The channels of each skip connection of a UNet (or ControlNet) of config `c`.
pub fn skip_channels(c: &UnetConfig) -> Vec<usize> {
    let ch = &c.block_out_channels;
    let mut out = vec![ch.first().copied().unwrap_or(0)];
    for (i, &level) in ch.iter().enumerate() {
        out.extend(std::iter::repeat_n(level, c.layers_per_block));
        if i + 1 < ch.len() {
            out.push(level);
        }
    }
    out
}

impl ControlNet {
    /// Loads from diffusers names (mapped by the loader).
    pub fn load(l: &mut Loader, c: &ControlNetConfig) -> Result<Self, LoadError> {
        let u = &c.unet;
        check_config(u)?;
        let s = Specs { c: u };
        let first = u.block_out_channels[0];
        let last = u.block_out_channels[u.levels() - 1];
        let down = (0..u.levels())
            .map(|i| load_down(l, &s, i))
            .collect::<Result<Vec<_>, _>>()?;
        let zero_convs = skip_channels(u)
            .into_iter()
            .enumerate()
            .map(|(i, ch)| {
                conv2d(
                    l,
                    &format!("controlnet_down_blocks.{i}"),
                    ConvSpec::same(ch, ch, 1),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            time_embedding: TimestepEmbedding::load(
                l,
                "time_embedding",
                first,
                u.time_embed_dim(),
                None,
            )?,
            conv_in: conv2d(l, "conv_in", ConvSpec::same(u.in_channels, first, 3))?,
            hint: HintEncoder::load(l, c)?,
            down,
            mid: MidBlock::load(l, &s)?,
            zero_convs,
            mid_out: conv2d(l, "controlnet_mid_block", ConvSpec::same(last, last, 1))?,
            time_proj_dim: first,
            flip_sin_to_cos: u.flip_sin_to_cos,
            freq_shift: u.freq_shift,
            global_pool: c.global_pool,
            bgr: c.bgr,
        })
    }

    /// Whether the net was trained with pooled residuals (it then always runs in guess mode).
    pub fn global_pool(&self) -> bool {
        self.global_pool
    }

    /// The residuals for the latent `x` at `timestep` with the text `context` and the `hint`,
    /// multiplied as [`Residuals::scaled`] says by `strength` (guess mode is forced for a pooled
    /// net).
    /// Attention calls go to `hook` under the UNet's layer names.
    ///
    /// # Shapes
    /// - `x`: `[b, 4, h, w]`; `context`: `[b, tokens, dim]`; `hint`: `[b, 3, h·d, w·d]` in
    ///   [0, 1], RGB, with d = [`ControlNetConfig::hint_downscale`]
    /// - returns one `[b, c_i, h_i, w_i]` per skip connection and the middle one
    pub fn forward(
        &self,
        x: Tensor<4>,
        timestep: f64,
        context: &Tensor<3>,
        hint: Tensor<4>,
        strength: Strength,
        hook: &mut dyn AttentionHook,
    ) -> Residuals {
        let [b, _, _, _] = x.dims();
        let device = x.device();
        let projection = timestep_projection(
            &[timestep],
            self.time_proj_dim,
            self.flip_sin_to_cos,
            self.freq_shift,
            &device,
        );
        let temb = self
            .time_embedding
            .forward(projection, None)
            .repeat_dim(0, b);
        let hint = if self.bgr { hint.flip([1]) } else { hint };
        let h = self.conv_in.forward(x) + self.hint.forward(hint);
        let (h, skips) = down_path(&self.down, h, &temb, context, hook);
        let h = self.mid.forward(h, &temb, context, hook);
        let residuals = Residuals {
            down: skips
                .into_iter()
                .zip(&self.zero_convs)
                .map(|(skip, conv)| conv.forward(skip))
                .collect(),
            mid: self.mid_out.forward(h),
        };
        let guess = strength.guess_mode || self.global_pool;
        let residuals = residuals.scaled(strength.scale, guess);
        if self.global_pool {
            residuals.pooled()
        } else {
            residuals
        }
    }

    /// Loads a diffusers ControlNet folder (`config.json`, `diffusion_pytorch_model.safetensors`
    /// or its fp16 / int8 variants) at `precision`.
    pub fn load_diffusers(
        folder: &dyn Folder,
        precision: Precision,
        device: &Device,
    ) -> Result<(Self, ControlNetConfig), LoadError> {
        let text = folder
            .read_text("config.json")
            .ok_or_else(|| LoadError::Config {
                file: "config.json".into(),
                problem: "not found".into(),
            })?;
        let config = ControlNetConfig::from_json("config.json", &text)?;
        let file = crate::model::open_component(folder, "")?;
        let mut store = WeightStore::new(vec![file]);
        let precision = effective(&store, precision);
        let root = Prefixed::default();
        let net = Self::load(
            &mut Loader::new(&mut store, &root, device).with_precision(precision),
            &config,
        )?;
        store.check_all_used("", |_| false)?;
        Ok((net, config))
    }

    /// Loads the original single-file layout at `precision`. The weights tell every shape but
    /// the attention heads, which are taken from `base` (the UNet the ControlNet was trained
    /// for) where the channels agree.
    pub fn load_single_file(
        file: SafetensorsFile,
        base: &UnetConfig,
        precision: Precision,
        device: &Device,
    ) -> Result<(Self, ControlNetConfig), LoadError> {
        let mut store = WeightStore::new(vec![file]);
        let precision = effective(&store, precision);
        let prefix = ControlLayout::prefix_in(&store).ok_or_else(|| {
            LoadError::Unrecognised(
                "not a ControlNet: no `zero_convs` or `controlnet_down_blocks` weights".into(),
            )
        })?;
        let config = infer_config(&store, &prefix, base)?;
        let map = ControlLayout::new(&prefix, &config);
        let net = Self::load(
            &mut Loader::new(&mut store, &map, device).with_precision(precision),
            &config,
        )?;
        store.check_all_used(&prefix, |_| false)?;
        Ok((net, config))
    }
}

fn effective(store: &WeightStore, precision: Precision) -> Precision {
    if store.is_quantized() {
        Precision::Int8
    } else {
        precision
    }
}

/// The configuration of a single-file ControlNet from its weights' shapes (`prefix` is
/// `control_model.` or empty).
fn infer_config(
    store: &WeightStore,
    prefix: &str,
    base: &UnetConfig,
) -> Result<ControlNetConfig, LoadError> {
    let mut unet = crate::model::infer_unet_at(store, prefix, &Default::default())?;
    unet.validate("the ControlNet (sizes read from its tensors)")?;
    if unet.block_out_channels == base.block_out_channels {
        unet.attention_heads = base.attention_heads.clone();
        unet.upcast_attention = base.upcast_attention;
    }
    let dim = |key: &str, axis: usize| {
        store
            .shape(&format!("{prefix}{key}"))
            .and_then(|s| s.get(axis).copied())
            .ok_or_else(|| LoadError::Unrecognised(format!("no tensor `{prefix}{key}`")))
    };
    let convs = (0..)
        .take_while(|i| store.contains(&format!("{prefix}input_hint_block.{}.weight", 2 * i)))
        .count();
    if convs < 2 || convs % 2 != 0 {
        return Err(LoadError::Unrecognised(format!(
            "a hint encoder of {convs} convolutions"
        )));
    }
    let mut hint_channels = vec![dim("input_hint_block.0.weight", 0)?];
    for pair in 0..(convs - 2) / 2 {
        hint_channels.push(dim(
            &format!("input_hint_block.{}.weight", 4 + 4 * pair),
            0,
        )?);
    }
    Ok(ControlNetConfig {
        unet,
        hint_channels,
        conditioning_channels: dim("input_hint_block.0.weight", 1)?,
        global_pool: false,
        bgr: false,
    })
}

/// An RGB image as a ControlNet hint: `[1, 3, h, w]` in [0, 1] (diffusers' control image
/// processor, which does not normalise to [−1, 1]).
pub fn hint_tensor(image: &keyshift_core::image::RgbImage, device: &Device) -> Tensor<4> {
    crate::generate::image_tensor(image, device, |v| f32::from(v) / 255.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::control_acts;

    #[test]
    fn sd15_has_twelve_skip_connections_as_the_original_has_zero_convs() {
        let skips = skip_channels(&UnetConfig::sd1());
        let want = [
            320, 320, 320, 320, 640, 640, 640, 1280, 1280, 1280, 1280, 1280,
        ];
        assert_eq!(skips, want);
    }

    #[test]
    fn control_steps_follow_diffusers_keep_rule() {
        let acts = |start, end| {
            (0..4)
                .map(|i| control_acts(i, 4, start, end))
                .collect::<Vec<_>>()
        };
        assert_eq!(acts(0.0, 1.0), [true; 4]);
        assert_eq!(acts(0.25, 1.0), [false, true, true, true]);
        assert_eq!(acts(0.0, 0.5), [true, true, false, false]);
        assert_eq!(acts(0.3, 0.7), [false, false, false, false]);
    }

    #[test]
    fn a_controlnet_config_reads_the_hint_encoder_and_channel_order() {
        let text = r#"{"in_channels": 4, "block_out_channels": [32, 64], "layers_per_block": 2,
            "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"], "attention_head_dim": 8,
            "cross_attention_dim": 32, "conditioning_embedding_out_channels": [8, 16],
            "controlnet_conditioning_channel_order": "bgr", "global_pool_conditions": true}"#;
        let c = ControlNetConfig::from_json("config.json", text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.hint_channels, [8, 16]);
        assert_eq!(c.hint_downscale(), 2);
        assert!(c.bgr && c.global_pool);
        assert_eq!(c.unet.out_channels, 4);
    }
}
