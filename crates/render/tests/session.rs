//! The render layer on the tiny fixture model (CPU backend): its events, progress and ETA; a
//! one-frame plan gives exactly the image of a bare `generate` loop; shift-attention frames come
//! out in the original's order with upscaling applied before gap filling sees them.
#![allow(clippy::unwrap_used, reason = "tests fail by panicking")]

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::PathBuf;

use keyshift_core::image::RgbImage;
use keyshift_core::schedule::{KMethod, Sampler};
use keyshift_core::shift::{GapSettings, ShiftRequest};
use keyshift_core::tokens::ClipTokenizer;
use keyshift_render::{
    AnimationSource, Event, FinishedFrame, FrameSource, FrameSpec, RenderSession, RenderSettings,
    ShiftOptions, ShiftSource, SingleFrame, StoredFrame,
};
use keyshift_sd::Device;
use keyshift_sd::generate::generate;
use keyshift_sd::hooks::NoHook;
use keyshift_sd::model::{DirFolder, SdModel};
use keyshift_sd::taesd::Taesd;

fn model(device: &Device) -> SdModel {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-sd1/diffusers");
    SdModel::load_diffusers(&DirFolder(dir), device).unwrap()
}

fn settings(upscale: f64) -> RenderSettings {
    RenderSettings {
        steps: 2,
        sampler: Sampler::KDiffusion {
            method: KMethod::Euler,
            karras: false,
        },
        width: 64,
        height: 64,
        clip_skip: 0,
        upscale,
        model_label: "tiny".into(),
        temporal: keyshift_core::temporal::Temporal::default(),
        control: None,
    }
}

fn spec(seed: u64, strength: f64) -> FrameSpec {
    FrameSpec {
        index: 0,
        prompt: "a photo of a (cat:1.2)".into(),
        negative: "blurry".into(),
        seed,
        subseed: 99,
        subseed_strength: strength,
        cfg: 6.5,
        init: None,
        extra: BTreeMap::new(),
        travel: None,
        direct: None,
        output_size: None,
        hint: None,
    }
}

#[test]
fn a_one_frame_plan_is_the_bare_generation_loop() {
    let device = Device::flex();
    let model = model(&device);
    let tokenizer = ClipTokenizer::embedded().unwrap();
    let source = SingleFrame::new(spec(5, 0.3));
    let mut session = RenderSession::new(&model, &tokenizer, &device, settings(1.0), source);
    let request = session.request(&spec(5, 0.3));
    assert_eq!(request.subseed, Some((99, 0.3)));
    let mut kinds = Vec::new();
    let mut image = None;
    let finished = pollster::block_on(session.run(&mut NoHook, &mut |s, event| {
        let p = s.progress();
        match event {
            Event::Step(step) => {
                kinds.push(format!("step {}/{}", step.step, step.steps));
                assert!(p.eta_seconds.is_some(), "an ETA from the first step on");
                assert_eq!(p.steps_expected, 2);
            }
            Event::Frame(frame) => {
                kinds.push("frame".into());
                assert!(
                    frame
                        .parameters
                        .contains("Variation seed: 99, Variation seed strength: 0.3")
                );
                assert!(frame.parameters.contains("CFG scale: 6.5, Seed: 5"));
                image = Some(frame.image.clone());
                assert_eq!(p.frames_done, 1);
                assert_eq!(p.eta_seconds, Some(0.0));
            }
            Event::Done(_) => kinds.push("done".into()),
        }
    }))
    .unwrap();
    assert_eq!(kinds, ["step 1/2", "step 2/2", "frame", "done"]);
    assert_eq!(finished.order, [0]);
    let bare = bare_generation(&model, &tokenizer, &request, &device);
    assert_eq!(image, Some(bare.image), "pixel for pixel");
    assert!(matches!(
        pollster::block_on(session.advance(&mut NoHook)),
        Err(keyshift_render::RenderError::Finished)
    ));
}

