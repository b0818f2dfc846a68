//! The timestep embedding (diffusers `embeddings.py`: `Timesteps` + `TimestepEmbedding`).

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor, TensorData};

use crate::nn::linear;
use crate::weights::{LoadError, Loader};

/// Sinusoidal projection of timesteps: `[cos(t·f), sin(t·f)]` (or `[sin, cos]`) with
/// `f_i = exp(-ln(10000)·i / (half − shift))`.
///
/// # Shapes
/// - returns `[timesteps.len(), dim]`
pub fn timestep_projection(
    timesteps: &[f64],
    dim: usize,
    flip_sin_to_cos: bool,
    shift: f64,
    device: &Device,
) -> Tensor<2> {
    let half = dim / 2;
    let mut values = Vec::with_capacity(timesteps.len() * dim);
    for &t in timesteps {
        let args: Vec<f32> = (0..half)
            .map(|i| {
                // Computed as torch does in f32: exponent, exp, then times t.
                let exponent = -(10000f32.ln()) * i as f32 / (half as f32 - shift as f32);
                t as f32 * exponent.exp()
            })
            .collect();
        let sin = args.iter().map(|a| a.sin());
        let cos = args.iter().map(|a| a.cos());
        if flip_sin_to_cos {
            values.extend(cos.chain(sin));
        } else {
            values.extend(sin.chain(cos));
        }
    }
    Tensor::<2>::from_data(TensorData::new(values, [timesteps.len(), dim]), device)
}

/// The guidance-scale embedding of an LCM-distilled UNet (diffusers
/// `LatentConsistencyModelPipeline.get_guidance_scale_embedding`): for `w` = guidance scale − 1,
/// `[sin(1000·w·f), cos(1000·w·f)]` with `f_i = exp(−ln(10000)·i / (half − 1))`, zero-padded to an
/// odd `dim`.
///
/// # Shapes
/// - returns `[rows, dim]` (the same embedding in every row)
pub fn guidance_embedding(w: f64, dim: usize, rows: usize, device: &Device) -> Tensor<2> {
    let half = dim / 2;
    // As torch computes it in f32: the step, the frequencies, then times 1000·w.
    let step = 10000f32.ln() / (half.saturating_sub(1).max(1)) as f32;
    let args: Vec<f32> = (0..half)
        .map(|i| (w as f32 * 1000.0) * (i as f32 * -step).exp())
        .collect();
    let mut row: Vec<f32> = args.iter().map(|a| a.sin()).collect();
    row.extend(args.iter().map(|a| a.cos()));
    row.resize(dim, 0.0);
    let values: Vec<f32> = (0..rows).flat_map(|_| row.iter().copied()).collect();
    Tensor::<2>::from_data(TensorData::new(values, [rows, dim]), device)
}

/// `linear_1 → SiLU → linear_2`, with an LCM guidance embedding added through `cond_proj` first
/// when the model has one.
#[derive(Module, Debug)]
pub struct TimestepEmbedding {
    linear_1: Linear,
    linear_2: Linear,
    cond_proj: Option<Linear>,
}

impl TimestepEmbedding {
    /// Loads `{name}.linear_1`, `{name}.linear_2` and, for `cond_dim`, `{name}.cond_proj`.
    pub fn load(
        l: &mut Loader,
        name: &str,
        d_in: usize,
        d_out: usize,
        cond_dim: Option<usize>,
    ) -> Result<Self, LoadError> {
        Ok(Self {
            linear_1: linear(l, &format!("{name}.linear_1"), d_in, d_out, true)?,
            linear_2: linear(l, &format!("{name}.linear_2"), d_out, d_out, true)?,
            cond_proj: cond_dim
                .map(|d| linear(l, &format!("{name}.cond_proj"), d, d_in, false))
                .transpose()?,
        })
    }

    /// # Shapes
    /// - `x`: `[b, d_in]`, `cond`: `[b, cond_dim]` (ignored without `cond_proj`) → `[b, d_out]`
    pub fn forward(&self, x: Tensor<2>, cond: Option<Tensor<2>>) -> Tensor<2> {
        let x = match (&self.cond_proj, cond) {
            (Some(proj), Some(cond)) => x + proj.forward(cond),
            _ => x,
        };
        self.linear_2.forward(silu(self.linear_1.forward(x)))
    }
}
