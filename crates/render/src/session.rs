//! The render loop: a source's frames through the engine, one sampling step per call.

use std::collections::{BTreeMap, VecDeque};

use keyshift_core::image::{RgbImage, lanczos_resize, upscaled_size};
use keyshift_core::noise::TorchRng;
use keyshift_core::schedule::NoiseSchedule;
use keyshift_core::tokens::ClipTokenizer;
use keyshift_core::tokens::TokenChunk;
use keyshift_core::travel::GradOptions;
use keyshift_core::travel::TokenOrder;
use keyshift_core::travel::replace::{distances, replaced, round_counts};
use keyshift_core::travel::replace::{token_order, tokens_per_frame};
use keyshift_sd::Device;
use keyshift_sd::clock::Stopwatch;
use keyshift_sd::controlnet::{ControlNet, hint_tensor};
use keyshift_sd::generate::{
    GenerateError, Generation, Request, encode_init, encode_tokens, read, stage_pair, stage_tokens,
    step_together,
};
use keyshift_sd::grad::{GradLosses, GradTarget, gradient, walk};
use keyshift_sd::hooks::NoHook;
use keyshift_sd::model::SdModel;
use keyshift_sd::pipeline::{Context, Context4, Control, StepOutput};
use keyshift_sd::taesd::Taesd;
use keyshift_sd::taps::{Chain, StepHook};
use keyshift_sd::travel::{Mix, Travel};

use crate::RenderError;
use crate::eta::Eta;
use crate::manifest::{FrameRecord, frame_parameters};
use crate::source::{
    Embryo, Finished, FrameSource, FrameSpec, FrameTravel, RenderSettings, TravelMix,
};
use crate::temporal::TemporalState;

/// One sampling step of one frame.
#[derive(Debug, Clone)]
pub struct StepEvent {
    /// Generation index of the frame.
    pub frame: usize,
    /// Steps done in this frame (1-based).
    pub step: usize,
    /// Steps of this frame.
    pub steps: usize,
    /// Frames that ran this step together in one UNet call, `frame` the first (1 unbatched).
    pub frames: usize,
    /// The step's output (its denoised estimate, for previews). Work may still be queued on the
    /// device: reading the preview back waits for it.
    pub output: StepOutput,
}

/// A finished frame.
#[derive(Debug, Clone)]
pub struct FinishedFrame {
    /// Its settings (its `file` is empty: the writer names it).
    pub record: FrameRecord,
    /// The image (upscaled when the render upscales).
    pub image: RgbImage,
    /// A1111's `parameters` text for its PNG.
    pub parameters: String,
    /// Whether it was handed back from the stored frames of a resumed render.
    pub resumed: bool,
}

/// What one [`RenderSession::advance`] did.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "one Frame per rendered frame, moved out at once: boxing it buys nothing"
)]
pub enum Event {
    /// A sampling step ran (boxed: a step's tensor handles are large and steps are frequent
    /// only next to the work of a UNet pass).
    Step(Box<StepEvent>),
    /// A frame is finished.
    Frame(FinishedFrame),
    /// Every frame is finished.
    Done(Finished),
}

/// Where a render stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Frames finished.
    pub frames_done: usize,
    /// Frames expected in all, as known so far.
    pub frames_expected: usize,
    /// Sampling steps done in all.
    pub steps_done: usize,
    /// Sampling steps expected in all, as known so far.
    pub steps_expected: usize,
    /// Seconds left for the whole render (`None` before the first step).
    pub eta_seconds: Option<f64>,
}

struct Current<'m> {
    spec: FrameSpec,
    request: Request,
    generation: Generation<'m>,
    steps_run: usize,
    losses: Vec<[f64; 2]>,
}

