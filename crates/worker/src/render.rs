//! Render jobs: an animation on the render layer, each finished frame stored in the frame store
//! and sent to the UI the moment it exists; opening, listing and deleting stored renders; and
//! exports (WebM, GIF, zip, heatmaps) read from the store. A job with heatmap tokens gets each
//! frame's token heatmap (a fresh tap per frame, so memory does not grow with the frames).

use std::collections::BTreeMap;

use keyshift_core::image::heatmap::HeatmapData;
use keyshift_render::store::{StoredEnd, frame_png, frame_texts, stored_frame};
use keyshift_render::{AnimationSource, Event, RenderSession, StoredFrame};
use keyshift_sd::clock::Stopwatch;
use keyshift_sd::hooks::NoHook;
use keyshift_sd::taesd::Taesd;
use keyshift_sd::taps::{CrossAttentionTap, StepHook};
use keyshift_web::cache::bytes_text;
use keyshift_web::protocol::{ExportFormat, FromWorker, RenderJob, RerenderJob, Stage};
use keyshift_web::worker::scope;

use crate::cache;
use crate::engine::{StepReport, step_event};
use crate::job::{
    animation_plan, check_fits, frame_again, frame_info, render_settings, request_for, travel_plan,
    valid_render_id,
};
use crate::models::Loaded;
use crate::state::WorkerState;
use crate::store::{self, RenderStore};

/// Renders `job`; frames go to the store and to the UI as they finish.
pub async fn run(state: &WorkerState, job: RenderJob) -> Result<(), String> {
    let Some(loaded) = state.loaded() else {
        return Err("no model is loaded: pick one and load it first".into());
    };
    let clock = Stopwatch::start();
    let heap_before = crate::heap::reset_peak();
    let request = request_for(&job.frame, &loaded.model)?;
    if let Some(limit) = loaded.limit {
        check_fits(&job.frame, &loaded.model.info, limit)?;
    }
    let (mut settings, source) = animation_plan(&job, &request, &loaded.label)?;
    settings.temporal = (*job.temporal).clone();
    let control = state.control();
    if let Some(c) = job.control.as_deref() {
        let label = control.as_ref().map(|l| l.label.as_str());
        settings.control = Some(crate::job::render_control(c, label)?);
    }
    let (store, stored) = open_store(&job).await?;
    let mut session = RenderSession::new(
        &loaded.model,
        &loaded.tokenizer,
        &loaded.device,
        settings,
        source,
    );
    session.resume_with(stored);
    session.with_auto_frame_batch();
    if let Some(control) = control.as_ref().filter(|_| job.control.is_some()) {
        session.with_controlnet(&control.net);
    }
    if let Some(taesd) = frames_taesd(&loaded, job.taesd_frames)? {
        session.with_taesd_frames(taesd);
    }
    let mut taps = FrameTaps::new(&job);
    let report = StepReport {
        job: job.frame.job,
        preview_every: job.frame.preview_every,
        width: request.width,
        height: request.height,
    };
    loop {
        match session
            .advance(taps.hook())
            .await
            .map_err(|e| e.to_string())?
        {
            Event::Step(step) => {
                if step_event(state, &report, &loaded, *step, &clock).await? {
                    return Ok(());
                }
                let p = session.progress();
                scope::post(&FromWorker::RenderProgress {
                    job: job.frame.job,
                    render: job.render.clone(),
                    frames_done: p.frames_done,
                    frames_expected: p.frames_expected,
                    eta_seconds: p.eta_seconds,
                    temporal_bytes: session.temporal_bytes() as u64,
                });
            }
            Event::Frame(frame) => {
                let png = frame_png(&frame)?;
                if !frame.resumed {
                    store
                        .put_frame(frame.record.generation_index, &png)
                        .await
                        .map_err(|e| storage_error(&e))?;
                }
                scope::post(&FromWorker::Frame {
                    render: job.render.clone(),
                    frame: frame_info(&frame.record, &frame.parameters),
                    png,
                });
                let index = frame.record.generation_index;
                taps.frame_done(&store, &job.render, index, frame.resumed)
                    .await?;
            }
            Event::Done(finished) => {
                let end = StoredEnd::from(&finished);
                store.finish(&end).await.map_err(|e| storage_error(&e))?;
                let peak = crate::heap::peak_bytes().saturating_sub(heap_before);
                let mut done = done_message(Some(job.frame.job), &job.render, &end);
                if let FromWorker::RenderDone {
                    heap_peak_bytes, ..
                } = &mut done
                {
                    *heap_peak_bytes = peak as u64;
                }
                scope::post(&done);
                return Ok(());
            }
        }
    }
}

