//! The frames of a travel: generation order (what renders when; the original renders a
//! transition's target before its intermediates) and video order, with α per frame.
//!
//! Per transition of `s` travel steps from stage `i − 1` to stage `i`:
//! - linear, fixed: the target stage, then `t = 1 … s − 1` at `α = t/s`; the video plays the
//!   intermediates, then the target: `1 + Σ s` frames in all.
//! - linear, successive: `t = 1 … s` at `α = t/s`, each img2img of the frame before.
//! - replace (the original's "steps intermediates"): `k = 1 … s` at `k/(s + 1)`, then (fixed)
//!   the target: `1 + Σ (s + 1)` frames; successive drops the target.
//! - embryo (two stages): a half-way render whose latent at the embryo step is shared (not in
//!   the video), then `t = 0 … s + 2` at `α = t/(s + 2)`: `s + 3` frames.
//!
//! α is eased per transition; linear easing gives the original's values exactly.

use serde::{Deserialize, Serialize};

use super::easing::Curve;
use super::slice::Slice;
use super::{Genesis, TravelError, TravelMode};

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameKind {
    /// A stage's own prompt, rendered as it is.
    Stage,
    /// Between two stages: the conditioning mixed at α.
    Between,
    /// Embryo genesis' half-way render, whose latent the other frames share (not in the video).
    Embryo,
}

/// One frame of a travel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TravelFrame {
    /// Position in the order of generation.
    pub generation_index: usize,
    /// The stage it leaves (0-based).
    pub from: usize,
    /// The stage it travels to.
    pub to: usize,
    /// Position in the transition before easing (`t/s`).
    pub t: f64,
    /// The interpolation weight used (after easing).
    pub alpha: f64,
    /// Stage, between, or embryo.
    pub kind: FrameKind,
    /// Index within its transition (replace mode: how many rounds of replacement).
    pub step: usize,
    /// Travel steps of its transition.
    pub steps: usize,
    /// Successive genesis: img2img of the frame generated just before.
    pub img2img: bool,
}

/// The frames of a travel.
#[derive(Clone, Debug, PartialEq)]
pub struct TravelPlan {
    /// Every frame, in the order of generation.
    pub frames: Vec<TravelFrame>,
    /// Generation indices in video order, after the slice (padding not included).
    pub video: Vec<usize>,
}

struct Builder<'a> {
    frames: Vec<TravelFrame>,
    video: Vec<usize>,
    curve: &'a Curve,
}

impl Builder<'_> {
    #[allow(clippy::too_many_arguments, reason = "one frame's fields")]
    fn push(
        &mut self,
        from: usize,
        to: usize,
        t: f64,
        kind: FrameKind,
        step: usize,
        steps: usize,
        img2img: bool,
    ) -> usize {
        let alpha = match kind {
            FrameKind::Between => self.curve.at(t),
            FrameKind::Stage | FrameKind::Embryo => t,
        };
        let index = self.frames.len();
        self.frames.push(TravelFrame {
            generation_index: index,
            from,
            to,
            t,
            alpha,
            kind,
            step,
            steps,
            img2img,
        });
        index
    }
}

/// Plans the frames of a travel over `stages` stages with `steps` per transition (as
/// [`super::parse_steps`] reads them).
pub fn plan(
    stages: usize,
    steps: &[usize],
    mode: TravelMode,
    genesis: Genesis,
    curve: &Curve,
    slice: Option<Slice>,
) -> Result<TravelPlan, TravelError> {
    let wander = stages == 1 && mode == TravelMode::Grad;
    if stages < 2 && !wander {
        return Err(TravelError::TooFewStages(stages));
    }
    if mode == TravelMode::Grad && genesis != Genesis::Fixed {
        return Err(TravelError::GradGenesis);
    }
    super::stages::check_total(steps)?;
    if steps.len() != stages.saturating_sub(1).max(1) || steps.contains(&0) {
        return Err(TravelError::Steps(format!(
            "{stages} stages need {} entries of at least 1",
            stages - 1
        )));
    }
    let mut b = Builder {
        frames: Vec::new(),
        video: Vec::new(),
        curve,
    };
    if genesis == Genesis::Embryo {
        embryo(&mut b, stages, steps, mode)?;
    } else if wander {
        return Ok(wander_plan(steps[0], slice));
    } else {
        let first = b.push(0, 1, 0.0, FrameKind::Stage, 0, steps[0], false);
        b.video.push(first);
        for (i, &s) in steps.iter().enumerate() {
            transition(&mut b, i, s, mode, genesis);
        }
    }
    let video = match slice {
        Some(slice) => slice
            .indices(b.video.len())
            .iter()
            .map(|&i| b.video[i])
            .collect(),
        None => b.video,
    };
    Ok(TravelPlan {
        frames: b.frames,
        video,
    })
}

