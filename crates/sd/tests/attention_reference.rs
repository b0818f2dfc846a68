//! Cross-attention maps against torch/diffusers reference values
//! (`scripts/reference/make_attention.py` → `fixtures/tiny-sd1/attention.*`): the VXA probe for two
//! layers, two token sets, two timesteps and both VAE inputs, DAAM's sum over a 4-step run, and
//! attention interpolation over three frames (values, probabilities, projected outputs, latents).
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is how a test fails"
)]

mod common;
use common::relative_diff;

use std::path::PathBuf;

use keyshift_core::schedule::{NoiseSchedule, Sampler, ScheduleConfig, StepPlan};
use keyshift_core::tokens::ClipTokenizer;
use keyshift_sd::Device;
use keyshift_sd::generate::RgbImage;
use keyshift_sd::model::{DirFolder, SdModel};
use keyshift_sd::pipeline::{Conditioning, Context, FixedNoise, Sampling, latent};
use keyshift_sd::taps::blend::storage_floats;
use keyshift_sd::taps::cross::probe;
use keyshift_sd::taps::{
    BatchLayout, CrossAttentionTap, FrameBlend, FrameBlendConfig, StepHook, TapConfig, Tokens,
    VaeInput,
};
use keyshift_sd::weights::{FileSource, SafetensorsFile};

const PROMPT: &str = "a photo of a cat";
const TOLERANCE: f32 = 1e-4;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-sd1")
}

struct Fixture {
    reference: SafetensorsFile,
    golden: SafetensorsFile,
    extras: SafetensorsFile,
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
        Self {
            reference: open("attention.safetensors"),
            golden: open("golden.safetensors"),
            extras: open("extras.safetensors"),
            model: SdModel::load_diffusers(&DirFolder(dir().join("diffusers")), &device).unwrap(),
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
        common::sd1_context(&self.model, &self.tokenizer, prompt, 4)
    }

