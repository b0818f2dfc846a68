//! Prompt travel on the render layer with the tiny fixture model (CPU backend): successive
//! frames are img2img of their predecessor, embryo frames share the half-way latent, and a stage
//! with prompt editing travels step by step.
#![allow(clippy::unwrap_used, reason = "tests fail by panicking")]

mod common;

use common::{Rig, settings};

use keyshift_core::travel::{EmbryoStep, Genesis, Interp};
use keyshift_render::{
    Event, FrameSource, FrameSpec, RenderSession, SingleFrame, TravelOptions, TravelSource,
};
use keyshift_sd::generate::{Generation, decode_to_rgb};
use keyshift_sd::hooks::NoHook;
use keyshift_sd::travel::{Mix, Travel};

fn options(genesis: Genesis) -> TravelOptions {
    TravelOptions {
        prompt: "a photo of a cat\na painting of a dog".into(),
        negative: "blurry".into(),
        steps: "3".into(),
        genesis,
        interp: Interp::Slerp,
        denoise: 0.6,
        embryo_step: EmbryoStep(2.0),
        seed: 11,
        ..TravelOptions::default()
    }
}

#[test]
fn successive_frames_are_img2img_of_their_predecessor() {
    let rig = Rig::new();
    let images = rig.render(
        3,
        TravelSource::new(options(Genesis::Successive), &settings(3)).unwrap(),
    );
    assert_eq!(images.len(), 1 + 3);
    // Replay the plan by hand: frame k's spec, once frame k − 1 is known, renders to frame k…
    let mut source = TravelSource::new(options(Genesis::Successive), &settings(3)).unwrap();
    let mut specs = Vec::new();
    for image in &images {
        let spec = source.next_frame().unwrap().unwrap();
        let record = keyshift_render::FrameRecord::new(
            &spec,
            &RenderSession::new(
                &rig.model,
                &rig.tokenizer,
                &rig.device,
                settings(3),
                SingleFrame::new(spec.clone()),
            )
            .request(&spec),
            64,
            64,
        );
        source.frame_done(&record, image).unwrap();
        specs.push(spec);
    }
    let k = 2;
    let init = specs[k].init.as_ref().unwrap();
    assert_eq!(init.image.data, images[k - 1].data);
    assert_eq!(init.strength, 0.6);
    assert_eq!(rig.single(3, specs[k].clone()).data, images[k].data);
    // …and from another predecessor it is another image.
    let mut other = specs[k].clone();
    other.init.as_mut().unwrap().image = images[0].clone();
    assert_ne!(rig.single(3, other).data, images[k].data);
}

#[test]
fn embryo_frames_share_the_half_way_latent() {
    let rig = Rig::new();
    let source = TravelSource::new(options(Genesis::Embryo), &settings(4)).unwrap();
    assert_eq!(source.plan().video.len(), 3 + 3);
    let images = rig.render(4, source);
    // Generation order: the embryo, then the video frames α = 0, 0.2, …, 1.
    assert_eq!(images.len(), 1 + 6);
    // By hand: the embryo is the half-way slerp's latent before step 2; frame α = 0.2 starts from
    // the same noise, takes the embryo before its step 2 and runs on with its own conditioning.
    let request = |spec: &FrameSpec| {
        RenderSession::new(
            &rig.model,
            &rig.tokenizer,
            &rig.device,
            settings(4),
            SingleFrame::new(spec.clone()),
        )
        .request(spec)
    };
    let base = FrameSpec {
        prompt: "a photo of a cat".into(),
        negative: "blurry".into(),
        seed: 11,
        cfg: 7.0,
        ..FrameSpec::default()
    };
    let travel = |alpha: f64| Travel {
        prompt: "a painting of a dog".into(),
        negative: "blurry".into(),
        alpha,
        uncond_alpha: 1.0,
        mix: Mix::Slerp,
    };
    let r = request(&base);
    let mut g = Generation::travelling(
        &rig.model,
        &rig.tokenizer,
        &r,
        Some(&travel(0.5)),
        &rig.device,
    )
    .unwrap();
    while g.next_step() < 2 {
        g.step(&mut NoHook).unwrap();
    }
    let embryo = g.latent().clone();
    let mut g = Generation::travelling(
        &rig.model,
        &rig.tokenizer,
        &r,
        Some(&travel(0.2)),
        &rig.device,
    )
    .unwrap();
    while g.next_step() < 2 {
        g.step(&mut NoHook).unwrap();
    }
    g.set_latent(embryo);
    while g.step(&mut NoHook).unwrap().is_some() {}
    let image = pollster::block_on(decode_to_rgb(&rig.model, g.latent().clone())).unwrap();
    assert_eq!(image.data, images[2].data);
    // Without the embryo the frame differs.
    let mut g = Generation::travelling(
        &rig.model,
        &rig.tokenizer,
        &r,
        Some(&travel(0.2)),
        &rig.device,
    )
    .unwrap();
    while g.step(&mut NoHook).unwrap().is_some() {}
    let plain = pollster::block_on(decode_to_rgb(&rig.model, g.latent().clone())).unwrap();
    assert_ne!(plain.data, images[2].data);
}

