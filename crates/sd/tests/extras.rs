//! The engine against the extra references of `fixtures/tiny-sd1/extras.*` (made by
//! `scripts/reference/make_extras.py` with diffusers/torch): DPM++ 2M (and Karras), LCM, img2img,
//! A1111 emphasis and multi-chunk conditioning, A1111 variation seeds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::disallowed_methods,
    reason = "native tests read fixtures and fail by panicking"
)]

use std::path::PathBuf;

use keyshift_core::noise::NoiseSpec;
use keyshift_core::schedule::{NoiseSchedule, Sampler, ScheduleConfig, StepPlan};
use keyshift_core::tokens::{ClipTokenizer, ModelFamily};
use keyshift_sd::Device;
use keyshift_sd::conditioning::TextEncoder;
use keyshift_sd::golden::{PIPELINE_TOLERANCE, compare};
use keyshift_sd::hooks::NoHook;
use keyshift_sd::model::{DirFolder, SdModel};
use keyshift_sd::pipeline::{Conditioning, FixedNoise, Sampling, latent};
use keyshift_sd::weights::{FileSource, SafetensorsFile};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-sd1")
}

struct Extras {
    json: Value,
    tensors: SafetensorsFile,
    golden: SafetensorsFile,
    model: SdModel,
    device: Device,
}

impl Extras {
    fn load() -> Self {
        let device = Device::flex();
        let open = |name: &str| {
            SafetensorsFile::open(name, Box::new(FileSource::open(&dir().join(name)).unwrap()))
                .unwrap()
        };
        let json =
            serde_json::from_str(&std::fs::read_to_string(dir().join("extras.json")).unwrap())
                .unwrap();
        let model = SdModel::load_diffusers(&DirFolder(dir().join("diffusers")), &device).unwrap();
        Self {
            json,
            tensors: open("extras.safetensors"),
            golden: open("golden.safetensors"),
            model,
            device,
        }
    }

    fn t(&mut self, name: &str) -> Vec<f32> {
        match self.tensors.read_f32(name) {
            Ok(v) => v,
            Err(_) => self
                .golden
                .read_f32(name)
                .unwrap_or_else(|e| panic!("{name}: {e}")),
        }
    }

    fn latent(&mut self, name: &str) -> keyshift_sd::pipeline::Context4 {
        latent(self.t(name), [1, 4, 32, 32], &self.device)
    }

    fn encoder<'a>(&'a self, tokenizer: &'a ClipTokenizer, clip_skip: usize) -> TextEncoder<'a> {
        TextEncoder {
            clip: &self.model.clip,
            tokenizer,
            family: ModelFamily::Sd1,
            clip_skip,
        }
    }

    fn cfg(&self, tokenizer: &ClipTokenizer) -> Conditioning {
        let enc = self.encoder(tokenizer, 1);
        let cond = enc.prompt("a photo of a cat", 4).unwrap().at_step(0)[0]
            .0
            .clone();
        let uncond = enc.prompt("", 4).unwrap().at_step(0)[0].0.clone();
        Conditioning::single(cond, uncond)
    }
}

fn values(t: keyshift_sd::pipeline::Context4) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn schedule() -> NoiseSchedule {
    NoiseSchedule::new(ScheduleConfig::sd15()).unwrap()
}

fn assert_check(c: keyshift_sd::golden::Check) {
    println!("{}: {}", c.name, c.detail);
    assert!(c.passed, "{}: {}", c.name, c.detail);
}

fn run(
    x: &mut Extras,
    mut sampling: Sampling,
    cond: &Conditioning,
    noise: Vec<Vec<f32>>,
) -> (Vec<f32>, keyshift_sd::pipeline::Context4) {
    let mut steps = Vec::new();
    let mut noise = FixedNoise::new(noise);
    while sampling
        .step(&x.model.unet, cond, &mut noise, &mut NoHook)
        .is_some()
    {
        steps.extend(values(sampling.latent().clone()));
    }
    (steps, sampling.latent().clone())
}

