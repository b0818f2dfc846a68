//! shift-attention as a render source: core's [`ShiftSequence`] hands out the frames, and the
//! SSIM of the rendered frames (as torchmetrics computes it) drives its gap filling.

use std::collections::BTreeMap;

use keyshift_core::image::{RgbImage, ssim};
use keyshift_core::parameters::sampler_name;
use keyshift_core::prompt::{Fidelity, python_repr};
use keyshift_core::shift::run::{
    InfoHeader, RunFrame, RunSettings, ShiftSequence, ShiftStep, info_text, run,
};
use keyshift_core::shift::{GapSettings, ShiftRequest};

use crate::RenderError;
use crate::manifest::FrameRecord;
use crate::source::{Finished, FrameSource, FrameSpec, RenderSettings};
use crate::svg::ssim_scatter_svg;

/// The info file's name.
pub const INFO_FILE: &str = "shift-attention-info.txt";
/// The SSIM scatter plot's name.
pub const SCATTER_FILE: &str = "ssim_scatter.svg";

/// shift-attention's options.
#[derive(Debug, Clone, PartialEq)]
pub struct ShiftOptions {
    /// Prompts, intervals per segment, seed, CFG, remove-zero-strength.
    pub request: ShiftRequest,
    /// SSIM gap filling (threshold 0: off).
    pub gap: GapSettings,
    /// Play forward then backward (once; the original's second mirror is a bug).
    pub mirror: bool,
    /// Video frame rate; negative: the video's length in seconds; 0: no video.
    pub fps: f64,
    /// Copies of the first and last frame at the start and end of the video.
    pub lead: usize,
}

impl ShiftOptions {
    /// The video's frame rate for `frames` frames (lead padding included, as the original counts
    /// them): `fps`, or `frames / |fps|` when negative; `None` for no video.
    pub fn video_fps(&self, frames: usize) -> Option<f64> {
        #[allow(clippy::cast_precision_loss, reason = "frame counts are small")]
        match self.fps {
            f if f > 0.0 => Some(f),
            f if f < 0.0 => Some(frames as f64 / f.abs()),
            _ => None,
        }
    }
}

/// The frames of a shift-attention render, gap filling included.
#[derive(Debug)]
pub struct ShiftSource {
    options: ShiftOptions,
    sequence: Option<ShiftSequence>,
    header: InfoHeader,
    regular_frames: usize,
    handed_out: usize,
    images: BTreeMap<usize, RgbImage>,
    similarities: BTreeMap<(usize, usize), f64>,
    missing: Option<usize>,
}

impl ShiftSource {
    /// Plans `options` (prompt errors are reported here, naming the prompt and position).
    pub fn new(options: ShiftOptions, settings: &RenderSettings) -> Result<Self, RenderError> {
        let plan_error = |e: &dyn std::fmt::Display| RenderError::Plan(e.to_string());
        let run_settings = RunSettings {
            gap: options.gap,
            mirror: options.mirror,
            video_fps: options.fps,
        };
        let sequence = ShiftSequence::new(&options.request, run_settings, Fidelity::Keyshift)
            .map_err(|e| plan_error(&e))?;
        let dry = RunSettings {
            gap: GapSettings::default(),
            ..run_settings
        };
        let regular = run(&options.request, dry, Fidelity::Keyshift, &mut |_, _| 1.0)
            .map_err(|f| plan_error(&f.error))?;
        Ok(Self {
            header: header(&options, settings),
            regular_frames: regular.generation_calls.len(),
            options,
            sequence: Some(sequence),
            handed_out: 0,
            images: BTreeMap::new(),
            similarities: BTreeMap::new(),
            missing: None,
        })
    }

    /// Frames without gap filling (known before rendering), and the video's frame count
    /// (mirrored, without lead).
    pub fn regular_frames(&self) -> usize {
        self.regular_frames
    }

    /// Every SSIM measured so far, by the generation indices of the two frames.
    pub fn similarities(&self) -> &BTreeMap<(usize, usize), f64> {
        &self.similarities
    }

    fn spec(frame: &RunFrame) -> FrameSpec {
        let f = &frame.frame;
        let mut extra = BTreeMap::new();
        extra.insert("distance".to_owned(), serde_json::json!(f.subseed_strength));
        FrameSpec {
            index: frame.generation_index,
            prompt: f.prompt.clone(),
            negative: f.negative_prompt.clone(),
            seed: a1111_seed(f.seed),
            subseed: a1111_seed(f.subseed),
            subseed_strength: f.subseed_strength,
            cfg: f.cfg_scale,
            init: None,
            extra,
            travel: None,
            direct: None,
            output_size: None,
            hint: None,
        }
    }
}

