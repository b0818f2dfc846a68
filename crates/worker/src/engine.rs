//! Running jobs: one at a time from the [`JobQueue`](crate::queue::JobQueue). Cancellation
//! takes effect between steps: each step ends by reading something back from the device, which
//! yields to the event loop, where a `Cancel` message is received.

use std::rc::Rc;

use keyshift_render::{Event, RenderSession, StepEvent};
use keyshift_sd::clock::Stopwatch;
use keyshift_sd::generate::{approx_rgb, read};
use keyshift_sd::hooks::NoHook;
use keyshift_sd::pipeline::{context, latent};
use keyshift_sd::taps::{CrossAttentionTap, StepHook, TapConfig, Tokens};
use keyshift_web::protocol::{BenchJob, FromWorker, GenerateJob, Stage};
use keyshift_web::worker::scope;
use wasm_bindgen_futures::spawn_local;

use crate::bench::{self, bench_report, bench_shapes};
use crate::job::{check_fits, fit, png_bytes, request_for, single_frame};
use crate::models::{Loaded, fail};
use crate::queue::{Job, Next};
use crate::state::WorkerState;

/// Queues `job`; it runs when the jobs before it are done.
pub fn enqueue(state: &Rc<WorkerState>, job: Job) {
    if state.queue.borrow_mut().push(job) {
        spawn_local(run_queue(Rc::clone(state)));
    }
}

/// Asks `job` to stop before its next step (or not to start).
pub fn cancel(state: &WorkerState, job: u64) {
    state.queue.borrow_mut().cancel(job);
}

async fn run_queue(state: Rc<WorkerState>) {
    loop {
        let next = state.queue.borrow_mut().take_next();
        let (stage, result) = match next {
            Next::Idle => return,
            Next::Skip(id) => {
                scope::post(&FromWorker::Cancelled { job: id });
                continue;
            }
            Next::Run(Job::Generate(job)) => (Stage::Generate, run(&state, job).await),
            Next::Run(Job::Render(job)) => (Stage::Render, crate::render::run(&state, *job).await),
            Next::Run(Job::Rerender(job)) => {
                (Stage::Render, crate::render::rerender(&state, job).await)
            }
            Next::Run(Job::Probe(job)) => (Stage::Generate, crate::probe::run(&state, *job).await),
            Next::Run(Job::Bench(job)) => (Stage::Generate, bench(&state, job).await),
        };
        if let Err(message) = result {
            fail(stage, message);
        }
    }
}

async fn run(state: &WorkerState, job: GenerateJob) -> Result<(), String> {
    let Some(loaded) = state.loaded() else {
        return Err("no model is loaded: pick one and load it first".into());
    };
    let clock = Stopwatch::start();
    let request = request_for(&job, &loaded.model)?;
    let report = StepReport {
        job: job.job,
        preview_every: job.preview_every,
        width: request.width,
        height: request.height,
    };
    if let Some(limit) = loaded.limit {
        check_fits(&job, &loaded.model.info, limit)?;
    }
    let control = state.control();
    let label = control.as_ref().map(|c| c.label.as_str());
    let (settings, source) = single_frame(&job, &request, &loaded.label, label)?;
    let mut tap = job
        .heatmap
        .as_ref()
        .map(|tokens| CrossAttentionTap::new(heatmap_config(tokens, job.cfg, &job.prompt)));
    let mut no_hook = NoHook;
    let hook: &mut dyn StepHook = match tap.as_mut() {
        Some(tap) => tap,
        None => &mut no_hook,
    };
    let mut session = RenderSession::new(
        &loaded.model,
        &loaded.tokenizer,
        &loaded.device,
        settings,
        source,
    );
    if let Some(control) = control.as_ref().filter(|_| job.control.is_some()) {
        session.with_controlnet(&control.net);
    }
    let mut sampling_ms = 0.0;
    let mut steps = 1;
    loop {
        match session
            .advance(&mut *hook)
            .await
            .map_err(|e| e.to_string())?
        {
            Event::Step(step) => {
                steps = u32::try_from(step.steps).unwrap_or(u32::MAX);
                if step_event(state, &report, &loaded, *step, &clock).await? {
                    return Ok(());
                }
                sampling_ms = clock.elapsed_ms();
            }
            Event::Frame(frame) => scope::post(&FromWorker::Image {
                job: job.job,
                png: png_bytes(&frame.image, Some(&frame.parameters))?,
                seed: job.seed,
                elapsed_ms: clock.elapsed_ms(),
                step_ms: sampling_ms / f64::from(steps.max(1)),
            }),
            Event::Done(_) => break,
        }
    }
    if let (Some(tap), Some(tokens)) = (tap, job.heatmap) {
        let maps = tap.finish().await.map_err(|e| format!("heatmap: {e}"))?;
        if let Some(map) = maps.maps.into_iter().next() {
            scope::post(&FromWorker::Heatmap {
                job: job.job,
                width: map.width,
                height: map.height,
                values: map.values,
                tokens,
            });
        }
    }
    Ok(())
}

