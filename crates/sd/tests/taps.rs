//! Attention taps on the tiny SD 1.x fixture (CPU backend): cross-attention maps per token
//! (seeds.md §3, aggregated over layers and steps) and attention interpolation between frames
//! (seeds.md §4). The tiny UNet has cross-attention transformers in `down_blocks.1` (2),
//! `mid_block` (1) and `up_blocks.0` (3), all at 16×16 for a 32×32 latent.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is how a test fails"
)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use burn::tensor::{Tensor, TensorData};
use keyshift_core::noise::NoiseSpec;
use keyshift_core::schedule::{NoiseSchedule, Sampler, ScheduleConfig, StepPlan};
use keyshift_core::tokens::{ClipTokenizer, ModelFamily};
use keyshift_sd::Device;
use keyshift_sd::conditioning::TextEncoder;
use keyshift_sd::generate::RgbImage;
use keyshift_sd::hooks::{AttentionHook, AttentionKind, AttentionSite, NoHook};
use keyshift_sd::model::{DirFolder, SdModel};
use keyshift_sd::pipeline::{Conditioning, FixedNoise, Sampling, latent};
use keyshift_sd::taps::cross::{VXA_DEFAULT_LAYER, probe};
use keyshift_sd::taps::heatmap::{jet, overlay, resize_map};
use keyshift_sd::taps::slerp::{slerp, slerp_row};
use keyshift_sd::taps::{
    AttentionMaps, BatchLayout, CrossAttentionTap, Filter, FrameBlend, FrameBlendConfig,
    LayerFilter, OverlayMode, Resolution, ScheduleKind, StepFilter, StepHook, TapConfig, TapError,
    Tokens, VaeInput, WeightSchedule,
};

const STEPS: usize = 4;
const GUIDANCE: f64 = 7.5;
const PROMPT: &str = "a photo of a cat";
const CROSS_LAYERS: usize = 6;
/// Token positions: "photo", "cat", and a padding position.
const PHOTO: usize = 2;
const CAT: usize = 5;
const PAD: usize = 20;

struct Fixture {
    model: SdModel,
    device: Device,
    cond: Conditioning,
    /// A second prompt, for frames that differ by prompt.
    other: Conditioning,
}

fn fixture() -> Fixture {
    let device = Device::flex();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-sd1/diffusers");
    let model = SdModel::load_diffusers(&DirFolder(dir), &device).unwrap();
    let tokenizer = ClipTokenizer::embedded().unwrap();
    let ids = tokenizer.context_ids(PROMPT, ModelFamily::Sd1).unwrap();
    assert!(
        ids[PHOTO] != 49407 && ids[CAT] != 49407 && ids[CAT + 1] == 49407 && ids[PAD] == 49407,
        "{ids:?}"
    );
    let encoder = TextEncoder {
        clip: &model.clip,
        tokenizer: &tokenizer,
        family: ModelFamily::Sd1,
        clip_skip: 1,
    };
    let encode = |text: &str| {
        encoder.prompt(text, STEPS as u32).unwrap().at_step(0)[0]
            .0
            .clone()
    };
    let cond = Conditioning::single(encode(PROMPT), encode(""));
    let other = Conditioning::single(encode("a watercolour of a dog"), encode(""));
    Fixture {
        model,
        device,
        cond,
        other,
    }
}

