//! TAESD, the tiny autoencoder (madebyollin/taesd `taesd.py`; diffusers `AutoencoderTiny`,
//! `autoencoders/autoencoder_tiny.py` with `EncoderTiny`/`DecoderTiny` in `autoencoders/vae.py`):
//! plain 3×3 convolutions, ReLU and residual blocks, for fast previews and cheap img2img encodes.
//!
//! TAESD works on UNet latents directly: its scaling factor is 1.0, so latents are *not* divided by
//! 0.18215 before [`Taesd::decode`] nor multiplied after [`Taesd::encode`].
//!
//! Two layouts: the diffusers folder (`config.json` + one file, keys `encoder.layers.{i}.*` and
//! `decoder.layers.{i}.*`, the names the blocks ask for), and the original two files
//! (`taesd_encoder.safetensors`, `taesd_decoder.safetensors`), read through [`OriginalLayout`].

use burn::module::{Module, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use burn::tensor::activation::{relu, tanh};
use serde::Deserialize;

use crate::Device;
use crate::generate::{GenerateError, RgbImage, read, tensor_to_rgb};
use crate::model::Folder;
use crate::nn::{ConvSpec, conv2d};
use crate::unet::upsample_nearest;
use crate::weights::{KeyMap, LoadError, Loader, Prefixed, SafetensorsFile, Stored, WeightStore};

/// Prefix of the encoder's names (`encoder.layers.{i}.…`).
pub const ENCODER_PREFIX: &str = "encoder.";
/// Prefix of the decoder's names (`decoder.layers.{i}.…`).
pub const DECODER_PREFIX: &str = "decoder.";

/// The decoder's input clamp `tanh(z / m) · m` (diffusers `latent_magnitude`, taesd.py `Clamp`).
const LATENT_MAGNITUDE: f64 = 3.0;

/// The activation between convolutions (diffusers `act_fn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaesdActivation {
    /// `max(x, 0)`, the only one TAESD uses.
    Relu,
}

/// How the decoder upsamples (diffusers `upsample_fn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaesdUpsample {
    /// Nearest neighbour.
    Nearest,
}

/// TAESD sizes: diffusers `AutoencoderTiny`'s `config.json` (unknown fields ignored, missing ones
/// take `AutoencoderTiny`'s defaults, which are [`TaesdConfig::sd`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct TaesdConfig {
    /// Image channels into the encoder.
    pub in_channels: usize,
    /// Image channels out of the decoder.
    pub out_channels: usize,
    /// Encoder channels per stage (equal in every stage: diffusers builds each stride-2 conv as
    /// stage channels → stage channels).
    pub encoder_block_out_channels: Vec<usize>,
    /// Decoder channels per stage (equal in every stage, for the same reason).
    pub decoder_block_out_channels: Vec<usize>,
    /// Residual blocks per encoder stage.
    pub num_encoder_blocks: Vec<usize>,
    /// Residual blocks per decoder stage.
    pub num_decoder_blocks: Vec<usize>,
    /// Latent channels.
    pub latent_channels: usize,
    /// Activation.
    pub act_fn: TaesdActivation,
    /// Upsampling mode.
    pub upsample_fn: TaesdUpsample,
    /// Upsampling factor per decoder stage (2).
    pub upsampling_scaling_factor: usize,
    /// What a pipeline divides latents by before decoding: 1.0 for TAESD (UNet latents as they are).
    pub scaling_factor: f64,
}

impl Default for TaesdConfig {
    fn default() -> Self {
        Self::sd()
    }
}

impl TaesdConfig {
    /// TAESD for SD 1.x/2.x latents (`madebyollin/taesd/config.json`): 64 channels in every stage,
    /// encoder blocks (1, 3, 3, 3), decoder blocks (3, 3, 3, 1), 4 latent channels, ReLU, nearest ×2.
    pub fn sd() -> Self {
        Self {
            in_channels: 3,
            out_channels: 3,
            encoder_block_out_channels: vec![64; 4],
            decoder_block_out_channels: vec![64; 4],
            num_encoder_blocks: vec![1, 3, 3, 3],
            num_decoder_blocks: vec![3, 3, 3, 1],
            latent_channels: 4,
            act_fn: TaesdActivation::Relu,
            upsample_fn: TaesdUpsample::Nearest,
            upsampling_scaling_factor: 2,
            scaling_factor: 1.0,
        }
    }

