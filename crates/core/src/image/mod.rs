//! Image utilities shared by every animation mode and both front ends: the 8-bit RGB buffer,
//! SSIM as torchmetrics computes it, Pillow's Gaussian blur, centre crops, Lanczos resizing, and
//! Deforum's 2D motion (OpenCV's `warpPerspective`), LAB colour coherence, contrast, noise and
//! cadence cross-fades, and OpenCV's Canny for ControlNet hints. Pure Rust (no burn, no web-sys).

mod blur;
mod canny;
mod colour;
mod header;
pub mod heatmap;
mod hsv;
mod loopback;
mod resize;
mod ssim;
mod warp;

pub use blur::{center_crop, gaussian_blur};
pub use canny::{CANNY_HIGH, CANNY_LOW, GreyImage, canny, canny_hint, to_grey};
pub use colour::{
    ColourSpace, lab_to_rgb, match_colours, match_colours_lab, match_histograms, rgb_to_lab,
};
pub use header::claimed_size;
pub use hsv::{hsv_to_rgb, rgb_to_hsv};
pub use loopback::{add_noise, contrast, cross_fade};
pub use resize::{lanczos_resize, upscaled_size};
pub use ssim::ssim;
pub use warp::{Border, Matrix3, Motion2d, invert, multiply, rotation_matrix, warp_perspective};

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
