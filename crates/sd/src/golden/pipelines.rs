//! Whole txt2img runs from fixed initial noise: the latent after every step, the final latent and
//! the decoded image.

use burn::tensor::{Device, Tensor};
use keyshift_core::schedule::{NoiseSchedule, Prediction, Sampler, StepPlan};
use keyshift_core::tokens::ClipTokenizer;
use serde_json::Value;

use super::modules::{tensor4, to_vec};
use super::{Check, Golden, GoldenReport, PIPELINE_TOLERANCE, compare, schedules};
use crate::hooks::NoHook;
use crate::model::{self, SdModel};
use crate::pipeline::{Conditioning, FixedNoise, Sampling};

/// The sampler a reference run names.
fn sampler_for(key: &str) -> Option<Sampler> {
    Some(match key {
        "ddim" => Sampler::Ddim { eta: 0.0 },
        "euler" => Sampler::Euler { karras: false },
        "euler_a" => Sampler::EulerAncestral,
        "dpmpp_2m" => Sampler::DpmPp2m { karras: false },
        "dpmpp_2m_karras" => Sampler::DpmPp2m { karras: true },
        "lcm" => Sampler::Lcm,
        _ => return None,
    })
}

/// Encodes plain prompts (no weights) to `[n, 77, dim]` at the model's native CLIP skip.
pub(super) fn encode(
    model: &SdModel,
    tokenizer: &ClipTokenizer,
    prompts: &[&str],
) -> Option<Tensor<3>> {
    let ids = prompts
        .iter()
        .map(|p| {
            tokenizer
                .context_ids(p, crate::generate::family(model))
                .ok()
        })
        .collect::<Option<Vec<_>>>()?;
    Some(model.clip.forward(&ids, model.info.native_clip_skip))
}

/// Runs every reference pipeline the fixture holds.
pub(super) fn check(
    model: &SdModel,
    golden: &mut Golden,
    label: &str,
    device: &Device,
    report: &mut GoldenReport,
) {
    let p = golden.json["pipeline"].clone();
    if p.is_null() {
        return;
    }
    let (Some(prompt), Some(steps)) = (p["prompt"].as_str(), p["num_inference_steps"].as_u64())
    else {
        let why = "the pipeline lacks its prompt or num_inference_steps";
        report.cannot_run(&p, format!("{label}/pipe"), why);
        return;
    };
    let negative = p["negative_prompt"].as_str().unwrap_or("");
    let guidance = p["guidance_scale"].as_f64().unwrap_or(7.5);
    let fail = |name: &str, detail: &str| Check {
        name: format!("{label}/{name}"),
        passed: false,
        detail: detail.to_owned(),
    };
    let Ok(tokenizer) = ClipTokenizer::embedded() else {
        report.push(fail("pipe", "the embedded tokenizer did not load"));
        return;
    };
    let (Some(cond), Some(uncond)) = (
        encode(model, &tokenizer, &[prompt]),
        encode(model, &tokenizer, &[negative]),
    ) else {
        report.push(fail("pipe", "the prompt did not tokenize"));
        return;
    };
    let cond = Conditioning::single(cond, uncond);
    let Some(schedule) = schedule(golden, model) else {
        report.push(fail("pipe", "no usable scheduler config"));
        return;
    };
    let keys: Vec<(String, Value)> = p["schedulers"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let Some((noise, shape)) = golden.tensor("pipe.init_noise") else {
        if !keys.is_empty() {
            report.cannot_run(&p, format!("{label}/pipe"), "pipe.init_noise is missing");
        }
        return;
    };
    for (key, entry) in keys {
        let case_name = format!("{label}/pipe.{key}");
        let Some(sampler) = sampler_for(&key) else {
            report.cannot_run(&entry, case_name, "a sampler the runner does not know");
            golden.excuse(format!("pipe.{key}."));
            continue;
        };
        let Some(init) = tensor4(noise.clone(), &shape, device) else {
            report.fail(case_name, "pipe.init_noise is not a 4-d tensor");
            continue;
        };
        run_one(
            model,
            golden,
            label,
            &key,
            sampler,
            &schedule,
            steps as usize,
            init,
            &cond,
            guidance,
            report,
        );
    }
}

fn schedule(golden: &Golden, model: &SdModel) -> Option<NoiseSchedule> {
    let mut config = schedules::config(golden)?;
    if golden.json["schedulers"]["config"]
        .get("prediction_type")
        .is_none()
    {
        config.prediction = match model.info.prediction {
            model::Prediction::Epsilon => Prediction::Epsilon,
            model::Prediction::V => Prediction::V,
        };
    }
    NoiseSchedule::new(config).ok()
}

#[allow(clippy::too_many_arguments, reason = "one reference run's inputs")]
fn run_one(
    model: &SdModel,
    golden: &mut Golden,
    label: &str,
    key: &str,
    sampler: Sampler,
    schedule: &NoiseSchedule,
    steps: usize,
    init: Tensor<4>,
    cond: &Conditioning,
    guidance: f64,
    report: &mut GoldenReport,
) {
    let name = |field: &str| format!("{label}/pipe.{key}.{field}");
    let Ok(plan) = StepPlan::txt2img(schedule, sampler, steps) else {
        report.push(Check {
            name: name("plan"),
            passed: false,
            detail: "no plan".into(),
        });
        return;
    };
    let step_noise = golden
        .tensor(&format!("pipe.{key}.step_noise"))
        .map(|(v, s)| {
            let per: usize = s.iter().skip(1).product();
            v.chunks(per.max(1))
                .map(<[f32]>::to_vec)
                .collect::<Vec<_>>()
        });
    let mut noise = FixedNoise::new(step_noise.unwrap_or_default());
    let mut run = Sampling::txt2img(plan, init, guidance);
    let mut latents = Vec::new();
    while let Some(_out) = run.step(&model.unet, cond, &mut noise, &mut NoHook) {
        latents.extend(to_vec(run.latent().clone()));
    }
    if let Some((want, _)) = golden.tensor(&format!("pipe.{key}.step_latents")) {
        report.push(compare(
            &name("step_latents"),
            &latents,
            &want,
            PIPELINE_TOLERANCE,
        ));
    }
    let last = run.latent().clone();
    if let Some((want, _)) = golden.tensor(&format!("pipe.{key}.latents")) {
        report.push(compare(
            &name("latents"),
            &to_vec(last.clone()),
            &want,
            PIPELINE_TOLERANCE,
        ));
    }
    if let Some((want, _)) = golden.tensor(&format!("pipe.{key}.image")) {
        let image = model.vae.decode(last / model.info.vae.scaling_factor);
        report.push(compare(
            &name("image"),
            &to_vec(image),
            &want,
            PIPELINE_TOLERANCE,
        ));
    }
}
