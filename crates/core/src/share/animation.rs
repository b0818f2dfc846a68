//! The animation part of a project: which mode renders it and every mode's options (a mode's
//! options are kept while another is chosen, as A1111 keeps a script's values).

use super::parseq::ParseqSettings;
use crate::prompt::Fidelity;
use crate::shift::GapSettings;
use crate::shift::ShiftRequest;
use crate::shift::run::{RunError, RunSettings, run};
use crate::travel::easing::Easing;
use crate::travel::{
    Genesis, GradOptions, Interp, ReplaceDim, ReplaceOrder, Slice, TokenOrder, TravelError,
    TravelMode, frames::wander_plan, parse_steps, plan, stages,
};

/// How a project is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnimationMode {
    /// One image (the Generate card).
    #[default]
    Single,
    /// shift-attention: `a~b` ranges and `THEN` segments.
    ShiftAttention,
    /// Prompt travel: one stage per prompt line, the conditioning interpolated between them.
    PromptTravel,
    /// A Parseq document rendered as Deforum's 2D animation.
    Parseq,
    /// Video input: each frame of a video as img2img.
    Video,
}

impl AnimationMode {
    /// Every mode, in the order the mode picker lists them.
    pub const ALL: [Self; 5] = [
        Self::Single,
        Self::ShiftAttention,
        Self::PromptTravel,
        Self::Parseq,
        Self::Video,
    ];

    /// The mode's name in links and files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::ShiftAttention => "shift-attention",
            Self::PromptTravel => "prompt-travel",
            Self::Parseq => "parseq",
            Self::Video => "video",
        }
    }

    /// The mode called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// shift-attention's options (its UI's defaults).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShiftSettings {
    /// Intervals per segment (each segment renders `shift_steps + 1` frames), 1..=1000.
    pub shift_steps: u32,
    /// Video frame rate; negative: the video's length in seconds; 0: no video. −3600..=240.
    pub fps: f64,
    /// Copies of the first and last frame at the start and end of the video, 0..=1000.
    pub lead: u32,
    /// Play forward, then backward.
    pub mirror: bool,
    /// Remove `(tag:0)` groups from each frame's prompts.
    pub remove_zero: bool,
    /// Lanczos upscale ratio of every frame, above 0 and at most 8 (1: none).
    pub upscale: f64,
    /// SSIM gap filling threshold, 0..=1 (0: off).
    pub ssim_threshold: f64,
    /// Gaps narrower than this are never split, above 0 and at most 1.
    pub ssim_min_step: f64,
    /// Keep a new frame that is no improvement while its SSIM is below this percent of the
    /// threshold, 0..=100.
    pub ssim_min_pct: f64,
}

impl Default for ShiftSettings {
    fn default() -> Self {
        Self {
            shift_steps: 10,
            fps: 30.0,
            lead: 0,
            mirror: false,
            remove_zero: false,
            upscale: 1.0,
            ssim_threshold: 0.0,
            ssim_min_step: 0.0001,
            ssim_min_pct: 75.0,
        }
    }
}

/// The animation settings of a project.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Animation {
    /// The chosen mode.
    pub mode: AnimationMode,
    /// shift-attention's options.
    pub shift: ShiftSettings,
    /// Prompt travel's options.
    pub travel: TravelSettings,
    /// The Parseq mode's document and options.
    pub parseq: ParseqSettings,
    /// Temporal consistency for every animation mode (off by default).
    pub temporal: crate::temporal::Temporal,
    /// Video input's options (the video itself stays with the user).
    pub video: VideoSettings,
}

/// Video input's options: which frames of the video, at what rate, how much they change.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct VideoSettings {
    /// The video's frame rate (frames are read at `(start + k·stride) / fps` seconds).
    pub fps: f64,
    /// The first frame read (0-based).
    pub start: usize,
    /// Frames to render (0: to the end).
    pub count: usize,
    /// Every this many frames.
    pub stride: usize,
    /// img2img denoising strength, above 0 and at most 1.
    pub denoise: f64,
}

impl Default for VideoSettings {
    fn default() -> Self {
        Self {
            fps: 30.0,
            start: 0,
            count: 0,
            stride: 1,
            denoise: 0.5,
        }
    }
}

impl VideoSettings {
    /// The source frame indices read from a video of `duration` seconds.
    pub fn frame_indices(&self, duration: f64) -> Vec<usize> {
        let total = (duration * self.fps).floor().max(0.0) as usize;
        let picked = (self.start..total).step_by(self.stride.max(1));
        match self.count {
            0 => picked.collect(),
            n => picked.take(n).collect(),
        }
    }

    /// The output's frame rate.
    pub fn output_fps(&self) -> f64 {
        self.fps / self.stride.max(1) as f64
    }
}

