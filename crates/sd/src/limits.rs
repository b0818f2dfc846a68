//! The largest single GPU buffers a model needs, checked against what a WebGPU device allows
//! (`maxStorageBufferBindingSize`): burn holds each tensor in one buffer, so a tensor larger than
//! the limit cannot exist on that device. Checking first turns a failed allocation deep inside the
//! engine into a message that says what is too large and what to do.
//!
//! The sizes are f32 (the engine computes in f32): attention materialises its probabilities
//! (`attention::probabilities`), `[rows, heads, n, n]` for `n` latent pixels at a level.

use thiserror::Error;

use crate::model::ModelInfo;

/// One buffer the engine will allocate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buffer {
    /// What it holds, for messages.
    pub what: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// A buffer larger than the device allows.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{} needs {bytes} bytes in one buffer; the device allows {limit}", .what)]
pub struct TooLarge {
    /// What it holds.
    pub what: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// The device's limit in bytes.
    pub limit: u64,
}

const F32: u64 = 4;

/// The largest buffers of a `width × height` image made with `rows` UNet rows per step (the
/// unconditional pass plus one per `AND` part; 1 without guidance): UNet attention at each level
/// that has it, the VAE decoder's largest activation, and its mid-block attention.
pub fn generation_buffers(
    info: &ModelInfo,
    width: usize,
    height: usize,
    rows: usize,
) -> Vec<Buffer> {
    let down = info.vae.downscale().max(1);
    let (lh, lw) = ((height / down) as u64, (width / down) as u64);
    let rows = rows.max(1) as u64;
    let mut out = Vec::new();
    for (level, (&attends, &heads)) in info
        .unet
        .cross_attention
        .iter()
        .zip(&info.unet.attention_heads)
        .enumerate()
    {
        if !attends {
            continue;
        }
        let n = (lh >> level) * (lw >> level);
        out.push(Buffer {
            what: format!(
                "UNet self-attention at {}×{} latents ({rows} × {heads} heads × {n}² scores)",
                lw >> level,
                lh >> level
            ),
            bytes: rows * heads as u64 * n * n * F32,
        });
    }
    // Decoder level j runs at latent × 2^j; its input has the previous level's channels
    // (upsampled), its output its own.
    let mut channels: Vec<u64> = info
        .vae
        .block_out_channels
        .iter()
        .map(|&c| c as u64)
        .collect();
    channels.reverse();
    for (j, &ch) in channels.iter().enumerate() {
        let input = if j == 0 { ch } else { channels[j - 1] };
        let pixels = (lh << j) * (lw << j);
        out.push(Buffer {
            what: format!("the VAE decoder at {}×{}", lw << j, lh << j),
            bytes: input.max(ch) * pixels * F32,
        });
    }
    let n = lh * lw;
    out.push(Buffer {
        what: format!("VAE attention at {lw}×{lh} latents ({n}² scores)"),
        bytes: n * n * F32,
    });
    out
}

/// The first buffer over `limit`, largest first, if any.
pub fn check(buffers: &[Buffer], limit: u64) -> Result<(), TooLarge> {
    match buffers
        .iter()
        .filter(|b| b.bytes > limit)
        .max_by_key(|b| b.bytes)
    {
        Some(b) => Err(TooLarge {
            what: b.what.clone(),
            bytes: b.bytes,
            limit,
        }),
        None => Ok(()),
    }
}

/// The largest side (a multiple of `step`) at which a square image of `rows` UNet rows fits
/// under `limit`, or `None` when not even `step × step` does.
pub fn largest_square(info: &ModelInfo, rows: usize, limit: u64, step: usize) -> Option<usize> {
    let step = step.max(1);
    let fits = |side: usize| check(&generation_buffers(info, side, side, rows), limit).is_ok();
    let mut side = step;
    if !fits(side) {
        return None;
    }
    while side < 4096 && fits(side + step) {
        side += step;
    }
    Some(side)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail by panicking")]
    use super::*;
    use crate::config::{ClipConfig, UnetConfig, VaeConfig};
    use crate::model::{Layout, Prediction};
    use crate::weights::Precision;

    fn sd15() -> ModelInfo {
        ModelInfo {
            clip: ClipConfig::sd1(),
            unet: UnetConfig::sd1(),
            vae: VaeConfig::sd(),
            prediction: Prediction::Epsilon,
            native_clip_skip: 1,
            layout: Layout::Diffusers,
            precision: Precision::F32,
            schedule: keyshift_core::schedule::ScheduleConfig::sd15(),
        }
    }

    #[test]
    fn sd15_at_512_needs_a_gigabyte_for_attention_and_256_mib_for_the_decoder() {
        let buffers = generation_buffers(&sd15(), 512, 512, 2);
        let biggest = buffers.iter().max_by_key(|b| b.bytes).unwrap();
        // 2 rows × 8 heads × 4096² × 4 bytes.
        assert_eq!(biggest.bytes, 2 * 8 * 4096 * 4096 * 4);
        assert!(
            biggest.what.starts_with("UNet self-attention at 64×64"),
            "{}",
            biggest.what
        );
        let decoder = buffers
            .iter()
            .filter(|b| b.what.starts_with("the VAE decoder"))
            .max_by_key(|b| b.bytes)
            .unwrap();
        assert_eq!(decoder.bytes, 256 * 512 * 512 * 4, "{}", decoder.what);
        let vae_attention = buffers.last().unwrap();
        assert_eq!(vae_attention.bytes, 4096 * 4096 * 4);
    }

    #[test]
    fn the_check_names_the_largest_buffer_over_the_limit() {
        let buffers = generation_buffers(&sd15(), 512, 512, 2);
        assert!(check(&buffers, 2 << 30).is_ok());
        let err = check(&buffers, 128 << 20).unwrap_err();
        assert_eq!(err.bytes, 1 << 30);
        assert_eq!(err.limit, 128 << 20);
        assert!(err.what.contains("64×64"), "{err}");
        // Without guidance one row: half the attention.
        let one = generation_buffers(&sd15(), 512, 512, 1);
        assert_eq!(one.iter().map(|b| b.bytes).max(), Some(512 << 20));
        // 128 MiB per buffer fits 256×256 with guidance (2 × 8 × 1024² × 4 = 64 MiB), not 320
        // (2 × 8 × 1600² × 4 = 156 MiB).
        assert_eq!(largest_square(&sd15(), 2, 128 << 20, 64), Some(256));
        assert_eq!(largest_square(&sd15(), 2, 1 << 10, 64), None);
    }
}