/// Runs `steps` Euler steps from seed `seed`'s noise with CFG, telling the hook each step.
fn sample_with(
    f: &Fixture,
    cond: &Conditioning,
    seed: u64,
    steps: usize,
    hook: &mut dyn StepHook,
) -> Vec<f32> {
    let schedule = NoiseSchedule::new(ScheduleConfig::sd15()).unwrap();
    let plan = StepPlan::txt2img(&schedule, Sampler::Euler { karras: false }, STEPS).unwrap();
    let noise = NoiseSpec::new(seed).latent_noise([4, 32, 32]).unwrap();
    let mut run = Sampling::txt2img(plan, latent(noise, [1, 4, 32, 32], &f.device), GUIDANCE);
    while run.next_step() < steps {
        hook.set_step(run.next_step());
        run.step(&f.model.unet, cond, &mut FixedNoise::default(), &mut *hook)
            .unwrap();
    }
    values(run.latent().clone())
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn sample_steps(f: &Fixture, seed: u64, steps: usize, hook: &mut dyn StepHook) -> Vec<f32> {
    sample_with(f, &f.cond, seed, steps, hook)
}

fn sample(f: &Fixture, seed: u64, hook: &mut dyn StepHook) -> Vec<f32> {
    sample_steps(f, seed, STEPS, hook)
}

fn guided(indices: &[usize], f: &Fixture) -> TapConfig {
    TapConfig::tokens(indices).with_batch(BatchLayout::of(GUIDANCE, &f.cond))
}

fn tap_run(f: &Fixture, config: TapConfig) -> (AttentionMaps, usize) {
    let mut tap = CrossAttentionTap::new(config);
    sample(f, 7, &mut tap);
    let calls = tap.layer_calls();
    (pollster::block_on(tap.finish()).unwrap(), calls)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

// ---- (a) cross-attention maps ----

#[test]
fn maps_are_max_normalised_at_the_aggregation_resolution_and_differ_per_token() {
    let f = fixture();
    let (maps, calls) = tap_run(&f, guided(&[PHOTO, CAT, PAD], &f));
    assert_eq!(calls, CROSS_LAYERS * STEPS);
    assert_eq!(
        (maps.height, maps.width, maps.layer_calls, maps.maps.len()),
        (16, 16, calls, 3)
    );
    for m in &maps.maps {
        assert_eq!((m.height, m.width, m.values.len()), (16, 16, 256));
        assert!(
            m.values
                .iter()
                .all(|v| v.is_finite() && (0.0..=1.0).contains(v)),
            "{:?}",
            m.tokens
        );
        assert_eq!(m.values.iter().copied().fold(f32::MIN, f32::max), 1.0);
        // A head-mean probability is at most 1 per call, so the raw peak is at most the calls.
        assert!(m.peak > 0.0 && m.peak <= calls as f32, "peak {}", m.peak);
        println!("{:?}: peak {:.4}", m.tokens, m.peak);
    }
    let (photo, cat, pad) = (
        &maps.maps[0].values,
        &maps.maps[1].values,
        &maps.maps[2].values,
    );
    let content_vs_pad = max_abs_diff(photo, pad);
    println!(
        "max |photo − pad| = {content_vs_pad:.4}, max |photo − cat| = {:.4}",
        max_abs_diff(photo, cat)
    );
    assert!(content_vs_pad > 1e-3);
    assert!(max_abs_diff(cat, pad) > 1e-3);
}

#[test]
fn the_tap_does_not_change_the_image() {
    let f = fixture();
    let plain = sample(&f, 7, &mut NoHook);
    let mut tap = CrossAttentionTap::new(guided(&[PHOTO, CAT, PAD], &f));
    assert_eq!(sample(&f, 7, &mut tap), plain);
    assert_eq!(tap.layer_calls(), CROSS_LAYERS * STEPS);
}

#[test]
fn restricting_layers_or_steps_reads_fewer_calls_and_changes_the_maps() {
    let f = fixture();
    let (all, _) = tap_run(&f, guided(&[CAT], &f));
    let cases = [
        (
            LayerFilter::prefix("up_blocks.0"),
            StepFilter::All,
            3 * STEPS,
        ),
        (
            LayerFilter::prefix("up_blocks.0.attentions.1"),
            StepFilter::All,
            STEPS,
        ),
        (
            LayerFilter::Prefixes(vec!["down_blocks".into(), "mid_block".into()]),
            StepFilter::All,
            3 * STEPS,
        ),
        (
            LayerFilter::All,
            StepFilter::Set(BTreeSet::from([0])),
            CROSS_LAYERS,
        ),
        (LayerFilter::All, StepFilter::Range(1..3), 2 * CROSS_LAYERS),
        (
            LayerFilter::prefix("mid_block"),
            StepFilter::Set(BTreeSet::from([STEPS - 1])),
            1,
        ),
    ];
    for (layers, steps, want) in cases {
        let label = format!("{layers:?} {steps:?}");
        let (maps, calls) = tap_run(&f, guided(&[CAT], &f).with_layers(layers).with_steps(steps));
        assert_eq!(calls, want, "{label}");
        let diff = max_abs_diff(&maps.maps[0].values, &all.maps[0].values);
        println!("{label}: {calls} calls, max difference from all layers and steps {diff:.4}");
        assert!(diff > 1e-4, "{label}");
    }
    // A trailing dot is ignored; `up_blocks.1` has no transformer; a prefix matches at a dot only.
    let mut tap = CrossAttentionTap::new(
        guided(&[CAT], &f).with_layers(LayerFilter::prefix("up_blocks.0.attentions.1.")),
    );
    sample(&f, 7, &mut tap);
    assert_eq!(tap.layer_calls(), STEPS);
    let mut tap =
        CrossAttentionTap::new(guided(&[CAT], &f).with_layers(LayerFilter::prefix("up_blocks.1")));
    sample(&f, 7, &mut tap);
    assert_eq!(pollster::block_on(tap.finish()), Err(TapError::NothingSeen));
    assert!(!LayerFilter::prefix("up_blocks.1").matches("up_blocks.10.attentions.0"));
}

#[test]
fn memory_stays_bounded_over_steps() {
    let f = fixture();
    let mut floats = Vec::new();
    for steps in 1..=STEPS {
        let mut tap = CrossAttentionTap::new(guided(&[PHOTO, CAT, PAD], &f));
        sample_steps(&f, 7, steps, &mut tap);
        assert_eq!(tap.layer_calls(), CROSS_LAYERS * steps);
        floats.push(tap.stored_floats());
    }
    // One 16×16 running sum per map plus the [77, 3] selection matrix, whatever the steps.
    assert_eq!(floats, vec![3 * 16 * 16 + 77 * 3; STEPS]);
}

#[test]
fn the_aggregation_resolution_resizes_by_nearest_neighbour() {
    let f = fixture();
    let (native, _) = tap_run(&f, guided(&[PHOTO, CAT], &f));
    let (large, _) = tap_run(
        &f,
        guided(&[PHOTO, CAT], &f).with_resolution(Resolution::Fixed {
            height: 32,
            width: 32,
        }),
    );
    let (small, _) = tap_run(
        &f,
        guided(&[PHOTO, CAT], &f).with_resolution(Resolution::Fixed {
            height: 8,
            width: 8,
        }),
    );
    let (odd, _) = tap_run(
        &f,
        guided(&[PHOTO], &f).with_resolution(Resolution::Fixed {
            height: 24,
            width: 24,
        }),
    );
    assert_eq!(
        (
            large.height,
            large.width,
            small.height,
            small.width,
            odd.height
        ),
        (32, 32, 8, 8, 24)
    );
    for m in 0..2 {
        let native = &native.maps[m];
        // Enlarging repeats each cell 2×2: the same as enlarging the final map.
        assert_eq!(
            large.maps[m].values,
            resize_map(&native.values, (16, 16), (32, 32), Filter::Nearest)
        );
        // Reducing averages 2×2 blocks: the native map's block means, renormalised.
        let means: Vec<f32> = (0..64)
            .map(|i| {
                let (y, x) = (i / 8 * 2, i % 8 * 2);
                [(y, x), (y, x + 1), (y + 1, x), (y + 1, x + 1)]
                    .iter()
                    .map(|(y, x)| native.values[y * 16 + x])
                    .sum::<f32>()
                    / 4.0
            })
            .collect();
        let peak = means.iter().copied().fold(0.0, f32::max);
        let means: Vec<f32> = means.iter().map(|v| v / peak).collect();
        assert!(max_abs_diff(&small.maps[m].values, &means) < 1e-5);
    }
    assert!(odd.maps[0].values.iter().all(|v| v.is_finite()));
}

#[test]
fn the_batch_layout_selects_the_conditional_rows() {
    let f = fixture();
    assert_eq!(
        BatchLayout::of(GUIDANCE, &f.cond),
        BatchLayout {
            groups: 2,
            first_read: 1
        }
    );
    assert_eq!(BatchLayout::guided(1.0, 1), BatchLayout::WHOLE);
    assert_eq!(
        BatchLayout::guided(7.0, 3),
        BatchLayout {
            groups: 4,
            first_read: 1
        }
    );
    let (cond, _) = tap_run(&f, guided(&[CAT], &f));
    let (both, _) = tap_run(&f, TapConfig::tokens(&[CAT]));
    let diff = max_abs_diff(&cond.maps[0].values, &both.maps[0].values);
    println!("cond rows vs the whole CFG batch: max difference {diff:.4}");
    assert!(diff > 1e-4);
    let mut tap = CrossAttentionTap::new(TapConfig::tokens(&[CAT]).with_batch(BatchLayout {
        groups: 3,
        first_read: 1,
    }));
    sample_steps(&f, 7, 1, &mut tap);
    assert_eq!(
        pollster::block_on(tap.maps()),
        Err(TapError::Batch {
            batch: 2,
            groups: 3,
            first_read: 1
        })
    );
    let mut tap = CrossAttentionTap::new(guided(&[77], &f));
    sample_steps(&f, 7, 1, &mut tap);
    assert_eq!(
        pollster::block_on(tap.finish()),
        Err(TapError::TokenOutOfRange {
            index: 77,
            keys: 77
        })
    );
}

fn test_image(width: usize, height: usize) -> RgbImage {
    let data = (0..width * height)
        .flat_map(|i| {
            let (x, y) = (i % width, i / width);
            [(x * 4) as u8, (y * 4) as u8, ((x + y) * 2) as u8]
        })
        .collect();
    RgbImage {
        width,
        height,
        data,
    }
}

#[test]
fn vxa_probes_one_layer_of_an_image_and_its_token_shares_sum_to_one() {
    let f = fixture();
    let image = test_image(64, 64);
    assert_eq!(Tokens::parse(" ").unwrap(), Tokens::AllButFirst);
    assert_eq!(Tokens::parse("1, 3,").unwrap(), Tokens::At(vec![1, 3]));
    assert_eq!(Tokens::parse("1, x"), Err(TapError::BadIndex("x".into())));
    let context = f.cond.parts[0].0.clone();
    let mut config = TapConfig::vxa(VXA_DEFAULT_LAYER, Tokens::AllButFirst);
    config.maps.push(Tokens::one(0));
    let maps = pollster::block_on(probe(
        &f.model,
        &image,
        &context,
        1.0,
        config,
        VaeInput::Signed,
    ))
    .unwrap();
    assert_eq!((maps.layer_calls, maps.height, maps.width), (1, 16, 16));
    // Probabilities over all 77 keys sum to 1 per pixel: (tokens 1..77) + (token 0) = 1.
    let (rest, bos) = (&maps.maps[0], &maps.maps[1]);
    for (r, b) in rest.values.iter().zip(&bos.values) {
        assert!((r * rest.peak + b * bos.peak - 1.0).abs() < 1e-5);
    }
    let drawn = rest.overlay(&image, OverlayMode::Masked, Filter::Nearest);
    assert_eq!(
        (drawn.width, drawn.height, drawn.data.len()),
        (64, 64, 64 * 64 * 3)
    );
    // Nearest by integer division: image pixel (x, y) uses map cell (x / 4, y / 4).
    let (x, y) = (13, 50);
    let v = rest.values[(y / 4) * 16 + x / 4];
    let i = (y * 64 + x) * 3;
    assert_eq!(drawn.data[i], (f32::from(image.data[i]) * v) as u8);
    // The VAE's factor (2 for the tiny model) must divide the size.
    let bad = RgbImage {
        width: 63,
        height: 64,
        data: vec![0; 63 * 64 * 3],
    };
    assert!(matches!(
        pollster::block_on(probe(
            &f.model,
            &bad,
            &context,
            1.0,
            TapConfig::vxa(VXA_DEFAULT_LAYER, Tokens::one(1)),
            VaeInput::Signed,
        )),
        Err(TapError::Image(_))
    ));
}

#[test]
fn heatmaps_resize_and_colour_as_documented() {
    // Nearest: VXA's integer division.
    let map = [0.0, 0.25, 0.5, 1.0];
    let big = resize_map(&map, (2, 2), (4, 4), Filter::Nearest);
    assert_eq!(&big[..8], &[0.0, 0.0, 0.25, 0.25, 0.0, 0.0, 0.25, 0.25]);
    assert_eq!(&big[8..], &[0.5, 0.5, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0]);
    // Bilinear with half-pixel centres: a row [a, b] → [a, ¾a + ¼b, ¼a + ¾b, b].
    assert_eq!(
        resize_map(&[0.0, 1.0], (2, 1), (4, 1), Filter::Bilinear),
        vec![0.0, 0.25, 0.75, 1.0]
    );
    assert!(
        resize_map(&[0.5; 9], (3, 3), (7, 5), Filter::Bilinear)
            .iter()
            .all(|v| (v - 0.5).abs() < 1e-6)
    );
    assert_eq!(
        resize_map(&[], (0, 0), (2, 2), Filter::Bilinear),
        vec![0.0; 4]
    );
    // Jet: dark blue, cyan-green, dark red.
    assert_eq!(
        (jet(0.0), jet(0.5), jet(1.0)),
        ([0, 0, 128], [128, 255, 128], [128, 0, 0])
    );
    assert_eq!(
        (jet(-3.0), jet(f32::NAN), jet(7.0)),
        (jet(0.0), jet(0.0), jet(1.0))
    );
    let image = RgbImage {
        width: 2,
        height: 1,
        data: vec![200, 100, 50, 10, 20, 30],
    };
    let values = [0.5, 1.0];
    assert_eq!(
        overlay(&image, &values, OverlayMode::Masked).data,
        vec![100, 50, 25, 10, 20, 30]
    );
    assert_eq!(
        overlay(&image, &values, OverlayMode::Grey).data,
        vec![127, 127, 127, 255, 255, 255]
    );
    let heat = overlay(&image, &values, OverlayMode::Heat { opacity: 0.5 }).data;
    assert_eq!(heat, vec![164, 178, 89, 69, 10, 15]);
    // Missing map values read as 0 instead of panicking.
    assert_eq!(overlay(&image, &[], OverlayMode::Masked).data, vec![0; 6]);
}

// ---- (b) attention interpolation between frames ----

fn schedule(kind: ScheduleKind) -> WeightSchedule {
    WeightSchedule {
        kind,
        start_weight: 0.6,
        total_steps: 11,
        start_step: 0,
        end_step: 11,
        const_steps: 0,
    }
}

#[test]
fn schedules_give_the_documented_values() {
    let ema = schedule(ScheduleKind::Ema { eta: 0.5 });
    let (lin, cos) = (schedule(ScheduleKind::Linear), schedule(ScheduleKind::Cos));
    for s in [ema, lin, cos] {
        assert_eq!(s.value(0, 11), 0.6);
    }
    assert_eq!((ema.value(1, 11), ema.value(3, 11)), (0.3, 0.075));
    assert!((lin.value(5, 11) - 0.3).abs() < 1e-12 && lin.value(10, 11) == 0.0);
    assert!((cos.value(5, 11) - 0.3).abs() < 1e-12 && cos.value(10, 11).abs() < 1e-12);
    // linspace(0, total, total)[i]·π/total = π·i/(total − 1).
    assert!((cos.value(2, 11) - (((std::f64::consts::PI * 0.2).cos() + 1.0) * 0.3)).abs() < 1e-12);
    // The weight used at step s: 0 outside start < s < end; the start weight until the first
    // update, then the scheduler at s − 1 − start − const (updated after each use).
    let w: Vec<f64> = (0..12).map(|s| ema.weight(s)).collect();
    assert_eq!(&w[..4], &[0.0, 0.6, 0.3, 0.15]);
    assert_eq!((w[10], w[11]), (0.6 * 0.5f64.powi(9), 0.0));
    let late = WeightSchedule {
        start_step: 2,
        const_steps: 3,
        end_step: 9,
        ..lin
    };
    let w: Vec<f64> = (0..10).map(|s| late.weight(s)).collect();
    let total = 11.0 - 5.0;
    assert_eq!(&w[..7], &[0.0, 0.0, 0.0, 0.6, 0.6, 0.6, 0.6]);
    assert!((w[7] - 0.6 * (1.0 - 1.0 / (total - 1.0))).abs() < 1e-12);
    assert_eq!(w[9], 0.0);
    let zero = WeightSchedule {
        start_weight: 0.0,
        ..lin
    };
    assert!((0..11).all(|s| zero.weight(s) == 0.0));
}

#[test]
fn slerp_keeps_endpoints_and_norms_and_falls_back_to_lerp() {
    let a = [3.0f32, 0.0, 0.0];
    let b = [0.0f32, 3.0, 0.0];
    assert_eq!(slerp_row(0.0, &a, &b), a);
    assert_eq!(slerp_row(1.0, &a, &b), b);
    let mid = slerp_row(0.5, &a, &b);
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    // On the arc the norm stays 3 (a lerp would give 3/√2).
    assert!(
        (norm(&mid) - 3.0).abs() < 1e-5 && (mid[0] - mid[1]).abs() < 1e-6,
        "{mid:?}"
    );
    // Nearly parallel, or a zero row: plain lerp, no NaN.
    let c = [3.0f32, 0.01, 0.0];
    assert_eq!(slerp_row(0.25, &a, &c), vec![3.0, 0.0025, 0.0]);
    assert_eq!(slerp_row(0.5, &[0.0; 3], &b), vec![0.0, 1.5, 0.0]);
    // The tensor version agrees row by row, and is exact at the ends.
    let device = Device::flex();
    let rows: Vec<f32> = (0..4 * 8)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.3)
        .collect();
    let other: Vec<f32> = (0..4 * 8)
        .map(|i| ((i * 5 % 13) as f32 - 6.0) * 0.2)
        .collect();
    let mut other_rows = other.clone();
    other_rows[8..16].copy_from_slice(&rows[8..16].iter().map(|x| x * 2.0).collect::<Vec<_>>());
    other_rows[16..24].fill(0.0);
    let t = |v: &Vec<f32>| Tensor::<3>::from_data(TensorData::new(v.clone(), [2, 2, 8]), &device);
    for w in [0.0, 0.3, 0.7, 1.0] {
        let got = slerp(w, t(&rows), t(&other_rows))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let want: Vec<f32> = rows
            .chunks(8)
            .zip(other_rows.chunks(8))
            .flat_map(|(r, o)| slerp_row(w, r, o))
            .collect();
        assert!(max_abs_diff(&got, &want) < 1e-5, "t = {w}");
        if w == 0.0 {
            assert_eq!(got, rows);
        }
        if w == 1.0 {
            assert_eq!(got, other_rows);
        }
    }
}

/// Frames `(prompt, seed)` with one [`FrameBlend`]; returns the latents and the stored tensors
/// after each frame.
fn frames(
    f: &Fixture,
    config: FrameBlendConfig,
    frames: &[(&Conditioning, u64)],
) -> (Vec<Vec<f32>>, Vec<usize>, FrameBlend) {
    let mut blend = FrameBlend::new(config);
    let (mut latents, mut stored) = (Vec::new(), Vec::new());
    for &(cond, seed) in frames {
        latents.push(sample_with(f, cond, seed, STEPS, &mut blend));
        stored.push(blend.stored_tensors());
        blend.next_frame();
    }
    (latents, stored, blend)
}

#[test]
fn blending_pulls_frame_two_towards_frame_one() {
    let f = fixture();
    let defaults = FrameBlendConfig::unet_defaults(STEPS);
    let strong = FrameBlendConfig {
        schedule: WeightSchedule {
            start_weight: 0.95,
            ..defaults.schedule
        },
        ..defaults.clone()
    };
    // Frames that differ by seed (the same prompt), and by prompt (the same seed).
    for (label, second) in [("seed", (&f.cond, 2)), ("prompt", (&f.other, 1))] {
        let plain1 = sample_with(&f, &f.cond, 1, STEPS, &mut NoHook);
        let plain2 = sample_with(&f, second.0, second.1, STEPS, &mut NoHook);
        let (latents, stored, blend) =
            frames(&f, defaults.clone(), &[(&f.cond, 1), second, (&f.cond, 3)]);
        // The first frame only records: 6 layers × steps 1..3 × (probabilities, outputs).
        assert_eq!(latents[0], plain1);
        assert_eq!(stored, vec![6 * 3 * 2; 3]);
        assert_eq!(blend.blended_calls(), 2 * 6 * 3 * 2);
        let (without, with) = (distance(&plain2, &plain1), distance(&latents[1], &plain1));
        let (strong, _, _) = frames(&f, strong.clone(), &[(&f.cond, 1), second]);
        let pulled = distance(&strong[1], &plain1);
        println!(
            "{label}: frame 2 to frame 1: {without:.5} unhooked, {with:.5} blended (0.625), {pulled:.5} blended (0.95); moved {:.5}",
            distance(&latents[1], &plain2)
        );
        assert!(with < without && pulled < with, "{label}");
    }
}

/// Passes calls to a [`FrameBlend`] and records one layer's projected self-attention output
/// before and after blending, per step.
struct Spy<'a> {
    blend: &'a mut FrameBlend,
    layer: &'static str,
    step: usize,
    seen: Vec<(usize, Vec<f32>, Vec<f32>)>,
}

