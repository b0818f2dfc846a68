//! The wire schema of share links, one type per schema version, and the normalisation from wire to
//! runtime types. Wire types are lenient (every field has a default, numbers are wide) so that a link
//! with an out-of-range or unknown value still opens, with a warning, instead of failing whole.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Warning;
use super::animation::{Animation, AnimationMode, ShiftSettings, TravelSettings};
use super::parseq::ParseqSettings;
use super::project::{
    GenerationSettings, MAX_CFG, MAX_SIZE_PX, MAX_STEPS, MAX_TEXT_CHARS, MIN_SIZE_PX, Project,
    SIZE_STEP, Sampler, Seed,
};
use crate::image::Border;
use crate::travel::easing::Easing;
use crate::travel::{
    Genesis, GradMethod, GradOptions, Interp, ReplaceDim, ReplaceOrder, Slice, TokenOrder,
    TravelMode,
};

/// Schema version 1 of a Keyshift project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectV1 {
    /// Project name.
    #[serde(default)]
    pub name: String,
    /// Positive prompt.
    #[serde(default)]
    pub prompt: String,
    /// Negative prompt.
    #[serde(default)]
    pub negative_prompt: String,
    /// Generation settings.
    #[serde(default)]
    pub settings: SettingsV1,
    /// Fields this version does not know; reported as warnings.
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, Value>,
}

/// Generation settings of schema version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SettingsV1 {
    /// Width in pixels.
    pub width: i64,
    /// Height in pixels.
    pub height: i64,
    /// Sampling steps.
    pub steps: i64,
    /// CFG scale.
    pub cfg_scale: f64,
    /// Seed; -1 is random.
    pub seed: i64,
    /// Sampler name, as A1111 writes it.
    pub sampler: String,
    /// Fields this version does not know; reported as warnings.
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, Value>,
}

impl Default for SettingsV1 {
    fn default() -> Self {
        SettingsV1::from(&GenerationSettings::default())
    }
}

impl From<&GenerationSettings> for SettingsV1 {
    fn from(s: &GenerationSettings) -> Self {
        Self {
            width: i64::from(s.width_px),
            height: i64::from(s.height_px),
            steps: i64::from(s.steps),
            cfg_scale: s.cfg_scale,
            seed: s.seed.to_a1111(),
            sampler: s.sampler.name().to_owned(),
            unknown: BTreeMap::new(),
        }
    }
}

impl From<&Project> for ProjectV1 {
    fn from(p: &Project) -> Self {
        Self {
            name: p.name.clone(),
            prompt: p.prompt.clone(),
            negative_prompt: p.negative_prompt.clone(),
            settings: SettingsV1::from(&p.settings),
            unknown: BTreeMap::new(),
        }
    }
}

impl ProjectV1 {
    /// Normalises the wire value into a runtime [`Project`] (through [`ProjectV2`]).
    pub fn normalise(self, warnings: &mut Vec<Warning>) -> Project {
        ProjectV2::from(self).normalise(warnings)
    }
}

/// Schema version 2: version 1 and the animation (mode and every mode's options).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectV2 {
    /// Project name.
    #[serde(default)]
    pub name: String,
    /// Positive prompt.
    #[serde(default)]
    pub prompt: String,
    /// Negative prompt.
    #[serde(default)]
    pub negative_prompt: String,
    /// Generation settings (as in version 1).
    #[serde(default)]
    pub settings: SettingsV1,
    /// The animation.
    #[serde(default)]
    pub animation: AnimationV2,
    /// Fields this version does not know; reported as warnings.
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, Value>,
}

/// The animation of schema version 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnimationV2 {
    /// The mode's name (`single`, `shift-attention`).
    pub mode: String,
    /// shift-attention's options.
    pub shift: ShiftV2,
    /// Fields this version does not know; reported as warnings.
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, Value>,
}

