//! The largest single GPU buffers a model needs, checked against what a WebGPU device allows
//! (`maxStorageBufferBindingSize`): burn holds each tensor in one buffer, so a tensor larger than
//! the limit cannot exist on that device. Checking first turns a failed allocation deep inside the
//! engine into a message that says what is too large and which size would fit.
//!
//! The engine keeps what it can within [`buffer_limit`] (128 MiB, WebGPU's default): attention in
//! query chunks, the feed-forward in token chunks, the VAE decoder in bands of rows. What is left
//! is the UNet's activations, which grow with the image. Sizes are f32 (the engine computes in f32).

use std::cell::Cell;

use thiserror::Error;

use crate::model::ModelInfo;

/// WebGPU's default `maxStorageBufferBindingSize`: 128 MiB, what every adapter must allow.
pub const WEBGPU_DEFAULT: u64 = 128 << 20;

thread_local! {
    static BUFFER_LIMIT: Cell<u64> = const { Cell::new(WEBGPU_DEFAULT) };
}

/// The largest buffer the engine lets one activation take on this thread: attention is computed in
/// query chunks and the VAE decoder in bands of rows to stay within it. WebGPU's default unless
/// [`with_buffer_limit`] says otherwise.
pub fn buffer_limit() -> u64 {
    BUFFER_LIMIT.with(Cell::get)
}

/// Runs `f` with another buffer limit on this thread (a device that allows more, or a test that
/// forces the chunked paths at small sizes), then restores the previous one.
pub fn with_buffer_limit<T>(bytes: u64, f: impl FnOnce() -> T) -> T {
    let _restore = Restore(BUFFER_LIMIT.with(|limit| limit.replace(bytes.max(1))));
    f()
}

/// Puts the previous limit back, also when `f` panics.
struct Restore(u64);

impl Drop for Restore {
    fn drop(&mut self) {
        BUFFER_LIMIT.with(|limit| limit.set(self.0));
    }
}

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
/// unconditional pass plus one per `AND` part; 1 without guidance), as the engine allocates them:
/// the UNet's widest activation at each level (the up path's concatenation of the upsampled
/// features and the skip), one query row of self-attention (attention runs in query chunks within
/// [`buffer_limit`], so only a single row could be too large), the VAE decoder's input level (its
/// larger levels run in bands of rows) and three rows of its widest level (a band with its halo).
pub fn generation_buffers(
    info: &ModelInfo,
    width: usize,
    height: usize,
    rows: usize,
) -> Vec<Buffer> {
    let down = info.vae.downscale().max(1);
    let (lh, lw) = ((height / down) as u64, (width / down) as u64);
    let rows = rows.max(1) as u64;
    let channels = &info.unet.block_out_channels;
    let mut out = Vec::new();
    for (level, &c) in channels.iter().enumerate() {
        let (h, w) = (lh >> level, lw >> level);
        let below = channels.get(level + 1).copied().unwrap_or(c) as u64;
        let widest = below + c as u64;
        out.push(Buffer {
            what: format!("the UNet at {w}×{h} latents ({rows} × {widest} channels)"),
            bytes: rows * widest * h * w * F32,
        });
        let attends = info
            .unet
            .cross_attention
            .get(level)
            .copied()
            .unwrap_or(false);
        let heads = info.unet.attention_heads.get(level).copied().unwrap_or(1) as u64;
        if attends {
            out.push(Buffer {
                what: format!("one query of UNet self-attention at {w}×{h} latents"),
                bytes: rows * heads * h * w * F32,
            });
        }
    }
    let vae = &info.vae.block_out_channels;
    let deepest = vae.last().copied().unwrap_or(0) as u64;
    out.push(Buffer {
        what: format!("the VAE decoder at {lw}×{lh} latents"),
        bytes: deepest * lh * lw * F32,
    });
    let widest = vae.iter().copied().max().unwrap_or(0) as u64;
    out.push(Buffer {
        what: format!("a band of the VAE decoder {} pixels wide", lw * down as u64),
        bytes: 3 * widest * lw * down as u64 * F32,
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
    use crate::config::UnetConfig;

    #[test]
    fn sd15_at_512_fits_webgpu_s_default_once_attention_is_chunked_and_the_decoder_banded() {
        let buffers = generation_buffers(&ModelInfo::sd15(), 512, 512, 2);
        let biggest = buffers.iter().max_by_key(|b| b.bytes).unwrap();
        // The up path's 640 upsampled + 320 skip channels at 64×64, two rows.
        assert_eq!(biggest.bytes, 2 * 960 * 4096 * 4);
        assert!(
            biggest.what.starts_with("the UNet at 64×64"),
            "{}",
            biggest.what
        );
        assert!(check(&buffers, WEBGPU_DEFAULT).is_ok());
        let decoder = buffers
            .iter()
            .find(|b| b.what.starts_with("the VAE decoder"))
            .unwrap();
        assert_eq!(decoder.bytes, 512 * 4096 * 4, "{}", decoder.what);
    }

    #[test]
    fn sd21_at_768_fits_too() {
        let info = ModelInfo {
            unet: UnetConfig::sd2(),
            ..ModelInfo::sd15()
        };
        assert!(check(&generation_buffers(&info, 768, 768, 2), WEBGPU_DEFAULT).is_ok());
    }

    #[test]
    fn the_check_names_the_largest_buffer_over_the_limit_and_the_largest_size_that_fits() {
        let buffers = generation_buffers(&ModelInfo::sd15(), 1536, 1536, 2);
        let err = check(&buffers, WEBGPU_DEFAULT).unwrap_err();
        // 2 × 960 × 192² × 4 bytes.
        assert_eq!(err.bytes, 2 * 960 * 192 * 192 * 4);
        assert_eq!(err.limit, WEBGPU_DEFAULT);
        assert!(err.what.contains("192×192"), "{err}");
        // 2 × 960 × 128² × 4 = 120 MiB fits; 1088² (136² latents) needs 136 MiB.
        assert_eq!(
            largest_square(&ModelInfo::sd15(), 2, WEBGPU_DEFAULT, 64),
            Some(1024)
        );
        // Without guidance one row: twice the area.
        assert_eq!(
            largest_square(&ModelInfo::sd15(), 1, WEBGPU_DEFAULT, 64),
            Some(1472)
        );
        assert_eq!(largest_square(&ModelInfo::sd15(), 2, 1 << 10, 64), None);
    }
}