/// Times `job`'s UNet steps with CFG on the loaded model (a warm-up step first; each step ends
/// by reading its output back); posts `Benchmarked`, or `Cancelled` between steps.
async fn bench(state: &WorkerState, job: BenchJob) -> Result<(), String> {
    let Some(loaded) = state.loaded() else {
        return Err("no model is loaded: pick one and load it first".into());
    };
    let shapes = bench_shapes(&job, &loaded.model.info, loaded.limit)?;
    let [b, c, h, w] = shapes.latent;
    let [_, tokens, width] = shapes.context;
    let x = latent(
        vec![bench::SAMPLE; b * c * h * w],
        shapes.latent,
        &loaded.device,
    );
    let ctx = context(
        vec![bench::CONTEXT; b * tokens * width],
        shapes.context,
        &loaded.device,
    );
    let step = || async {
        let clock = Stopwatch::start();
        let out = loaded
            .model
            .unet
            .forward(x.clone(), bench::TIMESTEP, &ctx, &mut NoHook);
        let values = read(out).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((clock.elapsed_ms(), values))
    };
    let (warmup_ms, output) = step().await?;
    let mut times = Vec::new();
    for _ in 0..job.runs {
        crate::entry::sleep(0).await; // lets a Cancel message in (see `step_event`)
        if state.queue.borrow_mut().take_cancelled(job.job) {
            scope::post(&FromWorker::Cancelled { job: job.job });
            return Ok(());
        }
        times.push(step().await?.0);
    }
    let report = bench_report(&job, warmup_ms, &times, &output);
    scope::post(&FromWorker::Benchmarked {
        job: job.job,
        report,
    });
    Ok(())
}

/// The tap of a generation's heatmap: `tokens` (empty: all after the first) summed over every
/// layer and step of the prompt's rows.
pub(crate) fn heatmap_config(tokens: &[usize], cfg: f64, prompt: &str) -> TapConfig {
    let tokens = if tokens.is_empty() {
        Tokens::AllButFirst
    } else {
        Tokens::At(tokens.to_vec())
    };
    TapConfig::generation(tokens, cfg, prompt)
}

/// What a job's steps report: its id, how often a preview is sent, the image size.
pub(crate) struct StepReport {
    pub(crate) job: u64,
    pub(crate) preview_every: u32,
    pub(crate) width: usize,
    pub(crate) height: usize,
}

/// Reports a step (progress, a preview when due), reads something back (which waits for the
/// device) and lets a Cancel message in; `true` when the job was cancelled.
pub(crate) async fn step_event(
    state: &WorkerState,
    job: &StepReport,
    loaded: &Loaded,
    step: StepEvent,
    clock: &Stopwatch,
) -> Result<bool, String> {
    let (index, steps) = (
        u32::try_from(step.step).unwrap_or(u32::MAX),
        u32::try_from(step.steps).unwrap_or(u32::MAX),
    );
    let denoised = step.output.denoised;
    let [_, c, h, w] = denoised.dims();
    let preview = job.preview_every > 0 && index % job.preview_every == 0 && index < steps;
    let image = match (&loaded.previewer, preview) {
        (Some(taesd), true) => Some(fit(
            taesd.preview(denoised).await.map_err(|e| e.to_string())?,
            job.width,
            job.height,
        )),
        (None, true) if c >= 4 => {
            let values = read(denoised.slice([0..1, 0..c, 0..h, 0..w]))
                .await
                .map_err(|e| e.to_string())?;
            Some(approx_rgb(&values, h, w, job.width / w.max(1)))
        }
        _ => {
            read(denoised.slice([0..1, 0..1, 0..1, 0..1]))
                .await
                .map_err(|e| e.to_string())?;
            None
        }
    };
    scope::post(&FromWorker::Progress {
        job: job.job,
        step: index,
        steps,
        elapsed_ms: clock.elapsed_ms(),
    });
    if let Some(image) = image {
        scope::post(&FromWorker::Preview {
            job: job.job,
            step: index,
            png: png_bytes(&image, None)?,
        });
    }
    // A turn of the event loop lets a Cancel message in: on the CPU backend a read resolves at
    // once, and without it the message would wait for the whole job.
    crate::entry::sleep(0).await;
    if state.queue.borrow_mut().take_cancelled(job.job) {
        scope::post(&FromWorker::Cancelled { job: job.job });
        return Ok(true);
    }
    Ok(false)
}