/// A render in progress on a loaded model.
pub struct RenderSession<'m, S> {
    model: &'m SdModel,
    tokenizer: &'m ClipTokenizer,
    device: Device,
    settings: RenderSettings,
    source: S,
    current: Option<Current<'m>>,
    /// Frames stepped together with `current` (in one UNet call), next to finish after it.
    companions: VecDeque<Current<'m>>,
    /// Frames taken from the source ahead of time, to run together, not yet started.
    queued: VecDeque<FrameSpec>,
    /// The source said it has no more frames while frames were taken ahead.
    exhausted: bool,
    /// Frames per UNet call at most.
    batch: usize,
    frames_done: usize,
    steps_done: usize,
    clock: Option<Stopwatch>,
    finished: bool,
    stored: BTreeMap<usize, StoredFrame>,
    embryo: Option<Context4>,
    walk: Option<((usize, usize), Context)>,
    temporal: TemporalState,
    controlnet: Option<&'m ControlNet>,
    taesd: Option<&'m Taesd>,
}

/// The most frames [`RenderSession::with_auto_frame_batch`] puts in one UNet call.
pub const MAX_FRAME_BATCH: usize = 4;

/// Latent pixels of all frames of an automatic batch together, at most.
const AUTO_BATCH_PIXELS: usize = 64 * 64;

/// Tokens per chunk.
const CHUNK: usize = 77;

/// The old token-ID replace's settings for one frame.
#[derive(Debug, Clone, Copy)]
struct ReplaceIds {
    order: TokenOrder,
    rounds: usize,
    steps: usize,
    seed: u32,
}

/// A frame finished before (kept by the caller, e.g. in OPFS or a folder), to resume with.
#[derive(Debug, Clone)]
pub struct StoredFrame {
    /// Its record as it was written.
    pub record: FrameRecord,
    /// Its image as it was stored (upscaled when the render upscales).
    pub image: RgbImage,
    /// Its `parameters` text.
    pub parameters: String,
}

impl<'m, S: FrameSource> RenderSession<'m, S> {
    /// A render of `source`'s frames with `settings`.
    pub fn new(
        model: &'m SdModel,
        tokenizer: &'m ClipTokenizer,
        device: &Device,
        settings: RenderSettings,
        source: S,
    ) -> Self {
        let temporal = TemporalState::new(&settings.temporal, settings.steps);
        Self {
            model,
            tokenizer,
            device: device.clone(),
            temporal,
            settings,
            source,
            current: None,
            companions: VecDeque::new(),
            queued: VecDeque::new(),
            exhausted: false,
            batch: 1,
            frames_done: 0,
            steps_done: 0,
            clock: None,
            finished: false,
            stored: BTreeMap::new(),
            embryo: None,
            walk: None,
            controlnet: None,
            taesd: None,
        }
    }

    /// Guides every frame with a hint by `net` (with the settings' [`RenderSettings::control`]).
    pub fn with_controlnet(&mut self, net: &'m ControlNet) {
        self.controlnet = Some(net);
    }

    /// Decodes every frame with `taesd` instead of the VAE (A1111's `VAE Decoder: TAESD`): several
    /// times faster and approximate, for drafts of long animations.
    pub fn with_taesd_frames(&mut self, taesd: &'m Taesd) {
        self.taesd = Some(taesd);
    }

    /// Runs up to `frames` frames together, one UNet call for all of them per step, where the
    /// source hands them out together ([`FrameSource::ready_ahead`]) and nothing looks at single
    /// frames as they are made (no hook, temporal blending, ControlNet, walked travel or embryo).
    /// Each frame still gets its own noise: the images are those of one frame at a time, up to
    /// the float rounding of a larger batch. 1 (the default) renders frame by frame.
    pub fn with_frame_batch(&mut self, frames: usize) {
        self.batch = frames.max(1);
    }

    /// [`RenderSession::with_frame_batch`] with what pays off on the session's device: on a
    /// GPU, up to [`MAX_FRAME_BATCH`] frames while their latents hold at most 64×64 pixels
    /// together (a small latent leaves a GPU idle between kernel launches; SD 1.5 at 512² fills
    /// it alone); on the CPU one (measured: a larger batch is no faster there).
    pub fn with_auto_frame_batch(&mut self) {
        let down = self.model.info.vae.downscale().max(1);
        let latent = (self.settings.width / down) * (self.settings.height / down);
        self.with_frame_batch(auto_batch(latent, self.device == Device::flex()));
    }

