//! Spherical interpolation along the last dimension (Birch-san's `slerp`, used by
//! Attention-Interpolation, seeds.md §4): each row `v0`, `v1` is mixed as
//! `sin((1−t)θ)/sin θ · v0 + sin(tθ)/sin θ · v1`, θ the angle between the rows, and linearly
//! (`(1−t)·v0 + t·v1`) where the rows are nearly parallel (`|cos θ| > 0.9995`) or one is zero.
//! The rows are not normalised: rows of equal norm keep that norm along the arc, and `t = 0` and
//! `t = 1` give `v0` and `v1` exactly.

use burn::tensor::Tensor;

/// Above this `|cos θ|` the rows are mixed linearly.
pub const DOT_THRESHOLD: f64 = 0.9995;

/// Slerp of every row (last dimension) of `v0` towards `v1` by `t`.
///
/// # Shapes
/// - `v0`, `v1`: `[…, n]` (the same) → `[…, n]`
pub fn slerp<const D: usize>(t: f64, v0: Tensor<D>, v1: Tensor<D>) -> Tensor<D> {
    slerp_rows(t, v0, v1, true)
}

/// Prompt travel's slerp: the same, but only rows with `cos θ > 0.9995` (not `|cos θ|`) are
/// mixed linearly, as prompt-travel's `slerp` tests `dot > DOT_THRESHOLD`.
///
/// # Shapes
/// - `v0`, `v1`: `[…, n]` (the same) → `[…, n]`
pub fn slerp_signed<const D: usize>(t: f64, v0: Tensor<D>, v1: Tensor<D>) -> Tensor<D> {
    slerp_rows(t, v0, v1, false)
}

fn slerp_rows<const D: usize>(t: f64, v0: Tensor<D>, v1: Tensor<D>, abs: bool) -> Tensor<D> {
    let last = D - 1;
    let norm0 = v0.clone().square().sum_dim(last).sqrt();
    let norm1 = v1.clone().square().sum_dim(last).sqrt();
    let dot = (v0.clone() * v1.clone()).sum_dim(last) / (norm0 * norm1);
    let near = if abs { dot.clone().abs() } else { dot.clone() };
    let linear = near
        .greater_elem(DOT_THRESHOLD)
        .bool_or(dot.clone().is_nan());
    let theta = dot.clamp(-1.0, 1.0).acos();
    let sin_theta = theta.clone().sin();
    let theta_t = theta.clone() * t;
    let s0 = (theta - theta_t.clone()).sin() / sin_theta.clone();
    let s1 = theta_t.sin() / sin_theta;
    let s0 = s0.mask_fill(linear.clone(), 1.0 - t);
    let s1 = s1.mask_fill(linear, t);
    v0 * s0 + v1 * s1
}

/// The same for one row on the CPU (a reference, and for small vectors).
pub fn slerp_row(t: f64, v0: &[f32], v1: &[f32]) -> Vec<f32> {
    let dot: f64 = v0
        .iter()
        .zip(v1)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
    let cos = dot / (norm(v0) * norm(v1));
    let (s0, s1) = if cos.is_nan() || cos.abs() > DOT_THRESHOLD {
        (1.0 - t, t)
    } else {
        let theta = cos.clamp(-1.0, 1.0).acos();
        (
            (theta - theta * t).sin() / theta.sin(),
            (theta * t).sin() / theta.sin(),
        )
    };
    let mix = |(a, b): (&f32, &f32)| (f64::from(*a) * s0 + f64::from(*b) * s1) as f32;
    v0.iter().zip(v1).map(mix).collect()
}
