//! The canny hint against OpenCV (`scripts/reference/make_canny_reference.py`): `cvtColor(RGB2GRAY)`
//! and `Canny(grey, 50, 200)` on two photos and a synthetic picture, and thresholds given the
//! wrong way round — every pixel equal.

mod common;

use keyshift_core::image::{
    CANNY_HIGH, CANNY_LOW, GreyImage, RgbImage, canny, canny_hint, to_grey,
};

fn image(name: &str) -> RgbImage {
    common::data_png("canny", name)
}

/// A grey PNG (decoded to three equal channels) as one channel.
fn grey(name: &str) -> GreyImage {
    let rgb = image(name);
    GreyImage {
        width: rgb.width,
        height: rgb.height,
        data: rgb.data.iter().step_by(3).copied().collect(),
    }
}

/// Pixels that differ.
fn differing(a: &GreyImage, b: &GreyImage) -> usize {
    assert_eq!((a.width, a.height), (b.width, b.height));
    a.data.iter().zip(&b.data).filter(|(x, y)| x != y).count()
}

#[test]
fn grey_conversion_equals_opencv() {
    for name in ["astronaut", "coffee", "synthetic"] {
        let ours = to_grey(&image(&format!("{name}.png")));
        assert_eq!(
            differing(&ours, &grey(&format!("{name}.grey.png"))),
            0,
            "{name}"
        );
    }
}

#[test]
fn canny_50_200_equals_opencv_on_every_pixel() {
    for name in ["astronaut", "coffee", "synthetic"] {
        let want = grey(&format!("{name}.canny.png"));
        let edges = want.data.iter().filter(|&&v| v == 255).count();
        assert!(edges > 200, "{name}: a test image with edges ({edges})");
        let hint = canny_hint(&image(&format!("{name}.png")), CANNY_LOW, CANNY_HIGH);
        let ours = GreyImage {
            width: hint.width,
            height: hint.height,
            data: hint.data.chunks_exact(3).map(|p| p[0]).collect(),
        };
        assert!(
            hint.data
                .chunks_exact(3)
                .all(|p| p[0] == p[1] && p[1] == p[2])
        );
        assert_eq!(differing(&ours, &want), 0, "{name}");
    }
}

#[test]
fn thresholds_given_the_wrong_way_round_are_swapped_as_opencv_does() {
    let grey = to_grey(&image("astronaut.png"));
    let ours = canny(&grey, 100.0, 20.0);
    assert_eq!(
        differing(&ours, &self::grey("astronaut.swapped.canny.png")),
        0
    );
    // Other thresholds give other edges: the comparison can fail.
    assert!(differing(&ours, &canny(&grey, 50.0, 200.0)) > 100);
}
