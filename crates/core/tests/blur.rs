//! Pillow's `GaussianBlur` and the centre crop against Pillow 13
//! (`scripts/reference/make_blur_reference.py`): every byte equal.

mod common;

use keyshift_core::image::{RgbImage, center_crop, gaussian_blur};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/blur");

fn image(name: &str) -> RgbImage {
    common::data_png("blur", name)
}

#[allow(clippy::disallowed_methods, reason = "test data")]
fn cases() -> serde_json::Value {
    let text = std::fs::read_to_string(format!("{DIR}/cases.json")).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_default()
}

#[test]
fn gaussian_blur_is_pillows() {
    let source = image("source.png");
    let cases = cases();
    let blurs = cases["blur"].as_array().cloned().unwrap_or_default();
    assert_eq!(blurs.len(), 6);
    for case in blurs {
        let radius = case["radius"].as_f64().unwrap_or(f64::NAN);
        let want = image(case["file"].as_str().unwrap_or_default());
        let got = gaussian_blur(&source, radius);
        let differing = got
            .data
            .iter()
            .zip(&want.data)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(differing, 0, "radius {radius}: {differing} bytes differ");
    }
    assert_eq!(gaussian_blur(&source, 0.0), source);
}

#[test]
fn center_crop_is_torchvisions() {
    let source = image("source.png");
    let crops = cases()["crop"].as_array().cloned().unwrap_or_default();
    assert_eq!(crops.len(), 4);
    for case in crops {
        let percent = case["percent"].as_f64().unwrap_or(f64::NAN);
        let want = image(case["file"].as_str().unwrap_or_default());
        assert_eq!(center_crop(&source, percent), want, "{percent}%");
    }
    assert_eq!(center_crop(&source, 0.0), source);
}
