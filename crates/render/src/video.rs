//! Video input: each source frame rendered as img2img with its own prompt and denoising strength
//! (a constant, or any mode's schedule resolved per frame), the same seed for every frame as
//! Attention-Interpolation does, and each output at the source's size. Temporal consistency
//! (attention interpolation, colour matching to the first frame) comes from the render settings.

use std::collections::BTreeMap;

use keyshift_core::image::{RgbImage, lanczos_resize};
use keyshift_sd::generate::InitImage;
use serde_json::json;

use crate::RenderError;
use crate::source::{Finished, FrameSource, FrameSpec, RenderSettings};

/// One source frame and how it is rendered.
#[derive(Debug, Clone)]
pub struct VideoFrame {
    /// Where it came from (a file name, or `frame N` of a decoded video).
    pub name: String,
    /// Its pixels, at the source's size.
    pub image: RgbImage,
    /// Prompt (A1111 syntax).
    pub prompt: String,
    /// Negative prompt.
    pub negative: String,
    /// img2img denoising strength, 0 (keep) to 1 (replace).
    pub denoise: f64,
}

/// A video render's plan.
#[derive(Debug, Clone)]
pub struct VideoOptions {
    /// The frames, in order.
    pub frames: Vec<VideoFrame>,
    /// The seed of every frame.
    pub seed: u64,
    /// CFG scale.
    pub cfg: f64,
    /// The output's frame rate (the source's, divided by the stride).
    pub fps: f64,
}

/// Hands out the frames of a video.
#[derive(Debug)]
pub struct VideoSource {
    options: VideoOptions,
    size: (usize, usize),
    next: usize,
}

impl VideoSource {
    /// A source for `options` rendered with `settings` (each frame resized to the render's size
    /// for img2img, and back to its own size when done).
    pub fn new(options: VideoOptions, settings: &RenderSettings) -> Result<Self, RenderError> {
        if options.frames.is_empty() {
            return Err(RenderError::Plan(
                "the video has no frames to render".into(),
            ));
        }
        if let Some(f) = options
            .frames
            .iter()
            .find(|f| !(0.0..=1.0).contains(&f.denoise))
        {
            return Err(RenderError::Plan(format!(
                "{}: denoising strength {} is outside 0 to 1",
                f.name, f.denoise
            )));
        }
        Ok(Self {
            options,
            size: (settings.width, settings.height),
            next: 0,
        })
    }

    fn spec(&self, index: usize) -> Option<FrameSpec> {
        let frame = self.options.frames.get(index)?;
        let (w, h) = self.size;
        let source = (frame.image.width, frame.image.height);
        let image = if source == (w, h) {
            frame.image.clone()
        } else {
            lanczos_resize(&frame.image, w, h)
        };
        let mut extra = BTreeMap::new();
        extra.insert("source".into(), json!(frame.name));
        Some(FrameSpec {
            index,
            prompt: frame.prompt.clone(),
            negative: frame.negative.clone(),
            seed: self.options.seed,
            subseed: self.options.seed,
            cfg: self.options.cfg,
            init: Some(InitImage {
                image,
                strength: frame.denoise,
            }),
            extra,
            output_size: Some(source),
            ..FrameSpec::default()
        })
    }
}

impl FrameSource for VideoSource {
    fn next_frame(&mut self) -> Result<Option<FrameSpec>, RenderError> {
        let spec = self.spec(self.next);
        self.next += usize::from(spec.is_some());
        Ok(spec)
    }

    fn expected_frames(&self) -> usize {
        self.options.frames.len()
    }

    fn finish(&mut self) -> Result<Finished, RenderError> {
        Ok(Finished {
            order: (0..self.options.frames.len()).collect(),
            files: Vec::new(),
            fps: Some(self.options.fps),
            lead: 0,
        })
    }
}