    /// Parses a diffusers `config.json`; `file` names it in errors.
    pub fn from_json(file: &str, text: &str) -> Result<Self, LoadError> {
        serde_json::from_str(text).map_err(|e| LoadError::Config {
            file: file.to_owned(),
            problem: e.to_string(),
        })
    }

    /// Image pixels per latent pixel (8 for TAESD).
    pub fn downscale(&self) -> usize {
        1 << self.num_encoder_blocks.len().saturating_sub(1)
    }
}

/// The original two-file layout (`taesd.py`'s `nn.Sequential` state dicts): `encoder.layers.{i}.X`
/// is stored as `{i}.X`, `decoder.layers.{i}.X` as `{i+1}.X` (index 0 of the original decoder is
/// the parameter-free clamp). Diffusers' `convert_tiny_autoencoder_to_diffusers.py` does the inverse.
#[derive(Debug, Clone, Copy, Default)]
pub struct OriginalLayout;

impl KeyMap for OriginalLayout {
    fn map(&self, name: &str) -> Stored {
        Stored::key(original_key(name))
    }
}

fn original_key(name: &str) -> String {
    let (shift, rest) = if let Some(rest) = name.strip_prefix("encoder.layers.") {
        (0, rest)
    } else if let Some(rest) = name.strip_prefix("decoder.layers.") {
        (1, rest)
    } else {
        return name.to_owned();
    };
    let Some((index, tail)) = rest.split_once('.') else {
        return name.to_owned();
    };
    match index.parse::<usize>() {
        Ok(i) => format!("{}.{tail}", i + shift),
        Err(_) => name.to_owned(),
    }
}

/// A 3×3 convolution without bias (the stride-2 and post-upsample convs).
fn conv_no_bias(l: &mut Loader, name: &str, c: usize, stride: usize) -> Result<Conv2d, LoadError> {
    Ok(Conv2d {
        weight: Param::from_tensor(l.tensor(&format!("{name}.weight"), [c, c, 3, 3])?),
        bias: None,
        stride: [stride; 2],
        kernel_size: [3, 3],
        dilation: [1, 1],
        groups: 1,
        padding: PaddingConfig2d::Explicit(1, 1, 1, 1),
    })
}

/// `AutoencoderTinyBlock` with equal channels in and out: `relu(conv(relu(conv(relu(conv(x))))) + x)`
/// (`{name}.conv.0`, `.conv.2`, `.conv.4`; the skip is the identity and has no weights).
#[derive(Module, Debug)]
pub struct TaesdBlock {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
}

impl TaesdBlock {
    fn load(l: &mut Loader, name: &str, c: usize) -> Result<Self, LoadError> {
        let spec = ConvSpec::same(c, c, 3);
        Ok(Self {
            conv1: conv2d(l, &format!("{name}.conv.0"), spec)?,
            conv2: conv2d(l, &format!("{name}.conv.2"), spec)?,
            conv3: conv2d(l, &format!("{name}.conv.4"), spec)?,
        })
    }

    /// # Shapes
    /// - `x`: `[b, c, h, w]` → `[b, c, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = relu(self.conv1.forward(x.clone()));
        let h = relu(self.conv2.forward(h));
        relu(self.conv3.forward(h) + x)
    }
}

/// Loads `count` blocks named `{prefix}.layers.{next}…`, advancing `next`.
fn load_blocks(
    l: &mut Loader,
    prefix: &str,
    next: &mut usize,
    count: usize,
    c: usize,
) -> Result<Vec<TaesdBlock>, LoadError> {
    (0..count)
        .map(|_| {
            let block = TaesdBlock::load(l, &format!("{prefix}.layers.{next}"), c);
            *next += 1;
            block
        })
        .collect()
}

fn forward_blocks(blocks: &[TaesdBlock], x: Tensor<4>) -> Tensor<4> {
    blocks.iter().fold(x, |h, block| block.forward(h))
}

/// One encoder stage: a stride-2 conv (not in the first stage), then its blocks.
#[derive(Module, Debug)]
pub struct EncoderStage {
    down: Option<Conv2d>,
    blocks: Vec<TaesdBlock>,
}

/// `EncoderTiny`: image in [0, 1] → latent.
#[derive(Module, Debug)]
pub struct TaesdEncoder {
    conv_in: Conv2d,
    stages: Vec<EncoderStage>,
    conv_out: Conv2d,
}

