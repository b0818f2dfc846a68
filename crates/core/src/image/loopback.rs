//! Deforum's loopback steps between a warped previous frame and the next img2img: contrast,
//! seeded noise, and the cadence cross-fade. Deforum works on OpenCV's BGR buffers; these take
//! RGB and address its noise channels in BGR order, so the same seed gives the same pixels.

use super::RgbImage;
use crate::noise::randn;

/// `round(image · contrast)` per sample, saturating (Deforum's `astype(uint8)` wraps values
/// over 255 around instead; saturating is what its contrast schedule means).
pub fn contrast(image: &RgbImage, contrast: f64) -> RgbImage {
    let data = image
        .data
        .iter()
        .map(|&v| {
            (f64::from(v) * contrast)
                .round_ties_even()
                .clamp(0.0, 255.0) as u8
        })
        .collect();
    RgbImage { data, ..*image }
}

/// Deforum's white `add_noise`: `torch.randn((3, h, w))` from `seed` mapped to bytes
/// (`(n·0.5 + 0.5)` clipped to [0, 1], ·255, truncated), then
/// `addWeighted(image, 1 − amount, noise, amount, 0)`. An amount of 0 keeps the image.
pub fn add_noise(image: &RgbImage, amount: f64, seed: u64) -> RgbImage {
    if amount == 0.0 {
        return image.clone();
    }
    let plane = image.width * image.height;
    let noise = randn(seed, 3 * plane);
    let (keep, add) = ((1.0 - amount) as f32, amount as f32);
    let mut data = Vec::with_capacity(image.data.len());
    for (i, pixel) in image.data.chunks_exact(3).enumerate() {
        for (c, &v) in pixel.iter().enumerate() {
            // RGB channel c is BGR channel 2 − c.
            let n = noise.get((2 - c) * plane + i).copied().unwrap_or(0.0);
            let n = ((n * 0.5 + 0.5).clamp(0.0, 1.0) * 255.0) as u8;
            let mixed = f32::from(v) * keep + f32::from(n) * add;
            data.push(mixed.round_ties_even().clamp(0.0, 255.0) as u8);
        }
    }
    RgbImage { data, ..*image }
}

/// The cadence cross-fade `a·(1 − t) + b·t`, rounded as OpenCV writes a float image.
pub fn cross_fade(a: &RgbImage, b: &RgbImage, t: f64) -> RgbImage {
    let data = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(&x, &y)| {
            (f64::from(x) * (1.0 - t) + f64::from(y) * t)
                .round_ties_even()
                .clamp(0.0, 255.0) as u8
        })
        .collect();
    RgbImage { data, ..*a }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(v: u8) -> RgbImage {
        RgbImage {
            width: 4,
            height: 4,
            data: vec![v; 48],
        }
    }

    #[test]
    fn contrast_scales_and_saturates() {
        assert_eq!(contrast(&grey(100), 1.0), grey(100));
        assert_eq!(contrast(&grey(100), 0.5), grey(50));
        assert_eq!(contrast(&grey(200), 1.5), grey(255));
    }

    #[test]
    fn noise_is_seeded_and_scaled() {
        let img = grey(128);
        assert_eq!(add_noise(&img, 0.0, 7), img);
        let a = add_noise(&img, 0.2, 7);
        assert_eq!(a, add_noise(&img, 0.2, 7));
        assert_ne!(a, add_noise(&img, 0.2, 8));
        // 0.8·128 + 0.2·n stays within [102, 153].
        assert!(a.data.iter().all(|&v| (102..=154).contains(&v)));
        assert!(a.data.iter().any(|&v| v != 128));
    }

    #[test]
    fn cross_fade_ends() {
        let (a, b) = (grey(10), grey(210));
        assert_eq!(cross_fade(&a, &b, 0.0), a);
        assert_eq!(cross_fade(&a, &b, 1.0), b);
        assert_eq!(cross_fade(&a, &b, 0.25), grey(60));
    }
}
