//! Prompt travel's edits in the Animate workspace: its options, and the stage editor (a second
//! view of the prompt's lines and the travel-steps text).

use keyshift_core::share::{Project, TravelSettings};
use keyshift_core::travel::easing::Easing;
use keyshift_core::travel::editor::{self, StageEdit};
use keyshift_core::travel::{
    Genesis, GradMethod, Interp, ReplaceDim, ReplaceOrder, Slice, TokenOrder, TravelMode,
};

use crate::state::EditError;

/// A prompt-travel option the Animate workspace edits (values as typed or picked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TravelField {
    /// Travel steps: one number or one per transition.
    Steps,
    /// `linear` or `replace`.
    Mode,
    /// `lerp` or `slerp`.
    Interp,
    /// An easing name or `x1,y1,x2,y2`.
    Easing,
    /// `token`, `channel` or `random`.
    ReplaceDim,
    /// `random`, `similar` or `different`.
    ReplaceOrder,
    /// `fixed`, `successive` or `embryo`.
    Genesis,
    /// Denoise strength, above 0 and at most 1.
    Denoise,
    /// Embryo step: a count, or a ratio below 1.
    EmbryoStep,
    /// Pad begin/end frames.
    Pad,
    /// Pick frames by slice.
    Slice,
    /// Video FPS.
    Fps,
    /// SSIM gap-filling threshold (0: off).
    SsimThreshold,
    /// SSIM minimum step.
    SsimMinStep,
    /// SSIM min threshold %.
    SsimMinPct,
    /// Gaussian blur radius before SSIM.
    SsimBlur,
    /// Centre crop % before SSIM.
    SsimCrop,
    /// Grad mode: iterations per frame.
    GradIter,
    /// Grad mode: step size.
    GradAlpha,
    /// Grad mode: `clip`, `sign` or `tanh`.
    GradMethod,
    /// Grad mode: weight of the latent loss.
    GradWLatent,
    /// Grad mode: weight of the conditioning loss.
    GradWCond,
    /// Token-ID replace: the order of the token positions.
    TokenOrder,
    /// Variation seed (−1: random per frame).
    Subseed,
    /// Variation strength.
    SubseedStrength,
}

impl TravelField {
    /// The field's name in messages.
    pub fn label(self) -> &'static str {
        match self {
            Self::Steps => "Travel steps",
            Self::Mode => "Travel mode",
            Self::Interp => "Interpolation",
            Self::Easing => "Easing",
            Self::ReplaceDim => "Replace dimension",
            Self::ReplaceOrder => "Replace order",
            Self::Genesis => "Frame genesis",
            Self::Denoise => "Denoise strength",
            Self::EmbryoStep => "Embryo step",
            Self::Pad => "Pad begin/end frames",
            Self::Slice => "Pick frames by slice",
            Self::Fps => "Video FPS",
            Self::SsimThreshold => "SSIM threshold",
            Self::SsimMinStep => "SSIM minimum step",
            Self::SsimMinPct => "SSIM min threshold %",
            Self::SsimBlur => "SSIM blur",
            Self::SsimCrop => "SSIM centre crop %",
            Self::GradIter => "Grad iterations",
            Self::GradAlpha => "Grad step (alpha)",
            Self::GradMethod => "Grad method",
            Self::GradWLatent => "Weight of the latent loss",
            Self::GradWCond => "Weight of the conditioning loss",
            Self::TokenOrder => "Token order",
            Self::Subseed => "Variation seed",
            Self::SubseedStrength => "Variation strength",
        }
    }

    /// Applies the typed or picked `text` to `t`; on error `t` is unchanged.
    pub fn apply(self, text: &str, t: &mut TravelSettings) -> Result<(), EditError> {
        let label = self.label();
        let invalid = |message: String| EditError::Invalid {
            field: label,
            message,
        };
        match self {
            Self::Steps => t.steps = text.trim().to_owned(),
            Self::Mode => t.mode = pick(label, text, TravelMode::from_name)?,
            Self::Interp => t.interp = pick(label, text, Interp::from_name)?,
            Self::ReplaceDim => t.replace_dim = pick(label, text, ReplaceDim::from_name)?,
            Self::ReplaceOrder => t.replace_order = pick(label, text, ReplaceOrder::from_name)?,
            Self::Genesis => t.genesis = pick(label, text, Genesis::from_name)?,
            Self::Easing => t.easing = Easing::parse(text).map_err(|e| invalid(e.to_string()))?,
            Self::Slice => {
                Slice::parse(text).map_err(|e| invalid(e.to_string()))?;
                t.slice = text.trim().to_owned();
            }
            Self::Denoise => t.denoise = real(label, text, 0.01, 1.0)?,
            Self::EmbryoStep => t.embryo_step = real(label, text, 0.01, 150.0)?,
            Self::Fps => t.fps = real(label, text, 0.1, 240.0)?,
            Self::SsimThreshold => t.ssim_threshold = real(label, text, 0.0, 1.0)?,
            Self::SsimMinStep => t.ssim_min_step = real(label, text, 1e-9, 1.0)?,
            Self::SsimMinPct => t.ssim_min_pct = real(label, text, 0.0, 100.0)?,
            Self::SsimBlur => t.ssim_blur = real(label, text, 0.0, 20.0)?,
            Self::SsimCrop => t.ssim_crop = real(label, text, 0.0, 100.0)?,
            Self::GradIter => t.grad.iterations = real(label, text, 0.0, 100.0)? as usize,
            Self::GradAlpha => t.grad.alpha = real(label, text, 0.0, 10.0)?,
            Self::GradMethod => t.grad.method = pick(label, text, GradMethod::from_name)?,
            Self::GradWLatent => t.grad.w_latent = real(label, text, 0.0, 1000.0)?,
            Self::GradWCond => t.grad.w_cond = real(label, text, 0.0, 1000.0)?,
            Self::TokenOrder => t.token_order = pick(label, text, TokenOrder::from_name)?,
            Self::Subseed => t.subseed = real(label, text, -1.0, 4_294_967_295.0)? as i64,
            Self::SubseedStrength => t.subseed_strength = real(label, text, 0.0, 1.0)?,
            Self::Pad => {
                t.pad = text
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|p| *p <= 1000)
                    .ok_or(EditError::OutOfRange {
                        field: label,
                        min: "0".into(),
                        max: "1000".into(),
                    })?;
            }
        }
        Ok(())
    }
}

