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

/// `linear_1 → SiLU → linear_2`.
#[derive(Module, Debug)]
pub struct TimestepEmbedding {
    linear_1: Linear,
    linear_2: Linear,
}

impl TimestepEmbedding {
    /// Loads `{name}.linear_1` and `{name}.linear_2`.
    pub fn load(l: &mut Loader, name: &str, d_in: usize, d_out: usize) -> Result<Self, LoadError> {
        Ok(Self {
            linear_1: linear(l, &format!("{name}.linear_1"), d_in, d_out, true)?,
            linear_2: linear(l, &format!("{name}.linear_2"), d_out, d_out, true)?,
        })
    }

    /// # Shapes
    /// - `x`: `[b, d_in]` → `[b, d_out]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.linear_2.forward(silu(self.linear_1.forward(x)))
    }
}
