//! The loaded model and the jobs run on it. One job runs at a time; later ones wait in a queue.
//! Cancellation takes effect between steps: each step ends by reading something back from the
//! device, which yields to the event loop, where a `Cancel` message is received.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, VecDeque};
use std::rc::Rc;

use keyshift_core::tokens::ClipTokenizer;
use keyshift_sd::clock::Stopwatch;
use keyshift_sd::generate::{Generation, approx_rgb, read};
use keyshift_sd::hooks::NoHook;
use keyshift_sd::model::SdModel;
use keyshift_sd::weights::{Precision, SafetensorsFile};
use keyshift_sd::{Device, generate::size_multiple};
use keyshift_web::protocol::{
    ComputeBackend, FromWorker, GenerateJob, LoadPhase, ModelLayout, ModelSpec, Stage,
};
use keyshift_web::worker::scope;
use wasm_bindgen_futures::spawn_local;

use crate::blob::{BlobFolder, BlobSource};
use crate::fetch::{FetchError, download};
use crate::job::{png_base64, request_for, summary};

/// A model ready to generate with.
struct Loaded {
    model: SdModel,
    device: Device,
    tokenizer: ClipTokenizer,
    label: String,
}

thread_local! {
    static LOADED: RefCell<Option<Rc<Loaded>>> = const { RefCell::new(None) };
    static CANCELLED: RefCell<BTreeSet<u64>> = const { RefCell::new(BTreeSet::new()) };
    static QUEUE: RefCell<VecDeque<GenerateJob>> = const { RefCell::new(VecDeque::new()) };
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

fn fail(stage: Stage, message: impl Into<String>) {
    scope::post(&FromWorker::Failed {
        stage,
        message: message.into(),
    });
}

/// Fetches and loads `spec` on `backend`, replacing the loaded model; reports progress, then
/// `ModelReady` or `Failed { Model }` (the previous model is gone either way: its memory is
/// needed).
pub async fn load(spec: ModelSpec, backend: ComputeBackend) {
    if let Err(message) = try_load(spec, backend).await {
        fail(Stage::Model, message);
    }
}

async fn try_load(spec: ModelSpec, backend: ComputeBackend) -> Result<(), String> {
    let clock = Stopwatch::start();
    LOADED.with(|l| l.borrow_mut().take());
    let precision = Precision::parse(&spec.precision)
        .ok_or_else(|| format!("unknown precision \"{}\" (int8 or f32)", spec.precision))?;
    if spec.files.is_empty() {
        return Err(format!("{}: the model lists no files", spec.label));
    }
    let count = u32::try_from(spec.files.len()).unwrap_or(u32::MAX);
    let mut folder = BlobFolder::default();
    let mut fetched = 0u64;
    for (index, file) in spec.files.iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let fetch = |path: String, url: String| {
            let mut last = Stopwatch::start();
            async move {
                let blob = download(&url, |done, total| {
                    if last.elapsed_ms() > 100.0 || total == Some(done) {
                        last = Stopwatch::start();
                        scope::post(&FromWorker::LoadProgress {
                            file: path.clone(),
                            phase: LoadPhase::Download,
                            index,
                            count,
                            done_bytes: done,
                            total_bytes: total,
                        });
                    }
                })
                .await;
                (path, blob)
            }
        };
        let (path, blob) = match (
            fetch(file.path.clone(), file.url.clone()).await,
            &file.fallback,
        ) {
            ((_, Err(FetchError::NotFound(_))), Some((path, url))) => {
                fetch(path.clone(), url.clone()).await
            }
            (done, _) => done,
        };
        let blob = blob.map_err(|e| e.to_string())?;
        let file_path = path;
        fetched += blob.size() as u64;
        folder.insert(&file_path, blob);
    }
    scope::post(&FromWorker::LoadProgress {
        file: spec.label.clone(),
        phase: LoadPhase::Prepare,
        index: count,
        count,
        done_bytes: 0,
        total_bytes: None,
    });
    let device = match backend {
        ComputeBackend::Webgpu => crate::entry::device().await?,
        ComputeBackend::Cpu => Device::flex(),
    };
    let model = match spec.layout {
        ModelLayout::Diffusers => {
            SdModel::load_diffusers_at(&folder, precision, &device).map_err(|e| e.to_string())?
        }
        ModelLayout::SingleFile => {
            let first = spec.files.first().ok_or("the model lists no files")?;
            let blob = folder
                .get(&first.path)
                .cloned()
                .ok_or_else(|| format!("{}: missing", first.path))?;
            let file = SafetensorsFile::open(&first.path, Box::new(BlobSource::new(blob)?))
                .map_err(|e| e.to_string())?;
            SdModel::load_single_file_at(file, None, None, precision, &device)
                .map_err(|e| e.to_string())?
        }
    };
    let tokenizer = ClipTokenizer::embedded().map_err(|e| e.to_string())?;
    let (_, multiple) = size_multiple(&model);
    let ready = FromWorker::ModelReady {
        id: spec.id.clone(),
        summary: summary(&model.info, backend),
        size_multiple: u32::try_from(multiple).unwrap_or(8),
        fetched_bytes: fetched,
        load_ms: clock.elapsed_ms(),
    };
    LOADED.with(|l| {
        *l.borrow_mut() = Some(Rc::new(Loaded {
            model,
            device,
            tokenizer,
            label: spec.label,
        }));
    });
    scope::post(&ready);
    Ok(())
}

