//! Softmax over the last axis for the CPU backend, with an exponential the compiler vectorises.
//!
//! burn's CPU backend (`flex`) calls the C library's scalar `expf` once per attention score: on
//! the tiny model that was a quarter of a UNet step. Here the scores are read into host memory
//! (where `flex` keeps them anyway), each row is exponentiated eight lanes at a time with a
//! polynomial accurate to about one unit in the last place, and the rows are written back. Other
//! backends keep burn's softmax (their kernels run on the device).

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};

/// `softmax(x · scale)` over the last axis: on the CPU backend with [`softmax_rows`], elsewhere
/// (and where gradients flow) with burn's kernel.
///
/// # Shapes
/// - `x`: `[b, heads, nq, nk]` → same shape
pub fn softmax_last(x: Tensor<4>, scale: f32) -> Tensor<4> {
    let device = x.device();
    // Autodiff tensors (prompt travel's gradient steps) keep burn's kernel and its graph.
    if device != Device::flex() || x.is_autodiff() {
        return softmax(x * scale, 3);
    }
    let [.., row] = x.dims();
    // flex keeps tensors in host memory: reading one moves its bytes out (no copy, cannot fail).
    let mut data = x.into_data();
    match data.as_mut_slice::<f32>() {
        Ok(values) => softmax_rows(values, row, scale),
        Err(_) => return softmax(Tensor::from_data(data, &device) * scale, 3),
    }
    Tensor::from_data(data, &device)
}

/// Lanes of the vectorised loops (two AVX registers, four SSE or wasm SIMD ones).
const LANES: usize = 8;

/// `softmax(row · scale)` in place for each `row`-long row of `values` (a shorter tail is left as
/// it is; callers pass whole rows). A row whose largest value is `-inf` or NaN becomes NaN, as
/// torch's.
pub fn softmax_rows(values: &mut [f32], row: usize, scale: f32) {
    if row == 0 {
        return;
    }
    for r in values.chunks_exact_mut(row) {
        softmax_row(r, scale);
    }
}

fn softmax_row(row: &mut [f32], scale: f32) {
    let shift = max(row) * scale;
    // Separate passes: a loop without a reduction is what the compiler vectorises.
    row.iter_mut().for_each(|v| *v = exp(*v * scale - shift));
    let inv = 1.0 / sum(row);
    row.iter_mut().for_each(|v| *v *= inv);
}

/// The sum, in eight running lanes.
fn sum(row: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (s, &v) in lanes.iter_mut().zip(chunk) {
            *s += v;
        }
    }
    lanes.iter().chain(chunks.remainder()).sum()
}

/// The largest value (NaN if any is NaN, so that a broken row stays visibly broken).
fn max(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, &v) in lanes.iter_mut().zip(chunk) {
            *m = if v > *m || v.is_nan() { v } else { *m };
        }
    }
    let tail = chunks.remainder().iter();
    lanes.iter().chain(tail).fold(
        f32::NEG_INFINITY,
        |m, &v| {
            if v > m || v.is_nan() { v } else { m }
        },
    )
}

/// `e^x` to about one unit in the last place, for `x ≤ 0` (softmax's shifted scores); 0 below
/// `e^-87.3` (the smallest normal f32), NaN for NaN. Branch-free and without float-to-integer
/// casts so that loops over it vectorise: `x = k·ln 2 + r` with `|r| ≤ ln 2 / 2`, `e^r` by its
/// Taylor polynomial to degree 7 (error below 1e-8), `2^k` made from the bits of `k + 127`.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that k·LN2_HI is exact for the k that occur.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5·2^23 rounds to an integer held in the low mantissa bits; the extra 127 is the
    // exponent's bias, so those bits are already `k + 127`.
    const MAGIC: f32 = 12_582_912.0 + 127.0;
    const MIN: f32 = -87.336_55;
    let clamped = x.clamp(MIN, 0.0);
    let t = clamped * LOG2_E + MAGIC;
    let k = t - MAGIC;
    let r = (clamped - k * LN2_HI) - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // `k + 127` is in 1..=127: shifted into the exponent field, the rest of `t` shifts out.
    let two_k = f32::from_bits(t.to_bits() << 23);
    // NaN stays NaN through every step above (`x < MIN` is false for it).
    if x < MIN { 0.0 } else { p * two_k }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn exp_is_within_two_ulps_of_the_library() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x <= 0.0 {
            let ours = exp(x) as f64;
            let exact = (x as f64).exp();
            worst = worst.max(((ours - exact) / exact).abs());
            x += 0.000_37;
        }
        assert!(worst < 2.5e-7, "worst relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
    }

    /// Rows of every length the loops split differently (shorter than the lanes, whole lanes, a
    /// remainder), with a scale, against f64.
    #[test]
    fn rows_equal_a_double_precision_softmax() {
        for row in [1usize, 3, 8, 13, 77, 1024] {
            let values: Vec<f32> = (0..2 * row)
                .map(|i| ((i * 7919 % 1000) as f32 / 37.0) - 13.0)
                .collect();
            let mut ours = values.clone();
            softmax_rows(&mut ours, row, 0.3);
            for (r, out) in values.chunks(row).zip(ours.chunks(row)) {
                let m = r.iter().fold(f64::MIN, |m, &v| m.max(v as f64 * 0.3));
                let e: Vec<f64> = r.iter().map(|&v| (v as f64 * 0.3 - m).exp()).collect();
                let s: f64 = e.iter().sum();
                for (o, e) in out.iter().zip(&e) {
                    assert!(
                        (*o as f64 - e / s).abs() < 1e-6,
                        "row {row}: {o} vs {}",
                        e / s
                    );
                }
            }
        }
    }

    #[test]
    fn masked_keys_get_nothing_and_a_fully_masked_row_is_nan() {
        let mut values = vec![0.0, f32::NEG_INFINITY, 1.0, f32::NEG_INFINITY];
        softmax_rows(&mut values, 2, 1.0);
        assert_eq!(values[1], 0.0);
        assert!((values[0] - 1.0).abs() < 1e-7);
        let mut masked = vec![f32::NEG_INFINITY; 3];
        softmax_rows(&mut masked, 3, 1.0);
        assert!(masked.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn the_cpu_tensor_path_equals_burns_softmax() {
        let device = Device::flex();
        let values: Vec<f32> = (0..2 * 3 * 5 * 19)
            .map(|i| (i as f32 * 0.37).sin() * 9.0)
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(values, [2, 3, 5, 19]), &device);
        let ours: Vec<f32> = softmax_last(x.clone(), 0.25)
            .into_data()
            .try_to_vec()
            .unwrap_or_default();
        let burns: Vec<f32> = softmax(x * 0.25, 3)
            .into_data()
            .try_to_vec()
            .unwrap_or_default();
        assert_eq!((ours.len(), burns.len()), (2 * 3 * 5 * 19, 2 * 3 * 5 * 19));
        for (a, b) in ours.iter().zip(&burns) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
