//! `ResnetBlock2D` (diffusers `resnet.py`), shared by the UNet (with a timestep embedding) and the
//! VAE (without).

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, Linear};
use burn::tensor::Tensor;
use burn::tensor::activation::silu;

use crate::bands::Bands;
use crate::nn::{ConvSpec, conv2d, group_norm, linear};
use crate::weights::{LoadError, Loader};

/// Sizes of one resnet block.
#[derive(Debug, Clone, Copy)]
pub struct ResnetSpec {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Width of the timestep embedding, or `None` (VAE).
    pub temb: Option<usize>,
    /// GroupNorm groups.
    pub groups: usize,
    /// GroupNorm epsilon.
    pub eps: f64,
}

/// GroupNorm → SiLU → conv, twice, with the timestep embedding added in between and a 1×1
/// shortcut when the channel count changes.
#[derive(Module, Debug)]
pub struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

impl ResnetBlock {
    /// Loads `{name}.norm1`, `.conv1`, `.time_emb_proj`, `.norm2`, `.conv2`, `.conv_shortcut`.
    pub fn load(l: &mut Loader, name: &str, s: ResnetSpec) -> Result<Self, LoadError> {
        let time_emb_proj = match s.temb {
            Some(t) => Some(linear(
                l,
                &format!("{name}.time_emb_proj"),
                t,
                s.c_out,
                true,
            )?),
            None => None,
        };
        let shortcut = if s.c_in == s.c_out {
            None
        } else {
            Some(conv2d(
                l,
                &format!("{name}.conv_shortcut"),
                ConvSpec::same(s.c_in, s.c_out, 1),
            )?)
        };
        Ok(Self {
            norm1: group_norm(l, &format!("{name}.norm1"), s.groups, s.c_in, s.eps)?,
            conv1: conv2d(
                l,
                &format!("{name}.conv1"),
                ConvSpec::same(s.c_in, s.c_out, 3),
            )?,
            time_emb_proj,
            norm2: group_norm(l, &format!("{name}.norm2"), s.groups, s.c_out, s.eps)?,
            conv2: conv2d(
                l,
                &format!("{name}.conv2"),
                ConvSpec::same(s.c_out, s.c_out, 3),
            )?,
            shortcut,
        })
    }

    /// # Shapes
    /// - `x`: `[b, c_in, h, w]`, `temb`: `[b, t]` (ignored by VAE blocks) → `[b, c_out, h, w]`
    pub fn forward(&self, x: Tensor<4>, temb: Option<&Tensor<2>>) -> Tensor<4> {
        let h = self.conv1.forward(silu(self.norm1.forward(x.clone())));
        let h = match (&self.time_emb_proj, temb) {
            (Some(proj), Some(t)) => h + proj.forward(silu(t.clone())).unsqueeze_dims::<4>(&[2, 3]),
            _ => h,
        };
        let h = self.conv2.forward(silu(self.norm2.forward(h)));
        let skip = match &self.shortcut {
            Some(conv) => conv.forward(x),
            None => x,
        };
        skip + h
    }

    /// [`Self::forward`] without a timestep embedding (the VAE's), on an activation held in bands
    /// of rows, each band of the widest of its tensors within `limit` bytes.
    pub fn forward_bands(&self, x: Bands, limit: u64) -> Bands {
        let [c_in, c_out] = [self.norm1.num_channels, self.norm2.num_channels];
        let x = x.within(c_in.max(c_out), limit);
        let h = x
            .clone()
            .group_norm(&self.norm1)
            .map(silu)
            .conv(&self.conv1);
        let h = h.group_norm(&self.norm2).map(silu).conv(&self.conv2);
        let skip = match &self.shortcut {
            Some(conv) => x.conv(conv),
            None => x,
        };
        skip.zip(h, |skip, h| skip + h)
    }
}
