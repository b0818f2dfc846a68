//! Latent sizes not divisible by 2^(levels − 1) (A1111 accepts any multiple of 8: SD 1.5 at
//! 520×512 is a 65×64 latent): the UNet's upsamplers follow the skips' sizes as diffusers'
//! `upsample_size` does. References: `scripts/reference/make_odd_size.py` → `fixtures/tiny-sd1/odd.*`.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is how a test fails"
)]

mod common;
use common::{fixtures, relative_diff, values};

use keyshift_core::tokens::ClipTokenizer;
use keyshift_sd::Device;
use keyshift_sd::controlnet::{ControlNet, Strength};
use keyshift_sd::hooks::NoHook;
use keyshift_sd::model::DirFolder;
use keyshift_sd::pipeline::latent;
use keyshift_sd::weights::{FileSource, Precision, SafetensorsFile};

#[test]
fn odd_latent_sizes_match_diffusers_with_and_without_a_controlnet() {
    let device = Device::flex();
    let model = common::tiny_model(&device);
    let path = fixtures().join("tiny-sd1/odd.safetensors");
    let mut reference =
        SafetensorsFile::open("odd", Box::new(FileSource::open(&path).unwrap())).unwrap();
    let tokenizer = ClipTokenizer::embedded().unwrap();
    let context = common::sd1_context(&model, &tokenizer, "a photo of a cat", 1);
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