impl TaesdEncoder {
    /// Loads `encoder.layers.{i}`: conv in, per stage a stride-2 conv without bias (from the second
    /// stage on) and its blocks, conv out.
    pub fn load(l: &mut Loader, c: &TaesdConfig) -> Result<Self, LoadError> {
        let ch = uniform_channels(
            "encoder",
            &c.encoder_block_out_channels,
            &c.num_encoder_blocks,
        )?;
        let conv_in = conv2d(l, "encoder.layers.0", ConvSpec::same(c.in_channels, ch, 3))?;
        let mut next = 1;
        let mut stages = Vec::new();
        for (i, &count) in c.num_encoder_blocks.iter().enumerate() {
            let down = if i == 0 {
                None
            } else {
                next += 1;
                Some(conv_no_bias(
                    l,
                    &format!("encoder.layers.{}", next - 1),
                    ch,
                    2,
                )?)
            };
            let blocks = load_blocks(l, "encoder", &mut next, count, ch)?;
            stages.push(EncoderStage { down, blocks });
        }
        let conv_out = ConvSpec::same(ch, c.latent_channels, 3);
        Ok(Self {
            conv_in,
            stages,
            conv_out: conv2d(l, &format!("encoder.layers.{next}"), conv_out)?,
        })
    }

    /// The original `taesd.py` encoder: takes the image in [0, 1].
    ///
    /// # Shapes
    /// - `x`: `[b, in, H, W]` → `[b, latent, H/s, W/s]`, `s` = 2^(stages−1), `H`, `W` multiples of `s`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = self.conv_in.forward(x);
        for stage in &self.stages {
            if let Some(down) = &stage.down {
                h = down.forward(h);
            }
            h = forward_blocks(&stage.blocks, h);
        }
        self.conv_out.forward(h)
    }
}

/// One decoder stage: its blocks, then (except in the last stage) upsampling and a conv without
/// bias.
#[derive(Module, Debug)]
pub struct DecoderStage {
    blocks: Vec<TaesdBlock>,
    up: Option<Conv2d>,
}

/// `DecoderTiny`: latent → image in about [0, 1].
#[derive(Module, Debug)]
pub struct TaesdDecoder {
    conv_in: Conv2d,
    stages: Vec<DecoderStage>,
    conv_out: Conv2d,
}

impl TaesdDecoder {
    /// Loads `decoder.layers.{i}`: conv in (0), ReLU (1), per stage its blocks, then upsampling
    /// (no weights) and a conv without bias, except the last stage, which ends in the conv out
    /// (with bias).
    pub fn load(l: &mut Loader, c: &TaesdConfig) -> Result<Self, LoadError> {
        let ch = uniform_channels(
            "decoder",
            &c.decoder_block_out_channels,
            &c.num_decoder_blocks,
        )?;
        check_upsampling(c)?;
        let conv_in = conv2d(
            l,
            "decoder.layers.0",
            ConvSpec::same(c.latent_channels, ch, 3),
        )?;
        let mut next = 2;
        let mut stages = Vec::new();
        let last = c.num_decoder_blocks.len().saturating_sub(1);
        for (i, &count) in c.num_decoder_blocks.iter().enumerate() {
            let blocks = load_blocks(l, "decoder", &mut next, count, ch)?;
            let up = if i == last {
                None
            } else {
                next += 2;
                Some(conv_no_bias(
                    l,
                    &format!("decoder.layers.{}", next - 1),
                    ch,
                    1,
                )?)
            };
            stages.push(DecoderStage { blocks, up });
        }
        let conv_out = ConvSpec::same(ch, c.out_channels, 3);
        Ok(Self {
            conv_in,
            stages,
            conv_out: conv2d(l, &format!("decoder.layers.{next}"), conv_out)?,
        })
    }

    /// The original `taesd.py` decoder: the clamp `tanh(z/3)·3`, then the layers; the image comes
    /// out in about [0, 1], not clamped.
    ///
    /// # Shapes
    /// - `z`: `[b, latent, h, w]` → `[b, out, h·s, w·s]`, `s` = 2^(stages−1)
    pub fn forward(&self, z: Tensor<4>) -> Tensor<4> {
        let z = tanh(z / LATENT_MAGNITUDE) * LATENT_MAGNITUDE;
        let mut h = relu(self.conv_in.forward(z));
        for stage in &self.stages {
            h = forward_blocks(&stage.blocks, h);
            if let Some(up) = &stage.up {
                h = up.forward(upsample_nearest(h));
            }
        }
        self.conv_out.forward(h)
    }
}