    /// A frame with a hint records its ControlNet (`frames.json`'s `controlnet`); a hint without
    /// a ControlNet is refused.
    fn annotate(&self, mut spec: FrameSpec) -> Result<FrameSpec, RenderError> {
        let Some(hint) = &spec.hint else {
            return Ok(spec);
        };
        let (Some(control), Some(_)) = (&self.settings.control, self.controlnet) else {
            return Err(RenderError::Plan(format!(
                "frame {} has a ControlNet hint ({}) but no ControlNet is loaded",
                spec.index, hint.source
            )));
        };
        let c = &control.settings;
        let record = serde_json::json!({
            "model": control.model_label,
            "hint": hint.source,
            "scale": c.scale,
            "guess_mode": c.guess_mode,
            "start": c.start,
            "end": c.end,
        });
        spec.extra.insert("controlnet".into(), record);
        Ok(spec)
    }

    /// The ControlNet guidance of a frame with a hint (resized to the render's size if needed).
    fn control_of(&self, spec: &FrameSpec) -> Option<Control<'m>> {
        let (hint, net, control) = (
            spec.hint.as_ref()?,
            self.controlnet?,
            &self.settings.control,
        );
        let c = &control.as_ref()?.settings;
        let (w, h) = (self.settings.width, self.settings.height);
        let image = if (hint.image.width, hint.image.height) == (w, h) {
            hint.image.clone()
        } else {
            lanczos_resize(&hint.image, w, h)
        };
        Some(Control {
            net,
            hint: hint_tensor(&image, &self.device),
            scale: c.scale,
            guess_mode: c.guess_mode,
            start: c.start,
            end: c.end,
        })
    }

    /// Resumes a render: frames in `stored` (by generation index) are not rendered again; when
    /// the source asks for one, its stored image is handed back (as a [`FinishedFrame`] with
    /// `resumed` set) and feedback sources see it as if it had just been made. A stored frame
    /// whose settings differ from the plan's is an error: the plan changed since it was made.
    pub fn resume_with(&mut self, stored: BTreeMap<usize, StoredFrame>) {
        self.stored = stored;
    }

    async fn replay(
        &mut self,
        spec: &FrameSpec,
        stored: StoredFrame,
    ) -> Result<FinishedFrame, RenderError> {
        let request = self.request(spec);
        if let Some(t) = spec
            .travel
            .as_ref()
            .filter(|t| matches!(t.mix, TravelMix::Grad { .. }))
        {
            // A grad frame's walk continues in the next frame: walk again, without rendering.
            self.travel(&request, t)
                .await
                .map_err(|source| RenderError::Generate {
                    frame: spec.index,
                    source,
                })?;
        }
        let mut expected =
            FrameRecord::new(spec, &request, stored.image.width, stored.image.height);
        expected.file.clone_from(&stored.record.file);
        expected.losses.clone_from(&stored.record.losses);
        if expected.as_stored() != stored.record {
            return Err(RenderError::Plan(format!(
                "the stored frame {} was made with other settings than this render's; start \
                 the render afresh",
                spec.index
            )));
        }
        self.temporal.replayed(&stored.image);
        self.source.frame_done(&stored.record, &stored.image)?;
        self.frames_done += 1;
        Ok(FinishedFrame {
            record: stored.record,
            image: stored.image,
            parameters: stored.parameters,
            resumed: true,
        })
    }

    /// Bytes the temporal consistency holds for the previous frame (on the model's device).
    pub fn temporal_bytes(&self) -> usize {
        self.temporal.stored_bytes()
    }

    /// The source (e.g. to read a feedback source's state).
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Runs the next sampling step, finishes a frame, or ends the render. Async only to read
    /// results back from a GPU; natively, block on it.
    pub async fn advance(&mut self, hook: &mut dyn StepHook) -> Result<Event, RenderError> {
        if self.finished {
            return Err(RenderError::Finished);
        }
        if self.current.is_none() {
            self.current = self.companions.pop_front();
        }
        if self.current.is_none() {
            match self.next_spec()? {
                Some(spec) => match self.stored.remove(&spec.index) {
                    // An embryo's latent is not stored: its frame renders again.
                    Some(stored) if !matches!(embryo(&spec), Some(Embryo::Capture(_))) => {
                        return self.replay(&spec, stored).await.map(Event::Frame);
                    }
                    _ if spec.direct.is_some() => return self.direct_frame(spec).map(Event::Frame),
                    _ => {
                        self.start_frame(spec).await?;
                        self.gather(hook.is_inert()).await?;
                    }
                },
                None => {
                    self.finished = true;
                    return self.source.finish().map(Event::Done);
                }
            }
        }
        if !self.companions.is_empty() {
            return self.step_group(hook).await;
        }
        let Some(current) = self.current.as_mut() else {
            return Err(RenderError::Finished);
        };
        let frame = current.spec.index;
        match embryo(&current.spec) {
            Some(Embryo::Capture(k)) if current.generation.next_step() == k => {
                self.embryo = Some(current.generation.latent().clone());
            }
            Some(Embryo::Share(k)) if current.generation.next_step() == k => {
                let Some(latent) = self.embryo.clone() else {
                    return Err(RenderError::Plan(format!(
                        "frame {frame} needs the embryo latent, which no frame made"
                    )));
                };
                current.generation.set_latent(latent);
            }
            _ => {}
        }
        let mut no_hook = NoHook;
        let control_hook: &mut dyn StepHook = match self.temporal.control_blend.as_mut() {
            Some(blend) => blend,
            None => &mut no_hook,
        };
        let stepped = match self.temporal.blend.as_mut() {
            Some(blend) => current
                .generation
                .step_controlled(&mut Chain(blend, hook), control_hook),
            None => current.generation.step_controlled(hook, control_hook),
        }
        .map_err(|source| RenderError::Generate { frame, source })?;
        match stepped {
            Some(output) => {
                current.steps_run += 1;
                self.steps_done += 1;
                Ok(Event::Step(Box::new(StepEvent {
                    frame,
                    step: output.step + 1,
                    steps: output.total,
                    frames: 1,
                    output,
                })))
            }
            None => self.finish_frame().await.map(Event::Frame),
        }
    }

    /// Runs every remaining step and frame, calling `on_event` with each event; returns the end.
    pub async fn run(
        &mut self,
        hook: &mut dyn StepHook,
        on_event: &mut dyn FnMut(&Self, &Event),
    ) -> Result<Finished, RenderError> {
        loop {
            let event = self.advance(hook).await?;
            on_event(self, &event);
            if let Event::Done(finished) = event {
                return Ok(finished);
            }
        }
    }

    /// The engine request of a frame.
    pub fn request(&self, spec: &FrameSpec) -> Request {
        let s = &self.settings;
        #[allow(
            clippy::cast_possible_truncation,
            reason = "A1111 passes strengths as f32 to torch"
        )]
        let subseed =
            (spec.subseed_strength > 0.0).then_some((spec.subseed, spec.subseed_strength as f32));
        Request {
            prompt: spec.prompt.clone(),
            negative: spec.negative.clone(),
            steps: s.steps,
            sampler: s.sampler,
            cfg: spec.cfg,
            seed: spec.seed,
            subseed,
            width: s.width,
            height: s.height,
            clip_skip: s.clip_skip,
            init: spec.init.clone(),
            schedule: self.model.info.schedule.clone(),
        }
    }

    /// The next frame: one taken ahead, or the source's (annotated).
    fn next_spec(&mut self) -> Result<Option<FrameSpec>, RenderError> {
        if let Some(spec) = self.queued.pop_front() {
            return Ok(Some(spec));
        }
        if self.exhausted {
            return Ok(None);
        }
        let next = self.source.next_frame()?;
        next.map(|spec| self.annotate(spec)).transpose()
    }

    /// Starts the frames that can run together with the current one (see
    /// [`RenderSession::with_frame_batch`]).
    async fn gather(&mut self, inert_hook: bool) -> Result<(), RenderError> {
        let blending = self.temporal.blend.is_some() || self.temporal.control_blend.is_some();
        let head = self.current.as_ref().is_some_and(|c| batchable(&c.spec));
        if self.batch <= 1 || !inert_hook || blending || !head {
            return Ok(());
        }
        while 1 + self.companions.len() < self.batch {
            if self.queued.is_empty() {
                if self.exhausted || self.source.ready_ahead() == 0 {
                    break;
                }
                match self.source.next_frame()? {
                    Some(spec) => {
                        let spec = self.annotate(spec)?;
                        self.queued.push_back(spec);
                    }
                    None => self.exhausted = true,
                }
            }
            let Some(spec) = self.queued.pop_front() else {
                break;
            };
            if !batchable(&spec) || self.stored.contains_key(&spec.index) {
                self.queued.push_front(spec);
                break;
            }
            let frame = self.begin(spec).await?;
            self.companions.push_back(frame);
        }
        Ok(())
    }

    /// One step of the current frame and its companions, in one UNet call; the current frame
    /// is finished once they are all done.
    async fn step_group(&mut self, hook: &mut dyn StepHook) -> Result<Event, RenderError> {
        let Some(head) = self.current.as_mut() else {
            return Err(RenderError::Finished);
        };
        let frame = head.spec.index;
        let mut group: Vec<&mut Current<'m>> = std::iter::once(head)
            .chain(self.companions.iter_mut())
            .collect();
        let mut generations: Vec<_> = group.iter_mut().map(|c| &mut c.generation).collect();
        let outputs = step_together(&mut generations, hook)
            .map_err(|source| RenderError::Generate { frame, source })?;
        let mut first = None;
        let mut stepped = 0;
        for (current, output) in group.iter_mut().zip(outputs) {
            if let Some(output) = output {
                current.steps_run += 1;
                stepped += 1;
                first.get_or_insert((current.spec.index, output));
            }
        }
        self.steps_done += stepped;
        match first {
            Some((frame, output)) => Ok(Event::Step(Box::new(StepEvent {
                frame,
                step: output.step + 1,
                steps: output.total,
                frames: stepped,
                output,
            }))),
            None => self.finish_frame().await.map(Event::Frame),
        }
    }

    async fn start_frame(&mut self, spec: FrameSpec) -> Result<(), RenderError> {
        let frame = self.begin(spec).await?;
        self.current = Some(frame);
        Ok(())
    }

    /// A frame ready for its first step: its request, travel and generation.
    async fn begin(&mut self, spec: FrameSpec) -> Result<Current<'m>, RenderError> {
        let request = self.request(&spec);
        let (travel, losses) = match &spec.travel {
            Some(t) => {
                let (travel, losses) =
                    self.travel(&request, t)
                        .await
                        .map_err(|source| RenderError::Generate {
                            frame: spec.index,
                            source,
                        })?;
                (Some(travel), losses)
            }
            None => (None, Vec::new()),
        };
        let mut generation = Generation::travelling(
            self.model,
            self.tokenizer,
            &request,
            travel.as_ref(),
            &self.device,
        )
        .map_err(|source| RenderError::Generate {
            frame: spec.index,
            source,
        })?;
        if let Some(control) = self.control_of(&spec) {
            generation.set_control(control);
        }
        self.clock.get_or_insert_with(Stopwatch::start);
        Ok(Current {
            spec,
            request,
            generation,
            steps_run: 0,
            losses,
        })
    }

    /// The engine's travel for a frame (and grad mode's losses); replace mode measures the
    /// stages' distances first, grad mode walks the conditioning.
    async fn travel(
        &mut self,
        request: &Request,
        t: &FrameTravel,
    ) -> Result<(Travel, Vec<[f64; 2]>), GenerateError> {
        let mut losses = Vec::new();
        let mix = match &t.mix {
            TravelMix::Lerp => Mix::Lerp,
            TravelMix::Slerp => Mix::Slerp,
            TravelMix::Replace {
                unit,
                order,
                rounds,
                steps,
                eased,
                seed,
            } => {
                let (a, b) = stage_pair(self.model, self.tokenizer, request, &t.prompt)?;
                let dim = a.dims()[2];
                let (a, b) = (read(a).await?, read(b).await?);
                let dist = distances(&a, &b, dim, *unit);
                let counts = round_counts(&dist, *rounds, *steps, eased.as_deref());
                Mix::Replace {
                    mask: replaced(&dist, &counts, *order, *seed),
                    unit: *unit,
                }
            }
            TravelMix::ReplaceIds {
                order,
                rounds,
                steps,
                seed,
                target,
            } => {
                let ids = ReplaceIds {
                    order: *order,
                    rounds: *rounds,
                    steps: *steps,
                    seed: *seed,
                };
                let c = self
                    .replace_ids(request, &t.prompt, ids, target.as_deref())
                    .await?;
                Mix::Walked(Box::new(c))
            }
            TravelMix::Grad {
                options,
                stages,
                target,
                seed,
            } => {
                let (c, steps) = self
                    .grad_walk(request, &t.prompt, *stages, target, *seed, options)
                    .await?;
                losses = steps.iter().map(|l| [l.latent, l.cond]).collect();
                Mix::Walked(Box::new(c))
            }
        };
        let travel = Travel {
            prompt: t.prompt.clone(),
            negative: t.negative.clone(),
            alpha: t.alpha,
            uncond_alpha: t.uncond_alpha,
            mix,
        };
        Ok((travel, losses))
    }

    /// The old token-ID replace: the prompt's tokens with the first positions of the order taken
    /// from the target's, encoded again.
    async fn replace_ids(
        &self,
        request: &Request,
        to_prompt: &str,
        ids: ReplaceIds,
        target: Option<&RgbImage>,
    ) -> Result<Context, GenerateError> {
        let (a, b) = stage_tokens(self.model, self.tokenizer, request, to_prompt)?;
        let flat = |chunks: &[TokenChunk]| -> Vec<u32> {
            chunks.iter().flat_map(|c| c.ids.iter().copied()).collect()
        };
        let (ia, ib) = (flat(&a), flat(&b));
        let differing: Vec<usize> = (0..ia.len().min(ib.len()))
            .filter(|&i| ia[i] != ib[i])
            .collect();
        let scores = if ids.order.by_gradient() {
            let target = target.ok_or_else(|| {
                GenerateError::Invalid("the gradient orders need the target stage's image".into())
            })?;
            self.token_gradients(request, &a, &b, target, ids.seed)
                .await?
        } else if ids.order.scored() {
            self.token_distances(&a, &b).await?
        } else {
            Vec::new()
        };
        let scored: Vec<f32> = differing
            .iter()
            .map(|&i| scores.get(i).copied().unwrap_or(0.0))
            .collect();
        let ordered = token_order(&differing, &scored, ids.order, ids.seed);
        let take = (ids.rounds * tokens_per_frame(differing.len(), ids.steps)).min(ordered.len());
        let mut chunks = a;
        for &position in &ordered[..take] {
            let (c, i) = (position / CHUNK, position % CHUNK);
            if let (Some(to), Some(from)) = (b.get(c), chunks.get_mut(c)) {
                from.ids[i] = to.ids[i];
                from.weights[i] = to.weights[i];
            }
        }
        Ok(encode_tokens(self.model, self.tokenizer, request, &chunks))
    }

    /// The L1 distance of the two prompts' input embeddings at every token position.
    async fn token_distances(
        &self,
        a: &[TokenChunk],
        b: &[TokenChunk],
    ) -> Result<Vec<f32>, GenerateError> {
        let mut out = Vec::new();
        for (ca, cb) in a.iter().zip(b) {
            let ea = self.model.clip.embed(std::slice::from_ref(&ca.ids));
            let eb = self.model.clip.embed(std::slice::from_ref(&cb.ids));
            out.extend(read((ea - eb).abs().mean_dim(2)).await?);
        }
        Ok(out)
    }

    /// The mean gradient of grad mode's loss at every token position of the prompt's
    /// conditioning (one timestep and noise from `seed`).
    async fn token_gradients(
        &self,
        request: &Request,
        a: &[TokenChunk],
        b: &[TokenChunk],
        target: &RgbImage,
        seed: u32,
    ) -> Result<Vec<f32>, GenerateError> {
        let schedule = NoiseSchedule::new(self.model.info.schedule.clone())
            .map_err(GenerateError::Schedule)?;
        let latent = encode_init(self.model, target, &self.device)?;
        let grad_target = GradTarget {
            model: self.model,
            schedule: &schedule,
            cond: encode_tokens(self.model, self.tokenizer, request, b),
            latent,
        };
        let mut rng = TorchRng::new(u64::from(seed));
        let t = rng.next_u32() as usize % schedule.train_timesteps().max(1);
        let shape = grad_target.latent.dims();
        let noise =
            keyshift_sd::pipeline::latent(rng.randn(shape.iter().product()), shape, &self.device);
        let c = encode_tokens(self.model, self.tokenizer, request, a);
        let (g, _) = gradient(&grad_target, c, t, noise, &GradOptions::default())
            .await
            .map_err(GenerateError::Invalid)?;
        read(g.mean_dim(2)).await
    }

    /// Grad mode: walks this transition's conditioning on from where its last frame left it.
    async fn grad_walk(
        &mut self,
        request: &Request,
        to_prompt: &str,
        stages: (usize, usize),
        target: &RgbImage,
        seed: u64,
        options: &GradOptions,
    ) -> Result<(Context, Vec<GradLosses>), GenerateError> {
        let (a, b) = stage_pair(self.model, self.tokenizer, request, to_prompt)?;
        let start = match self.walk.take() {
            Some((key, c)) if key == stages => c,
            _ => a,
        };
        let schedule = NoiseSchedule::new(self.model.info.schedule.clone())
            .map_err(GenerateError::Schedule)?;
        let grad_target = GradTarget {
            model: self.model,
            schedule: &schedule,
            cond: b,
            latent: encode_init(self.model, target, &self.device)?,
        };
        let mut rng = TorchRng::new(seed);
        let (c, losses) = walk(&grad_target, start, options, &mut rng)
            .await
            .map_err(GenerateError::Invalid)?;
        self.walk = Some((stages, c.clone()));
        Ok((c, losses))
    }

    async fn finish_frame(&mut self) -> Result<FinishedFrame, RenderError> {
        let Some(current) = self.current.take() else {
            return Err(RenderError::Finished);
        };
        let frame = current.spec.index;
        let generated = current
            .generation
            .finish_with(self.taesd)
            .await
            .map_err(|source| RenderError::Generate { frame, source })?;
        self.temporal.frame_done();
        let image = output_sized(self.upscale(generated.image), current.spec.output_size);
        let image = self.temporal.match_colours(image);
        let mut record =
            FrameRecord::new(&current.spec, &current.request, image.width, image.height);
        record.losses = current.losses;
        let record = record.as_stored();
        let parameters = self.parameters(&current.request, &current.spec);
        self.source.frame_done(&record, &image)?;
        self.frames_done += 1;
        Ok(FinishedFrame {
            record,
            image,
            parameters,
            resumed: false,
        })
    }

    /// A1111's `parameters` of a frame, with the ControlNet's field when it had a hint.
    fn parameters(&self, request: &Request, spec: &FrameSpec) -> String {
        let mut parameters = frame_parameters(request, spec, &self.settings.model_label);
        if self.taesd.is_some() {
            parameters.insert_before_version("VAE Decoder", "TAESD");
        }
        if let (Some(hint), Some(control)) = (&spec.hint, &self.settings.control) {
            let value = control
                .settings
                .parameters_value(hint.module(), &control.model_label);
            parameters.insert_before_version("ControlNet 0", &value);
        }
        parameters.to_text()
    }

    /// A frame the source made itself (no sampling): recorded and handed out at once.
    fn direct_frame(&mut self, mut spec: FrameSpec) -> Result<FinishedFrame, RenderError> {
        let Some(image) = spec.direct.take() else {
            return Err(RenderError::Plan(format!(
                "frame {} has no image",
                spec.index
            )));
        };
        let request = self.request(&spec);
        let image = self.upscale(*image);
        let record = FrameRecord::new(&spec, &request, image.width, image.height).as_stored();
        let parameters = format!(
            "{}\nNegative prompt: {}\nNot diffused: a cadence frame between diffused frames",
            spec.prompt, spec.negative
        );
        self.source.frame_done(&record, &image)?;
        self.frames_done += 1;
        Ok(FinishedFrame {
            record,
            image,
            parameters,
            resumed: false,
        })
    }

    fn upscale(&self, image: RgbImage) -> RgbImage {
        let ratio = self.settings.upscale;
        if ratio == 1.0 || ratio <= 0.0 {
            return image;
        }
        let (w, h) = upscaled_size(image.width, image.height, ratio);
        lanczos_resize(&image, w, h)
    }

    /// Where the render stands, with the time left for all of it.
    pub fn progress(&self) -> Progress {
        let frames_expected = self.source.expected_frames().max(self.frames_done);
        let (current_left, started) =
            self.current
                .iter()
                .chain(&self.companions)
                .fold((0, 0), |(left, started), c| {
                    let total = c.generation.total_steps();
                    (left + total - c.steps_run.min(total), started + 1)
                });
        let later =
            frames_expected.saturating_sub(self.frames_done + started) * self.settings.steps;
        let steps_left = current_left + later;
        let eta = Eta {
            steps_done: self.steps_done,
            seconds: self.clock.as_ref().map_or(0.0, |c| c.elapsed_ms() / 1000.0),
        };
        Progress {
            frames_done: self.frames_done,
            frames_expected,
            steps_done: self.steps_done,
            steps_expected: self.steps_done + steps_left,
            eta_seconds: eta.remaining(steps_left),
        }
    }
}