impl AttentionHook for Spy<'_> {
    fn probabilities(&mut self, site: &AttentionSite, probs: Tensor<4>) -> Tensor<4> {
        self.blend.probabilities(site, probs)
    }

    fn projected(&mut self, site: &AttentionSite, out: Tensor<3>) -> Tensor<3> {
        let before = values(out.clone());
        let after = self.blend.projected(site, out);
        if site.layer == self.layer && site.kind == AttentionKind::SelfAttention {
            self.seen.push((self.step, before, values(after.clone())));
        }
        after
    }
}

impl StepHook for Spy<'_> {
    fn set_step(&mut self, step: usize) {
        self.step = step;
        self.blend.set_step(step);
    }
}

#[test]
fn each_step_slerps_towards_the_previous_frame_with_the_scheduled_weight() {
    let f = fixture();
    let config = FrameBlendConfig::unet_defaults(STEPS);
    let schedule = config.schedule;
    let mut blend = FrameBlend::new(config);
    let mut spy = Spy {
        blend: &mut blend,
        layer: "down_blocks.1.attentions.0",
        step: 0,
        seen: Vec::new(),
    };
    sample_with(&f, &f.cond, 1, STEPS, &mut spy);
    let first = std::mem::take(&mut spy.seen);
    spy.blend.next_frame();
    sample_with(&f, &f.cond, 2, STEPS, &mut spy);
    assert_eq!((first.len(), spy.seen.len()), (STEPS, STEPS));
    for ((step, x1, out1), (_, x2, out2)) in first.iter().zip(&spy.seen) {
        assert_eq!(x1, out1, "frame 1 only records");
        let w = schedule.weight(*step);
        if w == 0.0 {
            assert_eq!(x2, out2, "step {step} is not blended");
            continue;
        }
        // [2, 256, 64]: every 64-channel row slerped towards frame 1's by w(step).
        let want: Vec<f32> = x2
            .chunks(64)
            .zip(out1.chunks(64))
            .flat_map(|(a, b)| slerp_row(w, a, b))
            .collect();
        let (before, after) = (distance(x2, out1), distance(out2, out1));
        println!("step {step}: w {w:.4}, distance to frame 1 {before:.4} → {after:.4}");
        assert!(
            max_abs_diff(out2, &want) < 1e-4 && after < before,
            "step {step}"
        );
    }
}

