//! How Deforum's 2D animation reads a rendered Parseq document (`parseq_adapter.py` with
//! `parseq_use_deltas` on): per output frame the seed, CFG (`scale`), strength, noise, contrast,
//! `deforum_prompt` and the motion as `*_delta`; and the order in which its loop diffuses frames
//! and makes the cadence frames between them.

use serde_json::Value as Json;

use super::document::field_default;
use super::render::Rendered;
use crate::image::Motion2d;

/// One output frame as Deforum reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeforumFrame {
    /// The frame number Parseq wrote (renumbered from 0 when the document renders in reverse).
    pub frame: i64,
    /// The sequencer's seed (`None` when `seed` is not managed).
    pub seed: Option<f64>,
    /// `ceil(seed)`, when the seed is managed.
    pub subseed: Option<f64>,
    /// `seed % 1`, when the seed is managed.
    pub subseed_strength: Option<f64>,
    /// CFG scale (`scale`).
    pub scale: f64,
    /// How much of the previous frame is kept (`strength`; the img2img denoise is `1 − strength`).
    pub strength: f64,
    /// Noise amount added to the init image.
    pub noise: f64,
    /// Contrast applied to the init image.
    pub contrast: f64,
    /// Absolute zoom, angle and translations (what the sequencer produced).
    pub zoom: f64,
    /// Absolute angle in degrees.
    pub angle: f64,
    /// Absolute horizontal translation.
    pub translation_x: f64,
    /// Absolute vertical translation.
    pub translation_y: f64,
    /// The motion applied to the previous frame: the fields' deltas.
    pub motion: Motion2d,
    /// `deforum_prompt` (`None` when the document does not manage prompts).
    pub prompt: Option<String>,
}

/// The generation fields Deforum reads from a document, with the value used when the document does
/// not manage them (Parseq's field defaults).
pub const GENERATION_FIELDS: &[&str] = &["seed", "scale", "strength", "noise", "contrast"];

/// The 2D motion fields whose deltas move the previous frame.
pub const MOTION_FIELDS: &[&str] = &["zoom", "angle", "translation_x", "translation_y"];

impl DeforumFrame {
    /// Output frame `i` of `rendered` (after reverse post-processing, as Deforum receives it).
    pub fn read(rendered: &Rendered, i: usize) -> Self {
        let json = rendered.frame_json(i);
        let number = |key: &str| json.get(key).and_then(Json::as_f64);
        let value = |key: &str| number(key).unwrap_or_else(|| field_default(key));
        let delta = |key: &str, none: f64| number(&format!("{key}_delta")).unwrap_or(none);
        Self {
            frame: json.get("frame").and_then(Json::as_i64).unwrap_or(i as i64),
            seed: number("seed"),
            subseed: number("subseed"),
            subseed_strength: number("subseed_strength"),
            scale: value("scale"),
            strength: value("strength"),
            noise: value("noise"),
            contrast: value("contrast"),
            zoom: value("zoom"),
            angle: value("angle"),
            translation_x: value("translation_x"),
            translation_y: value("translation_y"),
            motion: Motion2d {
                zoom: delta("zoom", 1.0),
                angle: delta("angle", 0.0),
                translation_x: delta("translation_x", 0.0),
                translation_y: delta("translation_y", 0.0),
            },
            prompt: json
                .get("deforum_prompt")
                .and_then(Json::as_str)
                .map(str::to_owned),
        }
    }

    /// Every output frame of `rendered`.
    pub fn all(rendered: &Rendered) -> Vec<Self> {
        (0..rendered.frame_count)
            .map(|i| Self::read(rendered, i))
            .collect()
    }

    /// The img2img denoising strength Deforum asks for: `1 − strength`, strength clamped to
    /// [0, 1].
    pub fn denoise(&self) -> f64 {
        let strength = if self.strength.is_nan() {
            0.0
        } else {
            self.strength.clamp(0.0, 1.0)
        };
        1.0 - strength
    }

    /// The positive and negative prompt: `deforum_prompt` split at `--neg`, or `fallback` when
    /// the document does not manage prompts.
    pub fn prompts<'a>(&'a self, fallback: (&'a str, &'a str)) -> (&'a str, &'a str) {
        match &self.prompt {
            Some(full) => match full.split_once("--neg") {
                Some((pos, neg)) => (pos.trim(), neg.trim()),
                None => (full.trim(), ""),
            },
            None => fallback,
        }
    }
}

/// One step of Deforum's animation loop over frames `0..n` (relative to the first rendered one).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LoopStep {
    /// Diffuse this frame (txt2img for the first, img2img of the moved previous image after).
    Diffuse(usize),
    /// A cadence frame: advance the kept images by this frame's motion and cross-fade them.
    Tween {
        /// The output frame.
        frame: usize,
        /// Weight of the newer diffused image.
        t: f64,
        /// Whether the older image moves on by this frame's motion.
        advance_prev: bool,
        /// Whether the newer image moves on by this frame's motion.
        advance_next: bool,
    },
}