/// The TAESD that decodes the frames when the job asks for it, or why it cannot.
fn frames_taesd(loaded: &Loaded, asked: bool) -> Result<Option<&Taesd>, String> {
    if !asked {
        return Ok(None);
    }
    let taesd = loaded.previewer.as_ref().ok_or(
        "TAESD frames: no TAESD was loaded with this model; render with the model's VAE instead",
    )?;
    let vae = &loaded.model.info.vae;
    taesd
        .check_fits(vae.latent_channels, vae.downscale())
        .map_err(|e| format!("TAESD frames: {e}"))?;
    Ok(Some(taesd))
}

/// Makes one stored frame again with the loaded model and replaces it in the store.
pub async fn rerender(state: &WorkerState, job: RerenderJob) -> Result<(), String> {
    let Some(loaded) = state.loaded() else {
        return Err("no model is loaded: pick one and load it first".into());
    };
    valid_render_id(&job.render)?;
    let store = RenderStore::open(&job.render, false)
        .await?
        .ok_or("this render is no longer in the browser's storage")?;
    let stored = store.job().await?;
    let (record, _) = frame_texts(&store.frame(job.index).await?)?;
    let mut frame = stored.frame.clone();
    frame.job = job.job;
    let request = request_for(&frame, &loaded.model)?;
    if let Some(limit) = loaded.limit {
        check_fits(&frame, &loaded.model.info, limit)?;
    }
    let (settings, source) = match &stored.travel {
        Some(travel) => {
            let (settings, plan) = travel_plan(&stored, travel, &request, &loaded.label)?;
            let img2img = plan.is_img2img(&record);
            let previous = match (img2img, job.index.checked_sub(1)) {
                (true, Some(before)) => Some(stored_frame(&store.frame(before).await?)?.image),
                _ => None,
            };
            let again = plan.again(&record, previous).map_err(|e| e.to_string())?;
            (settings, AnimationSource::TravelAgain(Box::new(again)))
        }
        None => (
            render_settings(&request, stored.shift.upscale, &loaded.label),
            AnimationSource::Single(Box::new(frame_again(&record))),
        ),
    };
    let mut session = RenderSession::new(
        &loaded.model,
        &loaded.tokenizer,
        &loaded.device,
        settings,
        source,
    );
    if let Some(taesd) = frames_taesd(&loaded, stored.taesd_frames)? {
        session.with_taesd_frames(taesd);
    }
    let (clock, report) = (
        Stopwatch::start(),
        StepReport {
            job: job.job,
            preview_every: 0,
            width: request.width,
            height: request.height,
        },
    );
    loop {
        match session
            .advance(&mut NoHook)
            .await
            .map_err(|e| e.to_string())?
        {
            Event::Step(step) => {
                if step_event(state, &report, &loaded, *step, &clock).await? {
                    return Ok(());
                }
            }
            // Embryo genesis makes its embryo frame first; only the asked-for frame is kept.
            Event::Frame(made) if made.record.generation_index != job.index => {}
            Event::Frame(made) => {
                let png = frame_png(&made)?;
                store
                    .put_frame(job.index, &png)
                    .await
                    .map_err(|e| storage_error(&e))?;
                scope::post(&FromWorker::Frame {
                    render: job.render.clone(),
                    frame: frame_info(&made.record, &made.parameters),
                    png,
                });
            }
            Event::Done(_) => return Ok(()),
        }
    }
}

