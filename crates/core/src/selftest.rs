//! The GPU self-test: known inputs, exact references computed in f64, and the comparison.
//!
//! The engine runs a matmul and a conv2d on these inputs on whatever device it has (WebGPU in the
//! browser, the CPU backend natively) and this module judges the result, so that the System page can
//! say "WebGPU computes correctly here" with numbers, not just "an adapter exists".

use serde::{Deserialize, Serialize};

/// Side of the square matrices of the matmul check.
pub const MATMUL_N: usize = 64;
/// Input shape of the conv2d check, `[batch, channels, height, width]`.
pub const CONV_INPUT_SHAPE: [usize; 4] = [1, 3, 16, 16];
/// Weight shape of the conv2d check, `[out_channels, in_channels, kh, kw]` (stride 1, padding 1).
pub const CONV_WEIGHT_SHAPE: [usize; 4] = [4, 3, 3, 3];
/// Allowed error, relative to the largest magnitude of the reference output. f32 accumulation in a
/// different order (GPU tiles, SIMD) differs from the f64 reference by about 1e-6 of that.
pub const RELATIVE_TOLERANCE: f64 = 1e-4;

/// One computation checked against its reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// What was computed, e.g. `"matmul 64x64"`.
    pub name: String,
    /// Shape of the output.
    pub shape: Vec<usize>,
    /// Sum of the computed output.
    pub sum: f64,
    /// Sum of the reference output.
    pub expected_sum: f64,
    /// Largest absolute difference between computed and reference elements.
    pub max_abs_error: f64,
    /// Whether `max_abs_error` is within tolerance.
    pub passed: bool,
    /// Wall time of the computation including the read-back, in milliseconds.
    pub elapsed_ms: f64,
}

/// The whole self-test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfTestReport {
    /// The matmul check.
    pub matmul: Check,
    /// The conv2d check.
    pub conv2d: Check,
}

impl SelfTestReport {
    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.matmul.passed && self.conv2d.passed
    }
}

/// A deterministic value in [-1, 1) for position `i` of an input, distinct per `salt`.
fn pattern(i: usize, salt: usize) -> f32 {
    let v = (i * 37 + salt * 101 + 11) % 97;
    // Exact in f32: v / 48 has at most 7 significant bits beyond the point.
    (v as f32) / 48.0 - 1.0
}

/// The two `MATMUL_N × MATMUL_N` row-major input matrices.
pub fn matmul_inputs() -> (Vec<f32>, Vec<f32>) {
    let len = MATMUL_N * MATMUL_N;
    let a = (0..len).map(|i| pattern(i, 1)).collect();
    let b = (0..len).map(|i| pattern(i, 2)).collect();
    (a, b)
}

/// `a · b` for square row-major matrices of side `n`, in f64.
pub fn matmul_reference(a: &[f32], b: &[f32], n: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * n];
    for (row, out_row) in out.chunks_mut(n).enumerate() {
        for (k, &a_rk) in a[row * n..(row + 1) * n].iter().enumerate() {
            let b_row = &b[k * n..(k + 1) * n];
            for (o, &b_kc) in out_row.iter_mut().zip(b_row) {
                *o += f64::from(a_rk) * f64::from(b_kc);
            }
        }
    }
    out
}

/// Input, weight and bias of the conv2d check, row-major in their shapes.
pub fn conv_inputs() -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x_len: usize = CONV_INPUT_SHAPE.iter().product();
    let w_len: usize = CONV_WEIGHT_SHAPE.iter().product();
    let x = (0..x_len).map(|i| pattern(i, 3)).collect();
    let w = (0..w_len).map(|i| pattern(i, 4)).collect();
    let bias = (0..CONV_WEIGHT_SHAPE[0]).map(|i| pattern(i, 5)).collect();
    (x, w, bias)
}

/// Output shape of the conv2d check (stride 1, padding 1 keeps height and width).
pub fn conv_output_shape() -> [usize; 4] {
    [
        CONV_INPUT_SHAPE[0],
        CONV_WEIGHT_SHAPE[0],
        CONV_INPUT_SHAPE[2],
        CONV_INPUT_SHAPE[3],
    ]
}

