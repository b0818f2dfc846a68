//! int8 weights: symmetric block quantization done by us, in plain Rust, so a quantized model is the
//! same bytes natively and in the browser and can be saved and loaded again exactly.
//!
//! A weight of stored shape `[d0, rest…]` is split into blocks of `block` consecutive rows of
//! dimension 0 at each position of the other dimensions: for a linear weight (PyTorch `[out, in]`)
//! a block is `block` outputs of one input, which is burn's per-block layout of the transposed
//! `[in, out]` weight the engine multiplies by. Each block has one f32 scale, `max |w| / 127`, and
//! the values are `round(w / scale)` in `-127..=127`. The scales are stored as a tensor of shape
//! `[d0 / block, rest…]` under the weight's key plus [`SCALE_SUFFIX`].

use burn::tensor::quantization::{QuantScheme, QuantValue, ScaleDtype};
use burn::tensor::{Device, Tensor, TensorData};

/// The key suffix of a quantized tensor's scales.
pub const SCALE_SUFFIX: &str = ".q8scale";

/// The largest block, in rows of dimension 0.
pub const MAX_BLOCK: usize = 32;

/// How the weights of a model are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Every tensor as stored, computed in f32.
    #[default]
    F32,
    /// Weight matrices (linear, convolution, the token embedding) of the text encoder, UNet and
    /// VAE as int8 blocks; every other tensor (biases, norms, position embeddings) rounded to
    /// f16. Linear weights stay quantized on the device (burn's `linear` multiplies them
    /// without dequantizing); convolution weights and the embedding table are dequantized when
    /// loaded, because burn's conv2d would dequantize on every call and its gather cannot read
    /// a quantized table.
    Int8,
}

impl Precision {
    /// Parses `f32` or `int8`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float" => Some(Self::F32),
            "int8" | "q8" | "i8" => Some(Self::Int8),
            _ => None,
        }
    }

    /// The name [`Precision::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Int8 => "int8",
        }
    }
}

/// A block-quantized tensor in its stored layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Q8 {
    /// Stored shape, dimension 0 first.
    pub shape: Vec<usize>,
    /// Rows of dimension 0 per block.
    pub block: usize,
    /// One value per element, row-major.
    pub values: Vec<i8>,
    /// One scale per block, laid out as `[shape[0] / block, rest…]`.
    pub scales: Vec<f32>,
}

/// The block for a dimension 0 of `rows`: the largest power of two up to [`MAX_BLOCK`] dividing it.
pub fn block_for(rows: usize) -> usize {
    let mut block = MAX_BLOCK;
    while block > 1 && !rows.is_multiple_of(block) {
        block /= 2;
    }
    block
}

impl Q8 {
    /// Quantizes `values` of `shape` with the block [`block_for`] its first dimension.
    pub fn quantize(values: &[f32], shape: &[usize]) -> Self {
        let rows = shape.first().copied().unwrap_or(1).max(1);
        let inner = values.len() / rows;
        let block = block_for(rows);
        let groups = rows / block;
        let mut scales = vec![0.0f32; groups * inner];
        for (index, &v) in values.iter().enumerate() {
            let slot = (index / inner / block) * inner + index % inner;
            scales[slot] = scales[slot].max(v.abs());
        }
        for s in &mut scales {
            *s = if *s > 0.0 && s.is_finite() {
                *s / 127.0
            } else {
                1.0
            };
        }
        let values = values
            .iter()
            .enumerate()
            .map(|(index, &v)| {
                let scale = scales[(index / inner / block) * inner + index % inner];
                (v / scale).round().clamp(-127.0, 127.0) as i8
            })
            .collect();
        Self {
            shape: shape.to_vec(),
            block,
            values,
            scales,
        }
    }

    /// Assembles stored values and scales, checking that they fit `shape`. The block follows from
    /// the scales' first dimension.
    pub fn from_parts(
        shape: Vec<usize>,
        values: Vec<i8>,
        scale_shape: &[usize],
        scales: Vec<f32>,
    ) -> Result<Self, String> {
        let rows = shape.first().copied().unwrap_or(1).max(1);
        let groups = scale_shape.first().copied().unwrap_or(0);
        let elements: usize = shape.iter().product();
        let fits = groups > 0
            && rows.is_multiple_of(groups)
            && scale_shape.get(1..) == shape.get(1..)
            && values.len() == elements
            && scales.len() * (rows / groups) == elements;
        if !fits {
            return Err(format!(
                "scales of shape {scale_shape:?} do not fit a weight of shape {shape:?}"
            ));
        }
        Ok(Self {
            block: rows / groups,
            shape,
            values,
            scales,
        })
    }

    /// The shape of [`Q8::scales`].
    pub fn scale_shape(&self) -> Vec<usize> {
        let mut shape = self.shape.clone();
        if let Some(first) = shape.first_mut() {
            *first /= self.block.max(1);
        }
        shape
    }