/// The bare `generate` loop's result for `request`, without the render layer.
fn bare_generation(
    model: &SdModel,
    tokenizer: &ClipTokenizer,
    request: &keyshift_sd::generate::Request,
    device: &Device,
) -> keyshift_sd::generate::Generated {
    pollster::block_on(generate(
        model,
        tokenizer,
        request,
        device,
        &mut NoHook,
        &mut |_| ControlFlow::Continue(()),
    ))
    .unwrap()
    .unwrap()
}

/// One frame of `spec(5, 0.3)` at 2 steps: its image and `parameters`, with TAESD frames or not.
fn one_frame(model: &SdModel, taesd: Option<&Taesd>, device: &Device) -> (RgbImage, String) {
    let tokenizer = ClipTokenizer::embedded().unwrap();
    let source = SingleFrame::new(spec(5, 0.3));
    let mut session = RenderSession::new(model, &tokenizer, device, settings(1.0), source);
    if let Some(taesd) = taesd {
        session.with_taesd_frames(taesd);
    }
    let mut out = None;
    pollster::block_on(session.run(&mut NoHook, &mut |_, event| {
        if let Event::Frame(frame) = event {
            out = Some((frame.image.clone(), frame.parameters.clone()));
        }
    }))
    .unwrap();
    out.unwrap()
}

#[test]
fn taesd_decodes_the_frames_when_asked() {
    let device = Device::flex();
    let model = model(&device);
    let fixture = |name: &str| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures")
            .join(name);
        Taesd::load_folder(&DirFolder(dir), false, &device).unwrap()
    };
    // The tiny model's VAE scales 2×: the real TAESD's shape (8×) does not fit it.
    let err = fixture("taesd-tiny").check_fits(4, 2).unwrap_err();
    assert!(
        err.contains("4-channel latents 8× up") && err.contains("scales 2×"),
        "{err}"
    );
    let taesd = fixture("taesd-tiny-x2");
    taesd.check_fits(4, 2).unwrap();
    assert!(taesd.check_fits(16, 2).unwrap_err().contains("16 channels"));
    let (vae, vae_parameters) = one_frame(&model, None, &device);
    let (fast, parameters) = one_frame(&model, Some(&taesd), &device);
    assert!(!vae_parameters.contains("VAE Decoder"));
    assert!(parameters.contains("VAE Decoder: TAESD"), "{parameters}");
    // TAESD's decode of the same final latent, pixel for pixel.
    let tokenizer = ClipTokenizer::embedded().unwrap();
    let session = RenderSession::new(
        &model,
        &tokenizer,
        &device,
        settings(1.0),
        SingleFrame::new(spec(5, 0.3)),
    );
    let request = session.request(&spec(5, 0.3));
    let bare = bare_generation(&model, &tokenizer, &request, &device);
    assert_eq!(vae, bare.image);
    let latent = keyshift_sd::pipeline::latent(bare.latent, [1, 4, 32, 32], &device);
    let expected = pollster::block_on(taesd.preview(latent)).unwrap();
    assert_eq!((fast.width, fast.height), (64, 64));
    assert_eq!(
        fast, expected,
        "the frame is TAESD's decode of the final latent"
    );
    assert_ne!(fast, vae);
}

