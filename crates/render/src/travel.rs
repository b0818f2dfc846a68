//! Prompt travel as a render source: core's [`plan`] of stages and α, each frame's stage mix
//! for the engine, successive genesis' img2img chain, and embryo genesis' shared latent.

use std::collections::BTreeMap;

use keyshift_core::image::{RgbImage, lanczos_resize};
use keyshift_core::noise::TorchRng;
use keyshift_core::shift::SsimPoint;
use keyshift_core::travel::easing::{Curve, Easing};
use keyshift_core::travel::frames::wander_plan;
use keyshift_core::travel::{
    EmbryoStep, FrameKind, Genesis, Interp, ReplaceDim, ReplaceOrder, Slice, Stage, TravelFrame,
    TravelMode, TravelPlan, parse_steps, plan, stages,
};
use keyshift_core::travel::{GradOptions, TokenOrder};
use keyshift_sd::generate::InitImage;
use serde_json::json;

use crate::RenderError;
use crate::manifest::FrameRecord;
use crate::shift::SCATTER_FILE;
use crate::source::{
    Embryo, Finished, FrameSource, FrameSpec, FrameTravel, RenderSettings, TravelMix,
};
use crate::svg::ssim_scatter_svg;
use crate::travel_gap::{TravelGapOptions, TravelGaps};

/// Prompt travel's options.
#[derive(Debug, Clone, PartialEq)]
pub struct TravelOptions {
    /// One stage per non-empty line (a line may end with `THEN(seed=…, cfg=…)`).
    pub prompt: String,
    /// Negative prompts, one per line (the last repeats).
    pub negative: String,
    /// Travel steps: one number, or one per transition separated by commas.
    pub steps: String,
    /// Linear or replace.
    pub mode: TravelMode,
    /// Lerp or slerp (linear mode).
    pub interp: Interp,
    /// The α curve of each transition.
    pub easing: Easing,
    /// Replace mode's unit.
    pub replace_dim: ReplaceDim,
    /// Replace mode's order.
    pub replace_order: ReplaceOrder,
    /// Fixed, successive or embryo.
    pub genesis: Genesis,
    /// Successive genesis' img2img strength.
    pub denoise: f64,
    /// Embryo genesis' step (a count, or a ratio of the sampling steps below 1).
    pub embryo_step: EmbryoStep,
    /// Seed of every stage without its own.
    pub seed: u64,
    /// CFG scale of every stage without its own.
    pub cfg: f64,
    /// Copies of the first and last frame at the start and end of the video.
    pub pad: usize,
    /// Which frames the video keeps (before padding).
    pub slice: Option<Slice>,
    /// Video frame rate.
    pub fps: f64,
    /// SSIM gap filling (linear mode, fixed genesis).
    pub gap: TravelGapOptions,
    /// Grad mode's iterations, step and loss weights.
    pub grad: GradOptions,
    /// The old token-ID replace's order.
    pub token_order: TokenOrder,
    /// Variation seed of every frame (`None`: a random one per frame, drawn from the seed).
    pub subseed: Option<u64>,
    /// Variation strength (0: none).
    pub subseed_strength: f64,
}

impl Default for TravelOptions {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            negative: String::new(),
            steps: "30".into(),
            mode: TravelMode::Linear,
            interp: Interp::Lerp,
            easing: Easing::Linear,
            replace_dim: ReplaceDim::Token,
            replace_order: ReplaceOrder::Random,
            genesis: Genesis::Fixed,
            denoise: 1.0,
            embryo_step: EmbryoStep::default(),
            seed: 0,
            cfg: 7.0,
            pad: 0,
            slice: None,
            fps: 10.0,
            gap: TravelGapOptions::default(),
            grad: GradOptions::default(),
            token_order: TokenOrder::Random,
            subseed: None,
            subseed_strength: 0.0,
        }
    }
}