/// shift-attention's seeds are Python ints; the engine uses their low 32 bits (two's complement
/// for negative ones, as `seed & 0xffffffff`).
#[allow(clippy::cast_sign_loss, reason = "two's complement, low 32 bits")]
fn a1111_seed(seed: i64) -> u64 {
    seed as u64
}

impl FrameSource for ShiftSource {
    fn next_frame(&mut self) -> Result<Option<FrameSpec>, RenderError> {
        let Some(sequence) = self.sequence.as_mut() else {
            return Ok(None);
        };
        let images = &self.images;
        let cache = &mut self.similarities;
        let missing = &mut self.missing;
        let mut similarity = |a: &RunFrame, b: &RunFrame| {
            let key = (a.generation_index, b.generation_index);
            if let Some(&value) = cache.get(&key) {
                return value;
            }
            let (Some(x), Some(y)) = (images.get(&key.0), images.get(&key.1)) else {
                let absent = if images.contains_key(&key.0) {
                    key.1
                } else {
                    key.0
                };
                *missing = Some(absent);
                return 0.0;
            };
            let value = ssim(x, y).unwrap_or(0.0);
            cache.insert(key, value);
            value
        };
        let step = sequence
            .next(&mut similarity)
            .map_err(|e| RenderError::Plan(e.to_string()))?;
        if let Some(frame) = self.missing.take() {
            return Err(RenderError::Plan(format!(
                "frame {frame} was not rendered before its similarity was needed"
            )));
        }
        let first = sequence.segment_first();
        self.images.retain(|&k, _| k >= first);
        match step {
            ShiftStep::Render(frame) => {
                self.handed_out += 1;
                Ok(Some(Self::spec(&frame)))
            }
            ShiftStep::Done => Ok(None),
        }
    }

    fn frame_done(&mut self, record: &FrameRecord, image: &RgbImage) -> Result<(), RenderError> {
        if self.options.gap.threshold > 0.0 {
            self.images.insert(record.generation_index, image.clone());
        }
        Ok(())
    }

    fn ready_ahead(&self) -> usize {
        self.sequence
            .as_ref()
            .map_or(0, ShiftSequence::base_frames_left)
    }

    fn expected_frames(&self) -> usize {
        self.regular_frames.max(self.handed_out)
    }

    fn finish(&mut self) -> Result<Finished, RenderError> {
        let sequence = self.sequence.take().ok_or(RenderError::Finished)?;
        let points = sequence.ssim_points().to_vec();
        let run = sequence
            .finish()
            .map_err(|f| RenderError::Plan(f.error.to_string()))?;
        self.images.clear();
        let order: Vec<usize> = run.frames.iter().map(|f| f.generation_index).collect();
        let mut files = vec![(INFO_FILE.to_owned(), info_text(&self.header, &run))];
        if self.options.gap.threshold > 0.0 {
            let svg = ssim_scatter_svg(
                &points,
                self.options.gap.threshold,
                self.options.gap.min_step,
            );
            files.push((SCATTER_FILE.to_owned(), svg));
        }
        Ok(Finished {
            // Negative FPS is the length in seconds of the video, lead frames included.
            fps: self.options.video_fps(order.len() + 2 * self.options.lead),
            lead: self.options.lead,
            order,
            files,
        })
    }
}

/// The settings the info file echoes, written as shift-attention's Python writes them.
fn header(options: &ShiftOptions, settings: &RenderSettings) -> InfoHeader {
    let (sampler, schedule) = sampler_name(settings.sampler);
    let r = &options.request;
    InfoHeader {
        prompt: r.prompt.clone(),
        negative_prompt: r.negative_prompt.clone(),
        width: settings.width.to_string(),
        height: settings.height.to_string(),
        sampler: schedule.map_or_else(|| sampler.to_owned(), |s| format!("{sampler} {s}")),
        sampling_steps: settings.steps.to_string(),
        seed: r.seed.to_string(),
        steps: r.steps.to_string(),
        fps: python_repr(options.fps),
        lead_inout: options.lead.to_string(),
        ssim_threshold: python_repr(options.gap.threshold),
        ssim_ccrop: "0".to_owned(),
        rife_passes: "0".to_owned(),
        rife_drop: "False".to_owned(),
        upscaler: if settings.upscale == 1.0 {
            "None"
        } else {
            "Lanczos"
        }
        .to_owned(),
        upscale_ratio: python_repr(settings.upscale),
        ssim_min_step: python_repr(options.gap.min_step),
        ssim_min_threshold: python_repr(options.gap.min_threshold_pct),
    }
}
