//! Latent sizes not divisible by 2^(levels − 1) (A1111 accepts any multiple of 8: SD 1.5 at
//! 520×512 is a 65×64 latent): the UNet's upsamplers follow the skips' sizes as diffusers'
//! `upsample_size` does. References: `scripts/reference/make_odd_size.py` → `fixtures/tiny-sd1/odd.*`.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is how a test fails"
)]

use std::path::PathBuf;

use burn::tensor::Tensor;
use keyshift_core::tokens::{ClipTokenizer, ModelFamily};
use keyshift_sd::Device;
use keyshift_sd::conditioning::TextEncoder;
use keyshift_sd::controlnet::{ControlNet, Strength};
use keyshift_sd::hooks::NoHook;
use keyshift_sd::model::{DirFolder, SdModel};
use keyshift_sd::pipeline::latent;
use keyshift_sd::weights::{FileSource, Precision, SafetensorsFile};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn values(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn relative_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
        / scale
}

#[test]
fn odd_latent_sizes_match_diffusers_with_and_without_a_controlnet() {
    let device = Device::flex();
    let model = SdModel::load_diffusers(&DirFolder(fixtures().join("tiny-sd1/diffusers")), &device)
        .unwrap();
    let path = fixtures().join("tiny-sd1/odd.safetensors");
    let mut reference =
        SafetensorsFile::open("odd", Box::new(FileSource::open(&path).unwrap())).unwrap();
    let tokenizer = ClipTokenizer::embedded().unwrap();
    let encoder = TextEncoder {
        clip: &model.clip,
        tokenizer: &tokenizer,
        family: ModelFamily::Sd1,
        clip_skip: 1,
    };
    let context = encoder.prompt("a photo of a cat", 1).unwrap().at_step(0)[0]
        .0
        .clone();
    for (h, w) in [(9, 10), (7, 7)] {
        let x = latent(
            reference.read_f32(&format!("x.{h}x{w}")).unwrap(),
            [1, 4, h, w],
            &device,
        );
        let out = model.unet.forward(x, 500.0, &context, &mut NoHook);
        let want = reference.read_f32(&format!("out.{h}x{w}")).unwrap();
        let d = relative_diff(&values(out), &want);
        assert!(d < 1e-4, "{h}x{w}: {d}");
    }
    let folder = DirFolder(fixtures().join("tiny-controlnet/diffusers"));
    let (net, _) = ControlNet::load_diffusers(&folder, Precision::F32, &device).unwrap();
    let x = latent(
        reference.read_f32("x.9x10").unwrap(),
        [1, 4, 9, 10],
        &device,
    );
    let hint = latent(
        reference.read_f32("hint.18x20").unwrap(),
        [1, 3, 18, 20],
        &device,
    );
    let strength = Strength {
        scale: 1.0,
        guess_mode: false,
    };
    let residuals = net.forward(x.clone(), 500.0, &context, hint, strength, &mut NoHook);
    let out =
        model
            .unet
            .forward_controlled(x, 500.0, &context, None, Some(&residuals), &mut NoHook);
    let d = relative_diff(
        &values(out),
        &reference.read_f32("controlled.9x10").unwrap(),
    );
    assert!(d < 1e-4, "controlled 9x10: {d}");
}