/// The frames of a prompt travel.
#[derive(Debug, Clone)]
pub struct TravelSource {
    options: TravelOptions,
    stages: Vec<Stage>,
    plan: TravelPlan,
    curve: Curve,
    embryo_step: Option<usize>,
    size: (usize, usize),
    next: usize,
    plan_to_actual: Vec<usize>,
    handed: usize,
    open: Option<usize>,
    gaps: Option<TravelGaps>,
    previous: Option<RgbImage>,
    stage_images: BTreeMap<usize, RgbImage>,
    losses: BTreeMap<usize, (usize, usize, Vec<[f64; 2]>)>,
}

impl TravelSource {
    /// Plans `options`; errors name the setting (stages, steps, embryo step, denoise).
    pub fn new(options: TravelOptions, settings: &RenderSettings) -> Result<Self, RenderError> {
        let error = |e: &dyn std::fmt::Display| RenderError::Plan(e.to_string());
        let stages = stages(&options.prompt, &options.negative).map_err(|e| error(&e))?;
        let steps = parse_steps(&options.steps, stages.len()).map_err(|e| error(&e))?;
        let curve = options.easing.curve().map_err(|e| error(&e))?;
        let wanders = options.subseed.is_none()
            && options.subseed_strength > 0.0
            && options.mode == TravelMode::Linear;
        let plan = if stages.len() == 1 && wanders {
            wander_plan(steps[0], None)
        } else {
            plan(
                stages.len(),
                &steps,
                options.mode,
                options.genesis,
                &curve,
                None,
            )
            .map_err(|e| error(&e))?
        };
        if !(0.0..=1.0).contains(&options.subseed_strength) {
            return Err(RenderError::Plan(format!(
                "variation strength {} is outside 0 to 1",
                options.subseed_strength
            )));
        }
        let gaps = gap_filling(&options)?;
        let embryo_step = match options.genesis {
            Genesis::Embryo => Some(
                options
                    .embryo_step
                    .resolve(settings.steps)
                    .map_err(|e| error(&e))?,
            ),
            _ => None,
        };
        if options.genesis == Genesis::Successive
            && !(options.denoise > 0.0 && options.denoise <= 1.0)
        {
            return Err(RenderError::Plan(format!(
                "denoise strength {} must be above 0 and at most 1",
                options.denoise
            )));
        }
        Ok(Self {
            options,
            stages,
            plan,
            curve,
            embryo_step,
            size: (settings.width, settings.height),
            next: 0,
            plan_to_actual: Vec::new(),
            handed: 0,
            open: None,
            gaps,
            previous: None,
            stage_images: BTreeMap::new(),
            losses: BTreeMap::new(),
        })
    }

    /// Whether the frame of `record` is img2img of the frame generated before it.
    pub fn is_img2img(&self, record: &FrameRecord) -> bool {
        self.options.genesis == Genesis::Successive
            && record.extra.get("kind").and_then(serde_json::Value::as_str) == Some("between")
    }

    /// Every SSIM gap filling measured so far (empty when it is off).
    pub fn ssim_points(&self) -> &[SsimPoint] {
        self.gaps.as_ref().map_or(&[], TravelGaps::points)
    }

    /// Whether frames need their target stage's image (grad mode, gradient token orders).
    fn needs_stage_images(&self) -> bool {
        match self.options.mode {
            TravelMode::Grad => true,
            TravelMode::ReplaceIds => self.options.token_order.by_gradient(),
            _ => false,
        }
    }

    /// Hands out `frame` under the next generation index.
    fn hand_out(&mut self, mut frame: TravelFrame) -> FrameSpec {
        frame.generation_index = self.handed;
        self.handed += 1;
        if let Some(gaps) = self.gaps.as_mut() {
            gaps.record(&frame, frame.generation_index);
        }
        self.spec(&frame)
    }

