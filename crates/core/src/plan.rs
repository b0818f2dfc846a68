//! The frame plan: what every sequence source (shift-attention now; prompt travel and the keyframe
//! sequencer later) hands to the renderer. One entry per output frame, in playback order, with
//! everything the engine needs: prompts already read (weighted chunks, per-step schedules, `AND`
//! parts), seeds, variation, CFG, img2img strength and motion.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::prompt::{Fidelity, ParsedPrompt, PromptError, ScheduleOptions};
use crate::shift::run::{RunError, RunFrame, RunSettings, ShiftRun, run};
use crate::shift::{GapSettings, PromptField, ShiftRequest};

/// Which source produced a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlanSource {
    /// shift-attention ranges and `THEN` segments.
    ShiftAttention {
        /// Intervals per segment.
        steps: i64,
    },
    /// Prompt travel between stages.
    PromptTravel,
    /// The keyframe sequencer.
    Keyframes,
    /// A rendered Parseq document.
    Parseq {
        /// Output frames per second of the document.
        fps: f64,
    },
}

/// A prompt as written and as read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedPrompt {
    /// The prompt text of this frame (ranges already replaced).
    pub text: String,
    /// `AND` parts, schedules and weighted chunks.
    pub parsed: ParsedPrompt,
}

impl PlannedPrompt {
    /// Reads `text` for the plan's sampling schedule.
    pub fn new(
        text: &str,
        sampling: ScheduleOptions,
        fidelity: Fidelity,
    ) -> Result<Self, PromptError> {
        Ok(Self {
            text: text.to_owned(),
            parsed: ParsedPrompt::parse(text, sampling, fidelity)?,
        })
    }
}

/// Named camera and image motion parameters of a frame (e.g. `zoom`, `angle`, `translation_x`),
/// for sources that have them. Empty for shift-attention.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Motion(pub BTreeMap<String, f64>);

impl Motion {
    /// Whether no parameter is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One output frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedFrame {
    /// Position in the order of generation (frames can repeat one, e.g. when mirrored).
    pub generation_index: usize,
    /// Positive prompt.
    pub positive: PlannedPrompt,
    /// Negative prompt.
    pub negative: PlannedPrompt,
    /// Seed.
    pub seed: i64,
    /// Variation seed.
    pub subseed: i64,
    /// Variation strength (0: only `seed`, 1: only `subseed`).
    pub subseed_strength: f64,
    /// Classifier-free guidance scale.
    pub cfg_scale: f64,
    /// img2img denoising strength; `None` for txt2img.
    #[serde(default)]
    pub denoise_strength: Option<f64>,
    /// Motion parameters.
    #[serde(default, skip_serializing_if = "Motion::is_empty")]
    pub motion: Motion,
}

/// A whole sequence, ready to render.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FramePlan {
    /// What produced it.
    pub source: PlanSource,
    /// The sampling schedule the prompts were read for.
    pub sampling: ScheduleOptions,
    /// Frames in playback order.
    pub frames: Vec<PlannedFrame>,
}

/// Why a plan could not be made.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PlanError {
    /// The sequence itself is invalid.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A frame's prompt could not be read.
    #[error("frame {frame}, {field:?} prompt: {source}")]
    Prompt {
        /// Playback index of the frame.
        frame: usize,
        /// Which prompt.
        field: PromptField,
        /// The problem, with its position in that frame's prompt.
        source: PromptError,
    },
}

impl FramePlan {
    /// The plan of a shift-attention request without gap filling (gap filling needs the rendered
    /// images: drive [`crate::shift::GapFiller`] and [`PlannedFrame::from_shift`] instead).
    pub fn shift_attention(
        request: &ShiftRequest,
        mirror: bool,
        sampling: ScheduleOptions,
        fidelity: Fidelity,
    ) -> Result<Self, PlanError> {
        let settings = RunSettings {
            gap: GapSettings::default(),
            mirror,
            video_fps: 0.0,
        };
        let shift = run(request, settings, fidelity, &mut |_, _| 1.0)
            .map_err(|failure| PlanError::Run(failure.error))?;
        Self::from_shift_run(&shift, request.steps, sampling, fidelity)
    }

    /// The plan of a finished shift-attention run (e.g. one whose gap filling used real SSIM).
    pub fn from_shift_run(
        shift: &ShiftRun,
        steps: i64,
        sampling: ScheduleOptions,
        fidelity: Fidelity,
    ) -> Result<Self, PlanError> {
        let frames = shift
            .frames
            .iter()
            .enumerate()
            .map(|(i, frame)| PlannedFrame::from_shift(i, frame, sampling, fidelity))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            source: PlanSource::ShiftAttention { steps },
            sampling,
            frames,
        })
    }
}

impl PlannedFrame {
    /// The planned frame for a shift-attention frame at playback position `index`.
    pub fn from_shift(
        index: usize,
        frame: &RunFrame,
        sampling: ScheduleOptions,
        fidelity: Fidelity,
    ) -> Result<Self, PlanError> {
        let f = &frame.frame;
        let read = |text: &str, field| {
            PlannedPrompt::new(text, sampling, fidelity).map_err(|source| PlanError::Prompt {
                frame: index,
                field,
                source,
            })
        };
        Ok(Self {
            generation_index: frame.generation_index,
            positive: read(&f.prompt, PromptField::Positive)?,
            negative: read(&f.negative_prompt, PromptField::Negative)?,
            seed: f.seed,
            subseed: f.subseed,
            subseed_strength: f.subseed_strength,
            cfg_scale: f.cfg_scale,
            denoise_strength: None,
            motion: Motion::default(),
        })
    }
}