/// shift-attention's options in schema version 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShiftV2 {
    /// Intervals per segment.
    pub shift_steps: i64,
    /// Frame rate (negative: seconds).
    pub fps: f64,
    /// Lead in/out.
    pub lead: i64,
    /// Mirror.
    pub mirror: bool,
    /// Remove zero-strength tags.
    pub remove_zero: bool,
    /// Upscale ratio.
    pub upscale: f64,
    /// SSIM threshold.
    pub ssim_threshold: f64,
    /// SSIM minimum step.
    pub ssim_min_step: f64,
    /// SSIM min threshold, percent.
    pub ssim_min_pct: f64,
    /// Fields this version does not know; reported as warnings.
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, Value>,
}

impl Default for AnimationV2 {
    fn default() -> Self {
        Self::from(&Animation::default())
    }
}

impl Default for ShiftV2 {
    fn default() -> Self {
        Self::from(&ShiftSettings::default())
    }
}

impl From<&Animation> for AnimationV2 {
    fn from(a: &Animation) -> Self {
        Self {
            mode: a.mode.name().to_owned(),
            shift: ShiftV2::from(&a.shift),
            unknown: BTreeMap::new(),
        }
    }
}

impl From<&ShiftSettings> for ShiftV2 {
    fn from(s: &ShiftSettings) -> Self {
        Self {
            shift_steps: i64::from(s.shift_steps),
            fps: s.fps,
            lead: i64::from(s.lead),
            mirror: s.mirror,
            remove_zero: s.remove_zero,
            upscale: s.upscale,
            ssim_threshold: s.ssim_threshold,
            ssim_min_step: s.ssim_min_step,
            ssim_min_pct: s.ssim_min_pct,
            unknown: BTreeMap::new(),
        }
    }
}

impl From<ProjectV1> for ProjectV2 {
    /// A version 1 project: a single image.
    fn from(p: ProjectV1) -> Self {
        Self {
            name: p.name,
            prompt: p.prompt,
            negative_prompt: p.negative_prompt,
            settings: p.settings,
            animation: AnimationV2::default(),
            unknown: p.unknown,
        }
    }
}

impl From<&Project> for ProjectV2 {
    fn from(p: &Project) -> Self {
        Self {
            name: p.name.clone(),
            prompt: p.prompt.clone(),
            negative_prompt: p.negative_prompt.clone(),
            settings: SettingsV1::from(&p.settings),
            animation: AnimationV2::from(&p.animation),
            unknown: BTreeMap::new(),
        }
    }
}

impl ProjectV2 {
    /// Normalises the wire value into a runtime [`Project`] (through [`ProjectV3`]).
    pub fn normalise(self, warnings: &mut Vec<Warning>) -> Project {
        ProjectV3::from(self).normalise(warnings)
    }
}

/// Schema version 3: version 2 and prompt travel's options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectV3 {
    /// Project name.
    #[serde(default)]
    pub name: String,
    /// Positive prompt (in prompt travel, one stage per line).
    #[serde(default)]
    pub prompt: String,
    /// Negative prompt.
    #[serde(default)]
    pub negative_prompt: String,
    /// Generation settings (as in version 1).
    #[serde(default)]
    pub settings: SettingsV1,
    /// The animation.
    #[serde(default)]
    pub animation: AnimationV3,
    /// Fields this version does not know; reported as warnings.
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, Value>,
}

/// The animation of schema version 3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnimationV3 {
    /// The mode's name (`single`, `shift-attention`, `prompt-travel`).
    pub mode: String,
    /// shift-attention's options (as in version 2).
    pub shift: ShiftV2,
    /// Prompt travel's options.
    pub travel: TravelV3,
    /// Fields this version does not know; reported as warnings.
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, Value>,
}

