//! What a render plan is made of: settings shared by every frame, one [`FrameSpec`] per frame,
//! and the [`FrameSource`] that hands them out.

use std::collections::BTreeMap;

use keyshift_core::image::RgbImage;
use keyshift_core::schedule::Sampler;
use keyshift_core::travel::{GradOptions, ReplaceDim, ReplaceOrder, TokenOrder};
use keyshift_sd::generate::InitImage;

use crate::RenderError;
use crate::manifest::FrameRecord;

/// Settings every frame of a render shares.
#[derive(Debug, Clone)]
pub struct RenderSettings {
    /// Sampling steps.
    pub steps: usize,
    /// Sampler.
    pub sampler: Sampler,
    /// Image width in pixels.
    pub width: usize,
    /// Image height in pixels.
    pub height: usize,
    /// A1111 CLIP skip; 0 uses the model's own.
    pub clip_skip: usize,
    /// Upscale ratio applied to each finished frame (Lanczos); 1 keeps the size.
    pub upscale: f64,
    /// The model's name as the `parameters` text shows it.
    pub model_label: String,
    /// Temporal consistency between frames (off by default).
    pub temporal: keyshift_core::temporal::Temporal,
    /// The ControlNet that guides frames with a hint ([`FrameSpec::hint`]); the session is given
    /// the net itself ([`crate::RenderSession::with_controlnet`]).
    pub control: Option<RenderControl>,
}

/// A render's ControlNet settings and the net's name for the records.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderControl {
    /// Strength, guess mode, steps.
    pub settings: keyshift_core::control::ControlSettings,
    /// The ControlNet's name (`control_v11p_sd15_canny`).
    pub model_label: String,
}

/// A ControlNet hint image for one frame, and what made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// `canny` (extracted from the frame), or the name of the hint image supplied.
    pub source: String,
    /// The hint at the render's size.
    pub image: RgbImage,
}

impl Hint {
    /// The preprocessor as A1111's ControlNet names it: `canny`, or `none` for a given image.
    pub fn module(&self) -> &str {
        if self.source == "canny" {
            "canny"
        } else {
            "none"
        }
    }
}

/// One frame to render: everything that differs between frames.
#[derive(Debug, Clone, Default)]
pub struct FrameSpec {
    /// Position in the order of generation (0-based).
    pub index: usize,
    /// Prompt (A1111 syntax).
    pub prompt: String,
    /// Negative prompt.
    pub negative: String,
    /// Seed (A1111: only the low 32 bits count).
    pub seed: u64,
    /// Variation seed.
    pub subseed: u64,
    /// Variation strength (0: only `seed`).
    pub subseed_strength: f64,
    /// CFG scale.
    pub cfg: f64,
    /// img2img input, at the render's size.
    pub init: Option<InitImage>,
    /// Mode-specific fields for the manifest (e.g. shift-attention's `distance` and `segment`).
    pub extra: BTreeMap<String, serde_json::Value>,
    /// Prompt travel: the stage this frame travels towards (`prompt` is the stage it leaves).
    pub travel: Option<FrameTravel>,
    /// A frame made without diffusion (a cadence frame of a Parseq render): handed out as it
    /// is, at the render's size.
    pub direct: Option<Box<RgbImage>>,
    /// The finished frame resized to this (Lanczos) when it differs from the render's size
    /// (a video's frames come out at the source's size).
    pub output_size: Option<(usize, usize)>,
    /// The ControlNet hint of this frame (none: the frame is rendered without ControlNet).
    pub hint: Option<Hint>,
}

/// A prompt-travel frame's mix of two stages.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameTravel {
    /// The target stage's prompt.
    pub prompt: String,
    /// The target stage's negative prompt.
    pub negative: String,
    /// Weight of the target in the prompt's conditioning.
    pub alpha: f64,
    /// Weight of the target in the negative's conditioning.
    pub uncond_alpha: f64,
    /// Lerp, slerp or replace.
    pub mix: TravelMix,
    /// Embryo genesis: this frame makes the shared latent, or uses it.
    pub embryo: Option<Embryo>,
}

/// How a travel frame mixes its stages.
#[derive(Debug, Clone, PartialEq)]
pub enum TravelMix {
    /// Linear interpolation.
    Lerp,
    /// Spherical interpolation per token row.
    Slerp,
    /// Replace mode: `rounds` rounds of replacement towards the target.
    Replace {
        /// What a unit is.
        unit: ReplaceDim,
        /// Which units go first.
        order: ReplaceOrder,
        /// Rounds done by this frame.
        rounds: usize,
        /// Travel steps of the transition.
        steps: usize,
        /// Eased α after each round, for a non-linear easing (`None`: the original's fixed count
        /// per round).
        eased: Option<Vec<f64>>,
        /// Seed of the random order.
        seed: u32,
    },
    /// The old token-ID replace: `rounds` frames' worth of the differing token positions take
    /// the target's ids, in `order`, and the prompt is encoded again.
    ReplaceIds {
        /// Which positions go first.
        order: TokenOrder,
        /// Rounds done by this frame.
        rounds: usize,
        /// Travel steps of the transition.
        steps: usize,
        /// Seed of the random order (and of the gradient orders' timestep and noise).
        seed: u32,
        /// The target stage's image, for the gradient orders.
        target: Option<Box<RgbImage>>,
    },
    /// Grad mode: the conditioning walks from where the last frame of this transition left it
    /// (or from the prompt's) towards the target stage's, by PGD steps on the target image.
    Grad {
        /// Iterations, step size, method, weights.
        options: GradOptions,
        /// The transition (stage indices), so that consecutive frames continue one walk.
        stages: (usize, usize),
        /// The target stage's rendered image.
        target: Box<RgbImage>,
        /// Seed of the timesteps and noises of this frame's steps.
        seed: u64,
    },
}

/// A frame's part in embryo genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embryo {
    /// Keep the latent from before this sampling step as the embryo.
    Capture(usize),
    /// Swap the embryo in before this sampling step.
    Share(usize),
}

/// The end of a render: the frames in video order and what the mode writes beside them.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// Generation indices in video order (a frame may appear more than once, e.g. mirrored).
    pub order: Vec<usize>,
    /// Mode-specific files: name and text (shift-attention's info file and SSIM scatter plot).
    pub files: Vec<(String, String)>,
    /// The video's frame rate (`None`: the mode asks for no video; exports then use 30).
    pub fps: Option<f64>,
    /// Copies of the first and last frame at the start and end of the video.
    pub lead: usize,
}

/// Hands out the frames of a render, in order of generation.
pub trait FrameSource {
    /// The next frame to render, or `None` when every frame is rendered.
    fn next_frame(&mut self) -> Result<Option<FrameSpec>, RenderError>;

    /// A frame is finished (after upscaling): feedback sources look at it before deciding what
    /// comes next.
    fn frame_done(&mut self, record: &FrameRecord, image: &RgbImage) -> Result<(), RenderError> {
        let _ = (record, image);
        Ok(())
    }

    /// Frames that [`FrameSource::next_frame`] can hand out now, before the frames already
    /// handed out are finished (they need no feedback from them): a renderer may start them
    /// together. 0 by default.
    fn ready_ahead(&self) -> usize {
        0
    }

    /// Frames expected in all, as known so far (at least those handed out); for progress and ETA.
    fn expected_frames(&self) -> usize;

    /// Called once after `next_frame` returned `None`.
    fn finish(&mut self) -> Result<Finished, RenderError>;
}