/// [`RenderSession::with_auto_frame_batch`]'s frames per UNet call for a latent of `pixels`.
fn auto_batch(pixels: usize, on_cpu: bool) -> usize {
    if on_cpu {
        return 1;
    }
    (AUTO_BATCH_PIXELS / pixels.max(1)).clamp(1, MAX_FRAME_BATCH)
}

/// Whether a frame may share its UNet calls with others: nothing of it is made outside the
/// sampler's steps (a walked or replaced travel conditioning, an embryo, a ControlNet hint, a
/// frame the source made itself). Linear travel mixes its conditioning per step and may.
fn batchable(spec: &FrameSpec) -> bool {
    let travel = spec
        .travel
        .as_ref()
        .is_none_or(|t| t.embryo.is_none() && matches!(t.mix, TravelMix::Lerp | TravelMix::Slerp));
    travel && spec.hint.is_none() && spec.direct.is_none()
}

fn embryo(spec: &FrameSpec) -> Option<Embryo> {
    spec.travel.as_ref().and_then(|t| t.embryo)
}

/// `image` at `size` (Lanczos) when one is asked for and it differs.
fn output_sized(image: RgbImage, size: Option<(usize, usize)>) -> RgbImage {
    match size {
        Some((w, h)) if (w, h) != (image.width, image.height) && w > 0 && h > 0 => {
            lanczos_resize(&image, w, h)
        }
        _ => image,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_batches_fill_a_gpu_with_small_latents_only() {
        // The tiny model's 64² frames (32² latents): four at once; SD 1.5 at 512²: one.
        assert_eq!(auto_batch(32 * 32, false), 4);
        assert_eq!(auto_batch(16 * 16, false), MAX_FRAME_BATCH);
        assert_eq!(auto_batch(40 * 40, false), 2);
        assert_eq!(auto_batch(64 * 64, false), 1);
        assert_eq!(auto_batch(96 * 96, false), 1);
        assert_eq!(auto_batch(32 * 32, true), 1, "no gain on the CPU");
        assert_eq!(auto_batch(0, false), MAX_FRAME_BATCH);
    }
}
