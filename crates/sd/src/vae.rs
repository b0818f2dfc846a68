//! `AutoencoderKL` (diffusers `autoencoder_kl.py`, `vae.py`): the encoder to latent moments and the
//! decoder back to pixels, each with a single-head attention in the middle.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, Linear};
use burn::tensor::Tensor;
use burn::tensor::activation::silu;

use crate::attention;
use crate::bands::Bands;
use crate::config::VaeConfig;
use crate::limits::buffer_limit;
use crate::nn::{ConvSpec, conv2d, group_norm, linear};
use crate::resnet::{ResnetBlock, ResnetSpec};
use crate::weights::{LoadError, Loader};

const EPS: f64 = 1e-6;

/// Single-head self-attention over all pixels, with a residual connection.
#[derive(Module, Debug)]
pub struct VaeAttention {
    norm: GroupNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
}

impl VaeAttention {
    fn load(l: &mut Loader, name: &str, c: usize, groups: usize) -> Result<Self, LoadError> {
        Ok(Self {
            norm: group_norm(l, &format!("{name}.group_norm"), groups, c, EPS)?,
            q: linear(l, &format!("{name}.to_q"), c, c, true)?,
            k: linear(l, &format!("{name}.to_k"), c, c, true)?,
            v: linear(l, &format!("{name}.to_v"), c, c, true)?,
            out: linear(l, &format!("{name}.to_out.0"), c, c, true)?,
        })
    }

    /// # Shapes
    /// - `x`: `[b, c, h, w]` → `[b, c, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let t = self
            .norm
            .forward(x.clone())
            .reshape([b, c, h * w])
            .swap_dims(1, 2);
        let a = attention::attend(
            self.q.forward(t.clone()),
            self.k.forward(t.clone()),
            self.v.forward(t),
            1,
            None,
        );
        self.out.forward(a).swap_dims(1, 2).reshape([b, c, h, w]) + x
    }
}

/// Resnet, attention, resnet at the lowest resolution.
#[derive(Module, Debug)]
pub struct VaeMid {
    resnet_1: ResnetBlock,
    attention: VaeAttention,
    resnet_2: ResnetBlock,
}