/// Prompt travel's options in schema version 3 (names as the command line spells them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TravelV3 {
    /// Travel steps text (`30`, `12, 24`).
    pub steps: String,
    /// `linear` or `replace`.
    pub mode: String,
    /// `lerp` or `slerp`.
    pub interp: String,
    /// `linear`, `ease-in`, `ease-out`, `ease-in-out` or `x1,y1,x2,y2`.
    pub easing: String,
    /// `token`, `channel` or `random`.
    pub replace_dim: String,
    /// `random`, `similar` or `different`.
    pub replace_order: String,
    /// `fixed`, `successive` or `embryo`.
    pub genesis: String,
    /// Denoise strength (successive).
    pub denoise: f64,
    /// Embryo step.
    pub embryo_step: f64,
    /// Pad begin/end frames.
    pub pad: i64,
    /// Pick frames by slice.
    pub slice: String,
    /// Video frame rate.
    pub fps: f64,
    /// SSIM threshold.
    pub ssim_threshold: f64,
    /// SSIM minimum step.
    pub ssim_min_step: f64,
    /// SSIM min threshold, percent.
    pub ssim_min_pct: f64,
    /// SSIM blur radius.
    pub ssim_blur: f64,
    /// SSIM centre crop, percent.
    pub ssim_crop: f64,
    /// Grad mode: iterations per frame.
    pub grad_iter: i64,
    /// Grad mode: step size.
    pub grad_alpha: f64,
    /// Grad mode: `clip`, `sign` or `tanh`.
    pub grad_method: String,
    /// Grad mode: weight of the latent loss.
    pub grad_w_latent: f64,
    /// Grad mode: weight of the conditioning loss.
    pub grad_w_cond: f64,
    /// Token-ID replace: `random`, `most-similar`, `most-different`, `grad-min`, `grad-max`.
    pub token_order: String,
    /// Variation seed (−1: random per frame).
    pub subseed: i64,
    /// Variation strength.
    pub subseed_strength: f64,
    /// Fields this version does not know; reported as warnings.
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, Value>,
}

impl Default for AnimationV3 {
    fn default() -> Self {
        Self::from(&Animation::default())
    }
}

impl Default for TravelV3 {
    fn default() -> Self {
        Self::from(&TravelSettings::default())
    }
}

impl From<&Animation> for AnimationV3 {
    fn from(a: &Animation) -> Self {
        Self {
            mode: a.mode.name().to_owned(),
            shift: ShiftV2::from(&a.shift),
            travel: TravelV3::from(&a.travel),
            unknown: BTreeMap::new(),
        }
    }
}

impl From<&TravelSettings> for TravelV3 {
    fn from(t: &TravelSettings) -> Self {
        Self {
            steps: t.steps.clone(),
            mode: t.mode.name().to_owned(),
            interp: t.interp.name().to_owned(),
            easing: t.easing.text(),
            replace_dim: t.replace_dim.name().to_owned(),
            replace_order: t.replace_order.name().to_owned(),
            genesis: t.genesis.name().to_owned(),
            denoise: t.denoise,
            embryo_step: t.embryo_step,
            pad: i64::from(t.pad),
            slice: t.slice.clone(),
            fps: t.fps,
            ssim_threshold: t.ssim_threshold,
            ssim_min_step: t.ssim_min_step,
            ssim_min_pct: t.ssim_min_pct,
            ssim_blur: t.ssim_blur,
            ssim_crop: t.ssim_crop,
            grad_iter: i64::try_from(t.grad.iterations).unwrap_or(i64::MAX),
            grad_alpha: t.grad.alpha,
            grad_method: t.grad.method.name().to_owned(),
            grad_w_latent: t.grad.w_latent,
            grad_w_cond: t.grad.w_cond,
            token_order: t.token_order.name().to_owned(),
            subseed: t.subseed,
            subseed_strength: t.subseed_strength,
            unknown: BTreeMap::new(),
        }
    }
}

impl From<ProjectV2> for ProjectV3 {
    /// A version 2 project: prompt travel's options at their defaults.
    fn from(p: ProjectV2) -> Self {
        Self {
            name: p.name,
            prompt: p.prompt,
            negative_prompt: p.negative_prompt,
            settings: p.settings,
            animation: AnimationV3 {
                mode: p.animation.mode,
                shift: p.animation.shift,
                travel: TravelV3::default(),
                unknown: p.animation.unknown,
            },
            unknown: p.unknown,
        }
    }
}

