//! A whole shift-attention run: segments in order, each with its regular frames and then gap
//! filling, then mirroring; plus the generation log and info file shift-attention writes.
//!
//! Rendering is abstracted away: a frame is its parameters, and the similarity of two frames is
//! the injected function (the real SSIM of the rendered images in the app, a declared function of
//! the distances in the conformance cases).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::gapped::Gapped;
use super::{
    GapFiller, GapSettings, GapStats, GapStep, Segment, ShiftError, ShiftFrame, SsimPoint,
};
use super::{ShiftPlanner, ShiftRequest, base_distances};
use crate::prompt::{Fidelity, python_repr};

/// Options of a run besides the request.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// SSIM gap filling (threshold 0: off).
    pub gap: GapSettings,
    /// Play the frames forward, then backward.
    pub mirror: bool,
    /// Video frame rate (shift-attention: 0 means no video; negative means a length in seconds).
    /// Only whether it is 0 matters here.
    pub video_fps: f64,
}

/// A frame and its position in the order of generation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunFrame {
    /// The frame's parameters.
    #[serde(flatten)]
    pub frame: ShiftFrame,
    /// 0-based position in the order of generation.
    pub generation_index: usize,
}

/// The result of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct ShiftRun {
    /// The frames in final order (after gap filling and mirroring).
    pub frames: Vec<RunFrame>,
    /// Every render, in the order of generation (including gap-filling renders that were dropped).
    pub generation_calls: Vec<RunFrame>,
    /// The entries of the info file's generation log, in its order.
    pub log: Vec<RunFrame>,
    /// Gap-filling counters of the last segment, when gap filling ran.
    pub gap_stats: Option<GapStats>,
    /// The CFG scale of the last render (the request's when nothing was rendered).
    pub last_cfg_scale: f64,
}

/// Why a run stopped.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RunError {
    /// The request is invalid.
    #[error(transparent)]
    Shift(#[from] ShiftError),
    /// shift-attention (fidelity `Original` only): with FPS 0 and nothing rendered, its output
    /// folder does not exist when it writes the info file.
    #[error("nothing was rendered and there is no output folder (FileNotFoundError)")]
    NoOutputFolder,
    /// shift-attention (fidelity `Original` only): gap filling is on but no segment ran, so its
    /// counters are undefined when it writes the info file.
    #[error("gap-filling counters are undefined (UnboundLocalError)")]
    NoGapStats,
}

impl RunError {
    /// The Python exception shift-attention raises.
    pub fn python_type(&self) -> &'static str {
        match self {
            Self::Shift(e) => e.python_type(),
            Self::NoOutputFolder => "FileNotFoundError",
            Self::NoGapStats => "UnboundLocalError",
        }
    }
}

/// A failed run: the error and the renders done before it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunFailure {
    /// What went wrong.
    pub error: RunError,
    /// Renders done before the error, in order.
    pub generated: Vec<RunFrame>,
}

/// A segment's frames with their distances.
type SegmentFrames = Vec<(f64, RunFrame)>;

/// What a [`ShiftSequence`] wants next.
#[derive(Clone, Debug, PartialEq)]
pub enum ShiftStep {
    /// Render this frame, then call [`ShiftSequence::next`] again (the similarity function must
    /// know the frame by then: gap filling compares it with its neighbours).
    Render(RunFrame),
    /// Every frame is rendered: call [`ShiftSequence::finish`].
    Done,
}

/// Where a sequence is.
#[derive(Debug)]
enum Phase {
    /// Between segments.
    Start,
    /// Rendering a segment's regular frames.
    Base {
        segment: Box<Segment>,
        distances: std::vec::IntoIter<f64>,
        frames: SegmentFrames,
        log_start: usize,
        last: Option<f64>,
    },
    /// Filling a segment's gaps; `pending` is the frame handed out for rendering.
    Gaps {
        segment: Box<Segment>,
        filler: Box<GapFiller<RunFrame>>,
        log_start: usize,
        last: Option<f64>,
        pending: Option<RunFrame>,
    },
    /// Every segment is done.
    Finished,
}

