//! A rendered Parseq document as a render source, rendered as Deforum's 2D animation renders a
//! Parseq manifest: the first frame is txt2img; each next diffused frame is img2img of the
//! previous image moved by the frame's `*_delta` motion (OpenCV's `warpPerspective` of `R·T`),
//! colour-matched in LAB to the first moved image, with the frame's contrast and seeded noise,
//! at denoise `1 − strength`; with a cadence above 1 the frames between diffused ones are the
//! kept images moved on and cross-faded ([`loop_steps`]).

use std::ops::Range;

use keyshift_core::export::Crc32;
use keyshift_core::image::{
    Border, RgbImage, add_noise, contrast, cross_fade, lanczos_resize, match_colours_lab,
    warp_perspective,
};
use keyshift_core::parseq::document::{Document, number_json};
use keyshift_core::parseq::loopback::{DeforumFrame, LoopStep, loop_steps};
use keyshift_core::parseq::render::render;
use keyshift_core::schedule::StrengthRule;
use keyshift_sd::generate::InitImage;
use serde_json::{Map, Value, json};

use crate::RenderError;
use crate::manifest::{FrameRecord, OVERRIDES};
use crate::source::{Finished, FrameSource, FrameSpec, RenderSettings};

/// How a Parseq document is rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseqOptions {
    /// Every output frame of the document, as Deforum reads it.
    pub frames: Vec<DeforumFrame>,
    /// Which output frames to render (positions in `frames`); the first is txt2img.
    pub range: Range<usize>,
    /// Diffuse every `cadence`-th frame (1: every frame).
    pub cadence: usize,
    /// What the motion reveals at the edges.
    pub border: Border,
    /// Match every moved image's LAB histograms to the first one's (Deforum's default colour
    /// coherence).
    pub colour_coherence: bool,
    /// The prompt and negative prompt when the document does not manage prompts.
    pub fallback: (String, String),
    /// The seed of frames whose seed is unmanaged or −1 (random): `base_seed + frame`, so that
    /// a render is repeatable.
    pub base_seed: u64,
    /// Output frames per second.
    pub fps: f64,
}

impl ParseqOptions {
    /// Every frame of `doc` (rendered by the sequencer) with the document's cadence and FPS,
    /// replicated borders, LAB colour coherence, and a base seed made from the document's text
    /// (so that random seeds repeat from one render of the same document to the next).
    pub fn for_document(doc: &Document) -> Result<Self, RenderError> {
        let (_, rendered) = render(doc).map_err(|e| RenderError::Plan(e.to_string()))?;
        let frames = DeforumFrame::all(&rendered);
        let option = |name: &str| doc.option(name).and_then(Value::as_f64);
        let cadence = option("cadence").filter(|c| c.is_finite() && *c >= 1.0);
        let text = doc.to_json().to_string();
        Ok(Self {
            range: 0..frames.len(),
            frames,
            cadence: cadence.map_or(1, |c| c.round().min(1000.0) as usize),
            border: Border::Replicate,
            colour_coherence: true,
            fallback: (String::new(), String::new()),
            base_seed: u64::from(Crc32::of(text.as_bytes())),
            fps: option("output_fps").filter(|f| *f > 0.0).unwrap_or(20.0),
        })
    }
}

/// What was handed out last and waits for its image.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pending {
    Diffuse { seed: u64 },
    Tween,
}

/// The Parseq render source.
#[derive(Debug)]
pub struct ParseqSource {
    options: ParseqOptions,
    steps: Vec<LoopStep>,
    cursor: usize,
    size: (usize, usize),
    sampling_steps: usize,
    rule: StrengthRule,
    prev: Option<RgbImage>,
    turbo_prev: Option<RgbImage>,
    turbo_next: Option<RgbImage>,
    colour_reference: Option<RgbImage>,
    last_seed: Option<u64>,
    pending: Option<Pending>,
    order: Vec<usize>,
}

impl ParseqSource {
    /// A source for `options` rendered with `settings`.
    pub fn new(options: ParseqOptions, settings: &RenderSettings) -> Result<Self, RenderError> {
        let n = options.frames.len();
        let range = &options.range;
        if range.start >= range.end || range.end > n {
            return Err(RenderError::Plan(format!(
                "frames {}..{} are not within the document's {n} frames",
                range.start, range.end
            )));
        }
        Ok(Self {
            steps: loop_steps(range.len(), options.cadence),
            options,
            cursor: 0,
            size: (settings.width, settings.height),
            sampling_steps: settings.steps,
            rule: settings.sampler.strength_rule(),
            prev: None,
            turbo_prev: None,
            turbo_next: None,
            colour_reference: None,
            last_seed: None,
            pending: None,
            order: Vec::new(),
        })
    }

