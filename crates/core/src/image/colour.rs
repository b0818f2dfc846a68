//! Deforum's colour coherence: 8-bit CIE L\*a\*b\* as OpenCV stores it (L·255/100, a+128, b+128;
//! sRGB, D65) and scikit-image's `match_histograms` per channel, so that every frame keeps the
//! colours of the first. Checked against scikit-image on `tests/data/colour` (made by
//! `scripts/reference/make_warp_reference.py`).

use super::RgbImage;
use super::warp::round_u8;

/// sRGB (linear) → XYZ, OpenCV's coefficients.
const RGB_TO_XYZ: [[f64; 3]; 3] = [
    [0.412453, 0.357580, 0.180423],
    [0.212671, 0.715160, 0.072169],
    [0.019334, 0.119193, 0.950227],
];
/// The D65 white point OpenCV divides by.
const WHITE: [f64; 3] = [0.950456, 1.0, 1.088754];
/// Below this, L\*a\*b\* is linear in XYZ.
const LAB_T: f64 = 0.008856;

fn srgb_to_linear(v: u8) -> f64 {
    let c = f64::from(v) / 255.0;
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

fn linear_to_srgb(c: f64) -> f64 {
    let c = c.clamp(0.0, 1.0);
    if c <= 0.003_130_8 {
        12.92 * c
    } else {
        1.055 * c.powf(1.0 / 2.4) - 0.055
    }
}

fn lab_f(t: f64) -> f64 {
    if t > LAB_T {
        t.cbrt()
    } else {
        7.787 * t + 16.0 / 116.0
    }
}

fn lab_f_inverse(t: f64) -> f64 {
    if t > 6.0 / 29.0 {
        t * t * t
    } else {
        (t - 16.0 / 116.0) / 7.787
    }
}

/// One pixel to 8-bit L\*a\*b\*.
fn pixel_to_lab(rgb: [u8; 3]) -> [u8; 3] {
    let lin = rgb.map(srgb_to_linear);
    let xyz: [f64; 3] =
        std::array::from_fn(|i| (0..3).map(|k| RGB_TO_XYZ[i][k] * lin[k]).sum::<f64>() / WHITE[i]);
    let [fx, fy, fz] = xyz.map(lab_f);
    let l = if xyz[1] > LAB_T {
        116.0 * fy - 16.0
    } else {
        903.3 * xyz[1]
    };
    [
        round_u8(l * 255.0 / 100.0),
        round_u8(500.0 * (fx - fy) + 128.0),
        round_u8(200.0 * (fy - fz) + 128.0),
    ]
}

/// One 8-bit L\*a\*b\* pixel back to RGB.
fn pixel_to_rgb(lab: [u8; 3], xyz_to_rgb: &[[f64; 3]; 3]) -> [u8; 3] {
    let l = f64::from(lab[0]) * 100.0 / 255.0;
    let (a, b) = (f64::from(lab[1]) - 128.0, f64::from(lab[2]) - 128.0);
    let fy = (l + 16.0) / 116.0;
    let y = if l > 8.0 { fy * fy * fy } else { l / 903.3 };
    let xyz = [
        lab_f_inverse(fy + a / 500.0) * WHITE[0],
        y,
        lab_f_inverse(fy - b / 200.0) * WHITE[2],
    ];
    std::array::from_fn(|i| {
        let lin: f64 = (0..3).map(|k| xyz_to_rgb[i][k] * xyz[k]).sum();
        round_u8(linear_to_srgb(lin) * 255.0)
    })
}

/// Maps every pixel of `image` through `f`.
fn map_pixels(image: &RgbImage, mut f: impl FnMut([u8; 3]) -> [u8; 3]) -> RgbImage {
    let data = image
        .data
        .chunks_exact(3)
        .flat_map(|p| f([p[0], p[1], p[2]]))
        .collect();
    RgbImage {
        width: image.width,
        height: image.height,
        data,
    }
}

/// RGB → 8-bit L\*a\*b\* (OpenCV's `COLOR_RGB2LAB` layout).
pub fn rgb_to_lab(image: &RgbImage) -> RgbImage {
    map_pixels(image, pixel_to_lab)
}

/// 8-bit L\*a\*b\* → RGB (OpenCV's `COLOR_LAB2RGB` layout).
pub fn lab_to_rgb(image: &RgbImage) -> RgbImage {
    let inverse = super::warp::invert(&RGB_TO_XYZ).unwrap_or(RGB_TO_XYZ);
    map_pixels(image, |p| pixel_to_rgb(p, &inverse))
}

/// scikit-image's `match_histograms(image, reference, channel_axis=-1)` for 8-bit images: each
/// channel's values are mapped so that its cumulative histogram follows the reference's
/// (`np.interp` of the quantiles), truncated to bytes as scikit-image's `uint8` output is.
pub fn match_histograms(image: &RgbImage, reference: &RgbImage) -> RgbImage {
    let tables: [[u8; 256]; 3] =
        std::array::from_fn(|c| channel_table(&histogram(image, c), &histogram(reference, c)));
    map_pixels(image, |p| {
        std::array::from_fn(|c| tables[c][usize::from(p[c])])
    })
}

/// Deforum's LAB colour coherence: `image` histogram-matched to `reference` in L\*a\*b\*.
pub fn match_colours_lab(image: &RgbImage, reference: &RgbImage) -> RgbImage {
    lab_to_rgb(&match_histograms(
        &rgb_to_lab(image),
        &rgb_to_lab(reference),
    ))
}

/// The colour space a frame is histogram-matched in (Attention-Interpolation's
/// `hist_normalize`; Deforum's colour coherence is `lab`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColourSpace {
    /// 8-bit L\*a\*b\* (the default of both originals).
    #[default]
    Lab,
    /// OpenCV's 8-bit HSV.
    Hsv,
    /// The RGB bytes.
    Rgb,
}

