//! The Animate workspace as plain types: the render being shown (its frames as they finish, its
//! video order once done, the player's position), starting, cancelling and resuming renders, the
//! stored renders, and exports. No leptos and no web-sys: the browser side hands in a function
//! that turns bytes into an object URL. Tested natively with real worker message sequences.

use std::collections::BTreeMap;

use crate::text::{capitalise, duration};
use keyshift_core::share::{AnimationMode, Project, Seed, ShiftCounts, TravelCounts};
use keyshift_web::protocol::{
    ExportFormat, FrameInfo, FromWorker, GenerateJob, RenderInfo, RenderJob, RerenderJob, Stage,
    ToWorker,
};

/// Render job ids start here, apart from the Generate card's.
const FIRST_JOB: u64 = 1 << 40;

/// A finished frame as the strip and the player show it.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameView {
    /// Its settings.
    pub info: FrameInfo,
    /// An object URL of its PNG.
    pub url: String,
}

/// The end of a render: what the video plays.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoEnd {
    /// Generation indices in video order (mirror included, lead not).
    pub order: Vec<usize>,
    /// The video's frame rate.
    pub fps: Option<f64>,
    /// Lead in/out.
    pub lead: usize,
    /// The most worker heap the render used at once (0 when opened from the store).
    pub heap_peak_bytes: u64,
}

/// Where a running render stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RenderProgress {
    /// Frames finished.
    pub frames_done: usize,
    /// Frames expected.
    pub frames_expected: usize,
    /// Seconds left, once known.
    pub eta_seconds: Option<f64>,
    /// Bytes the temporal consistency keeps for the previous frame (on the GPU).
    pub temporal_bytes: u64,
}

/// The render the workspace shows.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentRender {
    /// What was asked (known once started or opened).
    pub job: Option<RenderJob>,
    /// Its store id.
    pub id: String,
    /// The worker job while it runs.
    pub running: Option<u64>,
    /// Finished frames by generation index.
    pub frames: BTreeMap<usize, FrameView>,
    /// Set when it finished.
    pub end: Option<VideoEnd>,
    /// Progress while it runs.
    pub progress: Option<RenderProgress>,
    /// The most the temporal consistency kept for a previous frame during this render.
    pub temporal_bytes: u64,
    /// Frames' token heatmaps (object URLs of their jet layers) by generation index.
    pub heatmaps: BTreeMap<usize, String>,
}

impl CurrentRender {
    fn new(id: String, job: Option<RenderJob>) -> Self {
        Self {
            job,
            id,
            running: None,
            frames: BTreeMap::new(),
            end: None,
            progress: None,
            temporal_bytes: 0,
            heatmaps: BTreeMap::new(),
        }
    }
}

/// A running export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportRun {
    /// To what.
    pub format: ExportFormat,
    /// Frames done and in all.
    pub done: (usize, usize),
}

/// A finished export, ready to save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedFile {
    /// Its format.
    pub format: ExportFormat,
    /// An object URL of the file.
    pub url: String,
    /// The file name offered.
    pub name: String,
    /// Video frames in it.
    pub frames: usize,
    /// Its size.
    pub bytes: usize,
}

/// The Animate workspace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Animate {
    /// The render shown.
    pub render: Option<CurrentRender>,
    /// The player's position in [`Animate::sequence`].
    pub position: usize,
    /// Whether the player plays.
    pub playing: bool,
    /// Whether it starts over at the end.
    pub looping: bool,
    /// The renders in the frame store, newest first.
    pub stored: Vec<RenderInfo>,
    /// The export running now.
    pub export: Option<ExportRun>,
    /// The newest export.
    pub exported: Option<ExportedFile>,
    /// The newest failure.
    pub error: Option<String>,
    /// Object URLs no longer shown (the browser side revokes them).
    pub stale_urls: Vec<String>,
    /// A frame being rendered again: its job and generation index.
    pub rerendering: Option<(u64, usize)>,
    /// Video input: the picked video.
    pub video: Option<VideoPick>,
    /// Video input: the ControlNet's hint video (one frame per video frame).
    pub hint_video: Option<VideoPick>,
    /// The token picker's choice when a render starts: each frame then gets its heatmap.
    pub heatmap_tokens: Option<Vec<usize>>,
    /// Decode the frames with the model's TAESD (offered where it fits the model).
    pub taesd_frames: bool,
    next_job: u64,
    /// The message before this one was the shown render's failure (a crash that follows it is
    /// what that failure led to, such as a lost GPU device).
    just_failed: bool,
}

/// A video picked for video input (its frames are read when the render starts).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoPick {
    /// The file's name.
    pub name: String,
    /// Its MIME type.
    pub mime: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Seconds.
    pub duration: f64,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// What read its frames last (`WebCodecs`, or the `<video>` element).
    pub read_by: Option<&'static str>,
}

/// A video's frames, read by the browser, to render.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoFrames {
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// The source frame index of each.
    pub indices: Vec<usize>,
    /// Their RGB bytes, one frame after another.
    pub rgb: Vec<u8>,
}

/// `v` rounded to a multiple of `multiple` (at least one).
fn round_to(v: u32, multiple: u32) -> u32 {
    let m = multiple.max(1);
    ((v + m / 2) / m).max(1) * m
}

/// Turns bytes (and their MIME type) into an object URL.
pub type MakeUrl<'a> = &'a mut dyn FnMut(&[u8], &str) -> String;

/// The frame and video counts of `project` in its mode, or why it cannot be rendered.
pub fn counts(project: &Project) -> Result<ShiftCounts, String> {
    let s = &project.animation.shift;
    let request = s.request(
        &project.prompt,
        &project.negative_prompt,
        0,
        project.settings.cfg_scale,
    );
    s.counts(&request).map_err(|e| e.to_string())
}