/// The original's SSIM loop over one transition (seeds.md §2.2: `ssim_loop`), written out plainly
/// with frames rendered one at a time; returns the final α positions.
fn reference_gap_filling(
    rig: &Rig,
    threshold: f64,
    min_step: f64,
    blur: f64,
    crop: f64,
) -> Vec<f64> {
    use keyshift_core::image::{center_crop, gaussian_blur, ssim};
    use keyshift_render::{FrameTravel, TravelMix};
    let render = |t: f64| {
        let spec = FrameSpec {
            prompt: "a photo of a cat".into(),
            negative: "blurry".into(),
            seed: 11,
            cfg: 7.0,
            travel: (t > 0.0).then(|| FrameTravel {
                prompt: "a painting of a dog".into(),
                negative: "blurry".into(),
                alpha: t,
                uncond_alpha: t,
                mix: TravelMix::Lerp,
                embryo: None,
            }),
            ..FrameSpec::default()
        };
        gaussian_blur(&center_crop(&rig.single(2, spec), crop), blur)
    };
    let mut frames = vec![render(0.0), render(1.0)];
    let mut dists = vec![0.0, 1.0];
    let (mut done, mut check) = (0, true);
    while check {
        check = false;
        let start = done;
        for i in start..frames.len() - 1 {
            let d = ssim(&frames[i], &frames[i + 1]).unwrap();
            if d < threshold && dists[i + 1] - dists[i] > min_step {
                check = true;
                let mid = (dists[i] + dists[i + 1]) / 2.0;
                let new = render(mid);
                let d2 = ssim(&frames[i], &new).unwrap();
                if d2 > d || d2 < threshold * 0.75 {
                    frames.insert(i + 1, new);
                    dists.insert(i + 1, mid);
                } else {
                    done = i + 1;
                }
                break;
            }
            done = i;
        }
    }
    dists
}

#[test]
fn ssim_gap_filling_inserts_travel_frames_where_the_original_loop_does() {
    use keyshift_core::shift::GapSettings;
    use keyshift_render::TravelGapOptions;
    let rig = Rig::new();
    let gap = TravelGapOptions {
        gap: GapSettings {
            threshold: 0.999,
            min_step: 0.2,
            min_threshold_pct: 75.0,
        },
        blur: 1.0,
        crop: 80.0,
    };
    let travel = TravelOptions {
        steps: "1".into(),
        interp: Interp::Lerp,
        gap,
        ..options(Genesis::Fixed)
    };
    let source = TravelSource::new(travel, &settings(2)).unwrap();
    let mut session =
        RenderSession::new(&rig.model, &rig.tokenizer, &rig.device, settings(2), source);
    let mut t = std::collections::BTreeMap::new();
    let finished = pollster::block_on(session.run(&mut NoHook, &mut |_, event| {
        if let Event::Frame(frame) = event {
            let at = frame.record.extra["t"].as_f64().unwrap();
            t.insert(frame.record.generation_index, at);
        }
    }))
    .unwrap();
    let got: Vec<f64> = finished.order.iter().map(|i| t[i]).collect();
    let want = reference_gap_filling(&rig, 0.999, 0.2, 1.0, 80.0);
    assert!(want.len() > 2, "the threshold makes the loop insert frames");
    assert_eq!(got, want);
    assert_eq!(finished.files[0].0, "ssim_scatter.svg");
    // Gap filling needs linear travel and fixed genesis.
    let bad = TravelOptions {
        gap,
        ..options(Genesis::Successive)
    };
    assert!(TravelSource::new(bad, &settings(2)).is_err());
}

/// Each frame's record by generation index, and the end.
fn run_records(
    rig: &Rig,
    source: TravelSource,
    stored: std::collections::BTreeMap<usize, keyshift_render::StoredFrame>,
) -> std::collections::BTreeMap<usize, keyshift_render::FinishedFrame> {
    let mut session =
        RenderSession::new(&rig.model, &rig.tokenizer, &rig.device, settings(2), source);
    session.resume_with(stored);
    let mut frames = std::collections::BTreeMap::new();
    pollster::block_on(session.run(&mut NoHook, &mut |_, event| {
        if let Event::Frame(frame) = event {
            frames.insert(frame.record.generation_index, frame.clone());
        }
    }))
    .unwrap();
    frames
}

