//! `generate` (the CLI's and the worker's entry point) with attention taps: the hook is told each
//! step before it runs, so step-restricted taps see exactly their steps.
#![allow(clippy::unwrap_used, reason = "tests fail by panicking")]

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::PathBuf;

use keyshift_core::schedule::{KMethod, Sampler, ScheduleConfig};
use keyshift_core::tokens::ClipTokenizer;
use keyshift_sd::Device;
use keyshift_sd::generate::{Request, generate};
use keyshift_sd::model::{DirFolder, SdModel};
use keyshift_sd::taps::StepFilter;
use keyshift_sd::taps::cross::{BatchLayout, CrossAttentionTap, TapConfig};

#[test]
fn generate_tells_the_tap_each_step_and_cancels_between_steps() {
    let device = Device::flex();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-sd1/diffusers");
    let model = SdModel::load_diffusers(&DirFolder(dir), &device).unwrap();
    let tokenizer = ClipTokenizer::embedded().unwrap();
    let request = Request {
        prompt: "a photo of a cat".into(),
        negative: String::new(),
        steps: 3,
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
    let config = TapConfig::tokens(&[2, 5])
        .with_steps(StepFilter::Set(BTreeSet::from([1])))
        .with_batch(BatchLayout::guided(7.0, 1));
    let mut tap = CrossAttentionTap::new(config);
    let mut steps = Vec::new();
    let mut on_step = |s: &keyshift_sd::pipeline::StepOutput| {
        steps.push(s.step);
        ControlFlow::Continue(())
    };
    let out = pollster::block_on(generate(
        &model,
        &tokenizer,
        &request,
        &device,
        &mut tap,
        &mut on_step,
    ))
    .unwrap();
    assert!(out.is_some());
    assert_eq!(steps, vec![0, 1, 2]);
    // Only step 1's six cross-attention calls (down, mid, up) were read.
    assert_eq!(tap.layer_calls(), 6);
    // Cancelling after the first step returns no image.
    let mut stop = |_: &keyshift_sd::pipeline::StepOutput| ControlFlow::Break(());
    let mut none = keyshift_sd::hooks::NoHook;
    let out = pollster::block_on(generate(
        &model, &tokenizer, &request, &device, &mut none, &mut stop,
    ))
    .unwrap();
    assert!(out.is_none());
}
