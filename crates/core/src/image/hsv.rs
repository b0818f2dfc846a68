//! 8-bit HSV as OpenCV stores it (`COLOR_RGB2HSV` / `COLOR_HSV2RGB` on bytes: H in 0..180, S and V
//! in 0..255), for Attention-Interpolation's `hist_normalize: hsv`. RGB → HSV is OpenCV's integer
//! method (fixed-point division tables, 12 fractional bits); HSV → RGB its float method, rounded.
//! Checked against OpenCV on `tests/data/warp` (`scripts/reference/make_warp_reference.py`).

use super::RgbImage;

/// Fractional bits of OpenCV's fixed-point tables.
const SHIFT: u32 = 12;

/// `round((255 << 12) / v)`: the saturation divisor for value `v`.
fn s_divisor(v: i32) -> i32 {
    if v == 0 {
        0
    } else {
        (f64::from(255 << SHIFT) / f64::from(v)).round() as i32
    }
}

/// `round((180 << 12) / (6 · diff))`: the hue divisor for chroma `diff`.
fn h_divisor(diff: i32) -> i32 {
    if diff == 0 {
        0
    } else {
        (f64::from(180 << SHIFT) / (6.0 * f64::from(diff))).round() as i32
    }
}

/// One pixel to 8-bit HSV.
fn pixel_to_hsv([r, g, b]: [u8; 3]) -> [u8; 3] {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    let v = r.max(g).max(b);
    let diff = v - r.min(g).min(b);
    let half = 1 << (SHIFT - 1);
    let s = (diff * s_divisor(v) + half) >> SHIFT;
    let h = if v == r {
        g - b
    } else if v == g {
        b - r + 2 * diff
    } else {
        r - g + 4 * diff
    };
    let mut h = (h * h_divisor(diff) + half) >> SHIFT;
    if h < 0 {
        h += 180;
    }
    [h, s, v].map(|x| x.clamp(0, 255) as u8)
}

/// One 8-bit HSV pixel back to RGB.
fn pixel_to_rgb([h, s, v]: [u8; 3]) -> [u8; 3] {
    let (s, v) = (f32::from(s) / 255.0, f32::from(v) / 255.0);
    let (r, g, b) = if s == 0.0 {
        (v, v, v)
    } else {
        let mut h = f32::from(h) * (6.0 / 180.0);
        while h >= 6.0 {
            h -= 6.0;
        }
        let sector = h.floor();
        let f = h - sector;
        let tab = [
            v,
            v * (1.0 - s),
            v * (1.0 - s * f),
            v * (1.0 - s * (1.0 - f)),
        ];
        // Which of `tab` is (b, g, r) in each sector, as OpenCV's table.
        const SECTORS: [[usize; 3]; 6] = [
            [1, 3, 0],
            [1, 0, 2],
            [3, 0, 1],
            [0, 2, 1],
            [0, 1, 3],
            [2, 1, 0],
        ];
        let [bi, gi, ri] = SECTORS[(sector as usize).min(5)];
        (tab[ri], tab[gi], tab[bi])
    };
    [r, g, b].map(|c| round_half_even(c * 255.0))
}

/// OpenCV's `saturate_cast<uchar>(float)`: round half to even, clamp to a byte.
fn round_half_even(x: f32) -> u8 {
    x.round_ties_even().clamp(0.0, 255.0) as u8
}

fn map_pixels(image: &RgbImage, f: impl Fn([u8; 3]) -> [u8; 3]) -> RgbImage {
    RgbImage {
        width: image.width,
        height: image.height,
        data: image
            .data
            .chunks_exact(3)
            .flat_map(|p| f([p[0], p[1], p[2]]))
            .collect(),
    }
}

/// RGB → 8-bit HSV (OpenCV's `COLOR_RGB2HSV` on bytes).
pub fn rgb_to_hsv(image: &RgbImage) -> RgbImage {
    map_pixels(image, pixel_to_hsv)
}

/// 8-bit HSV → RGB (OpenCV's `COLOR_HSV2RGB` on bytes).
pub fn hsv_to_rgb(image: &RgbImage) -> RgbImage {
    map_pixels(image, pixel_to_rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_and_greys() {
        // OpenCV: red (0, 255, 255), green (60, 255, 255), blue (120, 255, 255), grey (0, 0, 128).
        for (rgb, hsv) in [
            ([255, 0, 0], [0, 255, 255]),
            ([0, 255, 0], [60, 255, 255]),
            ([0, 0, 255], [120, 255, 255]),
            ([128, 128, 128], [0, 0, 128]),
            ([0, 0, 0], [0, 0, 0]),
        ] {
            assert_eq!(pixel_to_hsv(rgb), hsv, "{rgb:?}");
            assert_eq!(pixel_to_rgb(hsv), rgb, "{hsv:?}");
        }
    }
}
