//! The ControlNet against torch/diffusers reference values (`scripts/reference/make_controlnet.py`
//! → `fixtures/tiny-controlnet/`): a tiny random ControlNet loaded from the diffusers folder and
//! from the original single file, its residuals with and without guess mode, and two-step runs of
//! diffusers' `StableDiffusionControlNetPipeline` (plain, guess mode, guess mode starting at half).
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test helpers read fixtures; a panic is how a test fails"
)]

mod common;
use common::{fixtures, open, relative_diff};

use keyshift_core::schedule::{NoiseSchedule, Sampler, ScheduleConfig, StepPlan};
use keyshift_core::tokens::ClipTokenizer;
use keyshift_sd::Device;
use keyshift_sd::controlnet::{ControlNet, ControlNetConfig, Strength, hint_tensor};
use keyshift_sd::hooks::NoHook;
use keyshift_sd::model::{DirFolder, SdModel};
use keyshift_sd::pipeline::{
    Conditioning, Context, Control, Controlled, FixedNoise, Sampling, latent,
};
use keyshift_sd::weights::{LoadError, Precision, SafetensorsFile};

const PROMPT: &str = "a photo of a cat";
const SCALE: f64 = 0.8;
const TOLERANCE: f32 = 1e-4;

struct Fixture {
    reference: SafetensorsFile,
    golden: SafetensorsFile,
    model: SdModel,
    net: ControlNet,
    config: ControlNetConfig,
    tokenizer: ClipTokenizer,
    device: Device,
}

impl Fixture {
    fn load() -> Self {
        let device = Device::flex();
        let model =
            SdModel::load_diffusers(&DirFolder(fixtures().join("tiny-sd1/diffusers")), &device)
                .unwrap();
        let folder = DirFolder(fixtures().join("tiny-controlnet/diffusers"));
        let (net, config) = ControlNet::load_diffusers(&folder, Precision::F32, &device).unwrap();
        Self {
            reference: open(fixtures().join("tiny-controlnet/reference.safetensors")),
            golden: open(fixtures().join("tiny-sd1/golden.safetensors")),
            model,
            net,
            config,
            tokenizer: ClipTokenizer::embedded().unwrap(),
            device,
        }
    }