impl VaeMid {
    fn load(l: &mut Loader, name: &str, c: usize, groups: usize) -> Result<Self, LoadError> {
        let spec = ResnetSpec {
            c_in: c,
            c_out: c,
            temb: None,
            groups,
            eps: EPS,
        };
        Ok(Self {
            resnet_1: ResnetBlock::load(l, &format!("{name}.resnets.0"), spec)?,
            attention: VaeAttention::load(l, &format!("{name}.attentions.0"), c, groups)?,
            resnet_2: ResnetBlock::load(l, &format!("{name}.resnets.1"), spec)?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.resnet_2
            .forward(self.attention.forward(self.resnet_1.forward(x, None)), None)
    }
}

/// Resnets of one level, then an optional down- or upsampling conv.
#[derive(Module, Debug)]
pub struct VaeLevel {
    resnets: Vec<ResnetBlock>,
    resample: Option<Conv2d>,
}

/// `count` resnets `{prefix}.{j}`: the first maps `channels.0` to `channels.1`, the rest keep it.
fn load_resnets(
    l: &mut Loader,
    prefix: &str,
    channels: (usize, usize),
    count: usize,
    groups: usize,
) -> Result<Vec<ResnetBlock>, LoadError> {
    let (first_in, out) = channels;
    (0..count)
        .map(|j| {
            let c_in = if j == 0 { first_in } else { out };
            let spec = ResnetSpec {
                c_in,
                c_out: out,
                temb: None,
                groups,
                eps: EPS,
            };
            ResnetBlock::load(l, &format!("{prefix}.{j}"), spec)
        })
        .collect()
}

/// The image → latent-moments half.
#[derive(Module, Debug)]
pub struct Encoder {
    conv_in: Conv2d,
    down: Vec<VaeLevel>,
    mid: VaeMid,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    quant_conv: Conv2d,
}

/// The latent → image half.
#[derive(Module, Debug)]
pub struct Decoder {
    post_quant_conv: Conv2d,
    conv_in: Conv2d,
    mid: VaeMid,
    up: Vec<VaeLevel>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

/// The autoencoder.
#[derive(Module, Debug)]
pub struct Vae {
    /// Encoder (for img2img); `None` when loaded decode-only.
    pub encoder: Option<Encoder>,
    /// Decoder.
    pub decoder: Decoder,
}

impl Vae {
    /// Loads the decoder and, if `with_encoder`, the encoder.
    pub fn load(l: &mut Loader, c: &VaeConfig, with_encoder: bool) -> Result<Self, LoadError> {
        if c.block_out_channels.is_empty() {
            return Err(LoadError::Unrecognised("VAE config without levels".into()));
        }
        let encoder = if with_encoder {
            Some(Encoder::load(l, c)?)
        } else {
            None
        };
        Ok(Self {
            encoder,
            decoder: Decoder::load(l, c)?,
        })
    }

    /// Decodes latents (already divided by the scaling factor) to an image in about [−1, 1].
    ///
    /// # Shapes
    /// - `z`: `[b, latent, h, w]` → `[b, 3, h·s, w·s]`, `s` = 2^(levels−1)
    pub fn decode(&self, z: Tensor<4>) -> Tensor<4> {
        self.decoder.forward(z)
    }

    /// Encodes an image in [−1, 1] to latent moments (mean and log-variance, unscaled), or `None`
    /// without an encoder.
    ///
    /// # Shapes
    /// - `x`: `[b, 3, H, W]` → `[b, 2·latent, H/s, W/s]`
    pub fn encode_moments(&self, x: Tensor<4>) -> Option<Tensor<4>> {
        self.encoder.as_ref().map(|e| e.forward(x))
    }
}

impl Encoder {
    fn load(l: &mut Loader, c: &VaeConfig) -> Result<Self, LoadError> {
        let ch = &c.block_out_channels;
        let g = c.norm_num_groups;
        let n = ch.len();
        let mut down = Vec::new();
        let mut c_in = ch[0];
        for (i, &out) in ch.iter().enumerate() {
            let prefix = format!("encoder.down_blocks.{i}.resnets");
            let resnets = load_resnets(l, &prefix, (c_in, out), c.layers_per_block, g)?;
            c_in = out;
            let resample = if i + 1 < n {
                // diffusers pads (0, 1, 0, 1) and convolves without padding.
                let spec = ConvSpec {
                    stride: 2,
                    padding: [0, 0, 1, 1],
                    ..ConvSpec::same(out, out, 3)
                };
                Some(conv2d(
                    l,
                    &format!("encoder.down_blocks.{i}.downsamplers.0.conv"),
                    spec,
                )?)
            } else {
                None
            };
            down.push(VaeLevel { resnets, resample });
        }
        let last = ch[n - 1];
        let moments = 2 * c.latent_channels;
        Ok(Self {
            conv_in: conv2d(
                l,
                "encoder.conv_in",
                ConvSpec::same(c.in_channels, ch[0], 3),
            )?,
            down,
            mid: VaeMid::load(l, "encoder.mid_block", last, g)?,
            norm_out: group_norm(l, "encoder.conv_norm_out", g, last, EPS)?,
            conv_out: conv2d(l, "encoder.conv_out", ConvSpec::same(last, moments, 3))?,
            quant_conv: conv2d(l, "quant_conv", ConvSpec::same(moments, moments, 1))?,
        })
    }

    /// # Shapes
    /// - `x`: `[b, 3, H, W]` → `[b, 2·latent, H/s, W/s]`
    ///
    /// Levels whose activations would not fit the thread's buffer limit run in bands of rows.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let limit = buffer_limit();
        let first = self.conv_in.weight.dims()[0];
        let mut h = Bands::whole(x).within(first, limit).conv(&self.conv_in);
        for level in &self.down {
            h = level
                .resnets
                .iter()
                .fold(h, |h, r| r.forward_bands(h, limit));
            if let Some(conv) = &level.resample {
                h = h.conv_down(conv);
            }
        }
        let h = self.mid.forward(h.join());
        self.quant_conv
            .forward(self.conv_out.forward(silu(self.norm_out.forward(h))))
    }
}

impl Decoder {
    fn load(l: &mut Loader, c: &VaeConfig) -> Result<Self, LoadError> {
        let ch = &c.block_out_channels;
        let g = c.norm_num_groups;
        let n = ch.len();
        let last = ch[n - 1];
        let mut up = Vec::new();
        let mut c_in = last;
        for i in 0..n {
            let out = ch[n - 1 - i];
            let prefix = format!("decoder.up_blocks.{i}.resnets");
            let resnets = load_resnets(l, &prefix, (c_in, out), c.layers_per_block + 1, g)?;
            c_in = out;
            let resample = if i + 1 < n {
                Some(conv2d(
                    l,
                    &format!("decoder.up_blocks.{i}.upsamplers.0.conv"),
                    ConvSpec::same(out, out, 3),
                )?)
            } else {
                None
            };
            up.push(VaeLevel { resnets, resample });
        }
        let lat = c.latent_channels;
        Ok(Self {
            post_quant_conv: conv2d(l, "post_quant_conv", ConvSpec::same(lat, lat, 1))?,
            conv_in: conv2d(l, "decoder.conv_in", ConvSpec::same(lat, last, 3))?,
            mid: VaeMid::load(l, "decoder.mid_block", last, g)?,
            up,
            norm_out: group_norm(l, "decoder.conv_norm_out", g, ch[0], EPS)?,
            conv_out: conv2d(
                l,
                "decoder.conv_out",
                ConvSpec::same(ch[0], c.out_channels, 3),
            )?,
        })
    }

    /// # Shapes
    /// - `z`: `[b, latent, h, w]` → `[b, 3, h·s, w·s]`
    ///
    /// Every activation stays within the thread's buffer limit ([`buffer_limit`]): levels whose
    /// activations would not fit run in bands of rows ([`Bands`]).
    pub fn forward(&self, z: Tensor<4>) -> Tensor<4> {
        let limit = buffer_limit();
        let h = self
            .mid
            .forward(self.conv_in.forward(self.post_quant_conv.forward(z)));
        let mut h = Bands::whole(h);
        for level in &self.up {
            h = level
                .resnets
                .iter()
                .fold(h, |h, r| r.forward_bands(h, limit));
            if let Some(conv) = &level.resample {
                let channels = conv.weight.dims()[0];
                h = h.upsample(channels, limit).conv(conv);
            }
        }
        let channels = self.norm_out.num_channels;
        h.within(channels, limit)
            .group_norm(&self.norm_out)
            .map(silu)
            .conv(&self.conv_out)
            .join()
    }
}
