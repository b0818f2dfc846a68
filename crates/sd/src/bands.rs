//! An activation held as horizontal bands of rows, each in its own buffer: how the VAE decoder
//! runs at sizes where one of its activations would be larger than a device buffer may be (SD 1.5's
//! decoder at 512² holds 256 channels × 512² = 256 MiB; WebGPU allows 128 MiB by default).
//!
//! The operations give the same result as on the whole tensor: 3×3 convolutions see their
//! neighbours' edge rows (a one-row halo), GroupNorm takes its statistics over all bands, and
//! pointwise operations and nearest upsampling work band by band. A tensor that fits stays one
//! band and runs exactly the unbanded code.

use burn::module::Param;
use burn::nn::GroupNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use crate::unet::upsample_nearest;

/// `[b, c, h, w]` split along `h`.
#[derive(Debug, Clone)]
pub struct Bands {
    parts: Vec<Tensor<4>>,
}

/// How many rows of `[batch, channels, ·, width]` f32 fit in `limit` bytes with a row of halo on
/// each side (at least one).
pub fn rows_within(batch: usize, channels: usize, width: usize, limit: u64) -> usize {
    let row = (batch * channels * width) as u64 * 4;
    ((limit / row.max(1)) as usize).saturating_sub(2).max(1)
}

impl Bands {
    /// One band: a tensor that exists already.
    pub fn whole(x: Tensor<4>) -> Self {
        Self { parts: vec![x] }
    }

    /// The bands, top to bottom.
    pub fn parts(&self) -> &[Tensor<4>] {
        &self.parts
    }

    /// `[b, c, h, w]` of the whole.
    pub fn dims(&self) -> [usize; 4] {
        let [b, c, _, w] = self.parts.first().map_or([0; 4], Tensor::dims);
        let h = self.parts.iter().map(|p| p.dims()[2]).sum();
        [b, c, h, w]
    }

    /// Splits bands taller than `rows` (never joins any). Bands are cut at even rows (`rows` is
    /// rounded down to an even number, at least 2) so that a stride-2 convolution can follow.
    pub fn at_most(self, rows: usize) -> Self {
        let rows = (rows & !1).max(2);
        let parts = self
            .parts
            .into_iter()
            .flat_map(|part| {
                let h = part.dims()[2];
                if h <= rows {
                    return vec![part];
                }
                (0..h)
                    .step_by(rows)
                    .map(|start| part.clone().narrow(2, start, rows.min(h - start)))
                    .collect()
            })
            .collect();
        Self { parts }
    }

    /// Splits so that every band of `channels` channels fits in `limit` with its halo.
    pub fn within(self, channels: usize, limit: u64) -> Self {
        let [b, _, _, w] = self.dims();
        self.at_most(rows_within(b, channels, w, limit))
    }

    /// `f` on every band.
    pub fn map(self, f: impl Fn(Tensor<4>) -> Tensor<4>) -> Self {
        Self {
            parts: self.parts.into_iter().map(f).collect(),
        }
    }

    /// `f` on matching bands of two activations split the same way.
    pub fn zip(self, other: Self, f: impl Fn(Tensor<4>, Tensor<4>) -> Tensor<4>) -> Self {
        Self {
            parts: self
                .parts
                .into_iter()
                .zip(other.parts)
                .map(|(a, b)| f(a, b))
                .collect(),
        }
    }

    /// Nearest 2× upsampling, band by band, first split so that the doubled bands of `channels`
    /// still fit in `limit`.
    pub fn upsample(self, channels: usize, limit: u64) -> Self {
        let [b, _, _, w] = self.dims();
        let rows = rows_within(b, channels, 2 * w, limit) / 2;
        self.at_most(rows).map(upsample_nearest)
    }

    /// The whole tensor again.
    pub fn join(mut self) -> Tensor<4> {
        if self.parts.len() == 1
            && let Some(whole) = self.parts.pop()
        {
            return whole;
        }
        Tensor::cat(self.parts, 2)
    }

