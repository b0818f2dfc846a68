//! A whole shift-attention run: segments in order, each with its regular frames and then gap
//! filling, then mirroring; plus the generation log and info file shift-attention writes.
//!
//! Rendering is abstracted away: a frame is its parameters, and the similarity of two frames is
//! the injected function (the real SSIM of the rendered images in the app, a declared function of
//! the distances in the conformance cases).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{GapFiller, GapSettings, GapStats, GapStep, Segment, ShiftError, ShiftFrame};
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

/// The state of a run in progress.
struct Runner<'s, S> {
    settings: RunSettings,
    fidelity: Fidelity,
    similarity: &'s mut S,
    frames: Vec<RunFrame>,
    calls: Vec<RunFrame>,
    log: Vec<RunFrame>,
    gap_stats: Option<GapStats>,
}

/// Runs `request` the way shift-attention's script does.
pub fn run<S: FnMut(&ShiftFrame, &ShiftFrame) -> f64>(
    request: &ShiftRequest,
    settings: RunSettings,
    fidelity: Fidelity,
    similarity: &mut S,
) -> Result<ShiftRun, RunFailure> {
    let mut runner = Runner {
        settings,
        fidelity,
        similarity,
        frames: Vec::new(),
        calls: Vec::new(),
        log: Vec::new(),
        gap_stats: None,
    };
    match runner.segments(request) {
        Ok(()) => runner.finish(request),
        Err(error) => Err(RunFailure {
            error: RunError::Shift(error),
            generated: runner.calls,
        }),
    }
}

impl<S: FnMut(&ShiftFrame, &ShiftFrame) -> f64> Runner<'_, S> {
    fn segments(&mut self, request: &ShiftRequest) -> Result<(), ShiftError> {
        let mut planner = ShiftPlanner::new(request, self.fidelity)?;
        while let Some(segment) = planner.next_segment()? {
            let last = self.segment(&segment, planner.steps())?;
            planner.finish_segment(&segment, last);
        }
        Ok(())
    }

    /// Renders one segment; returns the distance of its last render.
    fn segment(&mut self, segment: &Segment, steps: i64) -> Result<Option<f64>, ShiftError> {
        let log_start = self.log.len();
        let mut frames = Vec::new();
        let mut last = None;
        for distance in base_distances(steps) {
            let frame = self.render(segment.frame(distance))?;
            self.log.push(frame.clone());
            frames.push((distance, frame));
            last = Some(distance);
        }
        if self.settings.gap.threshold > 0.0 {
            let (filled, gap_last) = self.fill_gaps(segment, frames, log_start)?;
            frames = filled;
            last = gap_last.or(last);
        }
        self.frames.extend(frames.into_iter().map(|(_, f)| f));
        Ok(last)
    }

    fn render(&mut self, frame: Result<ShiftFrame, ShiftError>) -> Result<RunFrame, ShiftError> {
        let frame = RunFrame {
            frame: frame?,
            generation_index: self.calls.len(),
        };
        self.calls.push(frame.clone());
        Ok(frame)
    }

    /// Gap filling of one segment; returns its frames and the distance of its last render.
    fn fill_gaps(
        &mut self,
        segment: &Segment,
        frames: Vec<(f64, RunFrame)>,
        log_start: usize,
    ) -> Result<(SegmentFrames, Option<f64>), ShiftError> {
        let mut filler = GapFiller::new(self.settings.gap, frames);
        let mut last = None;
        loop {
            let similarity = &mut *self.similarity;
            let mut sim = |a: &RunFrame, b: &RunFrame| similarity(&a.frame, &b.frame);
            let GapStep::Render { distance } = filler.next(&mut sim) else {
                break;
            };
            let frame = self.render(segment.gap_frame(distance))?;
            last = Some(distance);
            let similarity = &mut *self.similarity;
            let mut sim = |a: &RunFrame, b: &RunFrame| similarity(&a.frame, &b.frame);
            if let Some(at) = filler.add_rendered(frame.clone(), &mut sim) {
                self.log_insert(at, log_start, frame);
            }
        }
        self.gap_stats = Some(filler.stats());
        Ok((filler.into_frames(), last))
    }

    /// shift-attention inserts a gap frame's log entry at its index within the segment, counted
    /// from the start of the whole log; Keyshift puts it where the frame is.
    fn log_insert(&mut self, index_in_segment: usize, log_start: usize, frame: RunFrame) {
        let at = match self.fidelity {
            Fidelity::Original => index_in_segment,
            Fidelity::Keyshift => log_start + index_in_segment,
        };
        self.log.insert(at.min(self.log.len()), frame);
    }

    fn finish(mut self, request: &ShiftRequest) -> Result<ShiftRun, RunFailure> {
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
            .map_or(request.cfg_scale, |f| f.frame.cfg_scale);
        Ok(ShiftRun {
            frames: self.frames,
            generation_calls: self.calls,
            log: self.log,
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
