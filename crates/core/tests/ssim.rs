//! SSIM against torchmetrics 1.9 (`scripts/reference/make_ssim_reference.py`): every recorded pair
//! within 1e-4 of torchmetrics in f32 (as shift-attention runs it) and within 1e-6 of torchmetrics
//! in f64 — except that a pair of flat images (zero variance) is only held to the f64 value: there
//! torch's f32 sums cancel to rounding noise that the small C2 amplifies to about 3e-4.

mod common;

use keyshift_core::image::{RgbImage, ssim};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ssim");

fn image(name: &str) -> RgbImage {
    common::data_png("ssim", name)
}

#[test]
#[allow(clippy::disallowed_methods, reason = "test data")]
fn matches_torchmetrics() {
    let text = std::fs::read_to_string(format!("{DIR}/cases.json")).unwrap_or_default();
    let meta: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    assert_eq!(meta["torchmetrics"], "1.9.0");
    let cases = meta["cases"].as_array().cloned().unwrap_or_default();
    assert_eq!(cases.len(), 9);
    for case in cases {
        let name = case["name"].as_str().unwrap_or_default();
        let expected = case["ssim"].as_f64().unwrap_or(f64::NAN);
        let a = image(case["a"].as_str().unwrap_or_default());
        let b = image(case["b"].as_str().unwrap_or_default());
        let exact = case["ssim_f64"].as_f64().unwrap_or(f64::NAN);
        let got = ssim(&a, &b).unwrap_or(f64::NAN);
        assert!(
            (got - exact).abs() < 1e-6,
            "{name}: {got} against torchmetrics' {exact} (f64)"
        );
        if case["f32_cancellation"] != true {
            assert!(
                (got - expected).abs() < 1e-4,
                "{name}: {got} against torchmetrics' {expected} (f32)"
            );
        }
    }
}
