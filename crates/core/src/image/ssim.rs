//! SSIM exactly as torchmetrics 1.9's `StructuralSimilarityIndexMeasure(data_range=1.0)` computes
//! it on RGB tensors in [0, 1] (what shift-attention feeds it: `ToTensor()` of the frames):
//! an 11×11 Gaussian window with σ 1.5 (separable: the 2-D kernel is the outer product of the
//! normalised 1-D one), both images reflect-padded by 5 pixels, local means, variances (clamped at
//! 0) and covariance, `K1 = 0.01`, `K2 = 0.03`, and the mean of the whole map over every channel
//! and pixel. torchmetrics before 1.5 cropped the 5-pixel border of the map before averaging;
//! 1.9 does not. Computed in f64 (torch computes in f32; the difference is below 1e-6 on 8-bit
//! images).

use super::RgbImage;

const RADIUS: usize = 5;
const SIGMA: f64 = 1.5;
const C1: f64 = 0.01 * 0.01;
const C2: f64 = 0.03 * 0.03;

/// The SSIM of two images of the same size; `None` when their sizes differ or they are empty.
pub fn ssim(a: &RgbImage, b: &RgbImage) -> Option<f64> {
    if a.width != b.width || a.height != b.height || a.width == 0 || a.height == 0 {
        return None;
    }
    let kernel = gaussian();
    let (w, h) = (a.width, a.height);
    let mut total = 0.0;
    for c in 0..3 {
        let x = channel(a, c);
        let y = channel(b, c);
        let xy: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p * q).collect();
        let xx: Vec<f64> = x.iter().map(|p| p * p).collect();
        let yy: Vec<f64> = y.iter().map(|q| q * q).collect();
        let [mx, my, sxx, syy, sxy] = [&x, &y, &xx, &yy, &xy].map(|p| blur(p, w, h, &kernel));
        for i in 0..w * h {
            total += ssim_at(mx[i], my[i], sxx[i], syy[i], sxy[i]);
        }
    }
    #[allow(
        clippy::cast_precision_loss,
        reason = "pixel counts are far below 2^52"
    )]
    Some(total / (3 * w * h) as f64)
}

/// The SSIM index of one pixel from the blurred moments.
fn ssim_at(mx: f64, my: f64, exx: f64, eyy: f64, exy: f64) -> f64 {
    let (mx2, my2, mxy) = (mx * mx, my * my, mx * my);
    let vx = (exx - mx2).max(0.0);
    let vy = (eyy - my2).max(0.0);
    let cov = exy - mxy;
    ((2.0 * mxy + C1) * (2.0 * cov + C2)) / ((mx2 + my2 + C1) * (vx + vy + C2))
}

/// One channel scaled to [0, 1] (`ToTensor`).
fn channel(image: &RgbImage, c: usize) -> Vec<f64> {
    image
        .data
        .iter()
        .skip(c)
        .step_by(3)
        .map(|&v| f64::from(v) / 255.0)
        .collect()
}

/// torchmetrics' `_gaussian`: `exp(-(d/σ)²/2)` at d = −5…5, normalised to sum 1.
fn gaussian() -> [f64; 2 * RADIUS + 1] {
    let mut k = [0.0; 2 * RADIUS + 1];
    for (i, v) in k.iter_mut().enumerate() {
        #[allow(clippy::cast_precision_loss, reason = "i ≤ 10")]
        let d = i as f64 - RADIUS as f64;
        *v = (-(d / SIGMA).powi(2) / 2.0).exp();
    }
    let sum: f64 = k.iter().sum();
    k.map(|v| v / sum)
}

/// Index `i − RADIUS + k` reflected into `0..n` (`F.pad(mode="reflect")`: the edge sample is not
/// repeated). Images narrower than the window reflect repeatedly instead of failing as torch does.
fn reflect(i: usize, k: usize, n: usize) -> usize {
    #[allow(clippy::cast_possible_wrap, reason = "image sides are far below 2^62")]
    let (mut j, n) = ((i + k) as i64 - RADIUS as i64, n as i64);
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    j = j.rem_euclid(period);
    if j >= n {
        j = period - j;
    }
    #[allow(
        clippy::cast_sign_loss,
        clippy::cast_possible_truncation,
        reason = "0 ≤ j < n"
    )]
    let j = j as usize;
    j
}

/// The separable Gaussian blur of a plane over its reflect padding (same size out).
fn blur(plane: &[f64], w: usize, h: usize, kernel: &[f64; 2 * RADIUS + 1]) -> Vec<f64> {
    let rows = blur_along(plane, w, h, kernel, |x, y, k| (y, reflect(x, k, w)));
    blur_along(&rows, w, h, kernel, |x, y, k| (reflect(y, k, h), x))
}

/// One pass of the blur: each pixel the kernel-weighted sum of the samples `at(x, y, k)` names.
fn blur_along(
    plane: &[f64],
    w: usize,
    h: usize,
    kernel: &[f64; 2 * RADIUS + 1],
    at: impl Fn(usize, usize, usize) -> (usize, usize),
) -> Vec<f64> {
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = kernel
                .iter()
                .enumerate()
                .map(|(k, kv)| {
                    let (row, col) = at(x, y, k);
                    kv * plane[row * w + col]
                })
                .sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(w: usize, h: usize, f: impl Fn(usize, usize, usize) -> u8) -> RgbImage {
        let mut data = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                data.extend((0..3).map(|c| f(x, y, c)));
            }
        }
        RgbImage {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn identical_images_score_one() {
        let a = image(16, 12, |x, y, c| ((x * 13 + y * 7 + c * 50) % 256) as u8);
        assert_eq!(ssim(&a, &a).map(|s| (s - 1.0).abs() < 1e-12), Some(true));
    }

    #[test]
    fn reflect_skips_the_edge_sample() {
        // F.pad([0,1,2,3], (5, 5), mode="reflect") needs repeated reflection; the first five
        // padded samples of a long row are x[5], x[4], x[3], x[2], x[1].
        let left: Vec<usize> = (0..5).map(|k| reflect(0, k, 20)).collect();
        assert_eq!(left, [5, 4, 3, 2, 1]);
        let right: Vec<usize> = (6..11).map(|k| reflect(19, k, 20)).collect();
        assert_eq!(right, [18, 17, 16, 15, 14]);
    }

    #[test]
    fn sizes_must_match() {
        let a = image(8, 8, |_, _, _| 0);
        let b = image(8, 9, |_, _, _| 0);
        assert_eq!(ssim(&a, &b), None);
    }

    #[test]
    fn inverted_image_scores_far_below_one() {
        let a = image(32, 32, |x, y, _| ((x * 8) ^ (y * 8)) as u8);
        let b = image(32, 32, |x, y, _| 255 - ((x * 8) ^ (y * 8)) as u8);
        assert!(ssim(&a, &b).is_some_and(|s| s < 0.0));
    }
}