impl From<&Project> for ProjectV3 {
    fn from(p: &Project) -> Self {
        Self {
            name: p.name.clone(),
            prompt: p.prompt.clone(),
            negative_prompt: p.negative_prompt.clone(),
            settings: SettingsV1::from(&p.settings),
            animation: AnimationV3::from(&p.animation),
            unknown: BTreeMap::new(),
        }
    }
}

impl ProjectV3 {
    /// Normalises the wire value into a runtime [`Project`] (through [`ProjectV4`]).
    pub fn normalise(self, warnings: &mut Vec<Warning>) -> Project {
        ProjectV4::from(self).normalise(warnings)
    }
}

/// Schema version 4: version 3 and the Parseq mode (its document and render options).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectV4 {
    /// Project name.
    #[serde(default)]
    pub name: String,
    /// Positive prompt.
    #[serde(default)]
    pub prompt: String,
    /// Negative prompt.
    #[serde(default)]
    pub negative_prompt: String,
    /// Generation settings (as in version 1).
    #[serde(default)]
    pub settings: SettingsV1,
    /// The animation.
    #[serde(default)]
    pub animation: AnimationV4,
    /// Fields this version does not know; reported as warnings.
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, Value>,
}

/// The animation of schema version 4.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnimationV4 {
    /// The mode's name (`single`, `shift-attention`, `prompt-travel`, `parseq`).
    pub mode: String,
    /// shift-attention's options (as in version 2).
    pub shift: ShiftV2,
    /// Prompt travel's options (as in version 3).
    pub travel: TravelV3,
    /// The Parseq mode.
    pub parseq: ParseqV4,
    /// Temporal consistency (`crate::temporal::Temporal`'s fields); absent while it is off,
    /// so that links without it read as they did before it was added within version 4.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporal: Option<Value>,
    /// Video input's options; absent while they are the defaults (added within version 4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video: Option<Value>,
    /// Fields this version does not know; reported as warnings.
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, Value>,
}

/// The Parseq mode in schema version 4.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ParseqV4 {
    /// The Parseq document, as Parseq saves it (`null`: none opened).
    pub document: Option<Value>,
    /// Frames to render (`A..B`, `A..=B`, `A..`, `A`; empty: all).
    pub frames: String,
    /// `replicate` or `wrap`.
    pub border: String,
    /// `lab` or `none`.
    pub color_coherence: String,
    /// Fields this version does not know; reported as warnings.
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, Value>,
}

impl Default for AnimationV4 {
    fn default() -> Self {
        Self::from(&Animation::default())
    }
}

impl Default for ParseqV4 {
    fn default() -> Self {
        Self::from(&ParseqSettings::default())
    }
}

impl From<&Animation> for AnimationV4 {
    fn from(a: &Animation) -> Self {
        Self {
            mode: a.mode.name().to_owned(),
            shift: ShiftV2::from(&a.shift),
            travel: TravelV3::from(&a.travel),
            parseq: ParseqV4::from(&a.parseq),
            temporal: a
                .temporal
                .is_on()
                .then(|| serde_json::to_value(&a.temporal).ok())
                .flatten(),
            video: (a.video != crate::share::VideoSettings::default())
                .then(|| serde_json::to_value(&a.video).ok())
                .flatten(),
            unknown: BTreeMap::new(),
        }
    }
}

impl From<&ParseqSettings> for ParseqV4 {
    fn from(p: &ParseqSettings) -> Self {
        Self {
            document: serde_json::from_str(&p.document).ok(),
            frames: p.frames.clone(),
            border: p.border.name().to_owned(),
            color_coherence: if p.colour_coherence { "lab" } else { "none" }.to_owned(),
            unknown: BTreeMap::new(),
        }
    }
}

impl From<ProjectV3> for ProjectV4 {
    /// A version 3 project: no Parseq document.
    fn from(p: ProjectV3) -> Self {
        Self {
            name: p.name,
            prompt: p.prompt,
            negative_prompt: p.negative_prompt,
            settings: p.settings,
            animation: AnimationV4 {
                mode: p.animation.mode,
                shift: p.animation.shift,
                travel: p.animation.travel,
                parseq: ParseqV4::default(),
                temporal: None,
                video: None,
                unknown: p.animation.unknown,
            },
            unknown: p.unknown,
        }
    }
}