/// One stage "wandering" (grad mode, or a random variation seed per frame): the stage, then
/// `steps` frames around it.
pub fn wander_plan(steps: usize, slice: Option<Slice>) -> TravelPlan {
    let curve = Curve::linear();
    let mut b = Builder {
        frames: Vec::new(),
        video: Vec::new(),
        curve: &curve,
    };
    let first = b.push(0, 0, 0.0, FrameKind::Stage, 0, steps, false);
    b.video.push(first);
    for k in 1..=steps {
        #[allow(clippy::cast_precision_loss, reason = "step counts are small")]
        let t = k as f64 / steps as f64;
        let frame = b.push(0, 0, t, FrameKind::Between, k, steps, false);
        b.video.push(frame);
    }
    let video = match slice {
        Some(slice) => slice
            .indices(b.video.len())
            .iter()
            .map(|&i| b.video[i])
            .collect(),
        None => b.video,
    };
    TravelPlan {
        frames: b.frames,
        video,
    }
}

#[allow(clippy::cast_precision_loss, reason = "step counts are small")]
fn transition(b: &mut Builder, i: usize, s: usize, mode: TravelMode, genesis: Genesis) {
    let (from, to) = (i, i + 1);
    let successive = genesis == Genesis::Successive;
    let (count, denominator) = match mode {
        TravelMode::Linear if successive => (s, s),
        TravelMode::Linear | TravelMode::Grad => (s - 1, s),
        TravelMode::Replace | TravelMode::ReplaceIds => (s, s + 1),
    };
    let target =
        (!successive).then(|| b.push(from, to, 1.0, FrameKind::Stage, denominator, s, false));
    for k in 1..=count {
        let t = k as f64 / denominator as f64;
        let frame = b.push(from, to, t, FrameKind::Between, k, s, successive);
        b.video.push(frame);
    }
    b.video.extend(target);
}