/// Each frame's token heatmap, for a job that asks for one: a fresh tap per frame.
struct FrameTaps {
    tokens: Option<Vec<usize>>,
    cfg: f64,
    prompt: String,
    tap: Option<CrossAttentionTap>,
    none: NoHook,
}

impl FrameTaps {
    fn new(job: &RenderJob) -> Self {
        // The frames' prompts share the first line's `AND` parts (a travel's stages are lines).
        let prompt = job.frame.prompt.lines().next().unwrap_or("").to_owned();
        let mut taps = Self {
            tokens: job.frame.heatmap.clone(),
            cfg: job.frame.cfg,
            prompt,
            tap: None,
            none: NoHook,
        };
        taps.tap = taps.fresh();
        taps
    }

    fn fresh(&self) -> Option<CrossAttentionTap> {
        let tokens = self.tokens.as_ref()?;
        let config = crate::engine::heatmap_config(tokens, self.cfg, &self.prompt);
        Some(CrossAttentionTap::new(config))
    }

    fn hook(&mut self) -> &mut dyn StepHook {
        match self.tap.as_mut() {
            Some(tap) => tap,
            None => &mut self.none,
        }
    }

    /// A frame finished: its map (or, for a frame handed back on resume, the stored one) is
    /// kept and sent; the next frame gets a fresh tap.
    async fn frame_done(
        &mut self,
        store: &RenderStore,
        render: &str,
        index: usize,
        resumed: bool,
    ) -> Result<(), String> {
        let Some(tap) = self.tap.take() else {
            return Ok(());
        };
        self.tap = self.fresh();
        let map = if resumed {
            store.heatmap(index).await?
        } else {
            let maps = tap.finish().await.map_err(|e| format!("heatmap: {e}"))?;
            let tokens = self.tokens.clone().unwrap_or_default();
            let map = maps
                .maps
                .into_iter()
                .next()
                .filter(|_| maps.layer_calls > 0)
                .map(|m| HeatmapData {
                    width: m.width,
                    height: m.height,
                    values: m.values,
                    tokens,
                });
            if let Some(map) = &map {
                store
                    .put_heatmap(index, map)
                    .await
                    .map_err(|e| storage_error(&e))?;
            }
            map
        };
        if let Some(heatmap) = map {
            scope::post(&FromWorker::FrameHeatmap {
                render: render.to_owned(),
                index,
                heatmap,
            });
        }
        Ok(())
    }
}

fn done_message(job: Option<u64>, render: &str, end: &StoredEnd) -> FromWorker {
    FromWorker::RenderDone {
        job,
        render: render.to_owned(),
        order: end.order.clone(),
        fps: end.fps,
        lead: end.lead,
        heap_peak_bytes: 0,
    }
}

/// A store failure as the user should read it: a full quota says so (the frames so far stay).
fn storage_error(message: &str) -> String {
    if cache::is_quota_error(message) {
        "the browser's storage for this site is full: the frames rendered so far are kept; \
         delete old renders or cached models, then Resume"
            .to_owned()
    } else {
        format!("the frame store failed: {message}")
    }
}

/// The render's store: fresh, or (resuming) as left, with its frames read back.
async fn open_store(
    job: &RenderJob,
) -> Result<(RenderStore, BTreeMap<usize, StoredFrame>), String> {
    if !job.resume {
        let store = RenderStore::create(job)
            .await
            .map_err(|e| storage_error(&e))?;
        return Ok((store, BTreeMap::new()));
    }
    let store = RenderStore::open(&job.render, false)
        .await?
        .ok_or("this render is no longer in the browser's storage; render it again")?;
    let mut stored = BTreeMap::new();
    for (index, png) in store.frames().await? {
        // A frame cut off by a reload or crash while it was written is rendered again.
        match stored_frame(&png) {
            Ok(frame) => {
                stored.insert(index, frame);
            }
            Err(e) => web_sys::console::warn_1(
                &format!("stored frame {index} is unreadable ({e}); rendering it again").into(),
            ),
        }
    }
    Ok((store, stored))
}

