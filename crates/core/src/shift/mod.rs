//! shift-attention: prompts whose numbers travel (`(cat:1~0)`), in segments joined by `THEN`,
//! with seed travel (`THEN(seed=2)`) and CFG travel (`THEN(cfg=9)`).
//!
//! Each segment renders `steps + 1` frames at distances `i / steps`; its last frame and the next
//! segment's first frame are near-duplicates, as in shift-attention. [`ShiftPlanner`] hands out
//! the segments in order; [`GapFiller`] plans SSIM gap filling within a segment; [`run`] drives
//! both the way shift-attention's script does (used for conformance and for the frame plan).

mod gapped;
mod range;
pub mod run;
mod segments;
mod ssim;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::prompt::{Fidelity, py};
pub use range::RangedText;
pub use segments::{SegmentSpec, SegmentText, split_segments};
pub use ssim::{GapFiller, GapSettings, GapStats, GapStep, SsimPoint};

/// Which of the two prompts a position refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptField {
    /// The positive prompt.
    Positive,
    /// The negative prompt.
    Negative,
}

/// Why a shift-attention sequence cannot be planned.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ShiftError {
    /// A value of an `a~b` range is not a number (`1~~2`, `1~0~`, `1-2~3`).
    #[error("range value {value:?} at character {position} is not a number")]
    BadRangeValue {
        /// Index (in characters) of the value in its prompt.
        position: usize,
        /// The value as written.
        value: String,
    },
    /// A `THEN(...)` option with more than one `=`.
    #[error("THEN option {option:?} at character {position} has more than one '='")]
    BadThenOption {
        /// Index (in characters) of the option in its prompt.
        position: usize,
        /// The option as written.
        option: String,
    },
    /// `steps` is 0 (shift-attention divides by it).
    #[error("steps must not be 0")]
    ZeroSteps,
    /// An error located in one of the two prompts.
    #[error("{field:?} prompt: {source}")]
    InPrompt {
        /// The prompt it is in.
        field: PromptField,
        /// The error, with its position in that prompt.
        source: Box<ShiftError>,
    },
}

impl ShiftError {
    fn in_prompt(self, field: PromptField, offset: usize) -> Self {
        let source = match self {
            Self::BadRangeValue { position, value } => Self::BadRangeValue {
                position: position + offset,
                value,
            },
            other => other,
        };
        Self::InPrompt {
            field,
            source: Box::new(source),
        }
    }

    /// The Python exception shift-attention raises for the same input.
    pub fn python_type(&self) -> &'static str {
        match self {
            Self::ZeroSteps => "ZeroDivisionError",
            Self::InPrompt { source, .. } => source.python_type(),
            Self::BadRangeValue { .. } | Self::BadThenOption { .. } => "ValueError",
        }
    }
}

/// What shift-attention is asked to render.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShiftRequest {
    /// The prompt, with ranges and `THEN` segments.
    pub prompt: String,
    /// The negative prompt, likewise.
    pub negative_prompt: String,
    /// Intervals per segment (each segment renders `steps + 1` frames).
    pub steps: i64,
    /// The (fixed) seed of the first segment.
    pub seed: i64,
    /// The CFG scale of the first segment.
    pub cfg_scale: f64,
    /// "Remove Zero strength tags": drop `(tag:0)` / `(tag:0.0)` groups from each frame's prompts.
    pub remove_zero_strength: bool,
}

/// The parameters of one rendered frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShiftFrame {
    /// The prompt, ranges replaced.
    pub prompt: String,
    /// The negative prompt, ranges replaced.
    pub negative_prompt: String,
    /// Seed.
    pub seed: i64,
    /// Variation seed (the seed this segment travels to).
    pub subseed: i64,
    /// Variation strength: the frame's distance in its segment.
    pub subseed_strength: f64,
    /// CFG scale.
    pub cfg_scale: f64,
}

/// How a segment's CFG scale behaves.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum SegmentCfg {
    /// `cfg=` given: `from·(1−d) + to·d`.
    Travel {
        /// The segment's base CFG.
        from: f64,
        /// The `cfg=` value.
        to: f64,
    },
    /// No `cfg=`: the scale of the last frame rendered before this segment.
    Hold(f64),
}

impl SegmentCfg {
    fn at(self, distance: f64) -> f64 {
        match self {
            Self::Travel { from, to } => from * (1.0 - distance) + to * distance,
            Self::Hold(cfg) => cfg,
        }
    }
}

/// One segment, ready to render at any distance.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Position of the segment (0-based).
    pub index: usize,
    /// Seed of every frame.
    pub seed: i64,
    /// Variation seed of every frame.
    pub subseed: i64,
    /// CFG behaviour.
    pub cfg: SegmentCfg,
    /// Whether the `cfg=` value becomes the next segment's base (see [`ShiftPlanner`]).
    carries_cfg: bool,
    prompt: RangedText,
    negative: RangedText,
    prompt_offset: usize,
    negative_offset: usize,
    remove_zero_strength: bool,
}

