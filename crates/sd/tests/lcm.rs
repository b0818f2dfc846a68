//! An LCM-distilled UNet (`time_cond_proj_dim`) against diffusers: the guidance-scale embedding
//! and one forward pass of the tiny UNet of `fixtures/tiny-lcm/` (made by
//! `scripts/reference/make_tiny_lcm.py`), on the CPU backend.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a test fails by panicking and reports what it compared"
)]

use std::path::PathBuf;

use burn::tensor::{Tensor, TensorData};
use keyshift_sd::Device;
use keyshift_sd::config::UnetConfig;
use keyshift_sd::embeddings::guidance_embedding;
use keyshift_sd::golden::compare;
use keyshift_sd::hooks::NoHook;
use keyshift_sd::unet::Unet;
use keyshift_sd::weights::{FileSource, Loader, Prefixed, SafetensorsFile, WeightStore};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-lcm")
}

fn open(path: PathBuf) -> SafetensorsFile {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    SafetensorsFile::open(&name, Box::new(FileSource::open(&path).unwrap())).unwrap()
}

fn tensor<const D: usize>(file: &mut SafetensorsFile, name: &str, device: &Device) -> Tensor<D> {
    let shape: [usize; D] = file.entries()[name].shape.clone().try_into().unwrap();
    Tensor::from_data(TensorData::new(file.read_f32(name).unwrap(), shape), device)
}

/// The tiny LCM UNet, every stored tensor used.
fn load_unet(device: &Device) -> Unet {
    #[allow(clippy::disallowed_methods, reason = "a test reads its fixture")]
    let config = std::fs::read_to_string(dir().join("unet/config.json")).unwrap();
    let config = UnetConfig::from_json("unet/config.json", &config).unwrap();
    assert_eq!(config.time_cond_proj_dim, Some(16));
    let mut store = WeightStore::new(vec![open(
        dir().join("unet/diffusion_pytorch_model.safetensors"),
    )]);
    let unet = Unet::load(
        &mut Loader::new(&mut store, &Prefixed::default(), device),
        &config,
    )
    .unwrap();
    store.check_all_used("", |_| false).unwrap();
    unet
}

fn check(name: &str, got: Vec<f32>, want: &[f32], tolerance: f32) {
    let c = compare(name, &got, want, tolerance);
    println!("{}: {}", c.name, c.detail);
    assert!(c.passed, "{}: {}", c.name, c.detail);
}

#[test]
fn the_guidance_embedding_and_the_guided_unet_match_diffusers() {
    let device = Device::flex();
    let mut golden = open(dir().join("golden.safetensors"));
    let unet = load_unet(&device);
    assert_eq!(unet.guidance_dim(), Some(16));

    // Guidance scale 7.5 → w = 6.5.
    let embedding = guidance_embedding(6.5, 16, 2, &device);
    let want = golden.read_f32("lcm.w_embedding").unwrap();
    check(
        "lcm.w_embedding",
        embedding.clone().into_data().try_to_vec::<f32>().unwrap(),
        &want,
        1e-6,
    );

    let x: Tensor<4> = tensor(&mut golden, "lcm.sample_in", &device);
    let context: Tensor<3> = tensor(&mut golden, "lcm.context", &device);
    let out = unet.forward_guided(x.clone(), 499.0, &context, Some(embedding), &mut NoHook);
    let want = golden.read_f32("lcm.out").unwrap();
    check(
        "lcm.out",
        out.into_data().try_to_vec::<f32>().unwrap(),
        &want,
        2e-5,
    );
    // Without the embedding the output differs: the test sees the guidance path.
    let plain = unet.forward(x, 499.0, &context, &mut NoHook);
    let differs = plain
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
        .iter()
        .zip(&want)
        .any(|(a, b)| (a - b).abs() > 1e-3);
    assert!(differs);
}

/// A whole LCM run as diffusers' `LatentConsistencyModelPipeline` makes it: 4 steps at guidance
/// 7.5 embedded in the UNet, no unconditional pass (the unconditional context here is zeros: were
/// it used, the result would differ), the scheduler's fresh noise replayed.
#[test]
fn an_lcm_run_matches_the_diffusers_pipeline() {
    use keyshift_core::schedule::{NoiseSchedule, Sampler, ScheduleConfig, StepPlan};
    use keyshift_sd::golden::PIPELINE_TOLERANCE;
    use keyshift_sd::pipeline::{Conditioning, FixedNoise, Sampling};

    let device = Device::flex();
    let mut golden = open(dir().join("golden.safetensors"));
    let unet = load_unet(&device);

    let schedule = NoiseSchedule::new(ScheduleConfig::sd15()).unwrap();
    let plan = StepPlan::txt2img(&schedule, Sampler::Lcm, 4).unwrap();
    assert_eq!(plan.timesteps(), vec![999.0, 759.0, 499.0, 259.0]);
    let init: Tensor<4> = tensor(&mut golden, "pipe.init", &device);
    let context: Tensor<3> = tensor(&mut golden, "pipe.context", &device);
    let cond = Conditioning::single(context.clone(), context.zeros_like());
    let noise: Vec<Vec<f32>> = golden
        .read_f32("pipe.step_noise")
        .unwrap()
        .chunks(4 * 8 * 8)
        .map(<[f32]>::to_vec)
        .collect();
    let mut noise = FixedNoise::new(noise);
    let mut sampling = Sampling::txt2img(plan, init, 7.5);
    let mut steps = Vec::new();
    while sampling
        .step(&unet, &cond, &mut noise, &mut NoHook)
        .is_some()
    {
        steps.extend(
            sampling
                .latent()
                .clone()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap(),
        );
    }
    let want = golden.read_f32("pipe.step_latents").unwrap();
    check("pipe.step_latents", steps, &want, PIPELINE_TOLERANCE);
    let want = golden.read_f32("pipe.latents").unwrap();
    check(
        "pipe.latents",
        sampling
            .latent()
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(),
        &want,
        PIPELINE_TOLERANCE,
    );
}
