//! A token's map of a tap: its values divided by their maximum, resized and drawn over an image
//! with the drawing functions of `keyshift_core::image::heatmap` (re-exported here).

use super::cross::Tokens;
use crate::generate::RgbImage;
pub use keyshift_core::image::heatmap::{Filter, OverlayMode, jet, overlay, resize_map};

/// One map of a tap.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenMap {
    /// The positions summed.
    pub tokens: Tokens,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `height·width` values, rows top to bottom, divided by their maximum as VXA does (no minimum
    /// subtracted): the largest is 1 and all lie in [0, 1]; all 0 when nothing was attended.
    pub values: Vec<f32>,
    /// The maximum before dividing: the head-mean probability summed over layers and steps
    /// (comparable between the maps of one tap).
    pub peak: f32,
}

impl TokenMap {
    /// A map from raw sums, divided by their maximum.
    pub fn normalised(tokens: Tokens, height: usize, width: usize, raw: &[f32]) -> Self {
        let peak = raw.iter().copied().fold(0f32, f32::max);
        let values = if peak > 0.0 {
            raw.iter().map(|v| v / peak).collect()
        } else {
            vec![0.0; raw.len()]
        };
        Self {
            tokens,
            height,
            width,
            values,
            peak,
        }
    }

    /// The values resized to `out_width × out_height`.
    pub fn resized(&self, out_width: usize, out_height: usize, filter: Filter) -> Vec<f32> {
        let from = (self.width, self.height);
        resize_map(&self.values, from, (out_width, out_height), filter)
    }

    /// The map resized to the image and drawn over it.
    pub fn overlay(&self, image: &RgbImage, mode: OverlayMode, filter: Filter) -> RgbImage {
        let map = self.resized(image.width, image.height, filter);
        overlay(image, &map, mode)
    }
}
