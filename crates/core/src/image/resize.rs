//! Lanczos (a = 3) resampling the way PIL's `Image.resize(…, LANCZOS)` does it, which is what
//! A1111's "Lanczos" upscaler calls: separable, horizontal pass then vertical, each output pixel a
//! normalised window of `3·max(scale, 1)` input pixels around its centre, 8-bit rounding after
//! each pass. (PIL uses 22-bit fixed-point weights; these are f64, so a few pixels may differ by
//! one level.)

use super::RgbImage;

/// The size shift-attention upscales to: `round(w·ratio) × round(h·ratio)` (at least 1×1).
pub fn upscaled_size(width: usize, height: usize, ratio: f64) -> (usize, usize) {
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "image sides are small and the ratio positive"
    )]
    let scale = |n: usize| ((n as f64 * ratio).round_ties_even() as usize).max(1);
    (scale(width), scale(height))
}

/// `image` resized to `width × height`.
pub fn lanczos_resize(image: &RgbImage, width: usize, height: usize) -> RgbImage {
    if (width, height) == (image.width, image.height) || image.width == 0 || image.height == 0 {
        return image.clone();
    }
    let across = weights(image.width, width);
    let mut mid = vec![0u8; width * image.height * 3];
    for y in 0..image.height {
        for (x, (start, ws)) in across.iter().enumerate() {
            for c in 0..3 {
                let v: f64 = ws
                    .iter()
                    .enumerate()
                    .map(|(k, w)| w * f64::from(image.at(start + k, y, c)))
                    .sum();
                mid[(y * width + x) * 3 + c] = to_u8(v);
            }
        }
    }
    let down = weights(image.height, height);
    let mut data = vec![0u8; width * height * 3];
    for (y, (start, ws)) in down.iter().enumerate() {
        for x in 0..width {
            for c in 0..3 {
                let v: f64 = ws
                    .iter()
                    .enumerate()
                    .map(|(k, w)| w * f64::from(mid[((start + k) * width + x) * 3 + c]))
                    .sum();
                data[(y * width + x) * 3 + c] = to_u8(v);
            }
        }
    }
    RgbImage {
        width,
        height,
        data,
    }
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "clamped to 0..=255 first"
)]
fn to_u8(v: f64) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

fn lanczos3(x: f64) -> f64 {
    if x.abs() < 3.0 {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// For each output index, the first input index and the normalised weights from there.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "image sides are small"
)]
fn weights(input: usize, output: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = input as f64 / output as f64;
    let filter_scale = scale.max(1.0);
    let support = 3.0 * filter_scale;
    (0..output)
        .map(|x| {
            let center = (x as f64 + 0.5) * scale;
            let start = (center - support + 0.5).floor().max(0.0) as usize;
            let end = ((center + support + 0.5).floor() as usize).min(input);
            let mut ws: Vec<f64> = (start..end)
                .map(|i| lanczos3((i as f64 - center + 0.5) / filter_scale))
                .collect();
            let sum: f64 = ws.iter().sum();
            if sum != 0.0 {
                ws.iter_mut().for_each(|w| *w /= sum);
            }
            (start, ws)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_as_python() {
        assert_eq!(upscaled_size(64, 48, 1.5), (96, 72));
        assert_eq!(
            upscaled_size(5, 5, 0.5),
            (2, 2),
            "round(2.5) is 2 in Python"
        );
        assert_eq!(upscaled_size(3, 3, 0.1), (1, 1));
    }

    #[test]
    fn flat_images_stay_flat() {
        let image = RgbImage {
            width: 4,
            height: 3,
            data: [10u8, 200, 77].repeat(12),
        };
        let big = lanczos_resize(&image, 9, 7);
        assert_eq!(big.data, [10u8, 200, 77].repeat(63));
        let small = lanczos_resize(&big, 2, 2);
        assert_eq!(small.data, [10u8, 200, 77].repeat(4));
    }

    #[test]
    fn doubling_keeps_an_edge_sharp_and_in_place() {
        // A dark/bright vertical edge in the middle of an 8-pixel row.
        let row: Vec<u8> = (0..8)
            .flat_map(|x| [if x < 4 { 0 } else { 255 }; 3])
            .collect();
        let image = RgbImage {
            width: 8,
            height: 1,
            data: row,
        };
        let big = lanczos_resize(&image, 16, 1);
        let reds: Vec<u8> = big.data.iter().step_by(3).copied().collect();
        assert_eq!(&reds[..3], &[0, 0, 0]);
        assert_eq!(&reds[13..], &[255, 255, 255]);
        assert!(
            reds[7] < 128 && reds[8] > 128,
            "edge between 7 and 8: {reds:?}"
        );
        assert!(
            (0..8).all(|i| (i32::from(reds[i]) + i32::from(reds[15 - i]) - 255).abs() <= 1),
            "the edge is symmetric: {reds:?}"
        );
    }
}