fn check_run(x: &mut Extras, prefix: &str, steps: Vec<f32>, last: keyshift_sd::pipeline::Context4) {
    let want = x.t(&format!("{prefix}.step_latents"));
    assert_check(compare(
        &format!("{prefix}.step_latents"),
        &steps,
        &want,
        PIPELINE_TOLERANCE,
    ));
    let want = x.t(&format!("{prefix}.latents"));
    assert_check(compare(
        &format!("{prefix}.latents"),
        &values(last.clone()),
        &want,
        PIPELINE_TOLERANCE,
    ));
    let image = values(x.model.vae.decode(last / 0.18215));
    let want = x.t(&format!("{prefix}.image"));
    assert_check(compare(
        &format!("{prefix}.image"),
        &image,
        &want,
        PIPELINE_TOLERANCE,
    ));
}

fn split(v: Vec<f32>, per: usize) -> Vec<Vec<f32>> {
    v.chunks(per).map(<[f32]>::to_vec).collect()
}

#[test]
fn dpm_solver_and_lcm_runs_match_diffusers() {
    let mut x = Extras::load();
    let tokenizer = ClipTokenizer::embedded().unwrap();
    let cfg = x.cfg(&tokenizer);
    for (key, sampler) in [
        ("dpmpp_2m", Sampler::DpmPp2m { karras: false }),
        ("dpmpp_2m_karras", Sampler::DpmPp2m { karras: true }),
    ] {
        let plan = StepPlan::txt2img(&schedule(), sampler, 4).unwrap();
        let init = x.latent("pipe.init_noise");
        let (steps, last) = run(&mut x, Sampling::txt2img(plan, init, 7.5), &cfg, vec![]);
        check_run(&mut x, &format!("pipe.{key}"), steps, last);
    }
    // LCM: the tiny UNet has no guidance embedding; diffusers ran it with the prompt alone.
    let plan = StepPlan::txt2img(&schedule(), Sampler::Lcm, 4).unwrap();
    let want_t: Vec<f64> = x.json["pipeline"]["schedulers"]["lcm"]["timesteps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert_eq!(plan.timesteps(), want_t);
    let init = x.latent("pipe.init_noise");
    let noise = split(x.t("pipe.lcm.step_noise"), 4 * 32 * 32);
    let (steps, last) = run(&mut x, Sampling::txt2img(plan, init, 1.0), &cfg, noise);
    check_run(&mut x, "pipe.lcm", steps, last);
}

#[test]
fn img2img_matches_diffusers() {
    let mut x = Extras::load();
    let tokenizer = ClipTokenizer::embedded().unwrap();
    let cfg = x.cfg(&tokenizer);
    // The init latent is the VAE encoder's mean × 0.18215.
    let image = keyshift_sd::pipeline::latent(x.t("img2img.image"), [1, 3, 64, 64], &x.device);
    let moments = x.model.vae.encode_moments(image).unwrap();
    let mean = moments.slice([0..1, 0..4, 0..32, 0..32]) * 0.18215;
    let want = x.t("img2img.init_latent");
    assert_check(compare("img2img.init_latent", &values(mean), &want, 2e-5));
    for (key, sampler, steps, strength) in [
        ("ddim", Sampler::Ddim { eta: 0.0 }, 8, 0.5),
        ("euler", Sampler::Euler { karras: false }, 4, 0.75),
    ] {
        let plan = StepPlan::new(&schedule(), sampler, steps, strength).unwrap();
        let want_t: Vec<f64> = x.json["img2img"]["runs"][key]["timesteps_run"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        assert_eq!(plan.timesteps(), want_t, "{key}");
        let (init, noise) = (x.latent("img2img.init_latent"), x.latent("img2img.noise"));
        let sampling = Sampling::img2img(plan, init, noise, 7.5);
        let want = x.t(&format!("img2img.{key}.start_latent"));
        assert_check(compare(
            &format!("img2img.{key}.start_latent"),
            &values(sampling.latent().clone()),
            &want,
            1e-6,
        ));
        let (steps, last) = run(&mut x, sampling, &cfg, vec![]);
        check_run(&mut x, &format!("img2img.{key}"), steps, last);
    }
}

fn ids_and_weights(json: &Value) -> (Vec<u32>, Vec<f64>) {
    let ids = json["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let weights = json["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    (ids, weights)
}

#[test]
fn a1111_emphasis_and_long_prompts_match() {
    let mut x = Extras::load();
    let tokenizer = ClipTokenizer::embedded().unwrap();
    let prompts = x.json["a1111_conditioning"]["prompts"].clone();
    for (key, clip_skip, tensor) in [
        ("weighted", 1, "a1111.weighted.cond"),
        ("weighted", 2, "a1111.weighted_clip_skip2.cond"),
        ("long", 1, "a1111.long.cond"),
    ] {
        let case = &prompts[key];
        let prompt = case["prompt"].as_str().unwrap();
        // Our tokens and weights are A1111's.
        let parsed = keyshift_core::prompt::ParsedPrompt::parse(
            prompt,
            keyshift_core::prompt::ScheduleOptions::steps(20),
            keyshift_core::prompt::Fidelity::Keyshift,
        )
        .unwrap();
        let tokens = tokenizer
            .prompt_chunks(&parsed.parts[0].schedule[0].chunks, ModelFamily::Sd1)
            .unwrap();
        let ids: Vec<u32> = tokens.chunks.iter().flat_map(|c| c.ids.clone()).collect();
        let weights: Vec<f64> = tokens
            .chunks
            .iter()
            .flat_map(|c| c.weights.clone())
            .collect();
        let (want_ids, want_weights) = ids_and_weights(case);
        assert_eq!(ids, want_ids, "{key}");
        for (g, w) in weights.iter().zip(&want_weights) {
            assert!((g - w).abs() < 1e-12, "{key}: weight {g} vs {w}");
        }
        // The encoder output before weighting, chunk by chunk.
        let raw: Vec<f32> = tokens
            .chunks
            .iter()
            .flat_map(|c| {
                values3(
                    x.model
                        .clip
                        .forward(std::slice::from_ref(&c.ids), clip_skip),
                )
            })
            .collect();
        let raw_name = tensor.replace(".cond", ".raw");
        let want_raw = x.t(&raw_name);
        assert_check(compare(&raw_name, &raw, &want_raw, 2e-5));
        // After weighting. The tiny model's embeddings have a mean of about -7e-6, so A1111's
        // `z * (mean_before / mean_after)` divides by a near-zero sum: float32 summation order
        // alone moves the result by ~5e-4 (numpy in float64 differs from torch's float32 by
        // 5.5e-4). Real CLIP embeddings have means far from zero.
        let got = x
            .encoder(&tokenizer, clip_skip)
            .prompt(prompt, 20)
            .unwrap()
            .at_step(0)[0]
            .0
            .clone();
        let want = x.t(tensor);
        assert_check(compare(tensor, &values3(got), &want, 2e-3));
    }
}

fn values3(t: keyshift_sd::pipeline::Context) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn a1111_variation_seeds_match() {
    let mut x = Extras::load();
    let spec = NoiseSpec::new(1234).with_subseed(5678, 0.3);
    let noise = spec.latent_noise([4, 32, 32]).unwrap();
    let want = x.t("subseed.noise");
    assert_check(compare("subseed.noise", &noise, &want, 1e-5));
    let tokenizer = ClipTokenizer::embedded().unwrap();
    let cfg = x.cfg(&tokenizer);
    let plan = StepPlan::txt2img(&schedule(), Sampler::Euler { karras: false }, 4).unwrap();
    let init = latent(noise, [1, 4, 32, 32], &x.device);
    let (steps, last) = run(&mut x, Sampling::txt2img(plan, init, 7.5), &cfg, vec![]);
    let want = x.t("subseed.euler.step_latents");
    assert_check(compare(
        "subseed.euler.step_latents",
        &steps,
        &want,
        PIPELINE_TOLERANCE,
    ));
    let want = x.t("subseed.euler.latents");
    assert_check(compare(
        "subseed.euler.latents",
        &values(last),
        &want,
        PIPELINE_TOLERANCE,
    ));
}