/// Queues `job`; it runs when the jobs before it are done.
pub fn enqueue(job: GenerateJob) {
    QUEUE.with(|q| q.borrow_mut().push_back(job));
    if !BUSY.with(Cell::get) {
        spawn_local(run_queue());
    }
}

/// Asks `job` to stop before its next step (or not to start).
pub fn cancel(job: u64) {
    CANCELLED.with(|c| c.borrow_mut().insert(job));
}

fn take_cancelled(job: u64) -> bool {
    CANCELLED.with(|c| c.borrow_mut().remove(&job))
}

async fn run_queue() {
    BUSY.with(|b| b.set(true));
    while let Some(job) = QUEUE.with(|q| q.borrow_mut().pop_front()) {
        let id = job.job;
        if take_cancelled(id) {
            scope::post(&FromWorker::Cancelled { job: id });
            continue;
        }
        if let Err(message) = run(job).await {
            fail(Stage::Generate, message);
        }
    }
    BUSY.with(|b| b.set(false));
}

async fn run(job: GenerateJob) -> Result<(), String> {
    let Some(loaded) = LOADED.with(|l| l.borrow().clone()) else {
        return Err("no model is loaded: pick one and load it first".into());
    };
    let clock = Stopwatch::start();
    let request = request_for(&job, &loaded.model)?;
    let mut generation =
        Generation::new(&loaded.model, &loaded.tokenizer, &request, &loaded.device)
            .map_err(|e| e.to_string())?;
    let steps = u32::try_from(generation.total_steps()).unwrap_or(u32::MAX);
    let sampling = Stopwatch::start();
    while let Some(out) = generation.step(&mut NoHook).map_err(|e| e.to_string())? {
        let step = u32::try_from(out.step + 1).unwrap_or(u32::MAX);
        let [_, c, h, w] = out.denoised.dims();
        let preview = job.preview_every > 0 && step % job.preview_every == 0 && step < steps;
        // Reading back waits for the device and lets the Cancel message in.
        let readback = if preview {
            out.denoised
        } else {
            out.denoised.slice([0..1, 0..1, 0..1, 0..1])
        };
        let values = read(readback).await.map_err(|e| e.to_string())?;
        scope::post(&FromWorker::Progress {
            job: job.job,
            step,
            steps,
            elapsed_ms: clock.elapsed_ms(),
        });
        if preview && c >= 4 {
            let down = request.width / w.max(1);
            let image = approx_rgb(&values, h, w, down);
            scope::post(&FromWorker::Preview {
                job: job.job,
                step,
                png: png_base64(&image, None)?,
            });
        }
        if take_cancelled(job.job) {
            scope::post(&FromWorker::Cancelled { job: job.job });
            return Ok(());
        }
    }
    let step_ms = sampling.elapsed_ms() / f64::from(steps.max(1));
    let generated = generation.finish().await.map_err(|e| e.to_string())?;
    let parameters = request.parameters(&loaded.label).to_text();
    scope::post(&FromWorker::Image {
        job: job.job,
        png: png_base64(&generated.image, Some(&parameters))?,
        seed: job.seed,
        elapsed_ms: clock.elapsed_ms(),
        step_ms,
    });
    Ok(())
}