/// A shift-attention run as a state machine: it hands out one frame at a time and asks for the
/// similarity of rendered frames when gap filling needs it, so a renderer can drive it a frame
/// at a time (and the browser can yield between frames). [`run`] drives it in one go.
#[derive(Debug)]
pub struct ShiftSequence {
    settings: RunSettings,
    fidelity: Fidelity,
    cfg_scale: f64,
    planner: ShiftPlanner,
    phase: Phase,
    frames: Vec<RunFrame>,
    calls: Vec<RunFrame>,
    log: Gapped<RunFrame>,
    gap_stats: Option<GapStats>,
    points: Vec<SsimPoint>,
    segment_first: usize,
}

impl ShiftSequence {
    /// Plans `request`; `THEN` option errors are reported here.
    pub fn new(
        request: &ShiftRequest,
        settings: RunSettings,
        fidelity: Fidelity,
    ) -> Result<Self, ShiftError> {
        Ok(Self {
            settings,
            fidelity,
            cfg_scale: request.cfg_scale,
            planner: ShiftPlanner::new(request, fidelity)?,
            phase: Phase::Start,
            frames: Vec::new(),
            calls: Vec::new(),
            log: Gapped::default(),
            gap_stats: None,
            points: Vec::new(),
            segment_first: 0,
        })
    }

    /// The next frame to render, or [`ShiftStep::Done`]. `similarity` compares two rendered
    /// frames (known by their `generation_index`).
    pub fn next(
        &mut self,
        similarity: &mut dyn FnMut(&RunFrame, &RunFrame) -> f64,
    ) -> Result<ShiftStep, ShiftError> {
        loop {
            match std::mem::replace(&mut self.phase, Phase::Finished) {
                Phase::Start => self.start_segment()?,
                Phase::Base {
                    segment,
                    mut distances,
                    mut frames,
                    log_start,
                    last,
                } => match distances.next() {
                    Some(distance) => {
                        let frame = self.render(segment.frame(distance))?;
                        self.log.push(frame.clone());
                        frames.push((distance, frame.clone()));
                        self.phase = Phase::Base {
                            segment,
                            distances,
                            frames,
                            log_start,
                            last: Some(distance),
                        };
                        return Ok(ShiftStep::Render(frame));
                    }
                    None => self.end_base(segment, frames, log_start, last),
                },
                Phase::Gaps {
                    segment,
                    mut filler,
                    log_start,
                    mut last,
                    pending,
                } => {
                    if let Some(frame) = pending
                        && let Some(at) =
                            filler.add_rendered(frame.clone(), &mut |a, b| similarity(a, b))
                    {
                        self.log_insert(at, log_start, frame);
                    }
                    let mut sim = |a: &RunFrame, b: &RunFrame| similarity(a, b);
                    match filler.next(&mut sim) {
                        GapStep::Render { distance } => {
                            let frame = self.render(segment.gap_frame(distance))?;
                            last = Some(distance);
                            self.phase = Phase::Gaps {
                                segment,
                                filler,
                                log_start,
                                last,
                                pending: Some(frame.clone()),
                            };
                            return Ok(ShiftStep::Render(frame));
                        }
                        GapStep::Done => {
                            self.gap_stats = Some(filler.stats());
                            self.points.extend(filler.points());
                            let frames = filler.into_frames();
                            self.end_segment(&segment, frames, last);
                        }
                    }
                }
                Phase::Finished => return Ok(ShiftStep::Done),
            }
        }
    }

    fn start_segment(&mut self) -> Result<(), ShiftError> {
        if let Some(segment) = self.planner.next_segment()? {
            self.segment_first = self.calls.len();
            let distances = base_distances(self.planner.steps());
            self.phase = Phase::Base {
                segment: Box::new(segment),
                distances: distances.into_iter(),
                frames: Vec::new(),
                log_start: self.log.len(),
                last: None,
            };
        }
        Ok(())
    }