/// The one channel count of every stage, or why the config cannot be built.
fn uniform_channels(part: &str, channels: &[usize], blocks: &[usize]) -> Result<usize, LoadError> {
    let bad = |what: String| LoadError::Unrecognised(format!("TAESD {part} config: {what}"));
    let Some(&first) = channels.first() else {
        return Err(bad("no stages".into()));
    };
    if channels.len() != blocks.len() {
        let counts = format!(
            "{} channel counts, {} block counts",
            channels.len(),
            blocks.len()
        );
        return Err(bad(counts));
    }
    if channels.iter().any(|&c| c != first) {
        return Err(bad(format!("channels {channels:?} differ between stages")));
    }
    Ok(first)
}

fn check_upsampling(c: &TaesdConfig) -> Result<(), LoadError> {
    if c.upsampling_scaling_factor == 2 {
        return Ok(());
    }
    Err(LoadError::Unrecognised(format!(
        "TAESD upsampling_scaling_factor {} (only 2 is supported)",
        c.upsampling_scaling_factor
    )))
}

/// The tiny autoencoder.
#[derive(Module, Debug)]
pub struct Taesd {
    /// Encoder (for img2img); `None` when loaded decode-only.
    pub encoder: Option<TaesdEncoder>,
    /// Decoder.
    pub decoder: TaesdDecoder,
}

impl Taesd {
    /// Loads the decoder and, if `with_encoder`, the encoder from one loader by diffusers names
    /// (the diffusers folder's file with [`crate::weights::Prefixed`]).
    pub fn load(l: &mut Loader, c: &TaesdConfig, with_encoder: bool) -> Result<Self, LoadError> {
        let encoder = if with_encoder {
            Some(TaesdEncoder::load(l, c)?)
        } else {
            None
        };
        Ok(Self {
            encoder,
            decoder: TaesdDecoder::load(l, c)?,
        })
    }

    /// Loads the decoder and, if given, the encoder from separate loaders (the original
    /// `taesd_decoder.safetensors` and `taesd_encoder.safetensors`, each through [`OriginalLayout`]).
    pub fn load_split(
        decoder: &mut Loader,
        encoder: Option<&mut Loader>,
        c: &TaesdConfig,
    ) -> Result<Self, LoadError> {
        let encoder = match encoder {
            Some(l) => Some(TaesdEncoder::load(l, c)?),
            None => None,
        };
        Ok(Self {
            encoder,
            decoder: TaesdDecoder::load(decoder, c)?,
        })
    }

    /// Whether this decoder reads a model's latents: `latent_channels` of them, each standing for
    /// `downscale` pixels a side (the VAE's factor); otherwise what differs.
    pub fn check_fits(&self, latent_channels: usize, downscale: usize) -> Result<(), String> {
        let channels = self.decoder.conv_in.weight.dims()[1];
        let factor = 1usize << self.decoder.stages.len().saturating_sub(1);
        if (channels, factor) == (latent_channels, downscale) {
            return Ok(());
        }
        Err(format!(
            "this TAESD decodes {channels}-channel latents {factor}× up, the model's latents have \
             {latent_channels} channels and its VAE scales {downscale}×"
        ))
    }

    /// Decodes UNet latents (as they are: TAESD's scaling factor is 1.0) to an image in about
    /// [−1, 1], not clamped (diffusers `AutoencoderTiny.decode`: the original decoder's output ·2 − 1).
    ///
    /// # Shapes
    /// - `z`: `[b, latent, h, w]` → `[b, out, h·s, w·s]`, `s` = 2^(stages−1)
    pub fn decode(&self, z: Tensor<4>) -> Tensor<4> {
        self.decoder.forward(z) * 2.0 - 1.0
    }

    /// Encodes an image in [−1, 1] to UNet latents (no scaling), or `None` without an encoder
    /// (diffusers `AutoencoderTiny.encode`: the original encoder on `(x + 1) / 2`).
    ///
    /// # Shapes
    /// - `x`: `[b, in, H, W]` → `[b, latent, H/s, W/s]`
    pub fn encode(&self, x: Tensor<4>) -> Option<Tensor<4>> {
        let encoder = self.encoder.as_ref()?;
        Some(encoder.forward((x + 1.0) / 2.0))
    }
}

/// The file names TAESD's weights are found under in a folder, diffusers layout first.
const DIFFUSERS_FILES: [&str; 2] = [
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors",
];
const ORIGINAL_DECODER: &str = "taesd_decoder.safetensors";
const ORIGINAL_ENCODER: &str = "taesd_encoder.safetensors";