#[allow(clippy::cast_precision_loss, reason = "step counts are small")]
fn embryo(
    b: &mut Builder,
    stages: usize,
    steps: &[usize],
    mode: TravelMode,
) -> Result<(), TravelError> {
    if mode != TravelMode::Linear {
        return Err(TravelError::EmbryoReplace);
    }
    if stages != 2 {
        return Err(TravelError::EmbryoStages(stages));
    }
    let s = steps[0];
    b.push(0, 1, 0.5, FrameKind::Embryo, 0, s, false);
    for t in 0..=s + 2 {
        let frame = b.push(
            0,
            1,
            t as f64 / (s + 2) as f64,
            FrameKind::Between,
            t,
            s,
            false,
        );
        b.video.push(frame);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::travel::Easing;

    fn run(stages: usize, steps: &[usize], mode: TravelMode, genesis: Genesis) -> TravelPlan {
        let curve = Easing::Linear.curve().unwrap();
        plan(stages, steps, mode, genesis, &curve, None).unwrap()
    }

    /// (from, to, α) of each frame in video order.
    fn video(p: &TravelPlan) -> Vec<(usize, usize, f64)> {
        p.video
            .iter()
            .map(|&i| {
                let f = &p.frames[i];
                (f.from, f.to, f.alpha)
            })
            .collect()
    }

    #[test]
    fn fixed_renders_each_target_before_its_intermediates() {
        let p = run(3, &[4, 2], TravelMode::Linear, Genesis::Fixed);
        // 1 + Σ steps.
        assert_eq!(p.frames.len(), 1 + 4 + 2);
        assert_eq!(
            video(&p),
            [
                (0, 1, 0.0),
                (0, 1, 0.25),
                (0, 1, 0.5),
                (0, 1, 0.75),
                (0, 1, 1.0),
                (1, 2, 0.5),
                (1, 2, 1.0)
            ]
        );
        // Generation order: stage 0, target 1, its intermediates, target 2, its intermediate.
        assert_eq!(p.video, [0, 2, 3, 4, 1, 6, 5]);
        assert_eq!(p.frames[1].kind, FrameKind::Stage);
        assert!(p.frames.iter().all(|f| !f.img2img));
    }

    #[test]
    fn successive_chains_img2img_up_to_alpha_one() {
        let p = run(4, &[2, 3, 1], TravelMode::Linear, Genesis::Successive);
        assert_eq!(p.frames.len(), 1 + 2 + 3 + 1);
        assert_eq!(p.video, (0..7).collect::<Vec<_>>());
        let alphas: Vec<f64> = video(&p).iter().map(|v| v.2).collect();
        assert_eq!(alphas, [0.0, 0.5, 1.0, 1.0 / 3.0, 2.0 / 3.0, 1.0, 1.0]);
        assert!(!p.frames[0].img2img);
        assert!(p.frames[1..].iter().all(|f| f.img2img));
    }

    #[test]
    fn replace_uses_steps_intermediates() {
        let p = run(2, &[3], TravelMode::Replace, Genesis::Fixed);
        assert_eq!(
            video(&p),
            [
                (0, 1, 0.0),
                (0, 1, 0.25),
                (0, 1, 0.5),
                (0, 1, 0.75),
                (0, 1, 1.0)
            ]
        );
        let s = run(3, &[2, 2], TravelMode::Replace, Genesis::Successive);
        assert_eq!(s.frames.len(), 1 + 2 + 2);
        assert_eq!(s.frames[2].step, 2);
        assert_eq!(s.frames[2].alpha, 2.0 / 3.0);
    }

    #[test]
    fn embryo_renders_steps_plus_three_frames_after_its_embryo() {
        let p = run(2, &[4], TravelMode::Linear, Genesis::Embryo);
        assert_eq!(p.frames[0].kind, FrameKind::Embryo);
        assert_eq!(p.frames[0].alpha, 0.5);
        assert_eq!(p.video.len(), 4 + 3);
        let alphas: Vec<f64> = video(&p).iter().map(|v| v.2).collect();
        assert_eq!(
            alphas,
            [0.0, 1.0 / 6.0, 2.0 / 6.0, 0.5, 4.0 / 6.0, 5.0 / 6.0, 1.0]
        );
        let curve = Easing::Linear.curve().unwrap();
        assert_eq!(
            plan(
                3,
                &[2, 2],
                TravelMode::Linear,
                Genesis::Embryo,
                &curve,
                None
            ),
            Err(TravelError::EmbryoStages(3))
        );
        assert_eq!(
            plan(2, &[2], TravelMode::Replace, Genesis::Embryo, &curve, None),
            Err(TravelError::EmbryoReplace)
        );
    }

    #[test]
    fn easing_bends_alpha_but_not_the_stages() {
        let curve = Easing::EaseIn.curve().unwrap();
        let p = plan(2, &[4], TravelMode::Linear, Genesis::Fixed, &curve, None).unwrap();
        let f = &p.frames[p.video[2]];
        assert_eq!(f.t, 0.5);
        assert!((f.alpha - curve.at(0.5)).abs() < 1e-12 && f.alpha < 0.4);
        assert_eq!(p.frames[p.video[4]].alpha, 1.0);
    }

    #[test]
    fn grad_mode_counts_like_fixed_and_wanders_on_one_stage() {
        let p = run(3, &[2, 3], TravelMode::Grad, Genesis::Fixed);
        assert_eq!(p.frames.len(), 1 + 2 + 3);
        let w = run(1, &[3], TravelMode::Grad, Genesis::Fixed);
        assert_eq!(
            video(&w),
            [
                (0, 0, 0.0),
                (0, 0, 1.0 / 3.0),
                (0, 0, 2.0 / 3.0),
                (0, 0, 1.0)
            ]
        );
        let curve = Easing::Linear.curve().unwrap();
        assert_eq!(
            plan(2, &[2], TravelMode::Grad, Genesis::Successive, &curve, None),
            Err(TravelError::GradGenesis)
        );
    }

    #[test]
    fn slice_picks_video_frames() {
        let curve = Easing::Linear.curve().unwrap();
        let slice = Slice::parse("::2").unwrap();
        let p = plan(2, &[4], TravelMode::Linear, Genesis::Fixed, &curve, slice).unwrap();
        assert_eq!(p.video, [0, 3, 1]);
        assert_eq!(p.frames.len(), 5);
        assert_eq!(
            plan(1, &[1], TravelMode::Linear, Genesis::Fixed, &curve, None),
            Err(TravelError::TooFewStages(1))
        );
    }
}