/// Sends a stored render's frames, then what it is (and its end, when it finished).
pub async fn open(render: String) {
    if let Err(message) = try_open(&render).await {
        fail(Stage::Render, message);
    }
}

async fn try_open(render: &str) -> Result<(), String> {
    valid_render_id(render)?;
    let store = RenderStore::open(render, false)
        .await?
        .ok_or_else(|| format!("render {render} is no longer in the browser's storage"))?;
    let info = store.info(render).await?;
    for index in store.frame_indices().await? {
        let png = store.frame(index).await?;
        let Ok((record, parameters)) = frame_texts(&png) else {
            continue;
        };
        scope::post(&FromWorker::Frame {
            render: render.to_owned(),
            frame: frame_info(&record, &parameters),
            png,
        });
        if let Some(heatmap) = store.heatmap(index).await? {
            scope::post(&FromWorker::FrameHeatmap {
                render: render.to_owned(),
                index,
                heatmap,
            });
        }
    }
    scope::post(&FromWorker::RenderOpened { info });
    if let Some(end) = store.end().await? {
        scope::post(&done_message(None, render, &end));
    }
    Ok(())
}

/// Posts the renders in the store.
pub async fn report() {
    match store::list().await {
        Ok(renders) => scope::post(&FromWorker::Renders { renders }),
        Err(e) => fail(Stage::Render, format!("cannot read the frame store: {e}")),
    }
}

/// Deletes a render, then reports the store.
pub async fn delete(render: String) {
    let deleted = match valid_render_id(&render) {
        Ok(()) => store::delete(&render).await,
        Err(e) => Err(e),
    };
    if let Err(e) = deleted {
        fail(
            Stage::Render,
            format!("could not delete render {render}: {e}"),
        );
    }
    report().await;
}

/// Exports a finished render to `format`; posts progress, then the file.
pub async fn export(render: String, format: ExportFormat) {
    if let Err(message) = try_export(&render, format).await {
        fail(Stage::Export, message);
    }
}

async fn try_export(render: &str, format: ExportFormat) -> Result<(), String> {
    valid_render_id(render)?;
    let store = RenderStore::open(render, false)
        .await?
        .ok_or_else(|| format!("render {render} is no longer in the browser's storage"))?;
    let end = store
        .end()
        .await?
        .ok_or("the render is not finished: resume it, then export")?;
    let frames = store.frames().await?;
    let total = end.order.len() + 2 * end.lead;
    let bytes = match format {
        ExportFormat::Zip => end.zip(&frames)?,
        ExportFormat::Heatmaps => end.heatmap_zip(&frames, &store.heatmaps().await?)?,
        ExportFormat::Gif => end.gif(&frames)?,
        ExportFormat::Webm => {
            if !crate::video::available() {
                return Err("this browser has no WebCodecs video encoder (VideoEncoder)".into());
            }
            let images = end.video_images(&frames)?;
            drop(frames);
            let render_id = render.to_owned();
            crate::video::encode_webm(&images, end.video_fps(), |done| {
                scope::post(&FromWorker::ExportProgress {
                    render: render_id.clone(),
                    done,
                    total,
                });
            })
            .await?
        }
    };
    tracing_info(&format!(
        "exported render {render} as {}: {}",
        format.extension(),
        bytes_text(bytes.len() as u64)
    ));
    scope::post(&FromWorker::Exported {
        render: render.to_owned(),
        format,
        frames: if matches!(format, ExportFormat::Zip | ExportFormat::Heatmaps) {
            end.order.len()
        } else {
            total
        },
        bytes,
    });
    Ok(())
}

fn fail(stage: Stage, message: String) {
    scope::post(&FromWorker::Failed { stage, message });
}

fn tracing_info(message: &str) {
    web_sys::console::log_1(&message.into());
}