impl Segment {
    /// A regular frame at `distance` (0 to 1).
    pub fn frame(&self, distance: f64) -> Result<ShiftFrame, ShiftError> {
        let mut frame = self.gap_frame(distance)?;
        if self.remove_zero_strength {
            frame.prompt = remove_zero_strength(&frame.prompt);
            frame.negative_prompt = remove_zero_strength(&frame.negative_prompt);
        }
        Ok(frame)
    }

    /// A frame added by gap filling at `distance`. shift-attention does not apply "remove zero
    /// strength" to these, and neither does Keyshift (same text, same image).
    pub fn gap_frame(&self, distance: f64) -> Result<ShiftFrame, ShiftError> {
        let prompt = self
            .prompt
            .at(distance)
            .map_err(|e| e.in_prompt(PromptField::Positive, self.prompt_offset))?;
        let negative_prompt = self
            .negative
            .at(distance)
            .map_err(|e| e.in_prompt(PromptField::Negative, self.negative_offset))?;
        Ok(ShiftFrame {
            prompt,
            negative_prompt,
            seed: self.seed,
            subseed: self.subseed,
            subseed_strength: distance,
            cfg_scale: self.cfg.at(distance),
        })
    }
}

/// The distances of a segment's regular frames: `i / steps` for `i = 0..=steps`.
pub fn base_distances(steps: i64) -> Vec<f64> {
    #[allow(clippy::cast_precision_loss)]
    (0..=steps).map(|i| i as f64 / steps as f64).collect()
}

/// Hands out the segments of a request in order, carrying seed and CFG from one to the next.
#[derive(Clone, Debug)]
pub struct ShiftPlanner {
    specs: std::vec::IntoIter<SegmentSpec>,
    steps: i64,
    fidelity: Fidelity,
    remove_zero_strength: bool,
    index: usize,
    prompt: SegmentText,
    negative: SegmentText,
    seed: i64,
    subseed: i64,
    cfg_base: f64,
    cfg_current: f64,
}

impl ShiftPlanner {
    /// Splits the request into segments. `THEN` option errors are reported here.
    pub fn new(request: &ShiftRequest, fidelity: Fidelity) -> Result<Self, ShiftError> {
        let specs = split_segments(&request.prompt, &request.negative_prompt, fidelity)?;
        Ok(Self {
            specs: specs.into_iter(),
            steps: request.steps,
            fidelity,
            remove_zero_strength: request.remove_zero_strength,
            index: 0,
            prompt: SegmentText {
                text: request.prompt.clone(),
                offset: 0,
            },
            negative: SegmentText {
                text: request.negative_prompt.clone(),
                offset: 0,
            },
            seed: request.seed,
            subseed: request.seed,
            cfg_base: request.cfg_scale,
            cfg_current: request.cfg_scale,
        })
    }

    /// The next segment, or `None` when the sequence ends (no more segments, or one whose
    /// positive and negative texts are both empty).
    pub fn next_segment(&mut self) -> Result<Option<Segment>, ShiftError> {
        let Some(spec) = self.specs.next() else {
            return Ok(None);
        };
        let has_prompt = update_text(&mut self.prompt, spec.prompt.as_ref());
        let has_negative = update_text(&mut self.negative, spec.negative.as_ref());
        if let Some(seed) = self.usable_seed(spec.seed) {
            self.subseed = seed;
        }
        if !has_prompt && !has_negative {
            self.specs = Vec::new().into_iter();
            return Ok(None);
        }
        if self.steps == 0 {
            return Err(ShiftError::ZeroSteps);
        }
        let segment = self.segment(spec.cfg)?;
        self.index += 1;
        Ok(Some(segment))
    }

    fn usable_seed(&self, seed: Option<i64>) -> Option<i64> {
        match self.fidelity {
            Fidelity::Keyshift => seed,
            Fidelity::Original => seed.filter(|&s| s != 0),
        }
    }

    fn segment(&self, new_cfg: Option<f64>) -> Result<Segment, ShiftError> {
        let ranged = |t: &SegmentText, field| {
            RangedText::new(&t.text, self.fidelity).map_err(|e| e.in_prompt(field, t.offset))
        };
        let cfg = match new_cfg {
            Some(to) => SegmentCfg::Travel {
                from: self.cfg_base,
                to,
            },
            None => SegmentCfg::Hold(self.cfg_current),
        };
        let carries_cfg = match (self.fidelity, new_cfg) {
            (Fidelity::Keyshift, Some(_)) => true,
            (Fidelity::Original, Some(to)) => to != 0.0,
            (_, None) => false,
        };
        Ok(Segment {
            index: self.index,
            seed: self.seed,
            subseed: self.subseed,
            cfg,
            carries_cfg,
            prompt: ranged(&self.prompt, PromptField::Positive)?,
            negative: ranged(&self.negative, PromptField::Negative)?,
            prompt_offset: self.prompt.offset,
            negative_offset: self.negative.offset,
            remove_zero_strength: self.remove_zero_strength,
        })
    }