    /// GroupNorm with statistics over every band (two passes, as burn's: the mean, then the mean
    /// squared deviation).
    pub fn group_norm(self, norm: &GroupNorm) -> Self {
        if self.parts.len() == 1 {
            return self.map(|x| norm.forward(x));
        }
        let [b, c, h, w] = self.dims();
        let g = norm.num_groups;
        let count = ((c / g) * h * w) as f64;
        let grouped = |x: Tensor<4>| {
            let [_, _, rows, _] = x.dims();
            x.reshape([b, g, (c / g) * rows * w])
        };
        let sum = |parts: Vec<Tensor<3>>| {
            parts
                .into_iter()
                .reduce(|a, b| a + b)
                .map(|s| s.div_scalar(count))
        };
        let Some(mean) = sum(self
            .parts
            .iter()
            .cloned()
            .map(|x| grouped(x).sum_dim(2))
            .collect())
        else {
            return self;
        };
        let Some(var) = sum(self
            .parts
            .iter()
            .cloned()
            .map(|x| (grouped(x) - mean.clone()).square().sum_dim(2))
            .collect())
        else {
            return self;
        };
        let std = var.add_scalar(norm.epsilon).sqrt();
        let affine =
            |p: &Option<Param<Tensor<1>>>| p.as_ref().map(|p| p.val().reshape([1, c, 1, 1]));
        let (gamma, beta) = (affine(&norm.gamma), affine(&norm.beta));
        self.map(|x| {
            let shape = x.dims();
            let y = ((grouped(x) - mean.clone()) / std.clone()).reshape(shape);
            match (&gamma, &beta) {
                (Some(gamma), Some(beta)) => y * gamma.clone() + beta.clone(),
                _ => y,
            }
        })
    }

    /// A stride-1 convolution with "same" padding (1×1 or k×k), each band given its neighbours'
    /// `k / 2` edge rows (zeros at the image's top and bottom).
    pub fn conv(self, conv: &Conv2d) -> Self {
        let [kh, _] = conv.kernel_size;
        let halo = kh / 2;
        if self.parts.len() == 1 || halo == 0 {
            return self.map(|x| conv.forward(x));
        }
        let weight = conv.weight.val();
        let bias = conv.bias.as_ref().map(Param::val);
        let options = ConvOptions::new([1, 1], [0, halo], [1, 1], 1);
        let n = self.parts.len();
        let outputs = (0..n)
            .map(|i| {
                let input = self.with_halo(i, halo);
                conv2d(input, weight.clone(), bias.clone(), options.clone())
            })
            .collect();
        Self { parts: outputs }
    }

    /// The VAE encoder's downsampling: a 3×3 convolution with stride 2 after padding one zero
    /// row below and one zero column on the right (diffusers' `(0, 1, 0, 1)`). Each band (cut at
    /// even rows) takes the first row of the band below it.
    pub fn conv_down(self, conv: &Conv2d) -> Self {
        if self.parts.len() == 1 {
            return self.map(|x| conv.forward(x));
        }
        let weight = conv.weight.val();
        let bias = conv.bias.as_ref().map(Param::val);
        let options = ConvOptions::new([2, 2], [0, 0], [1, 1], 1);
        let n = self.parts.len();
        let outputs = (0..n)
            .map(|i| {
                let part = &self.parts[i];
                let [b, c, _, w] = part.dims();
                let device = part.device();
                let below = match self.parts.get(i + 1) {
                    Some(p) => p.clone().narrow(2, 0, 1),
                    None => Tensor::<4>::zeros([b, c, 1, w], &device),
                };
                let rows = Tensor::cat(vec![part.clone(), below], 2);
                let h = rows.dims()[2];
                let padded = Tensor::cat(vec![rows, Tensor::<4>::zeros([b, c, h, 1], &device)], 3);
                conv2d(padded, weight.clone(), bias.clone(), options.clone())
            })
            .collect();
        Self { parts: outputs }
    }

    /// Band `i` with `halo` rows above and below, from its neighbours or zeros.
    fn with_halo(&self, i: usize, halo: usize) -> Tensor<4> {
        let part = &self.parts[i];
        let [b, c, _, w] = part.dims();
        let zeros = || Tensor::<4>::zeros([b, c, halo, w], &part.device());
        let above = match i.checked_sub(1).and_then(|j| self.parts.get(j)) {
            Some(p) => {
                let rows = p.dims()[2];
                p.clone().narrow(2, rows - halo, halo)
            }
            None => zeros(),
        };
        let below = match self.parts.get(i + 1) {
            Some(p) => p.clone().narrow(2, 0, halo),
            None => zeros(),
        };
        Tensor::cat(vec![above, part.clone(), below], 2)
    }
}