    /// Extras' 64×64 test image (stored in [−1, 1]) as 8-bit RGB.
    fn image(&mut self) -> RgbImage {
        let values = self.extras.read_f32("img2img.image").unwrap();
        let plane = 64 * 64;
        let mut data = vec![0u8; 3 * plane];
        for (i, px) in data.chunks_exact_mut(3).enumerate() {
            for (c, v) in px.iter_mut().enumerate() {
                let x = values[c * plane + i];
                let byte = ((x + 1.0) * 127.5).round();
                assert!((byte / 127.5 - 1.0 - x).abs() < 1e-6, "not an 8-bit image");
                *v = byte as u8;
            }
        }
        RgbImage {
            width: 64,
            height: 64,
            data,
        }
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn vxa_maps_match_the_reference_for_two_layers_token_sets_timesteps_and_both_vae_inputs() {
    let mut f = Fixture::load();
    let image = f.image();
    let context = f.encode(PROMPT);
    let cases = [
        ("signed", 1.0, "mid_block.attentions.0"),
        ("signed", 1.0, "down_blocks.1.attentions.1"),
        ("signed", 500.0, "mid_block.attentions.0"),
        ("signed", 500.0, "down_blocks.1.attentions.1"),
        ("unit", 1.0, "mid_block.attentions.0"),
    ];
    let mut checked = 0;
    for (input, t, layer) in cases {
        let sets: &[(&str, Tokens)] = if input == "unit" {
            &[("blank", Tokens::AllButFirst)]
        } else {
            &[
                ("photo_cat", Tokens::At(vec![2, 5])),
                ("blank", Tokens::AllButFirst),
            ]
        };
        for (name, tokens) in sets {
            let config = TapConfig::vxa(layer, tokens.clone());
            let vae = VaeInput::from_name(input).unwrap();
            let maps =
                pollster::block_on(probe(&f.model, &image, &context, t, config, vae)).unwrap();
            assert_eq!((maps.layer_calls, maps.height, maps.width), (1, 16, 16));
            let want = f.t(&format!("vxa.{input}.t{}.{layer}.{name}", t as u32));
            let diff = max_abs_diff(&maps.maps[0].values, &want);
            assert!(diff < TOLERANCE, "{input} t={t} {layer} {name}: {diff}");
            checked += 1;
        }
    }
    assert_eq!(checked, 9);
    // The original's [0, 1] input gives another map than the signed one (well beyond the tolerance).
    let unit = f.t("vxa.unit.t1.mid_block.attentions.0.blank");
    let signed = f.t("vxa.signed.t1.mid_block.attentions.0.blank");
    let d = max_abs_diff(&unit, &signed);
    assert!(d > 10.0 * TOLERANCE, "unit vs signed: {d}");
}

#[test]
fn daam_sums_over_a_four_step_run_match_the_reference() {
    let mut f = Fixture::load();
    let cond = Conditioning::single(f.encode(PROMPT), f.encode(""));
    let schedule = NoiseSchedule::new(ScheduleConfig::sd15()).unwrap();
    let plan = StepPlan::txt2img(&schedule, Sampler::Euler { karras: false }, 4).unwrap();
    let noise = f.golden.read_f32("pipe.init_noise").unwrap();
    let mut run = Sampling::txt2img(plan, latent(noise, [1, 4, 32, 32], &f.device), 7.5);
    let config = TapConfig {
        maps: vec![Tokens::At(vec![2, 5]), Tokens::one(5)],
        ..TapConfig::tokens(&[])
    }
    .with_batch(BatchLayout::of(7.5, &cond));
    let mut tap = CrossAttentionTap::new(config);
    while run.next_step() < 4 {
        tap.set_step(run.next_step());
        run.step(&f.model.unet, &cond, &mut FixedNoise::default(), &mut tap)
            .unwrap();
    }
    let latents = run
        .latent()
        .clone()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    // The same run as the reference (relative tolerance of a whole run, as the golden checks).
    let want = f.t("daam.latents");
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    let d = max_abs_diff(&latents, &want);
    assert!(d <= 1e-4 * scale, "latents: {d} (values up to {scale})");
    let maps = pollster::block_on(tap.finish()).unwrap();
    assert_eq!((maps.layer_calls, maps.height, maps.width), (24, 16, 16));
    for (map, name) in maps.maps.iter().zip(["photo_cat", "cat"]) {
        let diff = max_abs_diff(&map.values, &f.t(&format!("daam.{name}")));
        assert!(diff < TOLERANCE, "daam {name}: {diff}");
        let peak = f.t(&format!("daam.{name}.peak"))[0];
        assert!(
            (map.peak - peak).abs() < 1e-4 * peak.max(1.0),
            "{} vs {peak}",
            map.peak
        );
    }
}

/// Three frames of DDIM (4 steps, CFG 7.5, golden's noise each frame), one prompt each, with
/// `blend` as the hook; the latents after every step of every frame.
fn interpolated_run(f: &mut Fixture, blend: &mut FrameBlend) -> Vec<Vec<f32>> {
    let schedule = NoiseSchedule::new(ScheduleConfig::sd15()).unwrap();
    let noise = f.golden.read_f32("pipe.init_noise").unwrap();
    let mut frames = Vec::new();
    for prompt in [
        "a photo of a cat",
        "a photo of a dog",
        "a watercolour of a fox",
    ] {
        let cond = Conditioning::single(f.encode(prompt), f.encode(""));
        let plan = StepPlan::txt2img(&schedule, Sampler::Ddim { eta: 0.0 }, 4).unwrap();
        let start = latent(noise.clone(), [1, 4, 32, 32], &f.device);
        let mut run = Sampling::txt2img(plan, start, 7.5);
        let mut steps = Vec::new();
        while run.next_step() < 4 {
            let step = run.next_step();
            blend.set_step(step);
            run.step(
                &f.model.unet,
                &cond,
                &mut FixedNoise::default(),
                &mut *blend,
            )
            .unwrap();
            let x = blend.stepped(step, run.latent().clone());
            run.set_latent(x.clone());
            steps.extend(x.into_data().try_to_vec::<f32>().unwrap());
        }
        frames.push(steps);
        if frames.len() == 3 {
            break;
        }
        blend.next_frame();
    }
    frames
}

#[test]
fn attention_interpolation_over_three_frames_matches_the_reference() {
    let mut f = Fixture::load();
    let config = FrameBlendConfig {
        blend_heads: [false, false, true],
        ..FrameBlendConfig::unet_defaults(4)
    }
    .with_default_latents();
    let mut blend = FrameBlend::new(config);
    let frames = interpolated_run(&mut f, &mut blend);
    for (i, got) in frames.iter().enumerate() {
        let want = f.t(&format!("interp.frame{i}.step_latents"));
        let d = relative_diff(got, &want);
        assert!(d <= 1e-4, "frame {i} latents: {d}");
    }
    let (probs, out) = blend.stored("mid_block.attentions.0", 2);
    let probs = probs.unwrap().slice([0..2, 0..8, 0..64, 0..256]);
    let probs = probs.into_data().try_to_vec::<f32>().unwrap();
    let want = f.t("interp.frame2.mid_block.attentions.0.attention_probs.step2");
    assert!(max_abs_diff(&probs, &want) < TOLERANCE);
    let out = out.unwrap().into_data().try_to_vec::<f32>().unwrap();
    let want = f.t("interp.frame2.mid_block.attentions.0.out_linear.step2");
    assert!(relative_diff(&out, &want) < TOLERANCE);
    // Without blending, frames 1 and 2 are other images: the reference is not a plain run.
    let mut off = FrameBlend::new(FrameBlendConfig {
        blend_probabilities: false,
        blend_output: false,
        ..FrameBlendConfig::unet_defaults(4)
    });
    let plain = interpolated_run(&mut f, &mut off);
    assert!(
        max_abs_diff(&plain[0], &frames[0]) < 1e-5,
        "frame 0 only records"
    );
    let moved = relative_diff(&plain[2], &f.t("interp.frame2.step_latents"));
    assert!(moved > 100.0 * 1e-4, "blending changed frame 2 by {moved}");
}

#[test]
fn the_storage_estimate_is_what_a_frame_stores() {
    let mut f = Fixture::load();
    let config = FrameBlendConfig {
        blend_heads: [true, false, true],
        ..FrameBlendConfig::unet_defaults(4)
    }
    .with_default_latents();
    let layers = f.model.unet.attention_layers();
    let want = storage_floats(&config, &layers, (32, 32), 2, 4);
    let mut blend = FrameBlend::new(config);
    let cond = Conditioning::single(f.encode(PROMPT), f.encode(""));
    let schedule = NoiseSchedule::new(ScheduleConfig::sd15()).unwrap();
    let plan = StepPlan::txt2img(&schedule, Sampler::Ddim { eta: 0.0 }, 4).unwrap();
    let noise = f.golden.read_f32("pipe.init_noise").unwrap();
    let mut run = Sampling::txt2img(plan, latent(noise, [1, 4, 32, 32], &f.device), 7.5);
    while run.next_step() < 4 {
        let step = run.next_step();
        blend.set_step(step);
        run.step(&f.model.unet, &cond, &mut FixedNoise::default(), &mut blend)
            .unwrap();
        let x = blend.stepped(step, run.latent().clone());
        run.set_latent(x);
    }
    blend.next_frame();
    // Steps 1, 2 and 3 (0 < step < 4) of 6 layers at 16×16 (64 channels, 8 heads), and latents.
    assert_eq!(blend.stored_floats(), want);
    assert_eq!(
        want,
        3 * (6 * (2 * 8 * 256 * 256 + 3 * 2 * 256 * 64) + 4 * 32 * 32)
    );
}

#[test]
fn the_layer_list_names_every_transformer_in_both_layouts() {
    let f = Fixture::load();
    let layers = f.model.unet.attention_layers();
    let names: Vec<String> = layers.iter().map(|l| l.name.clone()).collect();
    assert_eq!(
        names,
        [
            "down_blocks.1.attentions.0",
            "down_blocks.1.attentions.1",
            "mid_block.attentions.0",
            "up_blocks.0.attentions.0",
            "up_blocks.0.attentions.1",
            "up_blocks.0.attentions.2",
        ]
    );
    // The tiny UNet has two levels: level 0 (two resnets and a downsampler) has no transformer.
    let ldm: Vec<&str> = layers.iter().map(|l| l.ldm_name.as_str()).collect();
    assert_eq!(
        ldm,
        [
            "input_blocks.4.1",
            "input_blocks.5.1",
            "middle_block.1",
            "output_blocks.0.1",
            "output_blocks.1.1",
            "output_blocks.2.1"
        ]
    );
    assert!(layers.iter().all(|l| l.downscale == 2));
    assert!(layers.iter().all(|l| (l.channels, l.heads) == (64, 8)));
    // The same list from the configuration alone (no weights).
    let config = keyshift_sd::config::UnetConfig {
        block_out_channels: vec![32, 64],
        cross_attention: vec![false, true],
        attention_heads: vec![8, 8],
        cross_attention_dim: 32,
        ..keyshift_sd::config::UnetConfig::sd1()
    };
    assert_eq!(keyshift_sd::unet::attention_layers_of(&config), layers);
    // SD 1.5: VXA's 16 layers (input 1, 2, 4, 5, 7, 8; middle; output 3 to 11).
    let sd15 = keyshift_sd::unet::attention_layers_of(&keyshift_sd::config::UnetConfig::sd1());
    let ldm: Vec<&str> = sd15.iter().map(|l| l.ldm_name.as_str()).collect();
    assert_eq!(
        ldm,
        [
            "input_blocks.1.1",
            "input_blocks.2.1",
            "input_blocks.4.1",
            "input_blocks.5.1",
            "input_blocks.7.1",
            "input_blocks.8.1",
            "middle_block.1",
            "output_blocks.3.1",
            "output_blocks.4.1",
            "output_blocks.5.1",
            "output_blocks.6.1",
            "output_blocks.7.1",
            "output_blocks.8.1",
            "output_blocks.9.1",
            "output_blocks.10.1",
            "output_blocks.11.1"
        ]
    );
    // Map sizes for a 512² image (64² latent): 64, 32, 16, 8 as VXA's list says.
    let sides: Vec<usize> = sd15.iter().map(|l| 64 / l.downscale).collect();
    assert_eq!(
        sides,
        [
            64, 64, 32, 32, 16, 16, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64
        ]
    );
    let mid = &layers[2];
    assert!(mid.is_named("model.diffusion_model.middle_block.1.transformer_blocks.0.attn2"));
    assert!(mid.is_named("middle_block.1") && mid.is_named("mid_block.attentions.0"));
    assert!(!mid.is_named("middle_block.10"));
    assert_eq!(
        mid.vxa_name(),
        "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2"
    );
}