    fn t(&mut self, name: &str) -> Vec<f32> {
        self.reference
            .read_f32(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn encode(&self, prompt: &str) -> Context {
        common::sd1_context(&self.model, &self.tokenizer, prompt, 2)
    }

    fn hint(&mut self) -> burn::tensor::Tensor<4> {
        let values = self.t("hint");
        latent(values, [1, 3, 64, 64], &self.device)
    }

    fn noise(&mut self) -> Vec<f32> {
        self.golden.read_f32("pipe.init_noise").unwrap()
    }
}

fn values(t: burn::tensor::Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn check_residuals(f: &mut Fixture, net: &ControlNet, guess: bool, what: &str) {
    let sample = f.noise().into_iter().map(|v| v * 2.0).collect();
    let sample = latent(sample, [1, 4, 32, 32], &f.device);
    let context = f.encode(PROMPT);
    let hint = f.hint();
    let strength = Strength {
        scale: SCALE,
        guess_mode: guess,
    };
    let r = net.forward(sample, 500.0, &context, hint, strength, &mut NoHook);
    let tag = if guess { "guess" } else { "plain" };
    assert_eq!(r.down.len(), 6, "{what}: one residual per skip connection");
    for (i, t) in r.down.into_iter().enumerate() {
        let want = f.t(&format!("residuals.{tag}.down.{i}"));
        let d = relative_diff(&values(t), &want);
        assert!(d < TOLERANCE, "{what} {tag} down {i}: {d}");
    }
    let d = relative_diff(&values(r.mid), &f.t(&format!("residuals.{tag}.mid")));
    assert!(d < TOLERANCE, "{what} {tag} mid: {d}");
}

#[test]
fn residuals_match_diffusers_from_both_layouts_with_and_without_guess_mode() {
    let mut f = Fixture::load();
    assert_eq!(f.config.hint_channels, vec![8, 16]);
    assert_eq!(f.config.hint_downscale(), 2);
    let net = std::mem::replace(
        &mut f.net,
        ControlNet::load_diffusers(
            &DirFolder(fixtures().join("tiny-controlnet/diffusers")),
            Precision::F32,
            &Device::flex(),
        )
        .unwrap()
        .0,
    );
    for guess in [false, true] {
        check_residuals(&mut f, &net, guess, "diffusers folder");
    }
    let file = open(fixtures().join("tiny-controlnet/tiny_controlnet.safetensors"));
    let (single, config) =
        ControlNet::load_single_file(file, &f.model.info.unet, Precision::F32, &f.device).unwrap();
    assert_eq!(config, f.config, "the single file's inferred shape");
    for guess in [false, true] {
        check_residuals(&mut f, &single, guess, "single file");
    }
    // Guess mode scales the first skip by 0.1 and the middle block by 1: they differ.
    let plain = f.t("residuals.plain.down.0");
    let guessed = f.t("residuals.guess.down.0");
    assert!(relative_diff(&plain, &guessed) > 100.0 * TOLERANCE);
}

/// A two-step Euler run (CFG 7.5, golden's noise) with `control`'s guess mode and start, or
/// without ControlNet.
fn run(f: &mut Fixture, control: Option<(bool, f64)>) -> Vec<f32> {
    let cond = Conditioning::single(f.encode(PROMPT), f.encode(""));
    let schedule = NoiseSchedule::new(ScheduleConfig::sd15()).unwrap();
    let plan = StepPlan::txt2img(&schedule, Sampler::Euler { karras: false }, 2).unwrap();
    let noise = latent(f.noise(), [1, 4, 32, 32], &f.device);
    let mut sampling = Sampling::txt2img(plan, noise, 7.5);
    let hint = hint_tensor(&hint_png(), &f.device);
    let settings = control.map(|(guess_mode, start)| Control {
        net: &f.net,
        hint: hint.clone(),
        scale: SCALE,
        guess_mode,
        start,
        end: 1.0,
    });
    let mut control_hook = NoHook;
    while !sampling.is_done() {
        let controlled = settings.as_ref().map(|control| Controlled {
            control,
            hook: &mut control_hook,
        });
        sampling.step_controlled(
            &f.model.unet,
            &cond,
            &mut FixedNoise::default(),
            &mut NoHook,
            controlled,
        );
    }
    values(sampling.latent().clone())
}

/// The hint as the script saved it (8-bit PNG, three equal channels).
fn hint_png() -> keyshift_sd::generate::RgbImage {
    let bytes = std::fs::read(fixtures().join("tiny-controlnet/hint.png")).unwrap();
    let (width, height, data) = keyshift_core::pngtext::decode_rgb(&bytes).unwrap();
    keyshift_sd::generate::RgbImage {
        width,
        height,
        data,
    }
}

#[test]
fn two_step_runs_match_the_diffusers_controlnet_pipeline() {
    let mut f = Fixture::load();
    let hint = hint_tensor(&hint_png(), &f.device);
    assert_eq!(values(hint), f.t("hint"), "hint.png is the reference hint");
    let cases = [
        ("plain", Some((false, 0.0))),
        ("guess", Some((true, 0.0))),
        ("guess_start_half", Some((true, 0.5))),
        ("none", None),
    ];
    for (tag, control) in cases {
        let got = run(&mut f, control);
        let d = relative_diff(&got, &f.t(&format!("run.{tag}")));
        assert!(d < TOLERANCE, "{tag}: {d}");
    }
    // The ControlNet changes the result far beyond the tolerance; starting it half-way (at the
    // last, nearly clean step of two) leaves the first step's far larger change out.
    let none = f.t("run.none");
    for tag in ["plain", "guess"] {
        let d = relative_diff(&f.t(&format!("run.{tag}")), &none);
        assert!(d > 100.0 * TOLERANCE, "{tag} vs none: {d}");
    }
    let d = relative_diff(&f.t("run.guess"), &f.t("run.guess_start_half"));
    assert!(d > 100.0 * TOLERANCE, "guess vs guess_start_half: {d}");
}

#[test]
fn a_checkpoint_that_is_no_controlnet_is_refused_by_name() {
    let file = open(fixtures().join("tiny-sd1/tiny_sd1_fp16.safetensors"));
    let base = keyshift_sd::config::UnetConfig::sd1();
    let err = ControlNet::load_single_file(file, &base, Precision::F32, &Device::flex())
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::Unrecognised(_)), "{err}");
    assert!(err.to_string().contains("not a ControlNet"), "{err}");
}