    fn end_base(
        &mut self,
        segment: Box<Segment>,
        frames: SegmentFrames,
        log_start: usize,
        last: Option<f64>,
    ) {
        if self.settings.gap.threshold > 0.0 {
            self.phase = Phase::Gaps {
                segment,
                filler: Box::new(GapFiller::new(self.settings.gap, frames)),
                log_start,
                last,
                pending: None,
            };
        } else {
            self.end_segment(&segment, frames, last);
        }
    }

    fn end_segment(&mut self, segment: &Segment, frames: SegmentFrames, last: Option<f64>) {
        self.frames.extend(frames.into_iter().map(|(_, f)| f));
        self.planner.finish_segment(segment, last);
        self.phase = Phase::Start;
    }

    fn render(&mut self, frame: Result<ShiftFrame, ShiftError>) -> Result<RunFrame, ShiftError> {
        let frame = RunFrame {
            frame: frame?,
            generation_index: self.calls.len(),
        };
        self.calls.push(frame.clone());
        Ok(frame)
    }

    /// shift-attention inserts a gap frame's log entry at its index within the segment, counted
    /// from the start of the whole log; Keyshift puts it where the frame is.
    fn log_insert(&mut self, index_in_segment: usize, log_start: usize, frame: RunFrame) {
        let at = match self.fidelity {
            Fidelity::Original => index_in_segment,
            Fidelity::Keyshift => log_start + index_in_segment,
        };
        self.log.insert(at, frame);
    }

    /// Frames [`ShiftSequence::next`] will hand out next without asking for any similarity:
    /// the rest of the current segment's evenly spaced frames (0 outside them).
    pub fn base_frames_left(&self) -> usize {
        match &self.phase {
            Phase::Base { distances, .. } => distances.len(),
            _ => 0,
        }
    }

    /// Every render handed out so far, in order.
    pub fn generated(&self) -> &[RunFrame] {
        &self.calls
    }

    /// The generation index of the current segment's first frame: similarity is only asked of
    /// frames from there on.
    pub fn segment_first(&self) -> usize {
        self.segment_first
    }

    /// The similarities gap filling measured, for the scatter plot.
    pub fn ssim_points(&self) -> &[SsimPoint] {
        &self.points
    }

    /// Ends the run: mirroring and the final frame order.
    pub fn finish(mut self) -> Result<ShiftRun, RunFailure> {
        if self.settings.mirror {
            self.mirror();
            if self.fidelity == Fidelity::Original && self.settings.video_fps != 0.0 {
                self.mirror();
            }
        }
        if let Some(error) = self.original_failure() {
            return Err(RunFailure {
                error,
                generated: self.calls,
            });
        }
        let last_cfg_scale = self
            .calls
            .last()
            .map_or(self.cfg_scale, |f| f.frame.cfg_scale);
        Ok(ShiftRun {
            frames: self.frames,
            generation_calls: self.calls,
            log: self.log.into_vec(),
            gap_stats: self.gap_stats,
            last_cfg_scale,
        })
    }

    fn mirror(&mut self) {
        let reversed: Vec<RunFrame> = self.frames.iter().rev().cloned().collect();
        self.frames.extend(reversed);
    }

    /// The crashes of shift-attention's info-file writing that Keyshift does not reproduce.
    fn original_failure(&self) -> Option<RunError> {
        if self.fidelity != Fidelity::Original {
            return None;
        }
        if self.settings.gap.threshold != 0.0 && self.gap_stats.is_none() {
            return Some(RunError::NoGapStats);
        }
        if self.settings.video_fps == 0.0 && self.calls.is_empty() {
            return Some(RunError::NoOutputFolder);
        }
        None
    }
}

/// Runs `request` the way shift-attention's script does, with an injected similarity.
pub fn run<S: FnMut(&ShiftFrame, &ShiftFrame) -> f64>(
    request: &ShiftRequest,
    settings: RunSettings,
    fidelity: Fidelity,
    similarity: &mut S,
) -> Result<ShiftRun, RunFailure> {
    let mut sequence = ShiftSequence::new(request, settings, fidelity).map_err(|e| RunFailure {
        error: RunError::Shift(e),
        generated: Vec::new(),
    })?;
    let mut sim = |a: &RunFrame, b: &RunFrame| similarity(&a.frame, &b.frame);
    loop {
        match sequence.next(&mut sim) {
            Ok(ShiftStep::Render(_)) => {}
            Ok(ShiftStep::Done) => return sequence.finish(),
            Err(error) => {
                return Err(RunFailure {
                    error: RunError::Shift(error),
                    generated: sequence.calls,
                });
            }
        }
    }
}

