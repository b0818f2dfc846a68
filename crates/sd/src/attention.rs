//! Multi-head scaled dot-product attention, materialising the probabilities so that attention taps
//! (heatmaps, cross-frame blending) can read or replace them.

use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

/// Splits `[b, n, heads·d]` into `[b, heads, n, d]`.
pub fn split_heads(x: Tensor<3>, heads: usize) -> Tensor<4> {
    let [b, n, c] = x.dims();
    x.reshape([b, n, heads, c / heads.max(1)]).swap_dims(1, 2)
}

/// Joins `[b, heads, n, d]` into `[b, n, heads·d]`.
pub fn join_heads(x: Tensor<4>) -> Tensor<3> {
    let [b, h, n, d] = x.dims();
    x.swap_dims(1, 2).reshape([b, n, h * d])
}

/// Attention probabilities `softmax(q kᵀ / √d + bias)`.
///
/// # Shapes
/// - `q`: `[b, nq, heads·d]`, `k`: `[b, nk, heads·d]`
/// - `bias`: broadcastable to `[b, heads, nq, nk]` (e.g. a causal mask `[1, 1, nq, nk]`)
/// - returns `[b, heads, nq, nk]`
pub fn probabilities(
    q: Tensor<3>,
    k: Tensor<3>,
    heads: usize,
    bias: Option<Tensor<4>>,
) -> Tensor<4> {
    head_probabilities(split_heads(q, heads), split_heads(k, heads), bias)
}

/// [`probabilities`] of projections already split into heads.
///
/// # Shapes
/// - `q`: `[b, heads, nq, d]`, `k`: `[b, heads, nk, d]` → `[b, heads, nq, nk]`
pub fn head_probabilities(q: Tensor<4>, k: Tensor<4>, bias: Option<Tensor<4>>) -> Tensor<4> {
    let [_, _, _, d] = q.dims();
    let scale = 1.0 / (d.max(1) as f64).sqrt();
    let scores = q.matmul(k.swap_dims(2, 3)) * scale;
    let scores = match bias {
        Some(bias) => scores + bias,
        None => scores,
    };
    softmax(scores, 3)
}

/// Applies attention probabilities to values.
///
/// # Shapes
/// - `probs`: `[b, heads, nq, nk]`, `v`: `[b, nk, heads·d]`
/// - returns `[b, nq, heads·d]`
pub fn apply(probs: Tensor<4>, v: Tensor<3>) -> Tensor<3> {
    let [_, heads, _, _] = probs.dims();
    join_heads(probs.matmul(split_heads(v, heads)))
}

/// `apply(probabilities(q, k), v)`.
///
/// # Shapes
/// - `q`: `[b, nq, c]`, `k`, `v`: `[b, nk, c]` → `[b, nq, c]`
pub fn attend(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    heads: usize,
    bias: Option<Tensor<4>>,
) -> Tensor<3> {
    apply(probabilities(q, k, heads, bias), v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn one_key_gets_all_the_weight_and_heads_stay_separate() {
        let device = Device::flex();
        // 2 heads of width 1; one query, two keys.
        let q = Tensor::<3>::from_data(TensorData::new(vec![10.0f32, -10.0], [1, 1, 2]), &device);
        let k = Tensor::<3>::from_data(
            TensorData::new(vec![1.0f32, 1.0, -1.0, -1.0], [1, 2, 2]),
            &device,
        );
        let v = Tensor::<3>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 2, 2]),
            &device,
        );
        let out: Vec<f32> = attend(q, k, v, 2, None).into_data().try_to_vec().unwrap();
        // head 0 prefers key 0 (value 1), head 1 prefers key 1 (value 4).
        assert!(
            (out[0] - 1.0).abs() < 1e-6 && (out[1] - 4.0).abs() < 1e-6,
            "{out:?}"
        );
    }
}