#[test]
fn grad_mode_walks_on_from_frame_to_frame_and_resumes_the_walk() {
    use keyshift_core::travel::{GradOptions, TravelMode};
    use keyshift_render::StoredFrame;
    let rig = Rig::new();
    let travel = TravelOptions {
        mode: TravelMode::Grad,
        grad: GradOptions {
            iterations: 2,
            alpha: 0.05,
            ..GradOptions::default()
        },
        ..options(Genesis::Fixed)
    };
    let frames = run_records(
        &rig,
        TravelSource::new(travel.clone(), &settings(2)).unwrap(),
        Default::default(),
    );
    // Stage 1, the target stage 2, then the walk's two frames.
    assert_eq!(frames.len(), 4);
    let losses: Vec<&Vec<[f64; 2]>> = frames.values().map(|f| &f.record.losses).collect();
    assert!(losses[0].is_empty() && losses[1].is_empty());
    assert_eq!((losses[2].len(), losses[3].len()), (2, 2));
    // The walk goes on: the second walked frame starts nearer the target than the first began.
    assert!(losses[3][0][1] < losses[2][0][1], "{losses:?}");
    assert_ne!(frames[&2].image.data, frames[&3].image.data);
    // Resumed after frame 2, the walk is replayed and frame 3 comes out the same.
    let stored = frames
        .iter()
        .filter(|(i, _)| **i < 3)
        .map(|(i, f)| {
            let frame = StoredFrame {
                record: f.record.clone(),
                image: f.image.clone(),
                parameters: f.parameters.clone(),
            };
            (*i, frame)
        })
        .collect();
    let source = TravelSource::new(travel.clone(), &settings(2)).unwrap();
    assert!(
        source.again(&frames[&3].record, None).is_err(),
        "a walked frame is not made alone"
    );
    assert!(source.again(&frames[&1].record, None).is_ok());
    let again = run_records(
        &rig,
        TravelSource::new(travel, &settings(2)).unwrap(),
        stored,
    );
    assert!(again[&2].resumed && !again[&3].resumed);
    assert_eq!(again[&3].image.data, frames[&3].image.data);
    assert_eq!(again[&3].record.losses, frames[&3].record.losses);
}

#[test]
fn token_id_replace_swaps_the_most_similar_or_different_token_first() {
    use keyshift_core::travel::{TokenOrder, TravelMode};
    let rig = Rig::new();
    let single = |prompt: &str| {
        rig.single(
            2,
            FrameSpec {
                prompt: prompt.into(),
                negative: "blurry".into(),
                seed: 11,
                cfg: 7.0,
                ..FrameSpec::default()
            },
        )
    };
    // "a photo of a cat" → "a painting of a dog": two token positions differ.
    let swaps = [
        single("a painting of a cat").data,
        single("a photo of a dog").data,
    ];
    let mut firsts = Vec::new();
    for order in [TokenOrder::MostSimilar, TokenOrder::MostDifferent] {
        let travel = TravelOptions {
            mode: TravelMode::ReplaceIds,
            steps: "2".into(),
            token_order: order,
            ..options(Genesis::Fixed)
        };
        let frames = run_records(
            &rig,
            TravelSource::new(travel, &settings(2)).unwrap(),
            Default::default(),
        );
        // Stage 1, target, then 2 rounds of one token each: round 2 is the target's tokens.
        assert_eq!(frames.len(), 4);
        assert_eq!(frames[&3].image.data, frames[&1].image.data);
        let first = &frames[&2].image.data;
        let which = swaps.iter().position(|s| s == first);
        assert!(which.is_some(), "{order:?}: round 1 is one token swapped");
        firsts.push(which);
    }
    assert_ne!(
        firsts[0], firsts[1],
        "most similar and most different swap different tokens first"
    );
}

/// Linear travel with fixed genesis: frames made three per UNet call are those made one at a
/// time, pixel for pixel (each frame mixes its own conditioning at every step).
#[test]
fn fixed_genesis_frames_batch_and_equal_single_frames() {
    let rig = Rig::new();
    let render = |batch: usize| {
        let source = TravelSource::new(options(Genesis::Fixed), &settings(2)).unwrap();
        let mut session =
            RenderSession::new(&rig.model, &rig.tokenizer, &rig.device, settings(2), source);
        session.with_frame_batch(batch);
        let (mut images, mut widest) = (Vec::new(), 0);
        pollster::block_on(session.run(&mut NoHook, &mut |_, event| match event {
            Event::Step(step) => widest = widest.max(step.frames),
            Event::Frame(frame) => images.push(frame.image.data.clone()),
            Event::Done(_) => {}
        }))
        .unwrap();
        (images, widest)
    };
    let (alone, widest) = render(1);
    assert_eq!((alone.len(), widest), (4, 1));
    let (together, widest) = render(3);
    assert_eq!(widest, 3);
    assert!(together == alone, "pixel for pixel");
    assert_ne!(alone[0], alone[3], "the frames travel");
}
