//! Deforum's 2D motion steps against their references (`scripts/reference/make_warp_reference.py`):
//! the warp against OpenCV's `warpPerspective` (within 1/255), histogram matching against
//! scikit-image's `match_histograms` in LAB, HSV and RGB (within 2/255; RGB exact), OpenCV's 8-bit
//! HSV, and the seeded noise against torch + OpenCV.

mod common;

use keyshift_core::image::{
    Border, ColourSpace, Motion2d, RgbImage, add_noise, hsv_to_rgb, match_colours,
    match_colours_lab, rgb_to_hsv, rgb_to_lab, warp_perspective,
};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/warp");

fn image(name: &str) -> RgbImage {
    common::data_png("warp", name)
}

#[allow(clippy::disallowed_methods, reason = "test data")]
fn cases(kind: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(format!("{DIR}/cases.json")).unwrap_or_default();
    let all: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    all[kind].as_array().cloned().unwrap_or_default()
}

/// The largest per-sample difference and how many samples differ.
fn difference(a: &RgbImage, b: &RgbImage) -> (u8, usize) {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let diffs = a.data.iter().zip(&b.data).map(|(x, y)| x.abs_diff(*y));
    diffs.fold((0, 0), |(max, n), d| (max.max(d), n + usize::from(d > 0)))
}

fn number(case: &serde_json::Value, key: &str) -> f64 {
    case[key].as_f64().unwrap_or(f64::NAN)
}

#[test]
fn warp_is_opencvs_within_one_level() {
    let source = image("source.png");
    let warps = cases("warp");
    assert_eq!(warps.len(), 16);
    for case in warps {
        let motion = Motion2d {
            zoom: number(&case, "zoom"),
            angle: number(&case, "angle"),
            translation_x: number(&case, "tx"),
            translation_y: number(&case, "ty"),
        };
        let border = Border::from_name(case["border"].as_str().unwrap_or_default());
        let Some(border) = border else {
            panic!("border of {case}");
        };
        let got = warp_perspective(&source, &motion.matrix(source.width, source.height), border);
        let want = image(case["file"].as_str().unwrap_or_default());
        let (max, n) = difference(&got, &want);
        assert!(max <= 1, "{case}: max {max}, {n} samples differ");
    }
}

#[test]
fn lab_matching_is_scikit_images_within_two_levels() {
    for case in cases("colour") {
        let (img, reference) = (
            image(case["image"].as_str().unwrap_or_default()),
            image(case["reference"].as_str().unwrap_or_default()),
        );
        let got = match_colours_lab(&img, &reference);
        let (max, n) = difference(&got, &image(case["file"].as_str().unwrap_or_default()));
        assert!(max <= 2, "{case}: max {max}, {n} samples differ");
        // The matched image moved towards the reference's colours.
        let mean = |i: &RgbImage, c: usize| {
            i.data
                .iter()
                .skip(c)
                .step_by(3)
                .map(|&v| f64::from(v))
                .sum::<f64>()
                / 3072.0
        };
        for c in 0..3 {
            let (before, after) = (
                mean(&img, c) - mean(&reference, c),
                mean(&got, c) - mean(&reference, c),
            );
            assert!(
                after.abs() <= before.abs() + 2.0,
                "channel {c}: {before} → {after}"
            );
        }
    }
}

#[test]
fn lab_conversion_is_opencvs_within_two_levels() {
    let lab = rgb_to_lab(&image("source.png"));
    assert_eq!(lab, image("lab-source.png"));
    let (max, _) = difference(&lab, &image("opencv-lab-source.png"));
    assert!(max <= 2, "max {max}");
}

#[test]
fn rgb_and_hsv_matching_are_attention_interpolations_within_two_levels() {
    let spaces = cases("spaces");
    assert_eq!(spaces.len(), 4);
    for case in spaces {
        let space = ColourSpace::from_name(case["space"].as_str().unwrap_or_default());
        let Some(space) = space else {
            panic!("space of {case}");
        };
        let (img, reference) = (
            image(case["image"].as_str().unwrap_or_default()),
            image(case["reference"].as_str().unwrap_or_default()),
        );
        let got = match_colours(&img, &reference, space);
        let (max, n) = difference(&got, &image(case["file"].as_str().unwrap_or_default()));
        let exact = if space == ColourSpace::Rgb { 0 } else { 2 };
        assert!(max <= exact, "{case}: max {max}, {n} samples differ");
    }
}

#[test]
fn hsv_conversion_is_opencvs() {
    let source = image("source.png");
    let hsv = rgb_to_hsv(&source);
    let (max, n) = difference(&hsv, &image("hsv-source.png"));
    assert_eq!((max, n), (0, 0), "RGB → HSV");
    let (max, n) = difference(&hsv_to_rgb(&hsv), &image("rgb-from-hsv-source.png"));
    assert!(max <= 1, "HSV → RGB: max {max}, {n} samples differ");
}

#[test]
fn noise_is_deforums() {
    let source = image("source.png");
    for case in cases("noise") {
        let seed = case["seed"].as_u64().unwrap_or_default();
        let got = add_noise(&source, number(&case, "amount"), seed);
        let (max, n) = difference(&got, &image(case["file"].as_str().unwrap_or_default()));
        assert!(max <= 1, "{case}: max {max}, {n} samples differ");
    }
}