    /// A gap frame of `transition` at position `t`.
    fn gap_frame(&self, transition: usize, t: f64) -> TravelFrame {
        let steps = parse_steps(&self.options.steps, self.stages.len())
            .ok()
            .and_then(|s| s.get(transition).copied())
            .unwrap_or(1);
        TravelFrame {
            generation_index: 0,
            from: transition,
            to: transition + 1,
            t,
            alpha: self.curve.at(t),
            kind: FrameKind::Between,
            step: 0,
            steps,
            img2img: false,
        }
    }

    /// The plan: every frame with its stages and α, and the video order.
    pub fn plan(&self) -> &TravelPlan {
        &self.plan
    }

    /// The stages.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// A source that makes the frame of `record` again: with `previous` as its img2img input
    /// (successive genesis: the frame generated before it), after the embryo frame in embryo
    /// genesis (its latent is not stored). Only the frame of `record` is meant to be kept.
    pub fn again(
        &self,
        record: &FrameRecord,
        previous: Option<RgbImage>,
    ) -> Result<TravelAgain, RenderError> {
        let index = record.generation_index;
        let frame = frame_of(record)
            .ok_or_else(|| RenderError::Plan(format!("frame {index} is not a travel frame")))?;
        let frame = TravelFrame {
            img2img: self.is_img2img(record),
            ..frame
        };
        if frame.kind == FrameKind::Between && self.needs_stage_images() {
            return Err(RenderError::Plan(format!(
                "frame {index} cannot be made alone: its conditioning comes from gradients \
                 through the frames rendered before it; render the travel again instead"
            )));
        }
        if frame.img2img && previous.is_none() {
            return Err(RenderError::Plan(format!(
                "frame {index} is img2img of frame {}, which is not stored",
                index.saturating_sub(1)
            )));
        }
        let mut with = self.clone();
        with.previous = previous;
        let mut specs = Vec::new();
        if frame.kind != FrameKind::Embryo
            && let Some(embryo) = self
                .plan
                .frames
                .iter()
                .find(|f| f.kind == FrameKind::Embryo)
        {
            specs.push(with.spec(embryo));
        }
        specs.push(with.spec(&frame));
        Ok(TravelAgain {
            expected: specs.len(),
            specs: specs.into(),
        })
    }

    fn seed(&self, stage: usize) -> u64 {
        self.stages
            .get(stage)
            .and_then(|s| s.seed)
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(self.options.seed)
    }

    fn cfg(&self, stage: usize) -> f64 {
        self.stages
            .get(stage)
            .and_then(|s| s.cfg)
            .unwrap_or(self.options.cfg)
    }

    fn spec(&self, frame: &TravelFrame) -> FrameSpec {
        let own = match frame.kind {
            FrameKind::Stage if frame.t > 0.0 => Some(frame.to),
            FrameKind::Stage => Some(frame.from),
            FrameKind::Between | FrameKind::Embryo => None,
        };
        let from = own.unwrap_or(frame.from);
        let stage = &self.stages[from.min(self.stages.len() - 1)];
        let mut spec = FrameSpec {
            index: frame.generation_index,
            prompt: stage.prompt.clone(),
            negative: stage.negative.clone(),
            seed: self.seed(from),
            cfg: self.cfg(from),
            extra: extra(frame),
            ..FrameSpec::default()
        };
        if own.is_none() {
            self.travel_towards(&mut spec, frame);
        }
        if self.options.subseed_strength > 0.0 && spec.subseed_strength == 0.0 {
            // A1111's variation seed: fixed, or (−1) a new one for every frame.
            spec.subseed = self.options.subseed.unwrap_or_else(|| {
                // The generator takes 32 bits: mix the frame into them.
                #[allow(clippy::cast_possible_truncation, reason = "32-bit seeds")]
                let mixed = (spec.seed as u32)
                    ^ (frame.generation_index as u32)
                        .wrapping_add(1)
                        .wrapping_mul(0x9E37_79B9);
                let mut rng = TorchRng::new(u64::from(mixed));
                u64::from(rng.next_u32())
            });
            spec.subseed_strength = self.options.subseed_strength;
        }
        spec
    }

