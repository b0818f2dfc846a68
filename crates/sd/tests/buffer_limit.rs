//! The engine within a buffer limit: attention in query chunks, the feed-forward in token chunks
//! and the VAE's decoder and encoder in bands of rows give the output of the whole-tensor path. A tiny limit
//! forces every chunked path at the tiny model's sizes.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is how a test fails"
)]

mod common;
use common::{relative_diff, values};

use keyshift_core::tokens::ClipTokenizer;
use keyshift_sd::Device;
use keyshift_sd::bands::rows_within;
use keyshift_sd::hooks::NoHook;
use keyshift_sd::limits::{WEBGPU_DEFAULT, buffer_limit, with_buffer_limit};
use keyshift_sd::pipeline::latent;

fn noise(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let x = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 9;
            (x % 4000) as f32 / 1000.0 - 2.0
        })
        .collect()
}

/// 64 KiB: the tiny UNet's self-attention at 16² (8 heads × 256 keys × 4 bytes = 8 KiB per query)
/// runs 8 queries at a time, and its 64-channel decoder level at 64² holds 2 rows a band.
const TINY_LIMIT: u64 = 64 << 10;

#[test]
fn chunked_unet_and_banded_decoder_equal_the_whole_tensors() {
    let device = Device::flex();
    let model = common::tiny_model(&device);
    let tokenizer = ClipTokenizer::embedded().unwrap();
    let context = common::sd1_context(&model, &tokenizer, "a photo of a cat", 1);
    let x = || latent(noise(4 * 32 * 32, 3), [1, 4, 32, 32], &device);
    assert_eq!(buffer_limit(), WEBGPU_DEFAULT);
    let whole = values(model.unet.forward(x(), 500.0, &context, &mut NoHook));
    let chunked = with_buffer_limit(TINY_LIMIT, || {
        values(model.unet.forward(x(), 500.0, &context, &mut NoHook))
    });
    let d = relative_diff(&chunked, &whole);
    assert!(d < 1e-4, "UNet: {d}");
    assert_eq!(buffer_limit(), WEBGPU_DEFAULT, "the limit is restored");

    let z = || latent(noise(4 * 32 * 32, 5), [1, 4, 32, 32], &device);
    let whole = values(model.vae.decode(z()));
    assert_eq!(rows_within(1, 64, 64, TINY_LIMIT), 2);
    let banded = with_buffer_limit(TINY_LIMIT, || values(model.vae.decode(z())));
    let d = relative_diff(&banded, &whole);
    assert!(d < 1e-4, "VAE decoder: {d}");
    assert!(whole.iter().any(|v| v.abs() > 0.05), "a real image");

    let image = || latent(noise(3 * 64 * 64, 7), [1, 3, 64, 64], &device);
    let whole = values(model.vae.encode_moments(image()).unwrap());
    let banded = with_buffer_limit(TINY_LIMIT, || {
        values(model.vae.encode_moments(image()).unwrap())
    });
    let d = relative_diff(&banded, &whole);
    assert!(d < 1e-4, "VAE encoder: {d}");
}