impl From<&Project> for ProjectV4 {
    fn from(p: &Project) -> Self {
        Self {
            name: p.name.clone(),
            prompt: p.prompt.clone(),
            negative_prompt: p.negative_prompt.clone(),
            settings: SettingsV1::from(&p.settings),
            animation: AnimationV4::from(&p.animation),
            unknown: BTreeMap::new(),
        }
    }
}

impl ProjectV4 {
    /// Normalises the wire value into a runtime [`Project`], clamping what is out of range and
    /// collecting a warning for every change and every unknown field.
    pub fn normalise(self, warnings: &mut Vec<Warning>) -> Project {
        unknown_fields("", &self.unknown, warnings);
        unknown_fields("settings.", &self.settings.unknown, warnings);
        unknown_fields("animation.", &self.animation.unknown, warnings);
        unknown_fields("animation.shift.", &self.animation.shift.unknown, warnings);
        unknown_fields(
            "animation.travel.",
            &self.animation.travel.unknown,
            warnings,
        );
        unknown_fields(
            "animation.parseq.",
            &self.animation.parseq.unknown,
            warnings,
        );
        let mut animation =
            normalise_animation(&self.animation.mode, &self.animation.shift, warnings);
        animation.travel = normalise_travel(&self.animation.travel, warnings);
        animation.parseq = normalise_parseq(&self.animation.parseq, warnings);
        animation.temporal = normalise_temporal(self.animation.temporal, warnings);
        animation.video = normalise_video(self.animation.video, warnings);
        Project {
            name: limit_text("name", self.name, warnings),
            prompt: limit_text("prompt", self.prompt, warnings),
            negative_prompt: limit_text("negative_prompt", self.negative_prompt, warnings),
            settings: normalise_settings(&self.settings, warnings),
            animation,
        }
    }
}

/// Video input's options of a link; out-of-range values are adjusted, with a warning.
fn normalise_video(
    value: Option<Value>,
    warnings: &mut Vec<Warning>,
) -> crate::share::VideoSettings {
    let d = crate::share::VideoSettings::default();
    let Some(value) = value else {
        return d;
    };
    let mut v: crate::share::VideoSettings = match serde_json::from_value(value) {
        Ok(v) => v,
        Err(e) => {
            warnings.push(Warning::Adjusted {
                field: "animation.video",
                from: e.to_string(),
                to: "the defaults".to_owned(),
            });
            return d;
        }
    };
    if !(v.fps.is_finite() && v.fps > 0.0 && v.fps <= 240.0) {
        warnings.push(Warning::Adjusted {
            field: "animation.video.fps",
            from: v.fps.to_string(),
            to: d.fps.to_string(),
        });
        v.fps = d.fps;
    }
    if !(v.denoise > 0.0 && v.denoise <= 1.0) {
        warnings.push(Warning::Adjusted {
            field: "animation.video.denoise",
            from: v.denoise.to_string(),
            to: d.denoise.to_string(),
        });
        v.denoise = d.denoise;
    }
    v.stride = v.stride.max(1);
    v
}

/// The temporal settings of a link; a value that does not read is dropped (off) with a warning.
fn normalise_temporal(
    value: Option<Value>,
    warnings: &mut Vec<Warning>,
) -> crate::temporal::Temporal {
    let Some(value) = value else {
        return crate::temporal::Temporal::default();
    };
    match serde_json::from_value(value) {
        Ok(t) => t,
        Err(e) => {
            warnings.push(Warning::Adjusted {
                field: "animation.temporal",
                from: e.to_string(),
                to: "off".to_owned(),
            });
            crate::temporal::Temporal::default()
        }
    }
}