/// One line: `5 frames · video 14 frames, 2.0 s at 7 fps`.
pub fn counts_text(counts: &ShiftCounts, gap_filling: bool) -> String {
    let frames = plural(counts.rendered, "frame");
    let more = if gap_filling {
        " (SSIM gap filling may add more)"
    } else {
        ""
    };
    match (counts.fps, counts.seconds()) {
        (Some(fps), Some(seconds)) => format!(
            "{frames}{more} · video {}, {seconds:.1} s at {} fps",
            plural(counts.video_frames, "frame"),
            trim_number(fps)
        ),
        _ => format!("{frames}{more} · no video (FPS 0)"),
    }
}

/// What the project's render will make, as one line (or what stops it from rendering).
pub fn plan_text(project: &Project) -> Result<String, String> {
    match project.animation.mode {
        AnimationMode::PromptTravel => travel_counts(project).map(|c| {
            let t = &project.animation.travel;
            let gaps = t.ssim_threshold > 0.0
                && t.mode == keyshift_core::travel::TravelMode::Linear
                && t.genesis == keyshift_core::travel::Genesis::Fixed;
            let text = travel_counts_text(&c);
            if gaps {
                text.replacen(" · video", " (SSIM gap filling may add more) · video", 1)
            } else {
                text
            }
        }),
        AnimationMode::Parseq => crate::parseq::plan_text(&project.animation.parseq),
        AnimationMode::Video => {
            let v = &project.animation.video;
            Ok(format!(
                "Each frame of the video as img2img at denoising strength {} · video at {} fps",
                v.denoise,
                trim_number(v.output_fps())
            ))
        }
        _ => counts(project).map(|c| counts_text(&c, project.animation.shift.ssim_threshold > 0.0)),
    }
}

/// A prompt travel's stages and frames.
pub fn travel_counts(project: &Project) -> Result<TravelCounts, String> {
    project
        .animation
        .travel
        .counts(&project.prompt, &project.negative_prompt)
        .map_err(|e| e.to_string())
}