impl ColourSpace {
    /// `lab`, `hsv` or `rgb`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "lab" => Some(Self::Lab),
            "hsv" => Some(Self::Hsv),
            "rgb" => Some(Self::Rgb),
            _ => None,
        }
    }
}

/// `image` histogram-matched to `reference` in `space`, as the originals do it:
/// `cvtColor(match_histograms(cvtColor(image), cvtColor(reference)))`.
pub fn match_colours(image: &RgbImage, reference: &RgbImage, space: ColourSpace) -> RgbImage {
    match space {
        ColourSpace::Lab => match_colours_lab(image, reference),
        ColourSpace::Rgb => match_histograms(image, reference),
        ColourSpace::Hsv => super::hsv::hsv_to_rgb(&match_histograms(
            &super::hsv::rgb_to_hsv(image),
            &super::hsv::rgb_to_hsv(reference),
        )),
    }
}

fn histogram(image: &RgbImage, channel: usize) -> [u64; 256] {
    let mut counts = [0u64; 256];
    for p in image.data.chunks_exact(3) {
        counts[usize::from(p[channel])] += 1;
    }
    counts
}

/// The value each source byte maps to.
fn channel_table(source: &[u64; 256], template: &[u64; 256]) -> [u8; 256] {
    let (src_total, tmpl_total) = (source.iter().sum::<u64>(), template.iter().sum::<u64>());
    let mut points = Vec::new();
    let mut cumulative = 0u64;
    for (value, &count) in template.iter().enumerate() {
        if count > 0 {
            cumulative += count;
            points.push((cumulative as f64 / tmpl_total as f64, value as f64));
        }
    }
    let mut table = [0u8; 256];
    let mut cumulative = 0u64;
    for (slot, &count) in table.iter_mut().zip(source) {
        cumulative += count;
        let q = cumulative as f64 / src_total.max(1) as f64;
        // numpy casts float → uint8 by truncation.
        *slot = interp(q, &points).clamp(0.0, 255.0) as u8;
    }
    table
}

/// `np.interp(x, xp, fp)` over increasing `points` (x, y).
fn interp(x: f64, points: &[(f64, f64)]) -> f64 {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return 0.0;
    };
    if x <= first.0 {
        return first.1;
    }
    if x >= last.0 {
        return last.1;
    }
    let j = points.partition_point(|p| p.0 <= x) - 1;
    let ((x0, y0), (x1, y1)) = (points[j], points[j + 1]);
    let slope = (y1 - y0) / (x1 - x0);
    slope * (x - x0) + y0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(data: Vec<u8>) -> RgbImage {
        RgbImage {
            width: data.len() / 3,
            height: 1,
            data,
        }
    }

    #[test]
    fn known_lab_values() {
        let lab = rgb_to_lab(&image(vec![255, 255, 255, 0, 0, 0, 255, 0, 0]));
        assert_eq!(&lab.data[..6], &[255, 128, 128, 0, 128, 128]);
        // OpenCV: red is (136, 208, 195).
        let red = &lab.data[6..];
        assert!(
            red[0].abs_diff(136) <= 1 && red[1].abs_diff(208) <= 1 && red[2].abs_diff(195) <= 1
        );
    }

    #[test]
    fn lab_round_trip_is_close() {
        // Mid-range colours: saturated ones fall outside the 8-bit a/b range (OpenCV loses up to 17).
        let data: Vec<u8> = (0..=255u8)
            .flat_map(|v| [v / 2 + 64, 191 - v / 2, 128])
            .collect();
        let img = image(data);
        let back = lab_to_rgb(&rgb_to_lab(&img));
        let worst = img
            .data
            .iter()
            .zip(&back.data)
            .map(|(a, b)| a.abs_diff(*b))
            .max();
        assert!(worst <= Some(3), "{worst:?}");
    }

    #[test]
    fn matching_to_itself_is_identity_and_follows_a_shift() {
        let img = image((0..90).map(|i| (i * 2) as u8).collect());
        assert_eq!(match_histograms(&img, &img), img);
        let brighter = image(img.data.iter().map(|v| v + 50).collect());
        assert_eq!(match_histograms(&img, &brighter), brighter);
    }
}