#[test]
fn shift_frames_are_upscaled_before_gap_filling_compares_them() {
    let device = Device::flex();
    let model = model(&device);
    let tokenizer = ClipTokenizer::embedded().unwrap();
    let options = ShiftOptions {
        request: ShiftRequest {
            prompt: "a (cat:1~0)".into(),
            negative_prompt: String::new(),
            steps: 1,
            seed: 3,
            cfg_scale: 7.0,
            remove_zero_strength: false,
        },
        gap: GapSettings {
            threshold: 1.0,
            min_step: 0.3,
            min_threshold_pct: 75.0,
        },
        mirror: true,
        fps: -2.0,
        lead: 1,
    };
    let settings = settings(1.5);
    let source = ShiftSource::new(options, &settings).unwrap();
    assert_eq!(source.regular_frames(), 2);
    let mut session = RenderSession::new(&model, &tokenizer, &device, settings, source);
    let mut sizes: Vec<(usize, usize)> = Vec::new();
    let finished = pollster::block_on(session.run(&mut NoHook, &mut |_, event| {
        if let Event::Frame(frame) = event {
            let RgbImage { width, height, .. } = frame.image;
            sizes.push((width, height));
            assert_eq!((frame.record.width, frame.record.height), (96, 96));
        }
    }))
    .unwrap();
    // Threshold 1 asks for a midpoint in every gap wider than the minimum step.
    let similarities = session.source().similarities().clone();
    assert!(!similarities.is_empty(), "gap filling compared frames");
    assert!(similarities.values().all(|s| *s > -1.0 && *s <= 1.0));
    assert!(sizes.iter().all(|&s| s == (96, 96)), "{sizes:?}");
    let n = finished.order.len();
    assert_eq!(n % 2, 0, "mirrored");
    assert_eq!(
        finished.order[..n / 2].iter().rev().collect::<Vec<_>>(),
        finished.order[n / 2..].iter().collect::<Vec<_>>()
    );
    assert_eq!(finished.lead, 1);
    #[allow(clippy::cast_precision_loss, reason = "small")]
    let fps = (n + 2) as f64 / 2.0;
    assert_eq!(
        finished.fps,
        Some(fps),
        "negative FPS is the video length in seconds, lead frames included"
    );
    let names: Vec<&str> = finished.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["shift-attention-info.txt", "ssim_scatter.svg"]);
    assert!(finished.files[0].1.contains("Upscale ratio: 1.5\n"));
}

#[test]
fn prompt_errors_name_the_prompt_before_anything_renders() {
    let options = ShiftOptions {
        request: ShiftRequest {
            prompt: "a (cat:1~0~)".into(),
            negative_prompt: String::new(),
            steps: 2,
            seed: 3,
            cfg_scale: 7.0,
            remove_zero_strength: false,
        },
        gap: GapSettings::default(),
        mirror: false,
        fps: 0.0,
        lead: 0,
    };
    let err = ShiftSource::new(options, &settings(1.0))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Positive") && err.contains("not a number"),
        "{err}"
    );
}

#[test]
fn single_frame_source_hands_out_one_frame() {
    let mut source = SingleFrame::new(spec(1, 0.0));
    assert_eq!(source.expected_frames(), 1);
    assert!(source.next_frame().unwrap().is_some());
    assert!(source.next_frame().unwrap().is_none());
    assert_eq!(source.finish().unwrap().order, [0]);
}

/// A hook that only counts UNet calls: not inert, so frames are not batched under it.
struct CountCalls(usize);

impl keyshift_sd::hooks::AttentionHook for CountCalls {}

impl keyshift_sd::taps::StepHook for CountCalls {
    fn set_step(&mut self, _step: usize) {
        self.0 += 1;
    }
}

/// What [`shift_batched`] saw: each finished frame by generation index, the most frames one
/// step ran, and the video order.
struct Batched {
    frames: BTreeMap<usize, FinishedFrame>,
    widest: usize,
    order: Vec<usize>,
}

impl Batched {
    /// The largest pixel difference from `other`'s frames (the same frames, asserted).
    fn largest_difference(&self, other: &Batched) -> u8 {
        let keys = |b: &Batched| b.frames.keys().copied().collect::<Vec<_>>();
        assert_eq!(keys(self), keys(other));
        let pairs = self.frames.values().zip(other.frames.values());
        pairs
            .flat_map(|(a, b)| a.image.data.iter().zip(&b.image.data))
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0)
    }
}