fn normalise_parseq(p: &ParseqV4, warnings: &mut Vec<Warning>) -> ParseqSettings {
    let d = ParseqSettings::default();
    let border = named(
        "animation.parseq.border",
        &p.border,
        Border::from_name,
        Border::name,
        warnings,
    );
    let colour_coherence = match p.color_coherence.as_str() {
        "lab" => true,
        "none" => false,
        other => {
            warnings.push(Warning::Adjusted {
                field: "animation.parseq.color_coherence",
                from: other.to_owned(),
                to: "lab".to_owned(),
            });
            d.colour_coherence
        }
    };
    ParseqSettings {
        document: p
            .document
            .as_ref()
            .filter(|v| !v.is_null())
            .map(Value::to_string)
            .unwrap_or_default(),
        frames: p.frames.clone(),
        border,
        colour_coherence,
    }
}

/// A named choice; an unknown name becomes the default, with a warning.
fn named<T: Copy + Default>(
    field: &'static str,
    text: &str,
    from_name: fn(&str) -> Option<T>,
    name: fn(T) -> &'static str,
    warnings: &mut Vec<Warning>,
) -> T {
    from_name(text).unwrap_or_else(|| {
        let used = T::default();
        warnings.push(Warning::Adjusted {
            field,
            from: text.to_owned(),
            to: name(used).to_owned(),
        });
        used
    })
}

fn normalise_travel(t: &TravelV3, warnings: &mut Vec<Warning>) -> TravelSettings {
    let d = TravelSettings::default();
    let easing = Easing::parse(&t.easing).unwrap_or_else(|_| {
        warnings.push(Warning::Adjusted {
            field: "animation.travel.easing",
            from: t.easing.clone(),
            to: Easing::Linear.text(),
        });
        Easing::Linear
    });
    let slice = match Slice::parse(&t.slice) {
        Ok(_) => t.slice.trim().to_owned(),
        Err(_) => {
            warnings.push(Warning::Adjusted {
                field: "animation.travel.slice",
                from: t.slice.clone(),
                to: String::new(),
            });
            String::new()
        }
    };
    let mut steps = t.steps.trim().to_owned();
    if steps.is_empty() || steps.chars().count() > 1000 {
        warnings.push(Warning::Adjusted {
            field: "animation.travel.steps",
            from: t.steps.chars().take(40).collect(),
            to: d.steps.clone(),
        });
        steps.clone_from(&d.steps);
    }
    let mut real = |field, value: f64, lo: f64, hi: f64, default: f64| {
        clamp_real(field, value, lo, hi, default, warnings)
    };
    let denoise = real("animation.travel.denoise", t.denoise, 0.01, 1.0, d.denoise);
    let embryo_step = real(
        "animation.travel.embryo_step",
        t.embryo_step,
        0.01,
        150.0,
        d.embryo_step,
    );
    let fps = real("animation.travel.fps", t.fps, 0.1, 240.0, d.fps);
    let ssim_threshold = real(
        "animation.travel.ssim_threshold",
        t.ssim_threshold,
        0.0,
        1.0,
        0.0,
    );
    let ssim_min_step = real(
        "animation.travel.ssim_min_step",
        t.ssim_min_step,
        1e-9,
        1.0,
        d.ssim_min_step,
    );
    let ssim_min_pct = real(
        "animation.travel.ssim_min_pct",
        t.ssim_min_pct,
        0.0,
        100.0,
        d.ssim_min_pct,
    );
    let ssim_blur = real("animation.travel.ssim_blur", t.ssim_blur, 0.0, 20.0, 0.0);
    let ssim_crop = real("animation.travel.ssim_crop", t.ssim_crop, 0.0, 100.0, 0.0);
    let dg = GradOptions::default();
    let grad_alpha = real(
        "animation.travel.grad_alpha",
        t.grad_alpha,
        0.0,
        10.0,
        dg.alpha,
    );
    let grad_w_latent = real(
        "animation.travel.grad_w_latent",
        t.grad_w_latent,
        0.0,
        1000.0,
        dg.w_latent,
    );
    let grad_w_cond = real(
        "animation.travel.grad_w_cond",
        t.grad_w_cond,
        0.0,
        1000.0,
        dg.w_cond,
    );
    TravelSettings {
        steps,
        mode: named(
            "animation.travel.mode",
            &t.mode,
            TravelMode::from_name,
            TravelMode::name,
            warnings,
        ),
        interp: named(
            "animation.travel.interp",
            &t.interp,
            Interp::from_name,
            Interp::name,
            warnings,
        ),
        easing,
        replace_dim: named(
            "animation.travel.replace_dim",
            &t.replace_dim,
            ReplaceDim::from_name,
            ReplaceDim::name,
            warnings,
        ),
        replace_order: named(
            "animation.travel.replace_order",
            &t.replace_order,
            ReplaceOrder::from_name,
            ReplaceOrder::name,
            warnings,
        ),
        genesis: named(
            "animation.travel.genesis",
            &t.genesis,
            Genesis::from_name,
            Genesis::name,
            warnings,
        ),
        denoise,
        embryo_step,
        pad: clamp_int("animation.travel.pad", t.pad, 0, 1000, warnings),
        slice,
        fps,
        ssim_threshold,
        ssim_min_step,
        ssim_min_pct,
        ssim_blur,
        ssim_crop,
        grad: GradOptions {
            iterations: clamp_int("animation.travel.grad_iter", t.grad_iter, 0, 100, warnings)
                as usize,
            alpha: grad_alpha,
            method: named(
                "animation.travel.grad_method",
                &t.grad_method,
                GradMethod::from_name,
                GradMethod::name,
                warnings,
            ),
            w_latent: grad_w_latent,
            w_cond: grad_w_cond,
        },
        token_order: named(
            "animation.travel.token_order",
            &t.token_order,
            TokenOrder::from_name,
            TokenOrder::name,
            warnings,
        ),
        subseed: t.subseed.clamp(-1, i64::from(u32::MAX)),
        subseed_strength: clamp_real(
            "animation.travel.subseed_strength",
            t.subseed_strength,
            0.0,
            1.0,
            0.0,
            warnings,
        ),
    }
}