    /// The output frame at loop position `k`.
    fn frame(&self, k: usize) -> &DeforumFrame {
        &self.options.frames[self.options.range.start + k]
    }

    /// The engine's seed, variation seed and strength of loop position `k`: the document's
    /// (Deforum's `int(seed)`), or `base_seed + k` when unmanaged or negative.
    fn seeds(&self, k: usize) -> (u64, u64, f64) {
        let f = self.frame(k);
        match f.seed.filter(|s| s.is_finite() && *s >= 0.0) {
            Some(seed) => {
                let subseed = f.subseed.filter(|s| s.is_finite() && *s >= 0.0);
                let strength = f.subseed_strength.filter(|s| s.is_finite()).unwrap_or(0.0);
                (
                    seed.trunc() as u64,
                    subseed.map_or(seed.trunc() as u64, |s| s.trunc() as u64),
                    strength.clamp(0.0, 1.0),
                )
            }
            None => {
                let seed = self.options.base_seed.wrapping_add(k as u64);
                (seed, seed, 0.0)
            }
        }
    }

    /// Whether `denoise` leaves the sampler at least one step.
    fn runs_a_step(&self, denoise: f64) -> bool {
        self.rule
            .start_index(self.sampling_steps, denoise)
            .is_ok_and(|start| start < self.sampling_steps)
    }

    /// The base spec of loop position `k`: prompts, seeds, CFG and the manifest fields.
    fn spec(&self, k: usize, diffused: bool, denoise: Option<f64>) -> FrameSpec {
        let f = self.frame(k);
        let (pos, neg) = f.prompts((&self.options.fallback.0, &self.options.fallback.1));
        let (seed, subseed, subseed_strength) = self.seeds(k);
        FrameSpec {
            prompt: pos.to_owned(),
            negative: neg.to_owned(),
            seed,
            subseed,
            subseed_strength,
            cfg: f.scale,
            extra: extra(f, diffused, denoise),
            ..FrameSpec::default()
        }
    }

    /// Diffuses loop position `k`: txt2img first, then img2img of the moved previous image.
    fn diffuse(&mut self, k: usize) -> FrameSpec {
        if self.options.cadence > 1
            && let Some(next) = &self.turbo_next
        {
            self.prev = Some(next.clone());
        }
        let frame = self.frame(k).clone();
        let init = self.prev.take().map(|prev| self.init_image(&prev, &frame));
        let denoise = init.as_ref().map(|_| frame.denoise());
        let mut spec = self.spec(k, true, denoise);
        self.pending = Some(Pending::Diffuse { seed: spec.seed });
        match (init, denoise) {
            (Some(image), Some(d)) if self.runs_a_step(d) => {
                spec.init = Some(InitImage { image, strength: d });
            }
            // Strength 1 with a sampler that would run no step: the moved image is the frame.
            (Some(image), Some(_)) => spec.direct = Some(Box::new(image)),
            _ => {}
        }
        spec
    }

    /// Deforum's init image: the previous image moved, colour-matched, contrast, noise.
    fn init_image(&mut self, prev: &RgbImage, frame: &DeforumFrame) -> RgbImage {
        let matrix = frame.motion.matrix(prev.width, prev.height);
        let mut moved = warp_perspective(prev, &matrix, self.options.border);
        if self.options.colour_coherence {
            match &self.colour_reference {
                None => self.colour_reference = Some(moved.clone()),
                Some(reference) => moved = match_colours_lab(&moved, reference),
            }
        }
        let moved = contrast(&moved, frame.contrast);
        add_noise(&moved, frame.noise, self.last_seed.unwrap_or(0))
    }