/// Prompt travel's options (the original's UI defaults; the stages are the prompt's lines).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TravelSettings {
    /// Travel steps: one number, or one per transition separated by commas.
    pub steps: String,
    /// Linear or replace.
    pub mode: TravelMode,
    /// Lerp or slerp.
    pub interp: Interp,
    /// The α curve of each transition.
    pub easing: Easing,
    /// Replace mode's unit.
    pub replace_dim: ReplaceDim,
    /// Replace mode's order.
    pub replace_order: ReplaceOrder,
    /// Fixed, successive or embryo.
    pub genesis: Genesis,
    /// Successive genesis' denoise strength, above 0 and at most 1.
    pub denoise: f64,
    /// Embryo step: a step count, or a ratio of the sampling steps below 1.
    pub embryo_step: f64,
    /// Copies of the first and last frame at each end of the video, 0..=1000.
    pub pad: u32,
    /// Which frames the video keeps (Python slice text; empty: all).
    pub slice: String,
    /// Video frame rate, above 0 and at most 240.
    pub fps: f64,
    /// SSIM gap filling threshold, 0..=1 (0: off; linear mode and fixed genesis only).
    pub ssim_threshold: f64,
    /// Gaps narrower than this are never split, above 0 and at most 1.
    pub ssim_min_step: f64,
    /// Keep a frame that is no improvement while its SSIM is below this percent of the threshold.
    pub ssim_min_pct: f64,
    /// Gaussian blur radius before SSIM, 0..=20.
    pub ssim_blur: f64,
    /// Centre crop before SSIM, percent of each side, 0..=100 (0: none).
    pub ssim_crop: f64,
    /// Grad mode's iterations, step, method and loss weights.
    pub grad: GradOptions,
    /// The old token-ID replace's order.
    pub token_order: TokenOrder,
    /// Variation seed of every frame (A1111's subseed; −1: a random one per frame).
    pub subseed: i64,
    /// Variation strength, 0..=1 (0: none). With a random variation seed one stage may wander.
    pub subseed_strength: f64,
}

impl Default for TravelSettings {
    fn default() -> Self {
        Self {
            steps: "30".into(),
            mode: TravelMode::Linear,
            interp: Interp::Lerp,
            easing: Easing::Linear,
            replace_dim: ReplaceDim::Token,
            replace_order: ReplaceOrder::Random,
            genesis: Genesis::Fixed,
            denoise: 1.0,
            embryo_step: 8.0,
            pad: 0,
            slice: String::new(),
            fps: 10.0,
            ssim_threshold: 0.0,
            ssim_min_step: 0.0001,
            ssim_min_pct: 75.0,
            ssim_blur: 0.0,
            ssim_crop: 0.0,
            grad: GradOptions::default(),
            token_order: TokenOrder::default(),
            subseed: -1,
            subseed_strength: 0.0,
        }
    }
}

/// What a prompt travel will make, known before rendering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TravelCounts {
    /// Stages (prompt lines).
    pub stages: usize,
    /// Frames rendered (embryo genesis' half-way frame included).
    pub rendered: usize,
    /// Frames of the video: sliced, padding added.
    pub video_frames: usize,
    /// The video's frame rate.
    pub fps: f64,
}

impl TravelCounts {
    /// The video's length in seconds.
    #[allow(clippy::cast_precision_loss, reason = "frame counts are small")]
    pub fn seconds(&self) -> f64 {
        self.video_frames as f64 / self.fps
    }
}

impl TravelSettings {
    /// The gap-filling options.
    pub fn gap(&self) -> GapSettings {
        GapSettings {
            threshold: self.ssim_threshold,
            min_step: self.ssim_min_step,
            min_threshold_pct: self.ssim_min_pct,
        }
    }

    /// Whether one stage may wander: a random variation seed per frame (linear mode).
    pub fn wanders(&self) -> bool {
        self.subseed < 0 && self.subseed_strength > 0.0 && self.mode == TravelMode::Linear
    }

    /// The frame and video counts for a project's prompts (an error names the setting).
    pub fn counts(&self, prompt: &str, negative: &str) -> Result<TravelCounts, TravelError> {
        let stages = stages(prompt, negative)?;
        let steps = parse_steps(&self.steps, stages.len())?;
        let curve = self.easing.curve()?;
        let slice = Slice::parse(&self.slice)?;
        let plan = if stages.len() == 1 && self.wanders() {
            wander_plan(steps[0], slice)
        } else {
            plan(stages.len(), &steps, self.mode, self.genesis, &curve, slice)?
        };
        let pad = usize::try_from(self.pad).unwrap_or(usize::MAX);
        Ok(TravelCounts {
            stages: stages.len(),
            rendered: plan.frames.len(),
            video_frames: plan.video.len() + 2 * pad * usize::from(!plan.video.is_empty()),
            fps: self.fps,
        })
    }
}