    /// Ends `segment`: the next one starts from its variation seed and (when `cfg=` was given)
    /// its CFG. `last_rendered` is the distance of the segment's last rendered frame (with gap
    /// filling, not necessarily 1): a following segment without `cfg=` keeps that frame's CFG.
    pub fn finish_segment(&mut self, segment: &Segment, last_rendered: Option<f64>) {
        self.seed = self.subseed;
        if let Some(d) = last_rendered {
            self.cfg_current = segment.cfg.at(d);
        }
        if let SegmentCfg::Travel { to, .. } = segment.cfg
            && segment.carries_cfg
        {
            self.cfg_base = to;
        }
    }

    /// Intervals per segment.
    pub fn steps(&self) -> i64 {
        self.steps
    }
}

/// Replaces the current text (and its offset) when the segment has a non-empty one; returns
/// whether it had.
fn update_text(current: &mut SegmentText, new: Option<&SegmentText>) -> bool {
    match new {
        Some(new) if !new.text.is_empty() => {
            current.clone_from(new);
            true
        }
        _ => false,
    }
}

/// shift-attention's "remove zero strength" rule: deletes every `(name:0)` or `(name:0.0)`
/// whose name has only ASCII letters, digits, whitespace, `,`, `_` and `-`, with one following
/// whitespace character and one comma.
pub fn remove_zero_strength(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match zero_group_end(&chars, i) {
            Some(end) => i = end,
            None => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn zero_group_end(chars: &[char], start: usize) -> Option<usize> {
    if chars.get(start) != Some(&'(') {
        return None;
    }
    let name_ok = |c: char| {
        c.is_ascii_alphabetic()
            || matches!(c, ',' | '_' | '-')
            || py::is_space(c)
            || py::decimal_value(c).is_some()
    };
    let mut i = start + 1;
    while chars.get(i).is_some_and(|&c| name_ok(c)) {
        i += 1;
    }
    let rest = chars.get(i..)?;
    let close = if rest.starts_with(&[':', '0', '.', '0', ')']) {
        i + 5
    } else if rest.starts_with(&[':', '0', ')']) {
        i + 3
    } else {
        return None;
    };
    let mut end = close;
    if chars.get(end).is_some_and(|&c| py::is_space(c)) {
        end += 1;
    }
    if chars.get(end) == Some(&',') {
        end += 1;
    }
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_strength_rule_matches_shift_attention() {
        let text =
            "(tag:0), (tag2:0.0) , (tag3:-0.0), (tag4:0.00), (my-tag:0.0), (tag.x:0), [t:0], x";
        assert_eq!(
            remove_zero_strength(text),
            "  (tag3:-0.0), (tag4:0.00),  (tag.x:0), [t:0], x"
        );
    }

    fn request(prompt: &str, steps: i64) -> ShiftRequest {
        ShiftRequest {
            prompt: prompt.into(),
            negative_prompt: String::new(),
            steps,
            seed: 100,
            cfg_scale: 7.0,
            remove_zero_strength: false,
        }
    }

    #[test]
    fn seed_and_cfg_travel() {
        let req = request("(a:1~0) THEN(seed=7,cfg=9) b", 2);
        let Ok(mut planner) = ShiftPlanner::new(&req, Fidelity::Keyshift) else {
            panic!("plans");
        };
        let Ok(Some(first)) = planner.next_segment() else {
            panic!("first segment");
        };
        let mid = first.frame(0.5);
        assert_eq!(
            mid.map(|f| (f.prompt, f.seed, f.subseed, f.cfg_scale)),
            Ok(("(a:0.5)".into(), 100, 7, 8.0))
        );
        planner.finish_segment(&first, Some(1.0));
        let Ok(Some(second)) = planner.next_segment() else {
            panic!("second segment");
        };
        assert_eq!((second.seed, second.subseed), (7, 7));
        assert_eq!(second.cfg, SegmentCfg::Hold(9.0));
        assert_eq!(planner.next_segment(), Ok(None));
    }

    #[test]
    fn range_errors_point_into_the_prompt() {
        let req = request("a THEN (cat:1~~2)", 2);
        let mut planner = ShiftPlanner::new(&req, Fidelity::Keyshift);
        let first = planner.as_mut().map(ShiftPlanner::next_segment);
        assert!(matches!(first, Ok(Ok(Some(_)))));
        let second = planner.map(|mut p| p.next_segment());
        assert_eq!(
            second,
            Ok(Err(ShiftError::InPrompt {
                field: PromptField::Positive,
                source: Box::new(ShiftError::BadRangeValue {
                    position: 14,
                    value: String::new()
                })
            }))
        );
    }
}