    /// A cadence frame: the kept images moved on by this frame's motion and cross-faded.
    fn tween(&mut self, k: usize, t: f64, advance_prev: bool, advance_next: bool) -> FrameSpec {
        let motion = self.frame(k).motion;
        let border = self.options.border;
        let advance = |image: &mut Option<RgbImage>| {
            if let Some(img) = image.as_mut() {
                *img = warp_perspective(img, &motion.matrix(img.width, img.height), border);
            }
        };
        if advance_prev {
            advance(&mut self.turbo_prev);
        }
        if advance_next {
            advance(&mut self.turbo_next);
        }
        let image = match (&self.turbo_prev, &self.turbo_next) {
            (Some(prev), Some(next)) if t < 1.0 => cross_fade(prev, next, t),
            (_, Some(next)) => next.clone(),
            _ => RgbImage {
                width: self.size.0,
                height: self.size.1,
                data: vec![0; self.size.0 * self.size.1 * 3],
            },
        };
        let cadence = self.options.cadence;
        let diffused = k.is_multiple_of(cadence);
        let denoise = (diffused && k > 0).then(|| self.frame(k).denoise());
        let mut spec = self.spec(k, diffused, denoise);
        spec.extra.insert("tween".into(), json!(t));
        spec.direct = Some(Box::new(image));
        self.pending = Some(Pending::Tween);
        spec
    }
}

/// A frame's manifest fields: the sequencer's values, the motion deltas used, whether it was
/// diffused, and the values `frames.json` shows as the sequencer wrote them.
fn extra(
    f: &DeforumFrame,
    diffused: bool,
    denoise: Option<f64>,
) -> std::collections::BTreeMap<String, Value> {
    let mut extra = std::collections::BTreeMap::new();
    let mut put = |k: &str, v: Value| {
        extra.insert(k.to_owned(), v);
    };
    put("frame", json!(f.frame));
    put("strength", number_json(f.strength));
    put("noise", number_json(f.noise));
    put("contrast", number_json(f.contrast));
    put("zoom", number_json(f.zoom));
    put("angle", number_json(f.angle));
    put("translation_x", number_json(f.translation_x));
    put("translation_y", number_json(f.translation_y));
    put("zoom_delta", number_json(f.motion.zoom));
    put("angle_delta", number_json(f.motion.angle));
    put("translation_x_delta", number_json(f.motion.translation_x));
    put("translation_y_delta", number_json(f.motion.translation_y));
    put("diffused", json!(diffused));
    let mut shown = Map::new();
    shown.insert("denoise".into(), denoise.map_or(Value::Null, number_json));
    if let Some(prompt) = &f.prompt {
        shown.insert("prompt".into(), json!(prompt));
    }
    if let Some(seed) = f.seed {
        shown.insert("seed".into(), number_json(seed));
        shown.insert("subseed".into(), f.subseed.map_or(Value::Null, number_json));
        shown.insert(
            "subseed_strength".into(),
            f.subseed_strength.map_or(Value::Null, number_json),
        );
    }
    put(OVERRIDES, Value::Object(shown));
    extra
}

impl FrameSource for ParseqSource {
    fn next_frame(&mut self) -> Result<Option<FrameSpec>, RenderError> {
        let Some(step) = self.steps.get(self.cursor).copied() else {
            return Ok(None);
        };
        let mut spec = match step {
            LoopStep::Diffuse(k) => self.diffuse(k),
            LoopStep::Tween {
                frame,
                t,
                advance_prev,
                advance_next,
            } => self.tween(frame, t, advance_prev, advance_next),
        };
        spec.index = self.cursor;
        self.cursor += 1;
        Ok(Some(spec))
    }

    fn frame_done(&mut self, record: &FrameRecord, image: &RgbImage) -> Result<(), RenderError> {
        let image = if (image.width, image.height) == self.size {
            image.clone()
        } else {
            lanczos_resize(image, self.size.0, self.size.1)
        };
        let in_video = match self.pending.take() {
            Some(Pending::Diffuse { seed }) => {
                self.last_seed = Some(seed);
                self.prev = Some(image.clone());
                if self.options.cadence > 1 {
                    self.turbo_prev = self.turbo_next.take();
                    self.turbo_next = Some(image);
                }
                self.options.cadence <= 1
            }
            Some(Pending::Tween) => true,
            None => {
                return Err(RenderError::Plan(format!(
                    "frame {} finished without being handed out",
                    record.generation_index
                )));
            }
        };
        if in_video {
            self.order.push(record.generation_index);
        }
        Ok(())
    }

    fn expected_frames(&self) -> usize {
        self.steps.len()
    }

    fn finish(&mut self) -> Result<Finished, RenderError> {
        Ok(Finished {
            order: self.order.clone(),
            files: Vec::new(),
            fps: Some(self.options.fps),
            lead: 0,
        })
    }
}
