//! Image utilities shared by every animation mode and both front ends: the 8-bit RGB buffer,
//! SSIM as torchmetrics computes it, Pillow's Gaussian blur, centre crops, and Lanczos resizing. Pure Rust (no burn, no web-sys).

mod blur;
mod resize;
mod ssim;

pub use blur::{center_crop, gaussian_blur};
pub use resize::{lanczos_resize, upscaled_size};
pub use ssim::ssim;

/// An 8-bit RGB image, rows top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width·height·3` bytes.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// The sample of channel `c` at (`x`, `y`), 0 outside the buffer.
    pub fn at(&self, x: usize, y: usize, c: usize) -> u8 {
        self.data
            .get((y * self.width + x) * 3 + c)
            .copied()
            .unwrap_or(0)
    }
}