/// Renders a 5-frame shift-attention animation (Euler a, gap filling on) with `batch` frames
/// per UNet call, `stored` frames handed back.
fn shift_batched(
    batch: usize,
    stored: BTreeMap<usize, StoredFrame>,
    hook: &mut dyn keyshift_sd::taps::StepHook,
) -> Batched {
    let device = Device::flex();
    let model = model(&device);
    let tokenizer = ClipTokenizer::embedded().unwrap();
    let options = ShiftOptions {
        request: ShiftRequest {
            prompt: "a photo of a (cat:1~0), (dog:0~1)".into(),
            negative_prompt: "blurry".into(),
            steps: 4,
            seed: 11,
            cfg_scale: 7.0,
            remove_zero_strength: false,
        },
        gap: GapSettings {
            threshold: 1.0,
            min_step: 0.1,
            min_threshold_pct: 75.0,
        },
        mirror: false,
        fps: 0.0,
        lead: 0,
    };
    let mut settings = settings(1.0);
    settings.sampler = Sampler::KDiffusion {
        method: KMethod::EulerAncestral,
        karras: false,
    };
    // Through `AnimationSource`, as the worker renders every mode.
    let source = AnimationSource::Shift(Box::new(ShiftSource::new(options, &settings).unwrap()));
    let mut session = RenderSession::new(&model, &tokenizer, &device, settings, source);
    session.with_frame_batch(batch);
    session.resume_with(stored);
    let (mut frames, mut widest, mut steps) = (BTreeMap::new(), 0, 0);
    let finished = pollster::block_on(session.run(hook, &mut |s, event| match event {
        Event::Step(step) => {
            widest = widest.max(step.frames);
            steps += step.frames;
            assert_eq!(s.progress().steps_done, steps);
        }
        Event::Frame(frame) => {
            frames.insert(frame.record.generation_index, frame.clone());
        }
        Event::Done(_) => {}
    }))
    .unwrap();
    let p = session.progress();
    assert_eq!((p.steps_done, p.steps_expected), (steps, steps));
    Batched {
        frames,
        widest,
        order: finished.order,
    }
}

#[test]
fn batched_frames_are_the_frames_made_one_at_a_time() {
    let alone = shift_batched(1, BTreeMap::new(), &mut NoHook);
    assert_eq!(alone.widest, 1);
    assert!(alone.frames.len() > 5, "gap filling added frames");
    let together = shift_batched(3, BTreeMap::new(), &mut NoHook);
    assert_eq!(
        together.widest, 3,
        "the evenly spaced frames ran three at a time"
    );
    assert_eq!(together.order, alone.order);
    assert_eq!(together.largest_difference(&alone), 0, "pixel for pixel");
    let records = |b: &Batched| {
        b.frames
            .values()
            .map(|f| f.record.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(records(&together), records(&alone));
    let mut counting = CountCalls(0);
    let hooked = shift_batched(3, BTreeMap::new(), &mut counting);
    assert_eq!(
        hooked.widest, 1,
        "a hook that looks at rows keeps frames apart"
    );
    assert_eq!(counting.0, hooked.frames.len() * 2);
}

#[test]
fn a_resumed_batched_render_hands_back_the_stored_frame_in_place() {
    let alone = shift_batched(1, BTreeMap::new(), &mut NoHook);
    let kept = &alone.frames[&1];
    let stored = BTreeMap::from([(
        1,
        StoredFrame {
            record: kept.record.clone(),
            image: kept.image.clone(),
            parameters: kept.parameters.clone(),
        },
    )]);
    let resumed = shift_batched(3, stored, &mut NoHook);
    assert_eq!(resumed.order, alone.order);
    let from_store: Vec<usize> = resumed
        .frames
        .iter()
        .filter_map(|(i, f)| f.resumed.then_some(*i))
        .collect();
    assert_eq!(from_store, [1]);
    assert!(
        resumed.widest >= 2,
        "the frames after it still ran together"
    );
    assert_eq!(resumed.largest_difference(&alone), 0, "pixel for pixel");
}