impl Taesd {
    /// Loads TAESD from a folder as published (`madebyollin/taesd`): the diffusers file with its
    /// `config.json` when present, else the original `taesd_decoder.safetensors` (and, if
    /// `with_encoder`, `taesd_encoder.safetensors`) with the SD 1.x/2.x configuration. Every
    /// tensor of a file read must be used.
    pub fn load_folder(
        folder: &dyn Folder,
        with_encoder: bool,
        device: &Device,
    ) -> Result<Self, LoadError> {
        let config = match folder.read_text("config.json") {
            Some(text) => TaesdConfig::from_json("config.json", &text)?,
            None => TaesdConfig::sd(),
        };
        let open = |path: &str| -> Result<Option<WeightStore>, LoadError> {
            match folder.open(path) {
                Some(source) => Ok(Some(WeightStore::new(vec![SafetensorsFile::open(
                    path, source,
                )?]))),
                None => Ok(None),
            }
        };
        for path in DIFFUSERS_FILES {
            if let Some(mut store) = open(path)? {
                let taesd = Self::load(
                    &mut Loader::new(&mut store, &Prefixed::default(), device),
                    &config,
                    with_encoder,
                )?;
                // A decode-only load leaves the encoder's tensors unread.
                store.check_all_used("", |key| !with_encoder && key.starts_with(ENCODER_PREFIX))?;
                return Ok(taesd);
            }
        }
        let Some(mut decoder) = open(ORIGINAL_DECODER)? else {
            return Err(LoadError::Io {
                file: DIFFUSERS_FILES[0].into(),
                message: format!("not found (nor {ORIGINAL_DECODER})"),
            });
        };
        let mut encoder = if with_encoder {
            Some(open(ORIGINAL_ENCODER)?.ok_or_else(|| LoadError::Io {
                file: ORIGINAL_ENCODER.into(),
                message: "not found".into(),
            })?)
        } else {
            None
        };
        let taesd = {
            let mut encoder_loader = encoder
                .as_mut()
                .map(|store| Loader::new(store, &OriginalLayout, device));
            Self::load_split(
                &mut Loader::new(&mut decoder, &OriginalLayout, device),
                encoder_loader.as_mut(),
                &config,
            )?
        };
        decoder.check_all_used("", |_| false)?;
        if let Some(store) = &encoder {
            store.check_all_used("", |_| false)?;
        }
        Ok(taesd)
    }

    /// A preview of UNet latents (the sampler's denoised estimate) as 8-bit RGB, for the first
    /// image of the batch.
    ///
    /// # Shapes
    /// - `z`: `[b, latent, h, w]`; the image is `w·s × h·s`
    pub async fn preview(&self, z: Tensor<4>) -> Result<RgbImage, GenerateError> {
        let [_, c, h, w] = z.dims();
        let image = self.decode(z.slice([0..1, 0..c, 0..h, 0..w]));
        let [_, _, height, width] = image.dims();
        let values = read(image).await?;
        Ok(tensor_to_rgb(&values, width, height))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_keys_shift_the_decoder_by_the_clamp() {
        let key = |name: &str| OriginalLayout.map(name).key;
        assert_eq!(key("encoder.layers.0.weight"), "0.weight");
        assert_eq!(key("encoder.layers.13.conv.4.bias"), "13.conv.4.bias");
        assert_eq!(key("decoder.layers.0.weight"), "1.weight");
        assert_eq!(key("decoder.layers.18.bias"), "19.bias");
        assert_eq!(key("other.thing"), "other.thing");
    }

    #[test]
    fn configs_parse_with_upstream_defaults_and_odd_ones_are_refused() {
        let c = TaesdConfig::from_json("c.json", r#"{"latent_channels": 16}"#).unwrap();
        assert_eq!(c.latent_channels, 16);
        assert_eq!(c.num_decoder_blocks, vec![3, 3, 3, 1]);
        assert_eq!(c.downscale(), 8);
        let err = TaesdConfig::from_json("c.json", r#"{"act_fn": "silu"}"#).unwrap_err();
        assert!(err.to_string().contains("silu"), "{err}");
        let err = uniform_channels("encoder", &[64, 128], &[1, 3]).unwrap_err();
        assert!(err.to_string().contains("[64, 128]"), "{err}");
        assert!(uniform_channels("decoder", &[64], &[1, 3]).is_err());
        assert!(uniform_channels("decoder", &[], &[]).is_err());
    }
}