fn normalise_animation(mode: &str, s: &ShiftV2, warnings: &mut Vec<Warning>) -> Animation {
    let mode = AnimationMode::from_name(mode).unwrap_or_else(|| {
        warnings.push(Warning::UnknownMode {
            name: mode.to_owned(),
            used: AnimationMode::default().name(),
        });
        AnimationMode::default()
    });
    let d = ShiftSettings::default();
    let mut real = |field, value: f64, lo: f64, hi: f64, default: f64| {
        clamp_real(field, value, lo, hi, default, warnings)
    };
    let fps = real("animation.shift.fps", s.fps, -3600.0, 240.0, d.fps);
    let upscale = real("animation.shift.upscale", s.upscale, 0.1, 8.0, d.upscale);
    let ssim_threshold = real(
        "animation.shift.ssim_threshold",
        s.ssim_threshold,
        0.0,
        1.0,
        0.0,
    );
    let ssim_min_step = real(
        "animation.shift.ssim_min_step",
        s.ssim_min_step,
        1e-9,
        1.0,
        d.ssim_min_step,
    );
    let ssim_min_pct = real(
        "animation.shift.ssim_min_pct",
        s.ssim_min_pct,
        0.0,
        100.0,
        d.ssim_min_pct,
    );
    Animation {
        mode,
        shift: ShiftSettings {
            shift_steps: clamp_int(
                "animation.shift.shift_steps",
                s.shift_steps,
                1,
                1000,
                warnings,
            ),
            fps,
            lead: clamp_int("animation.shift.lead", s.lead, 0, 1000, warnings),
            mirror: s.mirror,
            remove_zero: s.remove_zero,
            upscale,
            ssim_threshold,
            ssim_min_step,
            ssim_min_pct,
        },
        travel: TravelSettings::default(),
        parseq: ParseqSettings::default(),
        temporal: crate::temporal::Temporal::default(),
        video: crate::share::VideoSettings::default(),
    }
}