/// A 3×3 convolution with stride 1 and zero padding 1, in f64 (batch 1).
pub fn conv2d_reference(x: &[f32], w: &[f32], bias: &[f32]) -> Vec<f64> {
    let [_, c_in, h, wd] = CONV_INPUT_SHAPE;
    let [c_out, _, kh, kw] = CONV_WEIGHT_SHAPE;
    let mut out = Vec::with_capacity(c_out * h * wd);
    for o in 0..c_out {
        for y in 0..h {
            for xx in 0..wd {
                let mut acc = f64::from(bias[o]);
                for c in 0..c_in {
                    for dy in 0..kh {
                        for dx in 0..kw {
                            let (Some(sy), Some(sx)) =
                                ((y + dy).checked_sub(1), (xx + dx).checked_sub(1))
                            else {
                                continue;
                            };
                            if sy >= h || sx >= wd {
                                continue;
                            }
                            let xv = x[(c * h + sy) * wd + sx];
                            let wv = w[((o * c_in + c) * kh + dy) * kw + dx];
                            acc += f64::from(xv) * f64::from(wv);
                        }
                    }
                }
                out.push(acc);
            }
        }
    }
    out
}

/// Compares a computed output with its reference.
pub fn check(name: &str, shape: &[usize], got: &[f32], expected: &[f64], elapsed_ms: f64) -> Check {
    let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1.0);
    let max_abs_error = if got.len() == expected.len() {
        got.iter()
            .zip(expected)
            .map(|(&g, &e)| (f64::from(g) - e).abs())
            // `f64::max` ignores NaN; a NaN (or infinity) anywhere must fail the check.
            .fold(0.0, |m: f64, d| {
                if d.is_finite() {
                    m.max(d)
                } else {
                    f64::INFINITY
                }
            })
    } else {
        f64::INFINITY
    };
    Check {
        name: name.to_owned(),
        shape: shape.to_vec(),
        sum: got.iter().map(|&v| f64::from(v)).sum(),
        expected_sum: expected.iter().sum(),
        max_abs_error,
        passed: max_abs_error <= RELATIVE_TOLERANCE * scale,
        elapsed_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_reference_matches_a_hand_computed_case() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [5.0, 6.0, 7.0, 8.0];
        assert_eq!(matmul_reference(&a, &b, 2), vec![19.0, 22.0, 43.0, 50.0]);
    }

    #[test]
    fn conv_reference_of_a_centred_delta_kernel_is_the_input_plus_bias() {
        let (x, _, _) = conv_inputs();
        let [c_out, c_in, kh, kw] = CONV_WEIGHT_SHAPE;
        let mut w = vec![0.0f32; c_out * c_in * kh * kw];
        // Output channel o copies input channel o % c_in.
        for o in 0..c_out {
            w[((o * c_in + o % c_in) * kh + 1) * kw + 1] = 1.0;
        }
        let bias = vec![0.5f32; c_out];
        let out = conv2d_reference(&x, &w, &bias);
        let plane = CONV_INPUT_SHAPE[2] * CONV_INPUT_SHAPE[3];
        for o in 0..c_out {
            let src = &x[(o % c_in) * plane..(o % c_in + 1) * plane];
            let dst = &out[o * plane..(o + 1) * plane];
            for (s, d) in src.iter().zip(dst) {
                assert_eq!(f64::from(*s) + 0.5, *d);
            }
        }
    }

    #[test]
    fn check_fails_on_a_wrong_value_and_on_nan() {
        let expected = vec![1.0, 2.0, 3.0];
        assert!(check("x", &[3], &[1.0, 2.0, 3.0], &expected, 0.0).passed);
        assert!(!check("x", &[3], &[1.0, 2.01, 3.0], &expected, 0.0).passed);
        assert!(!check("x", &[3], &[1.0, f32::NAN, 3.0], &expected, 0.0).passed);
        assert!(!check("x", &[2], &[1.0, 2.0], &expected, 0.0).passed);
    }
}