/// Whether `field` matters for `t`'s mode and genesis (the original shows each option only where
/// it applies).
pub fn shown(field: TravelField, t: &TravelSettings) -> bool {
    match field {
        TravelField::Interp => t.mode == TravelMode::Linear,
        TravelField::ReplaceDim | TravelField::ReplaceOrder => t.mode == TravelMode::Replace,
        TravelField::TokenOrder => t.mode == TravelMode::ReplaceIds,
        TravelField::Genesis => t.mode != TravelMode::Grad,
        TravelField::Denoise => t.genesis == Genesis::Successive && t.mode != TravelMode::Grad,
        TravelField::EmbryoStep => t.genesis == Genesis::Embryo && t.mode == TravelMode::Linear,
        _ => true,
    }
}

fn pick<T>(field: &'static str, text: &str, from: fn(&str) -> Option<T>) -> Result<T, EditError> {
    from(text.trim()).ok_or_else(|| EditError::Invalid {
        field,
        message: format!("\"{text}\" is not a choice"),
    })
}

fn real(field: &'static str, text: &str, min: f64, max: f64) -> Result<f64, EditError> {
    let value: f64 = text.trim().parse().map_err(|_| EditError::NotANumber {
        field,
        text: text.to_owned(),
    })?;
    if !(value.is_finite() && (min..=max).contains(&value)) {
        return Err(EditError::OutOfRange {
            field,
            min: min.to_string(),
            max: max.to_string(),
        });
    }
    Ok(value)
}

/// Applies a stage-editor edit to the project's prompt and travel steps.
pub fn edit_stages(edit: StageEdit, project: &mut Project) -> Result<(), EditError> {
    let travel = &mut project.animation.travel;
    let (prompt, steps) =
        editor::apply(edit, &project.prompt, &travel.steps).map_err(|e| EditError::Invalid {
            field: "Stages",
            message: e.to_string(),
        })?;
    project.prompt = prompt;
    travel.steps = steps;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ProjectCommand;

    #[test]
    fn travel_edits_are_validated_and_kept_on_error() {
        let mut p = Project::default();
        let set = |p: &mut Project, f, v: &str| ProjectCommand::SetTravel(f, v.into()).apply(p);
        set(&mut p, TravelField::Interp, "slerp").unwrap_or_else(|e| panic!("{e}"));
        set(&mut p, TravelField::Easing, "0.2, 0, 0.8, 1").unwrap_or_else(|e| panic!("{e}"));
        set(&mut p, TravelField::Genesis, "embryo").unwrap_or_else(|e| panic!("{e}"));
        set(&mut p, TravelField::Steps, " 2, 3 ").unwrap_or_else(|e| panic!("{e}"));
        let t = &p.animation.travel;
        assert_eq!(
            (t.interp, t.genesis, t.steps.as_str()),
            (Interp::Slerp, Genesis::Embryo, "2, 3")
        );
        let err = set(&mut p, TravelField::Easing, "2,0,1,1")
            .map(|_| ())
            .unwrap_err();
        assert!(err.to_string().starts_with("Easing: "), "{err}");
        assert!(set(&mut p, TravelField::Mode, "warp").is_err());
        assert!(set(&mut p, TravelField::Slice, "::0").is_err());
        assert!(set(&mut p, TravelField::Denoise, "0").is_err());
        assert!(set(&mut p, TravelField::Pad, "-1").is_err());
        assert_eq!(p.animation.travel.interp, Interp::Slerp);
    }

    #[test]
    fn options_show_where_they_apply() {
        let mut t = TravelSettings::default();
        assert!(shown(TravelField::Interp, &t) && !shown(TravelField::ReplaceDim, &t));
        assert!(!shown(TravelField::Denoise, &t) && !shown(TravelField::EmbryoStep, &t));
        t.mode = TravelMode::Replace;
        assert!(!shown(TravelField::Interp, &t) && shown(TravelField::ReplaceOrder, &t));
        t.genesis = Genesis::Successive;
        assert!(shown(TravelField::Denoise, &t));
        t.mode = TravelMode::Grad;
        assert!(!shown(TravelField::Genesis, &t) && shown(TravelField::Steps, &t));
    }

    #[test]
    fn the_stage_editor_edits_the_prompt_lines() {
        let mut p = Project {
            prompt: "a cat\na dog".into(),
            ..Project::default()
        };
        ProjectCommand::EditStage(StageEdit::Add)
            .apply(&mut p)
            .unwrap_or_else(|e| panic!("{e}"));
        ProjectCommand::EditStage(StageEdit::Seed(2, "9".into()))
            .apply(&mut p)
            .unwrap_or_else(|e| panic!("{e}"));
        ProjectCommand::EditStage(StageEdit::Steps(0, "4".into()))
            .apply(&mut p)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.prompt, "a cat\na dog\na dog THEN(seed=9)");
        assert_eq!(p.animation.travel.steps, "4, 30");
        let before = p.clone();
        assert!(
            ProjectCommand::EditStage(StageEdit::Seed(0, "x".into()))
                .apply(&mut p)
                .is_err()
        );
        assert_eq!(p, before);
    }
}
