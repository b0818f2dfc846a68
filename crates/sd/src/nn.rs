//! Building burn's layers from stored weights (PyTorch layouts), and small shared functions.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, LayerNorm, LayerNormConfig, Linear, PaddingConfig2d};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};

use crate::weights::{LoadError, Loader, Weight};

/// A linear layer from `{name}.weight` (PyTorch `[out, in]`) and, if `bias`, `{name}.bias`. An
/// int8 weight stays quantized on the device (burn's `linear` multiplies it without dequantizing).
pub fn linear(
    l: &mut Loader,
    name: &str,
    d_in: usize,
    d_out: usize,
    bias: bool,
) -> Result<Linear, LoadError> {
    let weight = match l.weight(&format!("{name}.weight"), &[d_out, d_in])? {
        Weight::Q8(q) if q.packs_in_words() => q.linear_weight(l.device()),
        Weight::Q8(q) => float_linear_weight(&q.dequantize(), d_out, d_in, l.device()),
        Weight::Float(values) => float_linear_weight(&values, d_out, d_in, l.device()),
    };
    let bias = if bias {
        Some(Param::from_tensor(
            l.tensor(&format!("{name}.bias"), [d_out])?,
        ))
    } else {
        None
    };
    Ok(Linear {
        weight: Param::from_tensor(weight),
        bias,
    })
}

/// A PyTorch `[out, in]` weight as burn's `[in, out]`.
fn float_linear_weight(values: &[f32], d_out: usize, d_in: usize, device: &Device) -> Tensor<2> {
    Tensor::<2>::from_data(
        TensorData::new(transpose(values, d_out, d_in), [d_in, d_out]),
        device,
    )
}

fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// Shape and placement of a 2-D convolution.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding (top, left, bottom, right).
    pub padding: [usize; 4],
}

impl ConvSpec {
    /// A `k`×`k` convolution with stride 1 and "same" padding.
    pub fn same(c_in: usize, c_out: usize, kernel: usize) -> Self {
        let p = kernel / 2;
        Self {
            c_in,
            c_out,
            kernel,
            stride: 1,
            padding: [p; 4],
        }
    }
}

/// A convolution from `{name}.weight` (`[out, in, k, k]`) and `{name}.bias`. An int8 weight is
/// dequantized here, once: burn's conv2d would otherwise dequantize it on every call.
pub fn conv2d(l: &mut Loader, name: &str, spec: ConvSpec) -> Result<Conv2d, LoadError> {
    let k = spec.kernel;
    let weight = l.dequantized(&format!("{name}.weight"), [spec.c_out, spec.c_in, k, k])?;
    let bias = l.tensor(&format!("{name}.bias"), [spec.c_out])?;
    let [top, left, bottom, right] = spec.padding;
    Ok(Conv2d {
        weight: Param::from_tensor(weight),
        bias: Some(Param::from_tensor(bias)),
        stride: [spec.stride; 2],
        kernel_size: [k; 2],
        dilation: [1, 1],
        groups: 1,
        padding: PaddingConfig2d::Explicit(top, left, bottom, right),
    })
}

/// A GroupNorm from `{name}.weight` and `{name}.bias`.
pub fn group_norm(
    l: &mut Loader,
    name: &str,
    groups: usize,
    channels: usize,
    eps: f64,
) -> Result<GroupNorm, LoadError> {
    Ok(GroupNorm {
        gamma: Some(Param::from_tensor(
            l.tensor(&format!("{name}.weight"), [channels])?,
        )),
        beta: Some(Param::from_tensor(
            l.tensor(&format!("{name}.bias"), [channels])?,
        )),
        num_groups: groups,
        num_channels: channels,
        epsilon: eps,
        affine: true,
    })
}

/// A LayerNorm over the last dimension from `{name}.weight` and `{name}.bias`.
pub fn layer_norm(l: &mut Loader, name: &str, d: usize, eps: f64) -> Result<LayerNorm, LoadError> {
    let mut norm = LayerNormConfig::new(d).with_epsilon(eps).init(l.device());
    norm.gamma = Param::from_tensor(l.tensor(&format!("{name}.weight"), [d])?);
    norm.beta = Some(Param::from_tensor(l.tensor(&format!("{name}.bias"), [d])?));
    Ok(norm)
}

/// `x * sigmoid(1.702 x)`, OpenAI CLIP's activation.
pub fn quick_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone() * sigmoid(x * 1.702)
}

#[cfg(test)]
mod tests {
    #[test]
    fn transpose_swaps_rows_and_columns() {
        assert_eq!(
            super::transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }
}