    /// Sets the mix towards the frame's target stage, the seed travel and the CFG.
    fn travel_towards(&self, spec: &mut FrameSpec, frame: &TravelFrame) {
        let target = &self.stages[frame.to.min(self.stages.len() - 1)];
        let (seed_to, alpha) = (self.seed(frame.to), frame.alpha);
        if seed_to != spec.seed {
            spec.subseed = seed_to;
            spec.subseed_strength = alpha;
        }
        spec.cfg = spec.cfg * (1.0 - alpha) + self.cfg(frame.to) * alpha;
        let linear = self.options.mode == TravelMode::Linear;
        let embryo = self.embryo_step.map(|k| match frame.kind {
            FrameKind::Embryo => Embryo::Capture(k),
            _ => Embryo::Share(k),
        });
        if self.options.mode == TravelMode::ReplaceIds {
            // The negative prompt jumps straight to the target's, as in replace mode.
            spec.negative.clone_from(&target.negative);
        }
        spec.travel = Some(FrameTravel {
            prompt: target.prompt.clone(),
            negative: target.negative.clone(),
            alpha,
            uncond_alpha: if linear && embryo.is_none() {
                alpha
            } else {
                1.0
            },
            mix: self.mix(frame, spec.seed),
            embryo,
        });
        if frame.img2img {
            spec.init = self.previous.as_ref().map(|image| InitImage {
                image: lanczos_resize(image, self.size.0, self.size.1),
                strength: self.options.denoise,
            });
        }
    }

    fn mix(&self, frame: &TravelFrame, seed: u64) -> TravelMix {
        match (self.options.mode, self.options.interp) {
            (TravelMode::Linear, Interp::Lerp) => TravelMix::Lerp,
            (TravelMode::Linear, Interp::Slerp) => TravelMix::Slerp,
            (TravelMode::ReplaceIds, _) => TravelMix::ReplaceIds {
                order: self.options.token_order,
                rounds: frame.step,
                steps: frame.steps,
                #[allow(clippy::cast_possible_truncation, reason = "A1111 seeds are 32-bit")]
                seed: seed as u32,
                target: self
                    .options
                    .token_order
                    .by_gradient()
                    .then(|| self.stage_images.get(&frame.to).cloned().map(Box::new))
                    .flatten(),
            },
            (TravelMode::Grad, _) => {
                TravelMix::Grad {
                    options: self.options.grad,
                    stages: (frame.from, frame.to),
                    target: Box::new(self.stage_images.get(&frame.to).cloned().unwrap_or(
                        RgbImage {
                            width: 0,
                            height: 0,
                            data: Vec::new(),
                        },
                    )),
                    seed: seed.wrapping_add(frame.generation_index as u64),
                }
            }
            (TravelMode::Replace, _) => {
                #[allow(clippy::cast_precision_loss, reason = "step counts are small")]
                let eased = (self.options.easing != Easing::Linear).then(|| {
                    (1..=frame.step)
                        .map(|j| self.curve.at(j as f64 / (frame.steps + 1) as f64))
                        .collect()
                });
                TravelMix::Replace {
                    unit: self.options.replace_dim,
                    order: self.options.replace_order,
                    rounds: frame.step,
                    steps: frame.steps,
                    eased,
                    #[allow(clippy::cast_possible_truncation, reason = "A1111 seeds are 32-bit")]
                    seed: seed as u32,
                }
            }
        }
    }
}

/// The manifest fields of a travel frame: its stages, α and kind.
fn extra(frame: &TravelFrame) -> BTreeMap<String, serde_json::Value> {
    let kind = match frame.kind {
        FrameKind::Stage => "stage",
        FrameKind::Between => "between",
        FrameKind::Embryo => "embryo",
    };
    BTreeMap::from([
        ("from".to_owned(), json!(frame.from)),
        ("to".to_owned(), json!(frame.to)),
        ("alpha".to_owned(), json!(frame.alpha)),
        ("t".to_owned(), json!(frame.t)),
        ("kind".to_owned(), json!(kind)),
        ("round".to_owned(), json!(frame.step)),
        ("travel_steps".to_owned(), json!(frame.steps)),
    ])
}

