//! Prompt travel's conditioning and embryo latents against `fixtures/tiny-sd1/travel.*`, made by
//! `scripts/reference/make_travel.py` with torch/diffusers from the description of the original.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::disallowed_methods,
    reason = "native tests read fixtures and fail by panicking"
)]

mod common;

use std::path::PathBuf;

use keyshift_core::schedule::{NoiseSchedule, Sampler, ScheduleConfig, StepPlan};
use keyshift_core::tokens::ClipTokenizer;
use keyshift_core::travel::replace::{distances, replaced, round_counts};
use keyshift_core::travel::{ReplaceDim, ReplaceOrder};
use keyshift_sd::Device;
use keyshift_sd::golden::{PIPELINE_TOLERANCE, compare};
use keyshift_sd::hooks::NoHook;
use keyshift_sd::model::{DirFolder, SdModel};
use keyshift_sd::pipeline::{Conditioning, Context, Context4, FixedNoise, Sampling, latent};
use keyshift_sd::travel::{Mix, mix};
use keyshift_sd::weights::{FileSource, SafetensorsFile};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-sd1")
}

struct Fixture {
    json: Value,
    travel: SafetensorsFile,
    golden: SafetensorsFile,
    model: SdModel,
    tokenizer: ClipTokenizer,
    device: Device,
}

impl Fixture {
    fn load() -> Self {
        let device = Device::flex();
        let open = |name: &str| {
            SafetensorsFile::open(name, Box::new(FileSource::open(&dir().join(name)).unwrap()))
                .unwrap()
        };
        let json = std::fs::read_to_string(dir().join("travel.json")).unwrap();
        Self {
            json: serde_json::from_str(&json).unwrap(),
            travel: open("travel.safetensors"),
            golden: open("golden.safetensors"),
            model: SdModel::load_diffusers(&DirFolder(dir().join("diffusers")), &device).unwrap(),
            tokenizer: ClipTokenizer::embedded().unwrap(),
            device,
        }
    }