/// Deforum's motion parameters that a Parseq frame carries into [`Motion`].
pub const PARSEQ_MOTION_FIELDS: &[&str] = &[
    "angle",
    "zoom",
    "translation_x",
    "translation_y",
    "translation_z",
    "rotation_3d_x",
    "rotation_3d_y",
    "rotation_3d_z",
    "transform_center_x",
    "transform_center_y",
    "perspective_flip_theta",
    "perspective_flip_phi",
    "perspective_flip_gamma",
    "perspective_flip_fv",
    "fov",
    "near",
    "far",
];

impl FramePlan {
    /// The plan of a rendered Parseq document, as Deforum reads its manifest (in reverse when the
    /// document renders in reverse): `deforum_prompt` split at `--neg`, the seed floored (−1, random, when unmanaged or not a number) with
    /// `subseed`/`subseed_strength` from its fraction, CFG from `scale` (7 when unmanaged),
    /// img2img strength from `strength`, and the motion fields as absolute values.
    pub fn from_parseq(
        rendered: &crate::parseq::render::Rendered,
        fps: f64,
        sampling: ScheduleOptions,
        fidelity: Fidelity,
    ) -> Result<Self, PlanError> {
        let value =
            |name: &str, i: usize| rendered.field(name).and_then(|f| f.values.get(i).copied());
        let mut frames = Vec::with_capacity(rendered.frame_count);
        // Reverse render plays the frames backwards (Parseq reverses its output for Deforum).
        let order: Box<dyn Iterator<Item = usize>> = if rendered.reverse {
            Box::new((0..rendered.frame_count).rev())
        } else {
            Box::new(0..rendered.frame_count)
        };
        for (index, i) in order.enumerate() {
            let full = rendered
                .prompts
                .as_ref()
                .and_then(|p| p.get(i))
                .map_or("", String::as_str);
            let (pos, neg) = full.split_once("--neg").unwrap_or((full, ""));
            let read = |text: &str, field| {
                PlannedPrompt::new(text.trim(), sampling, fidelity).map_err(|source| {
                    PlanError::Prompt {
                        frame: index,
                        field,
                        source,
                    }
                })
            };
            let seed = value("seed", i).filter(|s| s.is_finite());
            let motion = PARSEQ_MOTION_FIELDS
                .iter()
                .filter_map(|m| value(m, i).map(|v| ((*m).to_owned(), v)))
                .collect();
            frames.push(PlannedFrame {
                generation_index: index,
                positive: read(pos, PromptField::Positive)?,
                negative: read(neg, PromptField::Negative)?,
                seed: seed.map_or(-1, |s| s.floor() as i64),
                subseed: seed.map_or(-1, |s| s.ceil() as i64),
                subseed_strength: seed.map_or(0.0, |s| s % 1.0),
                cfg_scale: value("scale", i).unwrap_or(7.0),
                denoise_strength: value("strength", i),
                motion: Motion(motion),
            });
        }
        Ok(Self {
            source: PlanSource::Parseq { fps },
            sampling,
            frames,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ShiftRequest {
        ShiftRequest {
            prompt: "photo of (cat:1~0) AND [dog:fox:5] :0~1".into(),
            negative_prompt: "blurry".into(),
            steps: 2,
            seed: 42,
            cfg_scale: 7.0,
            remove_zero_strength: false,
        }
    }

    #[test]
    fn shift_plan_reads_every_frame() {
        let plan = FramePlan::shift_attention(
            &request(),
            false,
            ScheduleOptions::steps(20),
            Fidelity::Keyshift,
        );
        let Ok(plan) = plan else {
            panic!("plans: {plan:?}");
        };
        assert_eq!(plan.frames.len(), 3);
        let mid = &plan.frames[1];
        assert_eq!(mid.positive.text, "photo of (cat:0.5) AND [dog:fox:5] :0.5");
        let parts = &mid.positive.parsed.parts;
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].weight, 0.5);
        assert_eq!(parts[1].schedule.len(), 2);
        assert_eq!(parts[1].schedule[0].end_at_step, 5);
        assert_eq!(mid.subseed_strength, 0.5);
    }

    #[test]
    fn serde_round_trip() {
        let Ok(plan) = FramePlan::shift_attention(
            &request(),
            true,
            ScheduleOptions::steps(20),
            Fidelity::Keyshift,
        ) else {
            panic!("plans");
        };
        let json = serde_json::to_string(&plan).unwrap_or_default();
        let back: Result<FramePlan, _> = serde_json::from_str(&json);
        assert_eq!(back.ok(), Some(plan));
    }

    #[test]
    fn bad_weight_names_the_frame() {
        let mut req = request();
        req.prompt = "(cat:1~0) (dog:1.2.3)".into();
        let err =
            FramePlan::shift_attention(&req, false, ScheduleOptions::steps(20), Fidelity::Keyshift);
        assert!(matches!(
            err,
            Err(PlanError::Prompt {
                frame: 0,
                field: PromptField::Positive,
                ..
            })
        ));
    }
}