/// The settings shift-attention echoes at the top of its info file, as Python prints them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoHeader {
    /// The prompt as entered.
    pub prompt: String,
    /// The negative prompt as entered.
    pub negative_prompt: String,
    /// Image width.
    pub width: String,
    /// Image height.
    pub height: String,
    /// Sampler name.
    pub sampler: String,
    /// Sampling steps.
    pub sampling_steps: String,
    /// The request's seed.
    pub seed: String,
    /// shift-attention steps.
    pub steps: String,
    /// FPS.
    pub fps: String,
    /// Lead in/out.
    pub lead_inout: String,
    /// SSIM threshold.
    pub ssim_threshold: String,
    /// SSIM centre crop.
    pub ssim_ccrop: String,
    /// RIFE passes.
    pub rife_passes: String,
    /// Drop original frames.
    pub rife_drop: String,
    /// Upscaler name.
    pub upscaler: String,
    /// Upscale ratio.
    pub upscale_ratio: String,
    /// SSIM minimum step.
    pub ssim_min_step: String,
    /// SSIM min threshold (percent).
    pub ssim_min_threshold: String,
}

/// The info file shift-attention writes ("Save extra status information").
pub fn info_text(header: &InfoHeader, run: &ShiftRun) -> String {
    let h = header;
    let mut out = format!(
        "Prompt:\n{}\nNegative prompt:\n{}\n\nWidth: {}\nHeight: {}\nSampler: {}\nSteps: {}\n\
         CFG scale: {}\nSeed: {}\n- Shift Attention settings ------------\nSteps: {}\nFPS: {}\n\
         Lead in/out: {}\nSSIM threshold: {}\nSSIM CenterCrop%: {}\nRIFE passes: {}\n\
         Drop original frames: {}\nUpscaler: {}\nUpscale ratio: {}\nSSIM min substep: {}\n\
         SSIM min threshold: {}\n---------------------------------------\n",
        h.prompt,
        h.negative_prompt,
        h.width,
        h.height,
        h.sampler,
        h.sampling_steps,
        python_repr(run.last_cfg_scale),
        h.seed,
        h.steps,
        h.fps,
        h.lead_inout,
        h.ssim_threshold,
        h.ssim_ccrop,
        h.rife_passes,
        h.rife_drop,
        h.upscaler,
        h.upscale_ratio,
        h.ssim_min_step,
        h.ssim_min_threshold,
    );
    if let Some(stats) = run.gap_stats {
        out.push_str(&format!(
            "Stats: Skip count: {} Worst: {} No improvment: {} Min. step: 1.0\n",
            stats.skip_count,
            python_repr(stats.worst_skipped),
            stats.not_better
        ));
    }
    out.push_str(&format!(
        "Frames: {}\n\n- Generation log ----------------------\n",
        run.frames.len()
    ));
    for (i, entry) in run.log.iter().enumerate() {
        out.push_str(&log_entry(i, entry));
    }
    out
}