/// The steps of Deforum's loop (`render.py`, "turbo" steps) for `n` frames diffusing every
/// `cadence`-th. With cadence 1 every frame is diffused and there are no tweens. Deforum leaves
/// out the frames after the last diffused one; here they are made as the loop would have made
/// them had it gone on (their cross-fade reaching the last diffused image).
pub fn loop_steps(n: usize, cadence: usize) -> Vec<LoopStep> {
    let c = cadence.max(1);
    let mut turbo = Turbo::default();
    let mut frame_idx = 0;
    while frame_idx < n {
        if c > 1 {
            let start = frame_idx.saturating_sub(c);
            turbo.tweens(start, frame_idx, frame_idx - start);
        }
        turbo.steps.push(LoopStep::Diffuse(frame_idx));
        if c > 1 {
            turbo.has_prev = turbo.has_next;
            turbo.has_next = true;
            turbo.prev_idx = turbo.next_idx;
            turbo.next_idx = frame_idx;
            frame_idx += c;
        } else {
            frame_idx += 1;
        }
    }
    if c > 1 && n > 0 {
        turbo.tweens(frame_idx - c, n, c);
    }
    turbo.steps
}

/// The loop's bookkeeping of its two kept images ("turbo" prev and next).
#[derive(Default)]
struct Turbo {
    steps: Vec<LoopStep>,
    prev_idx: usize,
    next_idx: usize,
    has_prev: bool,
    has_next: bool,
}

impl Turbo {
    /// The cadence frames `start..end`, cross-fading over `span` frames.
    fn tweens(&mut self, start: usize, end: usize, span: usize) {
        for t_idx in start..end {
            let t = (t_idx - start + 1) as f64 / span as f64;
            let advance_prev = self.has_prev && t_idx > self.prev_idx;
            let advance_next = t_idx > self.next_idx;
            self.prev_idx = t_idx;
            self.next_idx = t_idx;
            self.steps.push(LoopStep::Tween {
                frame: t_idx,
                t,
                advance_prev,
                advance_next,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parseq::document::Document;
    use crate::parseq::render::render;

    fn tween(frame: usize, t: f64, advance_prev: bool, advance_next: bool) -> LoopStep {
        LoopStep::Tween {
            frame,
            t,
            advance_prev,
            advance_next,
        }
    }

    #[test]
    fn cadence_one_diffuses_every_frame() {
        let steps = loop_steps(3, 1);
        assert_eq!(
            steps,
            vec![
                LoopStep::Diffuse(0),
                LoopStep::Diffuse(1),
                LoopStep::Diffuse(2)
            ]
        );
    }

    #[test]
    fn cadence_three_follows_deforums_turbo_loop() {
        let steps = loop_steps(7, 3);
        let third = 1.0 / 3.0;
        assert_eq!(
            steps,
            vec![
                LoopStep::Diffuse(0),
                tween(0, third, false, false),
                tween(1, 2.0 * third, false, true),
                tween(2, 1.0, false, true),
                LoopStep::Diffuse(3),
                tween(3, third, true, false),
                tween(4, 2.0 * third, true, true),
                tween(5, 1.0, true, true),
                LoopStep::Diffuse(6),
                tween(6, third, true, false),
            ]
        );
    }

    #[test]
    fn every_frame_is_made_once() {
        for n in 1..20 {
            for c in 1..6 {
                let mut frames: Vec<usize> = loop_steps(n, c)
                    .iter()
                    .filter_map(|s| match (s, c) {
                        (LoopStep::Tween { frame, .. }, _) => Some(*frame),
                        (LoopStep::Diffuse(f), 1) => Some(*f),
                        _ => None,
                    })
                    .collect();
                frames.sort_unstable();
                assert_eq!(frames, (0..n).collect::<Vec<_>>(), "n {n}, cadence {c}");
            }
        }
    }

    #[test]
    fn reads_values_deltas_and_defaults() {
        let doc = r#"{"options":{"output_fps":20,"bpm":120},
            "managedFields":["zoom","seed","strength"],
            "prompts":{"format":"v2","enabled":true,"commonPrompt":{"positive":"","negative":"","allFrames":true,"from":0,"to":0,"name":"Common","overlap":{"type":"none","inFrames":0,"outFrames":0,"custom":""}},"commonPromptPos":"append",
              "promptList":[{"name":"1","positive":"a cat","negative":"blurry","allFrames":true,"from":0,"to":2,"overlap":{"type":"none","inFrames":0,"outFrames":0,"custom":""}}]},
            "keyframes":[{"frame":0,"zoom":1,"seed":10.5,"strength":0.7},{"frame":2,"zoom":1.2,"seed":12,"strength":0.5}]}"#;
        let Ok(doc) = Document::from_json_str(doc) else {
            panic!("document");
        };
        let Ok((_, rendered)) = render(&doc) else {
            panic!("renders");
        };
        let frames = DeforumFrame::all(&rendered);
        assert_eq!(frames.len(), 3);
        let f = &frames[1];
        assert_eq!(f.frame, 1);
        assert!((f.zoom - 1.1).abs() < 1e-12);
        assert!((f.motion.zoom - 1.1).abs() < 1e-12, "1 + (1.1 − 1)");
        assert_eq!(f.motion.angle, 0.0);
        assert_eq!(f.seed, Some(11.25));
        assert_eq!((f.subseed, f.subseed_strength), (Some(12.0), Some(0.25)));
        assert_eq!(f.scale, 7.0, "unmanaged: Parseq's default");
        assert!((f.denoise() - 0.4).abs() < 1e-12);
        assert_eq!(f.prompts(("x", "y")), ("a cat", "blurry"));
    }
}