    fn t(&mut self, name: &str) -> Vec<f32> {
        self.travel
            .read_f32(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn encode(&self, prompt: &str) -> Context {
        common::sd1_context(&self.model, &self.tokenizer, prompt, 4)
    }

    fn stage(&self, i: usize) -> Context {
        self.encode(self.json["stages"][i].as_str().unwrap())
    }
}

fn values<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn check(name: &str, got: &[f32], want: &[f32], tolerance: f32) {
    let c = compare(name, got, want, tolerance);
    println!("{}: {}", c.name, c.detail);
    assert!(c.passed, "{}: {}", c.name, c.detail);
}

#[test]
fn lerp_slerp_and_padding_match_the_reference() {
    let mut x = Fixture::load();
    let (a, b, empty) = (x.stage(0), x.stage(1), x.encode(""));
    check("cond.a", &values(a.clone()), &x.t("cond.a"), 1e-5);
    check("cond.b", &values(b.clone()), &x.t("cond.b"), 1e-5);
    let alphas: Vec<f64> = x.json["alphas"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    for alpha in alphas {
        for (name, how) in [("lerp", Mix::Lerp), ("slerp", Mix::Slerp)] {
            let got = mix(a.clone(), b.clone(), alpha, &how, &empty).unwrap();
            let key = format!("{name}.{alpha:?}");
            check(&key, &values(got), &x.t(&key), 1e-5);
        }
    }
    // A 77-token stage against a 154-token one: padded with the empty prompt's chunk.
    let long = x.encode(x.json["long_prompt"].as_str().unwrap());
    let got = mix(a, long, 0.5, &Mix::Lerp, &empty).unwrap();
    check("pad.lerp.0.5", &values(got), &x.t("pad.lerp.0.5"), 1e-5);
}

#[test]
fn replace_distances_orders_and_masks_match_the_reference() {
    let mut x = Fixture::load();
    let (a, b, empty) = (x.stage(0), x.stage(1), x.encode(""));
    let (va, vb) = (values(a.clone()), values(b.clone()));
    let steps = 3;
    for (dim, unit) in [
        ("token", ReplaceDim::Token),
        ("channel", ReplaceDim::Channel),
        ("random", ReplaceDim::Random),
    ] {
        let want = x.t(&format!("replace.{dim}.dist"));
        check(
            &format!("replace.{dim}.dist"),
            &distances(&va, &vb, 32, unit),
            &want,
            1e-5,
        );
        for (name, order) in [
            ("similar", ReplaceOrder::Similar),
            ("different", ReplaceOrder::Different),
            ("random", ReplaceOrder::Random),
        ] {
            for round in 1..=steps {
                let counts = round_counts(&want, round, steps, None);
                let got: Vec<f32> = replaced(&want, &counts, order, 42)
                    .into_iter()
                    .map(|m| if m { 1.0 } else { 0.0 })
                    .collect();
                let key = format!("replace.{dim}.{name}.r{round}");
                assert_eq!(got, x.t(&key), "{key}");
            }
        }
    }
    let mask: Vec<bool> = x
        .t("replace.token.random.r2")
        .iter()
        .map(|&m| m > 0.5)
        .collect();
    let how = Mix::Replace {
        mask,
        unit: ReplaceDim::Token,
    };
    let got = mix(a, b, 0.0, &how, &empty).unwrap();
    check(
        "replace.token.random.r2.cond",
        &values(got),
        &x.t("replace.token.random.r2.cond"),
        1e-6,
    );
}

fn euler(init: Context4) -> Sampling {
    let schedule = NoiseSchedule::new(ScheduleConfig::sd15()).unwrap();
    let plan = StepPlan::txt2img(&schedule, Sampler::Euler { karras: false }, 4).unwrap();
    Sampling::txt2img(plan, init, 7.5)
}

#[test]
fn embryo_latent_and_a_frame_made_from_it_match_the_reference() {
    let mut x = Fixture::load();
    let (a, b, empty) = (x.stage(0), x.stage(1), x.encode(""));
    let noise = latent(
        x.golden.read_f32("pipe.init_noise").unwrap(),
        [1, 4, 32, 32],
        &x.device,
    );
    let half = mix(a.clone(), b.clone(), 0.5, &Mix::Lerp, &empty).unwrap();
    let cond = Conditioning::single(half, empty.clone());
    let mut sampling = euler(noise.clone());
    let mut fixed = FixedNoise::default();
    while sampling.next_step() < 2 {
        sampling.step(&x.model.unet, &cond, &mut fixed, &mut NoHook);
    }
    let embryo = sampling.latent().clone();
    check(
        "embryo.latent",
        &values(embryo.clone()),
        &x.t("embryo.latent"),
        PIPELINE_TOLERANCE,
    );
    let quarter = mix(a, b, 0.25, &Mix::Lerp, &empty).unwrap();
    let cond = Conditioning::single(quarter, empty);
    let mut sampling = euler(noise);
    while sampling.next_step() < 2 {
        sampling.step(&x.model.unet, &cond, &mut fixed, &mut NoHook);
    }
    sampling.set_latent(embryo);
    while sampling
        .step(&x.model.unet, &cond, &mut fixed, &mut NoHook)
        .is_some()
    {}
    let last = sampling.latent().clone();
    check(
        "embryo.frame_latent",
        &values(last.clone()),
        &x.t("embryo.frame_latent"),
        PIPELINE_TOLERANCE,
    );
    let image = values(x.model.vae.decode(last / 0.18215));
    check(
        "embryo.frame_image",
        &image,
        &x.t("embryo.frame_image"),
        PIPELINE_TOLERANCE,
    );
}

#[test]
fn a_stage_with_prompt_editing_travels_step_by_step() {
    use keyshift_core::schedule::KMethod;
    use keyshift_sd::generate::{Generation, Request};
    use keyshift_sd::travel::Travel;
    let x = Fixture::load();
    let request = Request {
        prompt: "a [cat:dog:5] photo".into(),
        negative: String::new(),
        steps: 10,
        sampler: Sampler::KDiffusion {
            method: KMethod::Euler,
            karras: false,
        },
        cfg: 7.0,
        seed: 1,
        subseed: None,
        width: 64,
        height: 64,
        clip_skip: 0,
        init: None,
        schedule: ScheduleConfig::sd15(),
    };
    let travel = Travel {
        prompt: "a painting of a bird".into(),
        negative: String::new(),
        alpha: 0.3,
        uncond_alpha: 0.3,
        mix: Mix::Lerp,
    };
    let g =
        Generation::travelling(&x.model, &x.tokenizer, &request, Some(&travel), &x.device).unwrap();
    let (cat, dog, bird) = (
        x.encode("a cat photo"),
        x.encode("a dog photo"),
        x.encode("a painting of a bird"),
    );
    let lerp = |a: &Context| values(a.clone() * 0.7 + bird.clone() * 0.3);
    let (at_cat, at_dog) = (lerp(&cat), lerp(&dog));
    assert!(!compare("differ", &at_cat, &at_dog, 1e-3).passed);
    // A1111's schedule: "cat" through step 5 (0-based sampling steps 0–5), "dog" after.
    for step in 0..10 {
        let got = values(g.conditioning(step).unwrap().parts[0].0.clone());
        let want = if step <= 5 { &at_cat } else { &at_dog };
        check(&format!("step {step}"), &got, want, 1e-6);
    }
}

fn grad_target<'a>(
    x: &'a Fixture,
    schedule: &'a keyshift_core::schedule::NoiseSchedule,
) -> keyshift_sd::grad::GradTarget<'a> {
    let mut extras = SafetensorsFile::open(
        "extras.safetensors",
        Box::new(FileSource::open(&dir().join("extras.safetensors")).unwrap()),
    )
    .unwrap();
    let z0 = latent(
        extras.read_f32("img2img.init_latent").unwrap(),
        [1, 4, 32, 32],
        &x.device,
    );
    keyshift_sd::grad::GradTarget {
        model: &x.model,
        schedule,
        cond: x.stage(1),
        latent: z0,
    }
}

#[test]
fn one_grad_step_matches_torch_autograd() {
    use keyshift_core::travel::{GradMethod, GradOptions};
    use keyshift_sd::grad::{gradient, step};
    let mut x = Fixture::load();
    let schedule = NoiseSchedule::new(ScheduleConfig::sd15()).unwrap();
    let noise = latent(x.t("grad.noise"), [1, 4, 32, 32], &x.device);
    let (want_grad, want_losses, want_step) = (
        x.t("grad.gradient"),
        x.t("grad.losses"),
        x.t("grad.clip_step"),
    );
    let target = grad_target(&x, &schedule);
    let a = x.stage(0);
    let (g, losses) = pollster::block_on(gradient(
        &target,
        a.clone(),
        500,
        noise,
        &GradOptions::default(),
    ))
    .unwrap();
    // The issue asks for 1e-4; the gradient is held to 1e-6 (its values are about 4e-4).
    check("grad.gradient", &values(g.clone()), &want_grad, 1e-6);
    #[allow(clippy::cast_possible_truncation, reason = "compared in f32")]
    let got = [losses.latent as f32, losses.cond as f32];
    check("grad.losses", &got, &want_losses, 1e-5);
    let stepped = a - step(g, GradMethod::Clip) * 0.01;
    check("grad.clip_step", &values(stepped), &want_step, 1e-5);
}

#[test]
fn the_grad_walk_lowers_the_loss_over_five_iterations() {
    use keyshift_core::travel::{GradMethod, GradOptions};
    use keyshift_sd::grad::{gradient, step};
    let mut x = Fixture::load();
    let schedule = NoiseSchedule::new(ScheduleConfig::sd15()).unwrap();
    let noise = latent(x.t("grad.noise"), [1, 4, 32, 32], &x.device);
    let target = grad_target(&x, &schedule);
    let options = GradOptions::default();
    let mut c = x.stage(0);
    let mut totals = Vec::new();
    for _ in 0..6 {
        // The walk draws a timestep and noise per step; held fixed here, the loss is one function.
        let (g, l) =
            pollster::block_on(gradient(&target, c.clone(), 500, noise.clone(), &options)).unwrap();
        totals.push(l.latent + l.cond);
        c = c - step(g, GradMethod::Clip) * options.alpha;
    }
    println!("losses over 5 iterations: {totals:?}");
    assert!(totals.windows(2).all(|w| w[1] < w[0]), "{totals:?}");
}