/// One line: `3 stages · 5 frames · video 7 frames, 0.7 s at 10 fps`.
pub fn travel_counts_text(counts: &TravelCounts) -> String {
    format!(
        "{} · {} · video {}, {:.1} s at {} fps",
        plural(counts.stages, "stage"),
        plural(counts.rendered, "frame"),
        plural(counts.video_frames, "frame"),
        counts.seconds(),
        trim_number(counts.fps)
    )
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn trim_number(v: f64) -> String {
    let text = format!("{v:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

impl Animate {
    /// Starts rendering `project` as render `id` (`random` draws a random seed).
    pub fn start(
        &mut self,
        project: &Project,
        id: String,
        random: u32,
    ) -> Result<ToWorker, String> {
        if project.animation.mode == AnimationMode::Video {
            return Err("Pick a video first.".into());
        }
        self.start_with(project, id, random, None)
    }

    /// Starts video input: `frames` as img2img, rendered at their size rounded to the model's
    /// `multiple` and given back at their own size.
    pub fn start_video(
        &mut self,
        project: &Project,
        id: String,
        random: u32,
        (frames, multiple): (&VideoFrames, u32),
        control: Option<Box<keyshift_web::protocol::ControlJob>>,
    ) -> Result<ToWorker, String> {
        let v = &project.animation.video;
        if frames.indices.is_empty() {
            return Err("No frames of the video are in the chosen range.".into());
        }
        let names = frames
            .indices
            .iter()
            .map(|i| format!("frame {i} ({:.2} s)", *i as f64 / v.fps))
            .collect();
        let mut project = project.clone();
        project.settings.width_px = round_to(frames.width, multiple);
        project.settings.height_px = round_to(frames.height, multiple);
        let video = keyshift_web::protocol::VideoJob {
            width: frames.width,
            height: frames.height,
            names,
            fps: v.output_fps(),
            denoise: v.denoise,
            frames: Vec::new(),
        };
        let mut message = self.start_with(&project, id, random, Some(Box::new(video)))?;
        if let ToWorker::Render { job } = &mut message {
            job.control = control;
            if let Some(r) = self.render.as_mut() {
                r.job = Some(job.clone());
            }
        }
        Ok(message)
    }

    fn start_with(
        &mut self,
        project: &Project,
        id: String,
        random: u32,
        video: Option<Box<keyshift_web::protocol::VideoJob>>,
    ) -> Result<ToWorker, String> {
        if project.animation.mode == AnimationMode::Single {
            return Err("Pick an animation mode first.".into());
        }
        if self.is_running() {
            return Err("A render is already running.".into());
        }
        plan_text(project).map_err(|e| format!("The prompt cannot be rendered: {e}."))?;
        let s = &project.settings;
        self.next_job = self.next_job.max(FIRST_JOB) + 1;
        let job = RenderJob {
            frame: GenerateJob {
                job: self.next_job,
                prompt: project.prompt.clone(),
                negative: project.negative_prompt.clone(),
                width: s.width_px,
                height: s.height_px,
                steps: s.steps,
                sampler: s.sampler,
                cfg: s.cfg_scale,
                seed: match s.seed {
                    Seed::Fixed(seed) => u64::from(seed),
                    Seed::Random => u64::from(random),
                },
                preview_every: 0,
                init: None,
                init_image: None,
                heatmap: self.heatmap_tokens.clone(),
                control: None,
            },
            shift: project.animation.shift.clone(),
            travel: (project.animation.mode == AnimationMode::PromptTravel)
                .then(|| Box::new(project.animation.travel.clone())),
            parseq: (project.animation.mode == AnimationMode::Parseq)
                .then(|| Box::new(project.animation.parseq.clone())),
            render: id.clone(),
            resume: false,
            temporal: Box::new(project.animation.temporal.clone()),
            video,
            control: None,
            taesd_frames: self.taesd_frames,
        };
        self.show(CurrentRender::new(id, Some(job.clone())));
        self.set_running(job.frame.job);
        Ok(ToWorker::Render { job })
    }

    fn show(&mut self, render: CurrentRender) {
        if let Some(old) = self.render.take() {
            self.stale_urls
                .extend(old.frames.into_values().map(|f| f.url));
            self.stale_urls.extend(old.heatmaps.into_values());
        }
        self.render = Some(render);
        self.position = 0;
        self.playing = false;
        self.error = None;
    }

    fn set_running(&mut self, job: u64) {
        if let Some(r) = self.render.as_mut() {
            r.running = Some(job);
            r.progress = None;
        }
    }

    /// Continues the shown render where it stopped (its stored frames are not rendered again).
    pub fn resume(&mut self) -> Option<ToWorker> {
        if !self.can_resume() {
            return None;
        }
        self.next_job = self.next_job.max(FIRST_JOB) + 1;
        let render = self.render.as_mut()?;
        let mut job = render.job.clone()?;
        job.frame.job = self.next_job;
        job.resume = true;
        render.running = Some(job.frame.job);
        render.progress = None;
        self.error = None;
        Some(ToWorker::Render { job })
    }

    /// Stops the running render (or frame) before its next step (the frames so far stay).
    pub fn cancel(&self) -> Option<ToWorker> {
        let job = self
            .render
            .as_ref()
            .and_then(|r| r.running)
            .or(self.rerendering.map(|(job, _)| job))?;
        Some(ToWorker::Cancel { job })
    }

    /// Renders frame `index` (a generation index) of the finished render again, with the
    /// loaded model.
    pub fn rerender(&mut self, index: usize) -> Option<ToWorker> {
        if self.is_busy() || !self.is_finished() {
            return None;
        }
        let render = self
            .render
            .as_ref()
            .filter(|r| r.frames.contains_key(&index))?;
        self.next_job = self.next_job.max(FIRST_JOB) + 1;
        self.rerendering = Some((self.next_job, index));
        self.error = None;
        Some(ToWorker::RerenderFrame {
            job: RerenderJob {
                job: self.next_job,
                render: render.id.clone(),
                index,
            },
        })
    }

    /// Whether a render or a frame is being made.
    pub fn is_busy(&self) -> bool {
        self.is_running() || self.rerendering.is_some()
    }

    /// Shows a stored render.
    pub fn open(&mut self, id: &str) -> ToWorker {
        self.show(CurrentRender::new(id.to_owned(), None));
        ToWorker::OpenRender {
            render: id.to_owned(),
        }
    }

    /// Exports the shown render.
    pub fn start_export(&mut self, format: ExportFormat) -> Option<ToWorker> {
        let render = self.render.as_ref().filter(|r| r.end.is_some())?;
        if self.export.is_some() {
            return None;
        }
        self.export = Some(ExportRun {
            format,
            done: (0, 0),
        });
        Some(ToWorker::Export {
            render: render.id.clone(),
            format,
        })
    }

    /// The video's frames as object URLs (mirror and lead in/out applied), once finished.
    pub fn video_urls(&self) -> Option<Vec<String>> {
        let render = self.render.as_ref()?;
        let end = render.end.as_ref()?;
        let urls: Vec<String> = end
            .order
            .iter()
            .map(|i| render.frames.get(i).map(|f| f.url.clone()))
            .collect::<Option<_>>()?;
        Some(keyshift_core::export::with_lead(&urls, end.lead))
    }

    /// Starts an export made on this page (WebM through `MediaRecorder`); returns the video's
    /// frames and frame rate.
    pub fn start_local_export(&mut self, format: ExportFormat) -> Option<(Vec<String>, f64)> {
        if self.export.is_some() {
            return None;
        }
        let urls = self.video_urls()?;
        self.export = Some(ExportRun {
            format,
            done: (0, urls.len()),
        });
        Some((urls, self.play_fps_of_video()))
    }

    fn play_fps_of_video(&self) -> f64 {
        self.render
            .as_ref()
            .and_then(|r| r.end.as_ref()?.fps)
            .filter(|f| *f > 0.0)
            .unwrap_or(30.0)
    }

    /// Progress of an export made on this page.
    pub fn local_export_progress(&mut self, done: usize) {
        if let Some(e) = self.export.as_mut() {
            e.done.0 = done;
        }
    }

    /// An export made on this page finished (`Ok((object URL, bytes))`) or failed.
    pub fn finish_local_export(&mut self, result: Result<(String, u64), String>) {
        let Some(run) = self.export.take() else {
            return;
        };
        match result {
            Ok((url, bytes)) => {
                if let Some(old) = self.exported.take() {
                    self.stale_urls.push(old.url);
                }
                let id = self.render.as_ref().map_or("render", |r| r.id.as_str());
                self.exported = Some(ExportedFile {
                    format: run.format,
                    url,
                    name: format!("keyshift-{id}.{}", run.format.extension()),
                    frames: run.done.1,
                    bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
                });
            }
            Err(e) => self.error = Some(format!("The export failed: {e}")),
        }
    }

    /// Whether a render is running.
    pub fn is_running(&self) -> bool {
        self.render.as_ref().is_some_and(|r| r.running.is_some())
    }

    /// Whether the shown render stopped before its end and can continue.
    pub fn can_resume(&self) -> bool {
        self.render
            .as_ref()
            .is_some_and(|r| r.running.is_none() && r.end.is_none() && r.job.is_some())
    }

    /// Whether the shown render finished.
    pub fn is_finished(&self) -> bool {
        self.render.as_ref().is_some_and(|r| r.end.is_some())
    }

    /// The strip's frames (generation indices): in video order once known (each frame once),
    /// otherwise as generated.
    pub fn strip(&self) -> Vec<usize> {
        let Some(render) = &self.render else {
            return Vec::new();
        };
        let mut seen = std::collections::BTreeSet::new();
        let mut out: Vec<usize> = match &render.end {
            Some(end) => end
                .order
                .iter()
                .copied()
                .filter(|i| seen.insert(*i))
                .collect(),
            None => Vec::new(),
        };
        out.extend(render.frames.keys().filter(|i| !seen.contains(i)));
        out.retain(|i| render.frames.contains_key(i));
        out
    }

    /// What the player plays (generation indices): the video order once known, else the strip.
    pub fn sequence(&self) -> Vec<usize> {
        match self.render.as_ref().and_then(|r| r.end.as_ref()) {
            Some(end) => end.order.clone(),
            None => self.strip(),
        }
    }

    /// The frame at the player's position.
    pub fn current(&self) -> Option<&FrameView> {
        let index = *self.sequence().get(self.position)?;
        self.render.as_ref()?.frames.get(&index)
    }

    /// Moves the player to `position` (clamped).
    pub fn seek(&mut self, position: usize) {
        self.position = position.min(self.sequence().len().saturating_sub(1));
    }

    /// Shows the strip's frame `index` (a generation index) in the player.
    pub fn select(&mut self, index: usize) {
        if let Some(p) = self.sequence().iter().position(|&i| i == index) {
            self.position = p;
            self.playing = false;
        }
    }

    /// Steps the player by `delta` frames (arrow keys), wrapping around.
    pub fn step(&mut self, delta: isize) {
        let n = self.sequence().len();
        if n == 0 {
            return;
        }
        let n = n as isize;
        self.position = (self.position as isize + delta).rem_euclid(n) as usize;
    }

    /// One tick of playback: the next frame, stopping at the end unless looping.
    pub fn tick(&mut self) {
        let n = self.sequence().len();
        if n == 0 {
            self.playing = false;
        } else if self.position + 1 < n {
            self.position += 1;
        } else if self.looping {
            self.position = 0;
        } else {
            self.playing = false;
        }
    }

    /// Frames per second the player runs at.
    pub fn play_fps(&self) -> f64 {
        let from_video = self.render.as_ref().and_then(|r| r.end.as_ref()?.fps);
        let asked = self
            .render
            .as_ref()
            .and_then(|r| r.job.as_ref())
            .map(|j| j.shift.fps)
            .filter(|f| *f > 0.0);
        from_video
            .or(asked)
            .filter(|f| *f > 0.0)
            .unwrap_or(30.0)
            .min(60.0)
    }

    /// The worker heap peak of the shown render, once it finished (0 when opened from the store).
    pub fn heap_peak(&self) -> Option<u64> {
        Some(self.render.as_ref()?.end.as_ref()?.heap_peak_bytes)
    }

    /// One line about the finished render: `6 frames rendered · worker memory peak 3.1 MB`.
    pub fn status_text(&self) -> String {
        let Some(r) = self.render.as_ref().filter(|r| r.running.is_none()) else {
            return String::new();
        };
        let frames = plural(r.frames.len(), "frame");
        match &r.end {
            Some(end) if end.heap_peak_bytes > 0 => format!(
                "{frames} rendered · worker memory peak {}",
                keyshift_web::cache::bytes_text(end.heap_peak_bytes)
            ),
            Some(_) => format!("{frames} rendered"),
            None if r.job.is_some() => format!("{frames} rendered so far: Resume continues"),
            None => format!("{frames} so far"),
        }
    }

    /// One line of progress: `frame 3/5 · 12 s left`.
    pub fn progress_text(&self) -> String {
        let Some(p) = self.render.as_ref().and_then(|r| r.progress) else {
            return String::new();
        };
        let mut text = format!(
            "frame {}/{}",
            (p.frames_done + 1).min(p.frames_expected),
            p.frames_expected
        );
        if let Some(eta) = p.eta_seconds {
            text.push_str(&format!(" · {} left", duration(eta)));
        }
        text
    }

    /// Folds a worker message in; returns what to send next.
    pub fn apply(&mut self, message: &FromWorker, make_url: MakeUrl<'_>) -> Option<ToWorker> {
        let just_failed = std::mem::take(&mut self.just_failed);
        match message {
            FromWorker::Frame { render, frame, png } => self.frame(render, frame, png, make_url),
            FromWorker::FrameHeatmap {
                render,
                index,
                heatmap,
            } => {
                let png = heatmap.layer_png().ok()?;
                let url = make_url(&png, "image/png");
                match self.shown_mut(render) {
                    Some(r) => {
                        if let Some(old) = r.heatmaps.insert(*index, url) {
                            self.stale_urls.push(old);
                        }
                    }
                    None => self.stale_urls.push(url),
                }
                None
            }
            FromWorker::RenderProgress {
                render,
                frames_done,
                frames_expected,
                eta_seconds,
                temporal_bytes,
                ..
            } => {
                if let Some(r) = self.shown_mut(render) {
                    r.temporal_bytes = r.temporal_bytes.max(*temporal_bytes);
                    r.progress = Some(RenderProgress {
                        frames_done: *frames_done,
                        frames_expected: *frames_expected,
                        eta_seconds: *eta_seconds,
                        temporal_bytes: *temporal_bytes,
                    });
                }
                None
            }
            FromWorker::RenderDone {
                render,
                order,
                fps,
                lead,
                heap_peak_bytes,
                ..
            } => self.done(
                render,
                VideoEnd {
                    order: order.clone(),
                    fps: *fps,
                    lead: *lead,
                    heap_peak_bytes: *heap_peak_bytes,
                },
            ),
            FromWorker::RenderOpened { info } => {
                if let Some(r) = self.shown_mut(&info.id) {
                    r.job = Some(info.job.clone());
                }
                None
            }
            FromWorker::Renders { renders } => self.renders(renders),
            FromWorker::Cancelled { job } => {
                self.stop(*job);
                None
            }
            FromWorker::ExportProgress { done, total, .. } => {
                if let Some(e) = self.export.as_mut() {
                    e.done = (*done, *total);
                }
                None
            }
            FromWorker::Exported {
                format,
                frames,
                bytes,
                render,
            } => {
                self.exported(render, *format, *frames, bytes, make_url);
                None
            }
            FromWorker::Failed { stage, message } => self.failed(*stage, message, just_failed),
            _ => None,
        }
    }

    fn shown_mut(&mut self, id: &str) -> Option<&mut CurrentRender> {
        self.render.as_mut().filter(|r| r.id == id)
    }

    fn frame(
        &mut self,
        render: &str,
        frame: &FrameInfo,
        png: &[u8],
        make_url: MakeUrl<'_>,
    ) -> Option<ToWorker> {
        let url = make_url(png, "image/png");
        let Some(r) = self.shown_mut(render) else {
            self.stale_urls.push(url);
            return None;
        };
        let view = FrameView {
            info: frame.clone(),
            url,
        };
        if let Some(old) = r.frames.insert(frame.index, view) {
            self.stale_urls.push(old.url);
        }
        if self
            .rerendering
            .is_some_and(|(_, index)| index == frame.index)
        {
            self.rerendering = None;
        }
        None
    }

    fn done(&mut self, render: &str, end: VideoEnd) -> Option<ToWorker> {
        let r = self.shown_mut(render)?;
        r.end = Some(end);
        r.running = None;
        r.progress = None;
        // The store's list changed.
        Some(ToWorker::ListRenders)
    }

    fn renders(&mut self, renders: &[RenderInfo]) -> Option<ToWorker> {
        self.stored = renders.to_vec();
        // After a reload: show the newest render, to resume it or watch it.
        if self.render.is_none()
            && let Some(newest) = renders.first()
        {
            let id = newest.id.clone();
            return Some(self.open(&id));
        }
        None
    }

    fn stop(&mut self, job: u64) {
        if self.rerendering.is_some_and(|(j, _)| j == job) {
            self.rerendering = None;
        }
        if let Some(r) = self.render.as_mut().filter(|r| r.running == Some(job)) {
            r.running = None;
            r.progress = None;
        }
    }

    fn exported(
        &mut self,
        render: &str,
        format: ExportFormat,
        frames: usize,
        bytes: &[u8],
        make_url: MakeUrl<'_>,
    ) {
        self.export = None;
        if let Some(old) = self.exported.take() {
            self.stale_urls.push(old.url);
        }
        self.exported = Some(ExportedFile {
            format,
            url: make_url(bytes, format.mime()),
            name: match format {
                ExportFormat::Heatmaps => format!("keyshift-{render}-heatmaps.zip"),
                _ => format!("keyshift-{render}.{}", format.extension()),
            },
            frames,
            bytes: bytes.len(),
        });
    }

    fn failed(&mut self, stage: Stage, message: &str, just_failed: bool) -> Option<ToWorker> {
        match stage {
            Stage::Render => {
                self.just_failed = true;
                self.rerendering = None;
                if let Some(r) = self.render.as_mut() {
                    r.running = None;
                    r.progress = None;
                }
                self.error = Some(capitalise(message));
            }
            Stage::Export => {
                self.export = None;
                self.error = Some(format!("The export failed: {message}"));
            }
            Stage::Crashed => {
                self.rerendering = None;
                // The running render (or one whose frame failed with what then stopped the
                // worker, such as a lost GPU device) resumes once the fresh worker has the model
                // again. A cancelled or reopened render, and a failure that was already shown
                // (say, the storage quota), are left as they are.
                let hit = |r: &&mut CurrentRender| r.running.is_some() || just_failed;
                if let Some(r) = self.render.as_mut().filter(hit) {
                    r.running = None;
                    r.progress = None;
                    self.error = Some(crash_message(message));
                }
                self.export = None;
            }
            _ => {}
        }
        None
    }

    /// Object URLs to revoke.
    pub fn take_stale_urls(&mut self) -> Vec<String> {
        std::mem::take(&mut self.stale_urls)
    }
}

/// What an unfinished render shows when the compute worker stopped: why, and what to do.
fn crash_message(why: &str) -> String {
    let why = why.trim();
    let why = why.strip_prefix("Uncaught ").unwrap_or(why);
    let why = why.strip_prefix("Error: ").unwrap_or(why);
    if why.is_empty() {
        "The compute worker stopped; load the model again, then Resume.".into()
    } else {
        format!("The compute worker stopped ({why}); load the model again, then Resume.")
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use keyshift_core::share::AnimationMode;

    fn project() -> Project {
        let mut p = Project {
            prompt: "a (cat:1~0)".into(),
            ..Project::default()
        };
        p.animation.mode = AnimationMode::ShiftAttention;
        p.animation.shift.shift_steps = 2;
        p.animation.shift.mirror = true;
        p.settings.seed = Seed::Fixed(42);
        p
    }

    fn info(index: usize) -> FrameInfo {
        FrameInfo {
            index,
            prompt: format!("a (cat:{index})"),
            negative: String::new(),
            seed: 42,
            subseed: 42,
            subseed_strength: 0.0,
            cfg: 7.0,
            parameters: String::new(),
            stages: None,
            losses: Vec::new(),
        }
    }

    fn frame(render: &str, index: usize) -> FromWorker {
        FromWorker::Frame {
            render: render.into(),
            frame: info(index),
            png: vec![u8::try_from(index).unwrap_or(0)],
        }
    }

    fn url() -> impl FnMut(&[u8], &str) -> String {
        let mut n = 0;
        move |bytes: &[u8], mime: &str| {
            n += 1;
            format!("blob:{mime}:{bytes:?}:{n}")
        }
    }

    fn started(a: &mut Animate) -> (u64, String) {
        let Ok(ToWorker::Render { job }) = a.start(&project(), "r1".into(), 7) else {
            panic!("starts");
        };
        (job.frame.job, job.render)
    }

    #[test]
    fn taesd_frames_are_asked_for_only_when_chosen() {
        let mut a = Animate::default();
        let Ok(ToWorker::Render { job }) = a.start(&project(), "r1".into(), 7) else {
            panic!("starts");
        };
        assert!(!job.taesd_frames);
        let mut a = Animate {
            taesd_frames: true,
            ..Animate::default()
        };
        let Ok(ToWorker::Render { job }) = a.start(&project(), "r2".into(), 7) else {
            panic!("starts");
        };
        assert!(job.taesd_frames);
    }

    #[test]
    fn frames_heatmaps_are_kept_by_index_and_released_with_their_render() {
        let mut a = Animate {
            heatmap_tokens: Some(vec![2, 5]),
            ..Animate::default()
        };
        let mut make = url();
        let Ok(ToWorker::Render { job }) = a.start(&project(), "r1".into(), 7) else {
            panic!("starts");
        };
        assert_eq!(
            job.frame.heatmap,
            Some(vec![2, 5]),
            "the job asks for heatmaps"
        );
        a.apply(&frame("r1", 0), &mut make);
        let map = keyshift_core::image::heatmap::HeatmapData {
            width: 2,
            height: 2,
            values: vec![0.0, 0.5, 1.0, 0.25],
            tokens: vec![2, 5],
        };
        let heat = |render: &str, index| FromWorker::FrameHeatmap {
            render: render.into(),
            index,
            heatmap: map.clone(),
        };
        a.apply(&heat("r1", 0), &mut make);
        a.apply(&heat("other", 0), &mut make);
        let shown = a
            .render
            .as_ref()
            .map(|r| r.heatmaps.clone())
            .unwrap_or_default();
        assert_eq!(shown.len(), 1);
        assert!(shown[&0].starts_with("blob:image/png"));
        assert_eq!(
            a.take_stale_urls().len(),
            1,
            "another render's map is released"
        );
        // A map made again replaces the old one; a new render releases them all.
        a.apply(&heat("r1", 0), &mut make);
        assert_eq!(a.take_stale_urls(), [shown[&0].clone()]);
        a.apply(&FromWorker::Cancelled { job: job.frame.job }, &mut make);
        a.take_stale_urls();
        assert!(a.start(&project(), "r2".into(), 7).is_ok());
        assert_eq!(a.take_stale_urls().len(), 2, "the frame and its heatmap");
    }

    #[test]
    fn a_render_fills_the_strip_then_plays_in_video_order() {
        let mut a = Animate::default();
        let mut make = url();
        let (job, id) = started(&mut a);
        assert!(job >= FIRST_JOB, "apart from the Generate card's ids");
        assert!(a.is_running() && a.start(&project(), "r2".into(), 1).is_err());
        for i in 0..3 {
            assert_eq!(a.apply(&frame(&id, i), &mut make), None);
        }
        assert_eq!(a.strip(), [0, 1, 2]);
        // Another render's frame is not shown (its URL is released).
        a.apply(&frame("other", 9), &mut make);
        assert_eq!(a.strip(), [0, 1, 2]);
        assert_eq!(a.take_stale_urls().len(), 1);
        let next = a.apply(
            &FromWorker::RenderDone {
                job: Some(job),
                render: id.clone(),
                order: vec![0, 1, 2, 2, 1, 0],
                fps: Some(12.0),
                lead: 1,
                heap_peak_bytes: 0,
            },
            &mut make,
        );
        assert_eq!(next, Some(ToWorker::ListRenders));
        assert!(!a.is_running() && a.is_finished() && !a.can_resume());
        assert_eq!(a.strip(), [0, 1, 2], "each frame once");
        assert_eq!(a.sequence().len(), 6);
        a.seek(3);
        assert_eq!(a.current().map(|f| f.info.index), Some(2));
        a.step(-4);
        assert_eq!(a.position, 5, "arrow keys wrap around");
        a.tick();
        assert_eq!(a.position, 5);
        assert!(!a.playing);
        a.looping = true;
        a.playing = true;
        a.tick();
        assert_eq!(a.position, 0);
        assert!((a.play_fps() - 12.0).abs() < 1e-9);
        a.select(1);
        assert_eq!(a.position, 1);
    }

    #[test]
    fn a_cancelled_render_resumes_with_the_same_job_and_its_store() {
        let mut a = Animate::default();
        let mut make = url();
        let (job, id) = started(&mut a);
        a.apply(&frame(&id, 0), &mut make);
        assert_eq!(a.cancel(), Some(ToWorker::Cancel { job }));
        a.apply(&FromWorker::Cancelled { job }, &mut make);
        assert!(a.can_resume());
        let Some(ToWorker::Render { job: resumed }) = a.resume() else {
            panic!("resumes");
        };
        assert!(resumed.resume && resumed.render == id && resumed.frame.job > job);
        assert_eq!(resumed.frame.seed, 42);
        assert!(a.is_running() && a.resume().is_none());
    }

    #[test]
    fn after_a_reload_the_newest_stored_render_opens_and_can_resume() {
        let mut a = Animate::default();
        let mut make = url();
        let mut job = match Animate::default().start(&project(), "r5".into(), 1) {
            Ok(ToWorker::Render { job }) => job,
            _ => panic!("starts"),
        };
        job.resume = false;
        let stored = RenderInfo {
            id: "r5".into(),
            job: job.clone(),
            frames: 2,
            bytes: 10,
            complete: false,
        };
        let next = a.apply(
            &FromWorker::Renders {
                renders: vec![stored.clone()],
            },
            &mut make,
        );
        assert_eq!(
            next,
            Some(ToWorker::OpenRender {
                render: "r5".into()
            })
        );
        a.apply(&frame("r5", 0), &mut make);
        a.apply(&frame("r5", 1), &mut make);
        assert!(!a.can_resume(), "not before the job is known");
        a.apply(&FromWorker::RenderOpened { info: stored }, &mut make);
        assert!(a.can_resume());
        assert_eq!(a.strip(), [0, 1]);
        // A second list (after a delete) does not reopen anything.
        let again = a.apply(&FromWorker::Renders { renders: vec![] }, &mut make);
        assert_eq!(again, None);
    }

    #[test]
    fn failures_stop_the_render_and_keep_its_frames() {
        let mut a = Animate::default();
        let mut make = url();
        let (_, id) = started(&mut a);
        a.apply(&frame(&id, 0), &mut make);
        a.apply(
            &FromWorker::Failed {
                stage: Stage::Render,
                message: "the browser's storage for this site is full".into(),
            },
            &mut make,
        );
        assert!(!a.is_running());
        assert_eq!(a.strip(), [0]);
        assert!(
            a.error
                .as_deref()
                .is_some_and(|e| e.starts_with("The browser's storage"))
        );
        assert!(a.start_export(ExportFormat::Gif).is_none(), "unfinished");
    }

    #[test]
    fn a_stopped_worker_leaves_an_unfinished_render_resumable_and_says_why() {
        let crash = |message: &str| FromWorker::Failed {
            stage: Stage::Crashed,
            message: message.into(),
        };
        let mut a = Animate::default();
        let mut make = url();
        let (_, id) = started(&mut a);
        a.apply(&frame(&id, 0), &mut make);
        a.apply(
            &crash("Uncaught Error: the GPU device was lost (destroyed)"),
            &mut make,
        );
        assert!(!a.is_running() && a.can_resume());
        assert_eq!(a.strip(), [0]);
        assert_eq!(
            a.error.as_deref(),
            Some(
                "The compute worker stopped (the GPU device was lost (destroyed)); load the \
                 model again, then Resume."
            )
        );
        // The frame that failed when the device went is followed by the crash it caused: the
        // crash, which says what to do, is what shows.
        let (_, id) = started(&mut a);
        a.apply(&frame(&id, 0), &mut make);
        a.apply(
            &FromWorker::Failed {
                stage: Stage::Render,
                message: "Frame 1: reading the result from the device failed".into(),
            },
            &mut make,
        );
        a.apply(&crash(""), &mut make);
        assert_eq!(
            a.error.as_deref(),
            Some("The compute worker stopped; load the model again, then Resume.")
        );
        assert!(a.can_resume());
        // A finished render is not touched.
        let (job, id) = started(&mut a);
        a.apply(&frame(&id, 0), &mut make);
        a.apply(
            &FromWorker::RenderDone {
                job: Some(job),
                render: id,
                order: vec![0],
                fps: None,
                lead: 0,
                heap_peak_bytes: 0,
            },
            &mut make,
        );
        a.error = None;
        a.apply(&crash("Uncaught Error: x"), &mut make);
        assert_eq!(a.error, None);
        assert!(a.is_finished());
        // A cancelled render is not running: a later crash leaves it and its frames alone.
        let (job, id) = started(&mut a);
        a.apply(&frame(&id, 0), &mut make);
        a.apply(&FromWorker::Cancelled { job }, &mut make);
        a.apply(&crash("Uncaught Error: y"), &mut make);
        assert_eq!(a.error, None);
        assert_eq!(a.strip(), [0]);
        // A failure already shown keeps its own message when an unrelated crash comes later.
        let (_, id) = started(&mut a);
        a.apply(&frame(&id, 0), &mut make);
        let quota = "The browser's storage is full";
        a.apply(
            &FromWorker::Failed {
                stage: Stage::Render,
                message: quota.into(),
            },
            &mut make,
        );
        a.apply(&FromWorker::Renders { renders: vec![] }, &mut make);
        a.apply(&crash("Uncaught Error: z"), &mut make);
        assert_eq!(a.error.as_deref(), Some(quota));
    }

    #[test]
    fn an_export_runs_once_and_its_file_is_offered() {
        let mut a = Animate::default();
        let mut make = url();
        let (job, id) = started(&mut a);
        a.apply(&frame(&id, 0), &mut make);
        a.apply(
            &FromWorker::RenderDone {
                job: Some(job),
                render: id.clone(),
                order: vec![0],
                fps: None,
                lead: 0,
                heap_peak_bytes: 0,
            },
            &mut make,
        );
        assert_eq!(
            a.start_export(ExportFormat::Webm),
            Some(ToWorker::Export {
                render: id.clone(),
                format: ExportFormat::Webm
            })
        );
        assert_eq!(a.start_export(ExportFormat::Gif), None, "one at a time");
        a.apply(
            &FromWorker::Exported {
                render: id.clone(),
                format: ExportFormat::Webm,
                frames: 1,
                bytes: vec![1, 2, 3],
            },
            &mut make,
        );
        let file = a.exported.clone().unwrap_or_else(|| panic!("exported"));
        assert_eq!(file.name, "keyshift-r1.webm");
        assert!(file.url.starts_with("blob:video/webm:"));
        assert_eq!((file.frames, file.bytes), (1, 3));
        assert!(a.export.is_none());
    }

    #[test]
    fn a_page_made_export_plays_the_video_order_with_lead() {
        let mut a = Animate::default();
        let mut make = url();
        let (job, id) = started(&mut a);
        assert_eq!(
            a.start_local_export(ExportFormat::Webm),
            None,
            "not finished"
        );
        for i in 0..2 {
            a.apply(&frame(&id, i), &mut make);
        }
        a.apply(
            &FromWorker::RenderDone {
                job: Some(job),
                render: id,
                order: vec![0, 1, 1, 0],
                fps: Some(8.0),
                lead: 1,
                heap_peak_bytes: 0,
            },
            &mut make,
        );
        let (urls, fps) = a
            .start_local_export(ExportFormat::Webm)
            .unwrap_or_else(|| panic!("starts"));
        let url_of = |i: usize| a.render.as_ref().map(|r| r.frames[&i].url.clone());
        let expected: Vec<String> = [0, 0, 1, 1, 0, 0]
            .iter()
            .filter_map(|&i| url_of(i))
            .collect();
        assert_eq!(urls, expected);
        assert!((fps - 8.0).abs() < 1e-9);
        assert!(
            a.start_local_export(ExportFormat::Webm).is_none(),
            "one at a time"
        );
        a.local_export_progress(3);
        assert_eq!(a.export.map(|e| e.done), Some((3, 6)));
        a.finish_local_export(Ok(("blob:webm".into(), 99)));
        let file = a.exported.clone().unwrap_or_else(|| panic!("exported"));
        assert_eq!(
            (file.frames, file.bytes, file.name.as_str()),
            (6, 99, "keyshift-r1.webm")
        );
        a.start_local_export(ExportFormat::Webm);
        a.finish_local_export(Err("no recorder".into()));
        assert_eq!(a.error.as_deref(), Some("The export failed: no recorder"));
        assert!(a.exported.is_some(), "the earlier file stays");
    }

    #[test]
    fn one_frame_renders_again_and_replaces_its_image() {
        let mut a = Animate::default();
        let mut make = url();
        let (job, id) = started(&mut a);
        a.apply(&frame(&id, 0), &mut make);
        a.apply(&frame(&id, 1), &mut make);
        assert_eq!(a.rerender(1), None, "not while rendering");
        a.apply(
            &FromWorker::RenderDone {
                job: Some(job),
                render: id.clone(),
                order: vec![0, 1],
                fps: None,
                lead: 0,
                heap_peak_bytes: 0,
            },
            &mut make,
        );
        assert_eq!(a.rerender(7), None, "no such frame");
        let Some(ToWorker::RerenderFrame { job: again }) = a.rerender(1) else {
            panic!("re-renders");
        };
        assert_eq!((again.render.as_str(), again.index), (id.as_str(), 1));
        assert!(a.is_busy() && a.rerender(0).is_none());
        assert_eq!(a.cancel(), Some(ToWorker::Cancel { job: again.job }));
        let before = a.render.as_ref().map(|r| r.frames[&1].url.clone());
        a.apply(&frame(&id, 1), &mut make);
        assert!(!a.is_busy());
        assert_ne!(a.render.as_ref().map(|r| r.frames[&1].url.clone()), before);
        assert_eq!(a.take_stale_urls(), before.into_iter().collect::<Vec<_>>());
        a.rerender(0);
        a.apply(&FromWorker::Cancelled { job: again.job + 1 }, &mut make);
        assert!(!a.is_busy(), "a cancelled re-render ends");
    }

    #[test]
    fn counts_are_shown_before_rendering() {
        let p = project();
        let c = counts(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            counts_text(&c, false),
            "3 frames · video 6 frames, 0.2 s at 30 fps"
        );
        let mut p = project();
        p.animation.shift.fps = 0.0;
        assert_eq!(
            counts_text(&counts(&p).unwrap_or_else(|e| panic!("{e}")), true),
            "3 frames (SSIM gap filling may add more) · no video (FPS 0)"
        );
        p.prompt = "a (cat:1~~0)".into();
        assert!(counts(&p).is_err());
        let mut single = project();
        single.animation.mode = AnimationMode::Single;
        assert!(Animate::default().start(&single, "x".into(), 1).is_err());
    }

    #[test]
    fn a_travel_shows_its_stages_and_starts_a_travel_render() {
        let mut p = project();
        p.animation.mode = AnimationMode::PromptTravel;
        p.prompt = "a cat\na dog\na bird".into();
        p.animation.travel.steps = "2".into();
        assert_eq!(
            plan_text(&p).as_deref(),
            Ok("3 stages · 5 frames · video 5 frames, 0.5 s at 10 fps")
        );
        let mut a = Animate::default();
        let Ok(ToWorker::Render { job }) = a.start(&p, "t1".into(), 1) else {
            panic!("starts");
        };
        assert_eq!(job.travel.as_ref().map(|t| t.steps.as_str()), Some("2"));
        p.animation.travel.steps = "2, 2, 2".into();
        let err = plan_text(&p).unwrap_err();
        assert!(
            err.contains("3 stages need one number or 2 numbers"),
            "{err}"
        );
        assert!(Animate::default().start(&p, "t2".into(), 1).is_err());
    }
}
