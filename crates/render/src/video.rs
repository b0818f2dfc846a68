//! Video input: each source frame rendered as img2img with its own prompt and denoising strength
//! (a constant, or any mode's schedule resolved per frame), the same seed for every frame as
//! Attention-Interpolation does, and each output at the source's size. Temporal consistency
//! (attention interpolation, colour matching to the first frame) comes from the render settings.
//! A frame may carry a ControlNet hint: its canny edges (Attention-Interpolation's
//! `CannyProcessor`), or an image of a hint sequence (depth, pose, … made elsewhere).

use std::collections::BTreeMap;

use keyshift_core::image::{CANNY_HIGH, CANNY_LOW, RgbImage, canny_hint, lanczos_resize};
use keyshift_sd::generate::InitImage;
use serde_json::json;

use crate::RenderError;
use crate::source::{Finished, FrameSource, FrameSpec, Hint, RenderSettings};

/// Where a frame's ControlNet hint comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoHint {
    /// The frame's canny edges (`Canny(50, 200)` of the frame at the render's size).
    Canny,
    /// A hint image (resized to the render's size).
    Image {
        /// Its name, for the records.
        name: String,
        /// Its pixels.
        image: RgbImage,
    },
}

impl VideoHint {
    /// The hint for a frame whose pixels at the render's size are `frame`.
    fn at_size(&self, frame: &RgbImage) -> Hint {
        match self {
            Self::Canny => Hint {
                source: "canny".into(),
                image: canny_hint(frame, CANNY_LOW, CANNY_HIGH),
            },
            Self::Image { name, image } => Hint {
                source: name.clone(),
                image: if (image.width, image.height) == (frame.width, frame.height) {
                    image.clone()
                } else {
                    lanczos_resize(image, frame.width, frame.height)
                },
            },
        }
    }
}

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
    /// Its ControlNet hint, if the render has a ControlNet.
    pub hint: Option<VideoHint>,
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
        let hint = frame.hint.as_ref().map(|h| h.at_size(&image));
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
            hint,
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
