//! The animation part of a project: which mode renders it and every mode's options (a mode's
//! options are kept while another is chosen, as A1111 keeps a script's values).

/// How a project is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnimationMode {
    /// One image (the Generate card).
    #[default]
    Single,
    /// shift-attention: `a~b` ranges and `THEN` segments.
    ShiftAttention,
}

impl AnimationMode {
    /// Every mode, in the order the mode picker lists them.
    pub const ALL: [Self; 2] = [Self::Single, Self::ShiftAttention];

    /// The mode's name in links and files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::ShiftAttention => "shift-attention",
        }
    }

    /// The mode called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// shift-attention's options (its UI's defaults).
#[derive(Debug, Clone, PartialEq)]
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
}
