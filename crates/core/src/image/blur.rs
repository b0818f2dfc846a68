//! Pillow's `ImageFilter.GaussianBlur(radius)` (prompt travel's "SSIM blur"): three passes of an
//! extended box blur per axis (Gwosdek et al.; `libImaging/BoxBlur.c`), in 8.8-fixed-point
//! weights with Pillow's rounding, so the blurred bytes are Pillow's. And torchvision's
//! `CenterCrop` as prompt travel applies it before SSIM.

use super::RgbImage;

/// Pillow's box radius for a Gaussian of `radius` over `passes` passes (single precision, as C
/// computes it).
fn box_radius(radius: f32, passes: u32) -> f32 {
    #[allow(clippy::cast_precision_loss, reason = "3 passes")]
    let sigma2 = radius * radius / passes as f32;
    let big_l = (12.0 * f64::from(sigma2) + 1.0).sqrt() as f32;
    let l = ((big_l - 1.0) / 2.0).floor();
    let mut a = (2.0 * l + 1.0) * (l * (l + 1.0) - 3.0 * sigma2);
    a /= 6.0 * (sigma2 - (l + 1.0) * (l + 1.0));
    l + a
}

/// One line of a box blur with a fractional `radius` (Pillow's `ImagingLineBoxBlur`), every
/// channel of `channels`.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "Pillow's fixed-point arithmetic"
)]
fn line(out: &mut [u8], input: &[u8], channels: usize, radius: f32) {
    let n = input.len() / channels;
    if n == 0 {
        return;
    }
    let r = radius as usize;
    let ww = ((1u64 << 24) as f32 / (radius * 2.0 + 1.0)) as u64;
    let fw = ((1u64 << 24) - (r as u64 * 2 + 1) * ww) / 2;
    let last = n - 1;
    let edge_a = (r + 1).min(n);
    for c in 0..channels {
        let px = |i: usize| u64::from(input[i.min(last) * channels + c]);
        let mut acc = px(0) * (r as u64 + 1);
        for x in 0..edge_a.saturating_sub(1) {
            acc += px(x);
        }
        acc += px(last) * (r + 1 - edge_a) as u64;
        for x in 0..n {
            // Pillow's three loops (or their order when the radius spans the line) clamp the
            // samples entering and leaving the window to the line's ends.
            let leave = x.checked_sub(r + 1).map_or(0, |i| i);
            let enter = (x + r).min(last);
            acc = acc + px(enter) - px(leave);
            let far_right = (x + r + 1).min(last);
            let bulk = acc * ww + (px(leave) + px(far_right)) * fw;
            out[x * channels + c] = ((bulk + (1 << 23)) >> 24) as u8;
        }
    }
}

/// Pillow's `GaussianBlur(radius)` of an RGB image (3 box passes per axis).
pub fn gaussian_blur(image: &RgbImage, radius: f64) -> RgbImage {
    #[allow(clippy::cast_possible_truncation, reason = "Pillow takes a float")]
    let r = box_radius(radius as f32, 3);
    let (w, h) = (image.width, image.height);
    if r == 0.0 || w == 0 || h == 0 {
        return image.clone();
    }
    let mut data = image.data.clone();
    let mut out = vec![0u8; w * 3];
    for _ in 0..3 {
        for row in data.chunks_exact_mut(w * 3) {
            line(&mut out, row, 3, r);
            row.copy_from_slice(&out);
        }
    }
    let mut columns = transpose(&data, w, h);
    let mut out = vec![0u8; h * 3];
    for _ in 0..3 {
        for column in columns.chunks_exact_mut(h * 3) {
            line(&mut out, column, 3, r);
            column.copy_from_slice(&out);
        }
    }
    RgbImage {
        width: w,
        height: h,
        data: transpose(&columns, h, w),
    }
}

/// RGB pixels of a `w × h` image, transposed to `h × w`.
fn transpose(data: &[u8], w: usize, h: usize) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    for y in 0..h {
        for x in 0..w {
            let (from, to) = ((y * w + x) * 3, (x * h + y) * 3);
            out[to..to + 3].copy_from_slice(&data[from..from + 3]);
        }
    }
    out
}

/// torchvision's `CenterCrop((h·p/100, w·p/100))` of a Pillow image (`percent` 0 or ≥ 100: the
/// whole image): the offsets and the box rounded as Python rounds.
pub fn center_crop(image: &RgbImage, percent: f64) -> RgbImage {
    if percent <= 0.0 || percent >= 100.0 {
        return image.clone();
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "image sizes"
    )]
    let span = |size: usize| {
        let crop = size as f64 * percent / 100.0;
        let start = ((size as f64 - crop) / 2.0).round_ties_even();
        let end = (start + crop).round_ties_even();
        (start as usize, (end as usize).min(size))
    };
    let ((x0, x1), (y0, y1)) = (span(image.width), span(image.height));
    let width = x1.saturating_sub(x0);
    let mut data = Vec::with_capacity(width * y1.saturating_sub(y0) * 3);
    for y in y0..y1 {
        let row = (y * image.width + x0) * 3;
        data.extend_from_slice(&image.data[row..row + width * 3]);
    }
    RgbImage {
        width,
        height: y1.saturating_sub(y0),
        data,
    }
}