/// A travel frame back from its manifest fields (`img2img` is the source's to decide).
fn frame_of(record: &FrameRecord) -> Option<TravelFrame> {
    let e = &record.extra;
    let number = |k: &str| e.get(k).and_then(serde_json::Value::as_f64);
    let count = |k: &str| {
        e.get(k)
            .and_then(serde_json::Value::as_u64)
            .and_then(|v| usize::try_from(v).ok())
    };
    let kind = match e.get("kind").and_then(serde_json::Value::as_str)? {
        "stage" => FrameKind::Stage,
        "between" => FrameKind::Between,
        "embryo" => FrameKind::Embryo,
        _ => return None,
    };
    Some(TravelFrame {
        generation_index: record.generation_index,
        from: count("from")?,
        to: count("to")?,
        t: number("t")?,
        alpha: number("alpha")?,
        kind,
        step: count("round")?,
        steps: count("travel_steps")?,
        img2img: false,
    })
}

/// Gap filling's state, when it is on (linear mode and fixed genesis only).
fn gap_filling(options: &TravelOptions) -> Result<Option<TravelGaps>, RenderError> {
    let g = options.gap;
    if g.gap.threshold <= 0.0 {
        return Ok(None);
    }
    if options.mode != TravelMode::Linear || options.genesis != Genesis::Fixed {
        return Err(RenderError::Plan(
            "SSIM gap filling works with linear travel and fixed genesis only".into(),
        ));
    }
    if !(g.blur.is_finite() && (0.0..=20.0).contains(&g.blur)) {
        return Err(RenderError::Plan(format!(
            "SSIM blur {} is outside 0 to 20",
            g.blur
        )));
    }
    if !(g.crop.is_finite() && (0.0..=100.0).contains(&g.crop)) {
        return Err(RenderError::Plan(format!(
            "SSIM crop {}% is outside 0 to 100",
            g.crop
        )));
    }
    Ok(Some(TravelGaps::new(g)))
}

impl FrameSource for TravelSource {
    fn next_frame(&mut self) -> Result<Option<FrameSpec>, RenderError> {
        loop {
            if let Some(gaps) = self.gaps.as_mut() {
                if let Some((transition, t)) = gaps.next() {
                    let frame = self.gap_frame(transition, t);
                    return Ok(Some(self.hand_out(frame)));
                }
                let next = self.plan.frames.get(self.next).map(transition_of);
                if let Some(open) = self.open
                    && next != Some(Some(open))
                    && !gaps.is_filled(open)
                {
                    gaps.close(open);
                    continue;
                }
            }
            let Some(frame) = self.plan.frames.get(self.next).cloned() else {
                return Ok(None);
            };
            if frame.img2img && self.previous.is_none() {
                return Err(RenderError::Plan(format!(
                    "frame {} is img2img of a frame that was not rendered",
                    frame.generation_index
                )));
            }
            if self.needs_stage_images()
                && frame.kind == FrameKind::Between
                && !self.stage_images.contains_key(&frame.to)
            {
                return Err(RenderError::Plan(format!(
                    "the gradient needs stage {}'s image before frame {}",
                    frame.to + 1,
                    frame.generation_index
                )));
            }
            self.next += 1;
            self.open = transition_of(&frame).or(self.open);
            self.plan_to_actual.push(self.handed);
            return Ok(Some(self.hand_out(frame)));
        }
    }