    fn inner(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// The f32 values the quantized ones stand for.
    pub fn dequantize(&self) -> Vec<f32> {
        let inner = self.inner().max(1);
        let block = self.block.max(1);
        self.values
            .iter()
            .enumerate()
            .map(|(index, &q)| {
                let scale = self.scales[(index / inner / block) * inner + index % inner];
                scale * f32::from(q)
            })
            .collect()
    }

    /// Rows `start..end` of dimension 0; both must lie on block boundaries (OpenCLIP's stacked
    /// q, k, v do: their row counts are multiples of the block).
    pub fn rows(&self, start: usize, end: usize) -> Option<Self> {
        let inner = self.inner();
        let block = self.block.max(1);
        let rows = self.shape.first().copied().unwrap_or(0);
        if start > end || end > rows || !start.is_multiple_of(block) || !end.is_multiple_of(block) {
            return None;
        }
        let mut shape = self.shape.clone();
        shape[0] = end - start;
        Some(Self {
            shape,
            block,
            values: self.values.get(start * inner..end * inner)?.to_vec(),
            scales: self
                .scales
                .get(start / block * inner..end / block * inner)?
                .to_vec(),
        })
    }

    /// Whether burn can hold this `[out, in]` weight quantized: its GPU backend packs four values
    /// into each 32-bit word along `out`. Others are dequantized when loaded.
    pub fn packs_in_words(&self) -> bool {
        self.shape.first().is_some_and(|out| out.is_multiple_of(4))
    }

    /// A 2-D `[out, in]` weight as burn's quantized `[in, out]` tensor for `linear`: values
    /// transposed, blocks of [`Q8::block`] along `out`, the innermost dimension.
    ///
    /// # Shapes
    /// - returns: `[in, out]`
    pub fn linear_weight(&self, device: &Device) -> Tensor<2> {
        let d_out = self.shape.first().copied().unwrap_or(1);
        let d_in = self.inner();
        let groups = d_out / self.block.max(1);
        let mut values = vec![0i8; self.values.len()];
        for o in 0..d_out {
            for i in 0..d_in {
                values[i * d_out + o] = self.values[o * d_in + i];
            }
        }
        let mut scales = vec![0.0f32; self.scales.len()];
        for g in 0..groups {
            for i in 0..d_in {
                scales[i * groups + g] = self.scales[g * d_in + i];
            }
        }
        let block = u8::try_from(self.block).unwrap_or(1);
        let scheme = QuantScheme::default()
            .with_value(QuantValue::Q8S)
            .per_block([block], ScaleDtype::F32);
        Tensor::from_data(
            TensorData::quantized(values, [d_in, d_out], scheme, &scales, None),
            device,
        )
    }

    /// Bytes when stored: one per value, four per scale.
    pub fn stored_bytes(&self) -> usize {
        self.values.len() + 4 * self.scales.len()
    }
}

/// `values` rounded to the nearest f16 (how [`Precision::Int8`] holds tensors it does not
/// quantize).
pub fn round_f16(values: &mut [f32]) {
    for v in values {
        *v = half::f16::from_f32(*v).to_f32();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_the_largest_power_of_two_up_to_32_dividing_the_rows() {
        assert_eq!(block_for(320), 32);
        assert_eq!(block_for(3 * 1024), 32);
        assert_eq!(block_for(8), 8);
        assert_eq!(block_for(4), 4);
        assert_eq!(block_for(12), 4);
        assert_eq!(block_for(7), 1);
    }

    #[test]
    fn quantize_keeps_each_value_within_half_a_step_and_the_peak_exact() {
        let shape = [64, 3];
        let values: Vec<f32> = (0..192)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let q = Q8::quantize(&values, &shape);
        assert_eq!(q.block, 32);
        assert_eq!(q.scale_shape(), vec![2, 3]);
        let back = q.dequantize();
        for (index, (a, b)) in values.iter().zip(&back).enumerate() {
            let scale = q.scales[(index / 3 / 32) * 3 + index % 3];
            assert!((a - b).abs() <= scale * 0.5 + 1e-6, "{index}: {a} vs {b}");
        }
        assert!(q.values.iter().any(|&v| v == 127 || v == -127));
    }

    #[test]
    fn a_zero_block_and_a_non_finite_peak_do_not_divide_by_zero() {
        let q = Q8::quantize(&[0.0; 8], &[8]);
        assert_eq!(q.dequantize(), vec![0.0; 8]);
        assert!(q.scales.iter().all(|s| *s == 1.0));
    }

    #[test]
    fn parts_are_checked_against_the_shape() {
        let q = Q8::quantize(&[1.0; 64], &[32, 2]);
        let again = Q8::from_parts(
            q.shape.clone(),
            q.values.clone(),
            &q.scale_shape(),
            q.scales.clone(),
        )
        .unwrap();
        assert_eq!(again, q);
        let err = Q8::from_parts(vec![32, 2], q.values.clone(), &[3, 2], q.scales.clone());
        assert!(err.unwrap_err().contains("[3, 2]"));
    }

    #[test]
    fn rows_on_block_boundaries_slice_values_and_scales() {
        let values: Vec<f32> = (0..96 * 2).map(|i| i as f32).collect();
        let q = Q8::quantize(&values, &[96, 2]);
        let middle = q.rows(32, 64).unwrap();
        assert_eq!(middle.shape, vec![32, 2]);
        assert_eq!(middle.dequantize(), q.dequantize()[64..128].to_vec());
        assert!(q.rows(16, 48).is_none());
    }

    #[test]
    fn burn_reads_the_linear_weight_as_our_transposed_dequantization() {
        let (d_out, d_in) = (64, 3);
        let values: Vec<f32> = (0..d_out * d_in)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 11.0)
            .collect();
        let q = Q8::quantize(&values, &[d_out, d_in]);
        let ours = q.dequantize();
        let weight = q.linear_weight(&Device::flex()).dequantize();
        let theirs: Vec<f32> = weight.into_data().try_to_vec().unwrap();
        for o in 0..d_out {
            for i in 0..d_in {
                assert_eq!(theirs[i * d_out + o], ours[o * d_in + i], "({o}, {i})");
            }
        }
    }

    #[test]
    fn precision_names_round_trip() {
        for p in [Precision::F32, Precision::Int8] {
            assert_eq!(Precision::parse(p.name()), Some(p));
        }
        assert_eq!(Precision::parse("q4"), None);
    }
}