/// A real number clamped into `lo..=hi` (a non-finite one becomes `default`), with a warning
/// when it changed.
fn clamp_real(
    field: &'static str,
    value: f64,
    lo: f64,
    hi: f64,
    default: f64,
    warnings: &mut Vec<Warning>,
) -> f64 {
    let fixed = if value.is_finite() {
        value.clamp(lo, hi)
    } else {
        default
    };
    if fixed.to_bits() != value.to_bits() {
        warnings.push(Warning::Adjusted {
            field,
            from: value.to_string(),
            to: fixed.to_string(),
        });
    }
    fixed
}

fn unknown_fields(prefix: &str, unknown: &BTreeMap<String, Value>, warnings: &mut Vec<Warning>) {
    for key in unknown.keys() {
        warnings.push(Warning::UnknownField {
            field: format!("{prefix}{key}"),
        });
    }
}

fn limit_text(field: &'static str, text: String, warnings: &mut Vec<Warning>) -> String {
    if text.chars().count() <= MAX_TEXT_CHARS {
        return text;
    }
    warnings.push(Warning::Truncated {
        field,
        max_chars: MAX_TEXT_CHARS,
    });
    text.chars().take(MAX_TEXT_CHARS).collect()
}

fn normalise_settings(s: &SettingsV1, warnings: &mut Vec<Warning>) -> GenerationSettings {
    let defaults = GenerationSettings::default();
    GenerationSettings {
        width_px: normalise_side("settings.width", s.width, warnings),
        height_px: normalise_side("settings.height", s.height, warnings),
        steps: clamp_int("settings.steps", s.steps, 1, i64::from(MAX_STEPS), warnings),
        cfg_scale: normalise_cfg(s.cfg_scale, defaults.cfg_scale, warnings),
        seed: normalise_seed(s.seed, warnings),
        sampler: Sampler::from_name(&s.sampler).unwrap_or_else(|| {
            warnings.push(Warning::UnknownSampler {
                name: s.sampler.clone(),
                used: defaults.sampler.name(),
            });
            defaults.sampler
        }),
    }
}

/// Clamps an image side into range and rounds it to the nearest multiple of 8.
fn normalise_side(field: &'static str, value: i64, warnings: &mut Vec<Warning>) -> u32 {
    let step = i64::from(SIZE_STEP);
    let clamped = value.clamp(i64::from(MIN_SIZE_PX), i64::from(MAX_SIZE_PX));
    let rounded = (clamped + step / 2) / step * step;
    if rounded != value {
        warnings.push(Warning::Adjusted {
            field,
            from: value.to_string(),
            to: rounded.to_string(),
        });
    }
    u32::try_from(rounded).unwrap_or(MIN_SIZE_PX)
}

fn clamp_int(field: &'static str, value: i64, lo: i64, hi: i64, w: &mut Vec<Warning>) -> u32 {
    let clamped = value.clamp(lo, hi);
    if clamped != value {
        w.push(Warning::Adjusted {
            field,
            from: value.to_string(),
            to: clamped.to_string(),
        });
    }
    u32::try_from(clamped).unwrap_or(0)
}

fn normalise_cfg(value: f64, default: f64, warnings: &mut Vec<Warning>) -> f64 {
    let fixed = if value.is_finite() {
        value.clamp(0.0, MAX_CFG)
    } else {
        default
    };
    if fixed.to_bits() != value.to_bits() {
        warnings.push(Warning::Adjusted {
            field: "settings.cfg_scale",
            from: value.to_string(),
            to: fixed.to_string(),
        });
    }
    fixed
}

fn normalise_seed(value: i64, warnings: &mut Vec<Warning>) -> Seed {
    if value == -1 {
        return Seed::Random;
    }
    match u32::try_from(value) {
        Ok(seed) => Seed::Fixed(seed),
        Err(_) => {
            warnings.push(Warning::Adjusted {
                field: "settings.seed",
                from: value.to_string(),
                to: "-1 (random)".to_owned(),
            });
            Seed::Random
        }
    }
}
