//! What the reference tests share: the fixtures folder, a reference file, the tiny SD 1.x
//! model's context for a prompt, and the golden checks' relative measure.
#![allow(
    dead_code,
    clippy::unwrap_used,
    reason = "each test binary uses some of these; a panic is how a test fails"
)]

use std::path::PathBuf;

use keyshift_core::tokens::{ClipTokenizer, ModelFamily};
use keyshift_sd::Device;
use keyshift_sd::conditioning::TextEncoder;
use keyshift_sd::model::{DirFolder, SdModel};
use keyshift_sd::pipeline::Context;
use keyshift_sd::weights::{FileSource, SafetensorsFile};

/// The repository's `fixtures/` folder.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// The tiny SD 1.x fixture model (`fixtures/tiny-sd1/diffusers`) on `device`.
pub fn tiny_model(device: &Device) -> SdModel {
    SdModel::load_diffusers(&DirFolder(fixtures().join("tiny-sd1/diffusers")), device).unwrap()
}

/// A tensor's values, flat.
pub fn values<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// A safetensors file.
pub fn open(path: PathBuf) -> SafetensorsFile {
    let name = path.display().to_string();
    SafetensorsFile::open(&name, Box::new(FileSource::open(&path).unwrap())).unwrap()
}

/// An SD 1.x model's context for `prompt` (its first `AND` part at step 0 of `steps`).
pub fn sd1_context(
    model: &SdModel,
    tokenizer: &ClipTokenizer,
    prompt: &str,
    steps: u32,
) -> Context {
    let encoder = TextEncoder {
        clip: &model.clip,
        tokenizer,
        family: ModelFamily::Sd1,
        clip_skip: 1,
    };
    encoder.prompt(prompt, steps).unwrap().at_step(0)[0]
        .0
        .clone()
}

/// Max |a − b| over max(1, max |b|): the golden checks' relative measure.
pub fn relative_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    let d = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    d / scale
}