    fn frame_done(&mut self, record: &FrameRecord, image: &RgbImage) -> Result<(), RenderError> {
        if let Some(gaps) = self.gaps.as_mut() {
            gaps.done(record.generation_index, image);
        }
        if self.options.genesis == Genesis::Successive {
            self.previous = Some(image.clone());
        }
        if self.needs_stage_images()
            && let Some(frame) = frame_of(record)
        {
            match frame.kind {
                FrameKind::Stage if frame.t > 0.0 => {
                    self.stage_images.insert(frame.to, image.clone());
                }
                FrameKind::Stage => {
                    self.stage_images.insert(frame.from, image.clone());
                }
                _ => {}
            }
            if !record.losses.is_empty() {
                let entry = (frame.from, frame.to, record.losses.clone());
                self.losses.insert(record.generation_index, entry);
            }
        }
        Ok(())
    }

    /// Linear travel with fixed genesis and no gap filling: every frame of the plan is
    /// independent of the others (the other modes and geneses feed frames forward).
    fn ready_ahead(&self) -> usize {
        let independent = self.gaps.is_none()
            && self.options.genesis == Genesis::Fixed
            && self.options.mode == TravelMode::Linear;
        if independent {
            self.plan.frames.len().saturating_sub(self.next)
        } else {
            0
        }
    }

    fn expected_frames(&self) -> usize {
        let gap_frames = self.handed.saturating_sub(self.plan_to_actual.len());
        self.plan.frames.len() + gap_frames
    }

    fn finish(&mut self) -> Result<Finished, RenderError> {
        let video = match &self.gaps {
            Some(gaps) => gaps.video(),
            None => self
                .plan
                .video
                .iter()
                .filter_map(|&i| self.plan_to_actual.get(i).copied())
                .collect(),
        };
        let order = match self.options.slice {
            Some(slice) => slice
                .indices(video.len())
                .iter()
                .map(|&i| video[i])
                .collect(),
            None => video,
        };
        let mut files = match &self.gaps {
            Some(gaps) => {
                let g = gaps.options().gap;
                let svg = ssim_scatter_svg(gaps.points(), g.threshold, g.min_step);
                vec![(SCATTER_FILE.to_owned(), svg)]
            }
            None => Vec::new(),
        };
        if self.options.mode == TravelMode::Grad {
            files.push((GRAD_LOG.to_owned(), grad_log(&self.losses)));
        }
        Ok(Finished {
            order,
            files,
            fps: (self.options.fps > 0.0).then_some(self.options.fps),
            lead: self.options.pad,
        })
    }
}

/// Grad mode's log: every frame's losses per PGD step.
pub const GRAD_LOG: &str = "prompt-travel-grad.txt";

fn grad_log(losses: &BTreeMap<usize, (usize, usize, Vec<[f64; 2]>)>) -> String {
    let mut text = String::from("frame\tfrom\tto\tstep\tloss_latent\tloss_cond\n");
    for (frame, (from, to, steps)) in losses {
        for (i, [latent, cond]) in steps.iter().enumerate() {
            text.push_str(&format!(
                "{frame}\t{}\t{}\t{}\t{latent:.6}\t{cond:.6}\n",
                from + 1,
                to + 1,
                i + 1
            ));
        }
    }
    text
}

/// The transition a planned frame belongs to (the first stage's frame opens none).
fn transition_of(frame: &TravelFrame) -> Option<usize> {
    (frame.t > 0.0 || frame.kind != FrameKind::Stage).then_some(frame.from)
}

/// Makes one travel frame again (see [`TravelSource::again`]).
#[derive(Debug)]
pub struct TravelAgain {
    specs: std::collections::VecDeque<FrameSpec>,
    expected: usize,
}

impl FrameSource for TravelAgain {
    fn next_frame(&mut self) -> Result<Option<FrameSpec>, RenderError> {
        Ok(self.specs.pop_front())
    }

    fn expected_frames(&self) -> usize {
        self.expected
    }

    fn finish(&mut self) -> Result<Finished, RenderError> {
        Ok(Finished::default())
    }
}
