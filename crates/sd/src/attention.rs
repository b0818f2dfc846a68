//! Multi-head scaled dot-product attention: materialising the probabilities where attention taps
//! (heatmaps, cross-frame blending) read or replace them, in query chunks that keep every buffer
//! within the device's limit otherwise.

use burn::tensor::Tensor;

use crate::softmax::softmax_last;

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
    let scale = 1.0 / (d.max(1) as f32).sqrt();
    let scores = q.matmul(k.swap_dims(2, 3));
    match bias {
        Some(bias) => softmax_last(scores * scale + bias, 1.0),
        None => softmax_last(scores, scale),
    }
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

/// `apply(probabilities(q, k), v)`, computed in query chunks whose scores stay within the
/// thread's buffer limit ([`crate::limits::buffer_limit`]).
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
    let (q, k, v) = (
        split_heads(q, heads),
        split_heads(k, heads),
        split_heads(v, heads),
    );
    let limit = score_limit(&q.device());
    join_heads(chunked(q, k, v, bias, limit))
}

/// Bytes of attention scores one query chunk may hold on `device`: the buffer limit, and on the
/// CPU at most what stays in its cache between the softmax and the product with the values.
pub fn score_limit(device: &burn::tensor::Device) -> u64 {
    const CPU_SCORES: u64 = 1 << 20;
    let limit = crate::limits::buffer_limit();
    if *device == burn::tensor::Device::flex() {
        limit.min(CPU_SCORES)
    } else {
        limit
    }
}

/// How many queries one chunk may hold so that its `[b, heads, rows, nk]` f32 scores fit in
/// `limit` bytes (at least one).
pub fn query_rows(batch: usize, heads: usize, keys: usize, limit: u64) -> usize {
    let per_row = (batch * heads * keys) as u64 * 4;
    (limit / per_row.max(1)).max(1) as usize
}

/// `softmax(q kᵀ / √d + bias) v` without the whole score matrix: queries are taken in chunks whose
/// scores fit in `limit` bytes (diffusers' sliced attention, over queries). Each query's row is
/// computed exactly as unchunked; one chunk when everything fits.
///
/// # Shapes
/// - `q`: `[b, heads, nq, d]`, `k`, `v`: `[b, heads, nk, d]`
/// - `bias`: broadcastable to `[b, heads, nq, nk]`
/// - returns `[b, heads, nq, d]`
pub fn chunked(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Option<Tensor<4>>,
    limit: u64,
) -> Tensor<4> {
    let [b, heads, nq, _] = q.dims();
    let [_, _, nk, _] = k.dims();
    let rows = query_rows(b, heads, nk, limit);
    if rows >= nq {
        return head_probabilities(q, k, bias).matmul(v);
    }
    let chunks: Vec<Tensor<4>> = (0..nq)
        .step_by(rows)
        .map(|start| {
            let len = rows.min(nq - start);
            let bias = bias.as_ref().map(|bias| match bias.dims()[2] {
                1 => bias.clone(),
                _ => bias.clone().narrow(2, start, len),
            });
            head_probabilities(q.clone().narrow(2, start, len), k.clone(), bias).matmul(v.clone())
        })
        .collect();
    Tensor::cat(chunks, 2)
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

    fn random(shape: [usize; 4], seed: u32, device: &Device) -> Tensor<4> {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|i| {
                let x = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
                (x % 2000) as f32 / 1000.0 - 1.0
            })
            .collect();
        Tensor::<4>::from_data(TensorData::new(values, shape), device)
    }

    #[test]
    fn chunked_attention_equals_the_whole_matrix() {
        let device = Device::flex();
        let (q, k, v) = (
            random([2, 3, 37, 8], 1, &device),
            random([2, 3, 37, 8], 2, &device),
            random([2, 3, 37, 8], 3, &device),
        );
        let causal: Vec<f32> = (0..37 * 37)
            .map(|i| if i % 37 > i / 37 { -1e9 } else { 0.0 })
            .collect();
        let causal = Tensor::<4>::from_data(TensorData::new(causal, [1, 1, 37, 37]), &device);
        for bias in [None, Some(causal)] {
            let whole = head_probabilities(q.clone(), k.clone(), bias.clone()).matmul(v.clone());
            // 2 × 3 × 37 floats per query row: 5 rows per chunk, the last chunk 2 rows.
            let limit = 5 * 2 * 3 * 37 * 4;
            assert_eq!(query_rows(2, 3, 37, limit), 5);
            let parts = chunked(q.clone(), k.clone(), v.clone(), bias, limit);
            assert_eq!(parts.dims(), [2, 3, 37, 8]);
            let diff: f32 = (whole - parts).abs().max().into_scalar();
            assert!(diff < 1e-6, "{diff}");
        }
        // A limit below one row still makes progress, one query at a time.
        assert_eq!(query_rows(2, 3, 37, 1), 1);
    }
}