#[test]
fn zero_weight_or_inactive_steps_leave_frame_two_unchanged() {
    let f = fixture();
    let plain2 = sample(&f, 2, &mut NoHook);
    let defaults = FrameBlendConfig::unet_defaults(STEPS);
    let zero = FrameBlendConfig {
        schedule: WeightSchedule {
            start_weight: 0.0,
            ..defaults.schedule
        },
        ..defaults.clone()
    };
    let (latents, stored, blend) = frames(&f, zero, &[(&f.cond, 1), (&f.cond, 2)]);
    assert_eq!(latents[1], plain2);
    assert_eq!((stored[1], blend.blended_calls()), (36, 0));
    let inactive = FrameBlendConfig {
        schedule: WeightSchedule {
            start_step: STEPS - 1,
            ..defaults.schedule
        },
        ..defaults
    };
    let (latents, stored, _) = frames(&f, inactive, &[(&f.cond, 1), (&f.cond, 2)]);
    assert_eq!(latents[1], plain2);
    assert_eq!(stored, vec![0, 0]);
}

#[test]
fn only_the_configured_layers_and_tensors_are_stored() {
    let f = fixture();
    let defaults = FrameBlendConfig::unet_defaults(STEPS);
    // 16×16 self-attention has 256 keys: above 15², so only the outputs are stored.
    let low_res = FrameBlendConfig {
        attention_res: 15,
        ..defaults.clone()
    };
    let up = FrameBlendConfig {
        layers: LayerFilter::prefix("up_blocks"),
        ..defaults.clone()
    };
    let steps_1_2 = FrameBlendConfig {
        schedule: WeightSchedule {
            end_step: 3,
            ..defaults.schedule
        },
        blend_output: false,
        ..defaults
    };
    for (config, want) in [(low_res, 6 * 3), (up, 3 * 3 * 2), (steps_1_2, 6 * 2)] {
        let (_, stored, blend) = frames(&f, config, &[(&f.cond, 1), (&f.cond, 2)]);
        assert_eq!(stored, vec![want; 2]);
        assert_eq!(blend.blended_calls(), want);
        let floats = blend.stored_floats();
        println!("{want} tensors, {floats} floats");
    }
}

