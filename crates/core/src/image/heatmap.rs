//! Attention maps drawn over images: a map resized to an image (nearest, as Visualize
//! Cross-Attention enlarges, or bilinear), VXA's `masked` and `grey` outputs (seeds.md §3) and a
//! jet colour map mixed over the image. Plain vectors; the engine's taps make the maps.

use super::RgbImage;

/// How a map is resized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    /// Source pixel `⌊i·in/out⌋`: VXA's `img[i // s][j // s]` for integer scales.
    #[default]
    Nearest,
    /// Bilinear with half-pixel centres, clamped at the edges (torch's `align_corners=False`).
    Bilinear,
}

/// How a map is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum OverlayMode {
    /// VXA's `masked`: each channel times the map value.
    #[default]
    Masked,
    /// VXA's `grey`: every channel is the map value × 255.
    Grey,
    /// The jet colour of the map value mixed over the image: `(1 − opacity)·rgb + opacity·jet`.
    Heat {
        /// Weight of the colour, 0 to 1.
        opacity: f32,
    },
}

/// Resizes a `width × height` map (rows top to bottom) to `out`; missing values read as 0.
pub fn resize_map(
    values: &[f32],
    (width, height): (usize, usize),
    (out_width, out_height): (usize, usize),
    filter: Filter,
) -> Vec<f32> {
    if width == 0 || height == 0 {
        return vec![0.0; out_width * out_height];
    }
    let at = |x: usize, y: usize| values.get(y * width + x).copied().unwrap_or(0.0);
    let mut out = Vec::with_capacity(out_width * out_height);
    for y in 0..out_height {
        for x in 0..out_width {
            out.push(match filter {
                Filter::Nearest => at(x * width / out_width, y * height / out_height),
                Filter::Bilinear => {
                    let (x0, x1, fx) = bilinear_source(x, width, out_width);
                    let (y0, y1, fy) = bilinear_source(y, height, out_height);
                    let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
                    let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
                    top * (1.0 - fy) + bottom * fy
                }
            });
        }
    }
    out
}

/// The two source indices and the weight of the second for output index `i`.
fn bilinear_source(i: usize, n_in: usize, n_out: usize) -> (usize, usize, f32) {
    let src = ((i as f32 + 0.5) * n_in as f32 / n_out as f32 - 0.5).max(0.0);
    let i0 = (src.floor() as usize).min(n_in - 1);
    let i1 = (i0 + 1).min(n_in - 1);
    (i0, i1, src - i0 as f32)
}

/// The jet colour map: dark blue at 0, cyan, yellow, dark red at 1 (`r, g, b =
/// clamp(1.5 − |4v − k|)` for k = 3, 2, 1); values are clamped to [0, 1].
pub fn jet(v: f32) -> [u8; 3] {
    let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
    let channel = |k: f32| ((1.5 - (4.0 * v - k).abs()).clamp(0.0, 1.0) * 255.0).round() as u8;
    [channel(3.0), channel(2.0), channel(1.0)]
}

/// Draws a map of the image's size over it (missing map values read as 0). `Masked` and `Grey`
/// truncate to 8 bits as VXA's `astype(uint8)`; `Heat` rounds.
pub fn overlay(image: &RgbImage, map: &[f32], mode: OverlayMode) -> RgbImage {
    let data = image
        .data
        .chunks_exact(3)
        .enumerate()
        .flat_map(|(i, px)| pixel(px, map.get(i).copied().unwrap_or(0.0), mode))
        .collect();
    RgbImage {
        width: image.width,
        height: image.height,
        data,
    }
}

fn pixel(rgb: &[u8], v: f32, mode: OverlayMode) -> [u8; 3] {
    let channel = |c: usize| f32::from(rgb.get(c).copied().unwrap_or(0));
    match mode {
        OverlayMode::Masked => [0, 1, 2].map(|c| (channel(c) * v).clamp(0.0, 255.0) as u8),
        OverlayMode::Grey => [(v * 255.0).clamp(0.0, 255.0) as u8; 3],
        OverlayMode::Heat { opacity } => {
            let a = opacity.clamp(0.0, 1.0);
            let colour = jet(v);
            [0, 1, 2].map(|c| (channel(c) * (1.0 - a) + f32::from(colour[c]) * a).round() as u8)
        }
    }
}

/// A token heatmap as it travels and is kept (a render keeps one per frame): the map, values in
/// [0, 1] rows top to bottom, and the context positions summed (empty: all after the first).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeatmapData {
    /// Map columns.
    pub width: usize,
    /// Map rows.
    pub height: usize,
    /// `width × height` values in [0, 1].
    pub values: Vec<f32>,
    /// The context positions summed.
    pub tokens: Vec<usize>,
}

impl HeatmapData {
    /// The map in jet colours at its own size (a page stretches it over the image).
    pub fn layer_png(&self) -> Result<Vec<u8>, crate::pngtext::PngError> {
        let data: Vec<u8> = self.values.iter().flat_map(|v| jet(*v)).collect();
        crate::pngtext::encode_rgb(self.width, self.height, &data, &[])
    }

    /// The image `png` with the map drawn over it at `opacity` (bilinear, jet colours): the
    /// PNG a user saves.
    pub fn over_png(&self, png: &[u8], opacity: f32) -> Result<Vec<u8>, crate::pngtext::PngError> {
        let (w, h, data) = crate::pngtext::decode_rgb(png)?;
        let map = resize_map(
            &self.values,
            (self.width, self.height),
            (w, h),
            Filter::Bilinear,
        );
        let image = RgbImage {
            width: w,
            height: h,
            data,
        };
        let drawn = overlay(&image, &map, OverlayMode::Heat { opacity });
        crate::pngtext::encode_rgb(w, h, &drawn.data, &[])
    }
}