/// What a shift-attention render will make, known before rendering (gap filling may add frames).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShiftCounts {
    /// Frames rendered without gap filling.
    pub rendered: usize,
    /// Frames of the video: mirrored, lead in/out added.
    pub video_frames: usize,
    /// The video's frame rate (`None`: FPS 0, no video).
    pub fps: Option<f64>,
}

impl ShiftCounts {
    /// The video's length in seconds.
    #[allow(clippy::cast_precision_loss, reason = "frame counts are small")]
    pub fn seconds(&self) -> Option<f64> {
        self.fps.map(|fps| self.video_frames as f64 / fps)
    }
}

impl ShiftSettings {
    /// The shift-attention request for a project's prompts, seed and CFG.
    pub fn request(&self, prompt: &str, negative: &str, seed: u32, cfg: f64) -> ShiftRequest {
        ShiftRequest {
            prompt: prompt.to_owned(),
            negative_prompt: negative.to_owned(),
            steps: i64::from(self.shift_steps),
            seed: i64::from(seed),
            cfg_scale: cfg,
            remove_zero_strength: self.remove_zero,
        }
    }

    /// The gap-filling options.
    pub fn gap(&self) -> GapSettings {
        GapSettings {
            threshold: self.ssim_threshold,
            min_step: self.ssim_min_step,
            min_threshold_pct: self.ssim_min_pct,
        }
    }

    /// The frame and video counts of `request` with these settings (a prompt error names the
    /// prompt and position).
    pub fn counts(&self, request: &ShiftRequest) -> Result<ShiftCounts, RunError> {
        let settings = RunSettings {
            gap: GapSettings::default(),
            mirror: self.mirror,
            video_fps: self.fps,
        };
        let dry =
            run(request, settings, Fidelity::Keyshift, &mut |_, _| 1.0).map_err(|f| f.error)?;
        let lead = usize::try_from(self.lead).unwrap_or(usize::MAX);
        let video_frames = dry.frames.len() + 2 * lead * usize::from(!dry.frames.is_empty());
        #[allow(clippy::cast_precision_loss, reason = "frame counts are small")]
        let fps = match self.fps {
            f if f > 0.0 => Some(f),
            f if f < 0.0 => Some(video_frames as f64 / f.abs()),
            _ => None,
        };
        Ok(ShiftCounts {
            rendered: dry.generation_calls.len(),
            video_frames,
            fps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_steps_segments_mirror_lead_and_negative_fps() {
        let mut s = ShiftSettings {
            shift_steps: 4,
            ..ShiftSettings::default()
        };
        let one = s.request("a (cat:1~0)", "", 1, 7.0);
        let c = s.counts(&one).expect("plans");
        assert_eq!((c.rendered, c.video_frames, c.fps), (5, 5, Some(30.0)));
        let two = s.request("a (cat:1~0) THEN(seed=5) a (dog:0~1)", "", 1, 7.0);
        assert_eq!(s.counts(&two).expect("plans").rendered, 10);
        s.mirror = true;
        s.lead = 2;
        s.fps = -2.0;
        let c = s.counts(&one).expect("plans");
        assert_eq!((c.rendered, c.video_frames, c.fps), (5, 14, Some(7.0)));
        assert_eq!(c.seconds(), Some(2.0));
        s.fps = 0.0;
        assert_eq!(s.counts(&one).expect("plans").seconds(), None);
    }

    #[test]
    fn travel_counts_follow_stages_steps_genesis_slice_and_pad() {
        let mut t = TravelSettings {
            steps: "2, 3".into(),
            ..TravelSettings::default()
        };
        let c = t.counts("a\nb\nc", "").expect("plans");
        assert_eq!((c.stages, c.rendered, c.video_frames), (3, 6, 6));
        assert!((c.seconds() - 0.6).abs() < 1e-12);
        t.slice = "::2".into();
        t.pad = 2;
        assert_eq!(t.counts("a\nb\nc", "").expect("plans").video_frames, 3 + 4);
        t.genesis = Genesis::Embryo;
        assert_eq!(
            t.counts("a\nb\nc", "").expect_err("refused").to_string(),
            "embryo genesis travels between exactly two stages (got 3)"
        );
        assert!(t.counts("a\nb\nc\nd", "").is_err());
        // One stage wanders with a random variation seed per frame.
        let w = TravelSettings {
            steps: "4".into(),
            subseed_strength: 0.3,
            ..TravelSettings::default()
        };
        assert_eq!(w.counts("a cat", "").expect("plans").rendered, 5);
        let still = TravelSettings {
            subseed_strength: 0.0,
            ..w
        };
        assert!(still.counts("a cat", "").is_err());
    }

    #[test]
    fn a_bad_range_is_an_error_naming_it() {
        let s = ShiftSettings::default();
        let err = s
            .counts(&s.request("a (cat:1~~2)", "", 1, 7.0))
            .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "Positive prompt: range value \"\" at character 9 is not a number"
        );
    }
}