/// The ops the taps use (acos, masks, 5-D reshapes, async read-back) exist on burn's wgpu backend
/// (the browser's), with CPU-like results (lavapipe in CI).
#[test]
#[cfg(feature = "wgpu")]
fn taps_run_on_wgpu_as_on_the_cpu() {
    let device = keyshift_sd::wgpu_device();
    let rows: Vec<f32> = (0..32).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.3).collect();
    let mut other: Vec<f32> = (0..32).map(|i| ((i * 5 % 13) as f32 - 6.0) * 0.2).collect();
    other[16..24].fill(0.0);
    let t = |v: &[f32]| Tensor::<3>::from_data(TensorData::new(v.to_vec(), [2, 2, 8]), &device);
    for w in [0.0, 0.3, 1.0] {
        let got = values(slerp(w, t(&rows), t(&other)));
        let want: Vec<f32> = rows
            .chunks(8)
            .zip(other.chunks(8))
            .flat_map(|(r, o)| slerp_row(w, r, o))
            .collect();
        assert!(max_abs_diff(&got, &want) < 1e-3, "t = {w}");
    }
    let f = fixture();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-sd1/diffusers");
    let model = SdModel::load_diffusers(&DirFolder(dir), &device).unwrap();
    let context = Tensor::<3>::from_data(f.cond.parts[0].0.clone().into_data(), &device);
    let config = TapConfig::tokens(&[0, CAT]).with_resolution(Resolution::Fixed {
        height: 32,
        width: 32,
    });
    let image = test_image(64, 64);
    let gpu = pollster::block_on(probe(
        &model,
        &image,
        &context,
        500.0,
        config.clone(),
        VaeInput::Signed,
    ))
    .unwrap();
    let cpu = pollster::block_on(probe(
        &f.model,
        &image,
        &f.cond.parts[0].0,
        500.0,
        config,
        VaeInput::Signed,
    ))
    .unwrap();
    assert_eq!((gpu.height, gpu.layer_calls), (32, CROSS_LAYERS));
    for (g, c) in gpu.maps.iter().zip(&cpu.maps) {
        assert!(max_abs_diff(&g.values, &c.values) < 1e-4);
    }
}