fn log_entry(i: usize, entry: &RunFrame) -> String {
    let f = &entry.frame;
    let seeds = if f.seed == f.subseed {
        f.seed.to_string()
    } else {
        format!(
            "{} ({} {})",
            f.seed,
            f.subseed,
            python_repr(f.subseed_strength)
        )
    };
    format!(
        "\n--- Frame: {i:05} Image: {:05} Seed: {seeds} CFG: {}\n+ {}\n- {}\n",
        entry.generation_index,
        python_repr(f.cfg_scale),
        f.prompt,
        f.negative_prompt
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(prompt: &str) -> ShiftRequest {
        ShiftRequest {
            prompt: prompt.into(),
            negative_prompt: String::new(),
            steps: 2,
            seed: 100,
            cfg_scale: 7.0,
            remove_zero_strength: false,
        }
    }

    fn settings(mirror: bool, video_fps: f64) -> RunSettings {
        RunSettings {
            gap: GapSettings::default(),
            mirror,
            video_fps,
        }
    }

    fn no_similarity(_: &ShiftFrame, _: &ShiftFrame) -> f64 {
        1.0
    }

    #[test]
    fn boundary_frames_are_duplicated() {
        let run = run(
            &request("(a:1~0) THEN (b:0~1)"),
            settings(false, 0.0),
            Fidelity::Keyshift,
            &mut no_similarity,
        );
        let prompts: Vec<String> = run
            .map(|r| r.frames.into_iter().map(|f| f.frame.prompt).collect())
            .unwrap_or_default();
        assert_eq!(
            prompts,
            [
                "(a:1.0)", "(a:0.5)", "(a:0.0)", "(b:0.0)", "(b:0.5)", "(b:1.0)"
            ]
        );
    }

    #[test]
    fn mirror_once_unless_original_with_video() {
        let count = |fidelity, fps| {
            run(
                &request("(a:1~0)"),
                settings(true, fps),
                fidelity,
                &mut no_similarity,
            )
            .map(|r| r.frames.len())
        };
        assert_eq!(count(Fidelity::Keyshift, 30.0), Ok(6));
        assert_eq!(count(Fidelity::Original, 0.0), Ok(6));
        assert_eq!(count(Fidelity::Original, 30.0), Ok(12));
    }

    #[test]
    fn the_sequence_asks_only_for_frames_of_the_current_segment_already_handed_out() {
        let request = request("(a:1~0) THEN(seed=5) (b:0~1)");
        let settings = RunSettings {
            gap: GapSettings {
                threshold: 0.9,
                min_step: 0.1,
                min_threshold_pct: 75.0,
            },
            mirror: false,
            video_fps: 0.0,
        };
        let Ok(mut sequence) = ShiftSequence::new(&request, settings, Fidelity::Keyshift) else {
            panic!("plans");
        };
        let mut handed_out: Vec<f64> = Vec::new();
        let mut firsts = Vec::new();
        loop {
            let first = sequence.segment_first();
            let known = handed_out.clone();
            let mut sim = |a: &RunFrame, b: &RunFrame| {
                for f in [a, b] {
                    assert!(f.generation_index < known.len(), "not rendered yet");
                    assert!(f.generation_index >= first, "from an earlier segment");
                }
                1.0 - (a.frame.subseed_strength - b.frame.subseed_strength).abs()
            };
            match sequence.next(&mut sim) {
                Ok(ShiftStep::Render(frame)) => {
                    assert_eq!(frame.generation_index, handed_out.len());
                    handed_out.push(frame.frame.subseed_strength);
                    firsts.push(sequence.segment_first());
                }
                Ok(ShiftStep::Done) => break,
                Err(e) => panic!("{e}"),
            }
        }
        let Ok(stepped) = sequence.finish() else {
            panic!("finishes");
        };
        let mut sim =
            |a: &ShiftFrame, b: &ShiftFrame| 1.0 - (a.subseed_strength - b.subseed_strength).abs();
        let whole = run(&request, settings, Fidelity::Keyshift, &mut sim);
        assert_eq!(whole.as_ref().map(|r| &r.frames), Ok(&stepped.frames));
        // Neighbours 0.125 apart are 0.875 similar (< 0.9): split down to sixteenths.
        assert_eq!(stepped.frames.len(), 2 * 17);
        assert_eq!(firsts.first(), Some(&0));
        assert_eq!(
            firsts.last(),
            Some(&17),
            "the second segment starts after the first's 17"
        );
    }

    #[test]
    fn empty_prompts_render_nothing() {
        let empty = run(
            &request(""),
            settings(false, 0.0),
            Fidelity::Keyshift,
            &mut no_similarity,
        );
        assert_eq!(empty.map(|r| r.frames.len()), Ok(0));
        let original = run(
            &request(""),
            settings(false, 0.0),
            Fidelity::Original,
            &mut no_similarity,
        );
        assert_eq!(original.map_err(|f| f.error), Err(RunError::NoOutputFolder));
    }
}
