//! What the render layer's tests share: the tiny fixture model on burn's CPU backend, 64×64
//! Euler settings, and a rig that renders a source to its frames' images.
#![allow(
    dead_code,
    clippy::unwrap_used,
    reason = "each test file uses part of it; tests fail by panicking"
)]

use std::path::PathBuf;

use keyshift_core::image::RgbImage;
use keyshift_core::schedule::{KMethod, Sampler};
use keyshift_core::tokens::ClipTokenizer;
use keyshift_render::{Event, FrameSource, FrameSpec, RenderSession, RenderSettings, SingleFrame};
use keyshift_sd::Device;
use keyshift_sd::hooks::NoHook;
use keyshift_sd::model::{DirFolder, SdModel};

pub fn model(device: &Device) -> SdModel {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-sd1/diffusers");
    SdModel::load_diffusers(&DirFolder(dir), device).unwrap()
}

pub fn settings(steps: usize) -> RenderSettings {
    RenderSettings {
        steps,
        sampler: Sampler::KDiffusion {
            method: KMethod::Euler,
            karras: false,
        },
        width: 64,
        height: 64,
        clip_skip: 0,
        upscale: 1.0,
        model_label: "tiny".into(),
        temporal: keyshift_core::temporal::Temporal::default(),
        control: None,
    }
}

pub struct Rig {
    pub device: Device,
    pub model: SdModel,
    pub tokenizer: ClipTokenizer,
}

impl Rig {
    pub fn new() -> Self {
        let device = Device::flex();
        Self {
            model: model(&device),
            tokenizer: ClipTokenizer::embedded().unwrap(),
            device,
        }
    }

    /// Every frame's image, by generation index.
    pub fn render<S: FrameSource>(&self, steps: usize, source: S) -> Vec<RgbImage> {
        self.render_with(settings(steps), source)
    }

    /// Every frame's image with `settings`, by generation index.
    pub fn render_with<S: FrameSource>(
        &self,
        settings: RenderSettings,
        source: S,
    ) -> Vec<RgbImage> {
        let mut session =
            RenderSession::new(&self.model, &self.tokenizer, &self.device, settings, source);
        let mut images = Vec::new();
        pollster::block_on(session.run(&mut NoHook, &mut |_, event| {
            if let Event::Frame(frame) = event {
                images.push(frame.image.clone());
            }
        }))
        .unwrap();
        images
    }

    pub fn single(&self, steps: usize, spec: FrameSpec) -> RgbImage {
        self.render(steps, SingleFrame::new(spec)).remove(0)
    }
}
