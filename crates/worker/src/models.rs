//! Models: fetched (or read from the offline cache), prepared and loaded onto the device; the
//! offline cache's list and deletes; token counts.

use std::rc::Rc;

use keyshift_core::tokens::ClipTokenizer;
use keyshift_sd::clock::Stopwatch;
use keyshift_sd::config::ClipConfig;
use keyshift_sd::controlnet::ControlNet;
use keyshift_sd::model::{Folder, PREPARED_WEIGHTS, SdModel};
use keyshift_sd::taesd::Taesd;
use keyshift_sd::weights::stream::StreamingWriter;
use keyshift_sd::weights::{Precision, SafetensorsFile};
use keyshift_sd::{Device, generate::size_multiple};
use keyshift_web::cache::{CachedFile, Manifest, bytes_text};
use keyshift_web::gpu::GpuStatus;
use keyshift_web::protocol::{
    CachedModelInfo, ComputeBackend, FromWorker, LoadPhase, ModelLayout, ModelSpec, Stage,
};
use keyshift_web::worker::scope;
use wasm_bindgen::JsCast;
use web_sys::Blob;

use crate::blob::{BlobFolder, BlobSource};
use crate::cache::{self, CacheWriter, ModelDir};
use crate::fetch::{FetchError, MemorySink, download};
use crate::job::{check_weights_fit, engine_precision, pin_mismatch, summary, unpinned};
use crate::state::WorkerState;

/// A model ready to generate with.
pub(crate) struct Loaded {
    pub(crate) model: SdModel,
    pub(crate) device: Device,
    pub(crate) tokenizer: Rc<ClipTokenizer>,
    pub(crate) label: String,
    /// TAESD for step previews, when it loaded.
    pub(crate) previewer: Option<Taesd>,
    /// Bytes per buffer the WebGPU device allows (`None` on the CPU).
    pub(crate) limit: Option<u64>,
}

/// A ControlNet ready to guide the loaded model.
pub(crate) struct LoadedControl {
    pub(crate) net: ControlNet,
    /// Its name for the records (the model id's last part, `control_v11p_sd15_canny`).
    pub(crate) label: String,
}

/// Fetches and loads the ControlNet `spec` onto the loaded model's device; reports
/// `ControlNetReady` or `Failed { ControlNet }`.
pub async fn load_controlnet(state: Rc<WorkerState>, spec: ModelSpec) {
    if let Err(message) = try_load_controlnet(&state, spec).await {
        fail(Stage::ControlNet, message);
    }
}

async fn try_load_controlnet(state: &WorkerState, spec: ModelSpec) -> Result<(), String> {
    let clock = Stopwatch::start();
    let loaded = state
        .loaded()
        .ok_or("load a model first: a ControlNet guides the loaded model")?;
    state.control.replace(None);
    let (folder, fetched, from_cache) = fetch_model(&spec).await?;
    let precision = engine_precision(spec.precision);
    let (net, config) = match spec.layout {
        ModelLayout::Diffusers => ControlNet::load_diffusers(&folder, precision, &loaded.device),
        ModelLayout::SingleFile => {
            let file = first_file(&spec, &folder)?;
            ControlNet::load_single_file(file, &loaded.model.info.unet, precision, &loaded.device)
        }
    }
    .map_err(|e| format!("{}: {e}", spec.label))?;
    config
        .check_fits(&loaded.model.info)
        .map_err(|e| format!("{}: {e}", spec.label))?;
    let label = spec.id.rsplit('/').next().unwrap_or(&spec.id).to_owned();
    state
        .control
        .replace(Some(Rc::new(LoadedControl { net, label })));
    scope::post(&FromWorker::ControlNetReady {
        id: spec.id,
        fetched_bytes: fetched,
        from_cache,
        load_ms: clock.elapsed_ms(),
    });
    Ok(())
}

/// Frees the ControlNet (if one is loaded) and says so.
pub fn unload_controlnet(state: &WorkerState) {
    if state.control.replace(None).is_some() {
        scope::post(&FromWorker::ControlNetUnloaded);
    }
}

/// Posts the token counts of the prompt boxes.
pub fn count_tokens(state: &WorkerState, prompt: &str, negative: &str, steps: u32) {
    let prompt_text = prompt;
    let counts = state.tokenizer().and_then(|t| {
        let count = |text: &str, positive: bool| {
            t.count_tokens(text, steps, positive)
                .map_err(|e| e.to_string())
        };
        Ok((count(prompt, true)?, count(negative, false)?))
    });
    match counts {
        Ok((prompt, negative)) => scope::post(&FromWorker::Tokens {
            prompt,
            negative,
            chips: state
                .tokenizer()
                .ok()
                .and_then(|t| t.chips(prompt_text).ok())
                .unwrap_or_default(),
        }),
        Err(e) => tracing_warn(&format!("cannot count tokens: {e}")),
    }
}

pub(crate) fn fail(stage: Stage, message: impl Into<String>) {
    scope::post(&FromWorker::Failed {
        stage,
        message: message.into(),
    });
}

/// Fetches and loads `spec` on `backend`, replacing the loaded model; reports progress, then
/// `ModelReady` or `Failed { Model }` (the previous model is gone either way: its memory is
/// needed).
pub async fn load(
    state: Rc<WorkerState>,
    spec: ModelSpec,
    backend: ComputeBackend,
    previewer: Option<ModelSpec>,
    attached: Vec<Blob>,
) {
    if let Err(message) = try_load(&state, spec, backend, previewer, attached).await {
        fail(Stage::Model, message);
    }
}

async fn try_load(
    state: &WorkerState,
    spec: ModelSpec,
    backend: ComputeBackend,
    previewer: Option<ModelSpec>,
    attached: Vec<Blob>,
) -> Result<(), String> {
    let clock = Stopwatch::start();
    state.loaded.replace(None);
    // A ControlNet belongs to the model it was loaded for (and its device).
    unload_controlnet(state);
    let heap_before = crate::heap::reset_peak();
    let precision = engine_precision(spec.precision);
    if spec.files.is_empty() {
        return Err(format!("{}: the model lists no files", spec.label));
    }
    let (folder, mut fetched, from_cache) = if spec.files.iter().any(|f| f.attached().is_some()) {
        (attached_folder(&spec, attached)?, 0, false)
    } else {
        fetch_model(&spec).await?
    };
    let count = u32::try_from(spec.files.len()).unwrap_or(u32::MAX);
    scope::post(&FromWorker::LoadProgress {
        file: spec.label.clone(),
        phase: LoadPhase::Prepare,
        index: count,
        count,
        done_bytes: 0,
        total_bytes: None,
        resumed_bytes: 0,
        elapsed_ms: 0.0,
    });
    let (device, limit) = match backend {
        ComputeBackend::Webgpu => (state.device().await?, buffer_limit().await),
        ComputeBackend::Cpu => (keyshift_sd::cpu_device(), None),
    };
    let largest_tensor_bytes = largest_tensor_bytes(&folder);
    if let Some(limit) = limit {
        check_weights_fit(largest_tensor_bytes, limit)?;
    }
    let model = match spec.layout {
        ModelLayout::Diffusers => load_diffusers(&spec, &folder, precision, &device).await?,
        ModelLayout::SingleFile => {
            let file = first_file(&spec, &folder)?;
            // Beside the checkpoint: its inference `.yaml`, and a text encoder `config.json`
            // for encoders whose heads the weights cannot tell.
            let beside = |suffix: &str| {
                spec.files
                    .iter()
                    .skip(1)
                    .find(|f| f.path.to_ascii_lowercase().ends_with(suffix))
                    .map(|f| {
                        folder
                            .read_text(&f.path)
                            .map(|text| (f.path.clone(), text))
                            .ok_or_else(|| format!("{}: cannot be read", f.path))
                    })
                    .transpose()
            };
            let yaml = beside(".yaml")?;
            let clip = beside(".json")?
                .map(|(path, text)| ClipConfig::from_json(&path, &text))
                .transpose()
                .map_err(|e| e.to_string())?;
            SdModel::load_single_file_at(
                file,
                yaml.as_ref().map(|(_, text)| text.as_str()),
                clip.as_ref(),
                precision,
                &device,
            )
            .map_err(|e| e.to_string())?
        }
    };
    let tokenizer = state.tokenizer()?;
    // TAESD is small and optional: when it cannot be had, previews are approximate.
    let previewer = match &previewer {
        Some(p) => match fetch_model(p).await {
            Ok((folder, bytes, _)) => {
                fetched += bytes;
                Taesd::load_folder(&folder, false, &device)
                    .map_err(|e| format!("TAESD did not load: {e}"))
            }
            Err(e) => Err(format!("TAESD did not load: {e}")),
        },
        None => Err(String::new()),
    };
    let previews = match &previewer {
        Ok(_) => "TAESD previews".to_owned(),
        Err(why) if why.is_empty() => "approximate previews".to_owned(),
        Err(why) => {
            tracing_warn(why);
            format!("approximate previews ({why})")
        }
    };
    let vae = &model.info.vae;
    let taesd_frames = previewer.as_ref().is_ok_and(|taesd| {
        taesd
            .check_fits(vae.latent_channels, vae.downscale())
            .is_ok()
    });
    let memory_bytes = wasm_memory_bytes();
    let memory_growth_bytes =
        u64::try_from(crate::heap::peak_bytes().saturating_sub(heap_before)).unwrap_or(u64::MAX);
    let (_, multiple) = size_multiple(&model);
    let ready = FromWorker::ModelReady {
        id: spec.id.clone(),
        summary: summary(&model.info, backend),
        size_multiple: u32::try_from(multiple).unwrap_or(8),
        fetched_bytes: fetched,
        from_cache,
        load_ms: clock.elapsed_ms(),
        previews,
        taesd_frames,
        memory_growth_bytes,
        largest_tensor_bytes,
        memory_bytes,
        layers: model
            .unet
            .attention_layers()
            .into_iter()
            .map(|l| (l.name, l.downscale))
            .collect(),
    };
    state.loaded.replace(Some(Rc::new(Loaded {
        model,
        device,
        tokenizer,
        label: spec.label,
        previewer: previewer.ok(),
        limit,
    })));
    scope::post(&ready);
    Ok(())
}

/// A single-file model's weights: the first of its files.
fn first_file(spec: &ModelSpec, folder: &BlobFolder) -> Result<SafetensorsFile, String> {
    let first = spec
        .files
        .first()
        .ok_or_else(|| format!("{}: no files are listed", spec.label))?;
    let blob = folder
        .get(&first.path)
        .cloned()
        .ok_or_else(|| format!("{}: missing", first.path))?;
    SafetensorsFile::open(&first.path, crate::blob::weights_source(blob)?)
        .map_err(|e| e.to_string())
}

/// The model's files: from the offline cache when it holds them intact, otherwise downloaded
/// (into the cache where the browser allows). Returns them, the bytes fetched, and whether they
/// came from the cache.
async fn fetch_model(spec: &ModelSpec) -> Result<(BlobFolder, u64, bool), String> {
    let dir = match ModelDir::open(&spec.id, true).await {
        Ok(dir) => dir,
        Err(e) => {
            tracing_warn(&format!(
                "offline cache unavailable, downloading to memory: {e}"
            ));
            None
        }
    };
    let mut damaged = false;
    if let Some(dir) = &dir
        && let Some(manifest) = dir.manifest().await
    {
        let checked = match unpinned(spec, &manifest.files) {
            Some(file) => Err(format!(
                "{} in the cache is not the published file (its SHA-256 is not the pinned one)",
                file.path
            )),
            None => cached_folder(dir, &manifest).await,
        };
        match checked {
            Ok(folder) => return Ok((folder, 0, true)),
            Err(e) => {
                tracing_warn(&format!("{}: {e}; downloading again", spec.label));
                damaged = true;
            }
        }
    }
    // A damaged cache entry is replaced by a fresh download into a fresh folder.
    let dir = if damaged {
        cache::delete(&spec.id).await?;
        ModelDir::open(&spec.id, true).await?
    } else {
        dir
    };
    // An interrupted download (a reload, a closed tab, a failure) left its finished files and
    // part of the next one: keep what still checks out and continue from there.
    let done_before = match &dir {
        Some(dir) if !damaged => dir.partial().await.map(|m| m.files).unwrap_or_default(),
        _ => Vec::new(),
    };
    let count = u32::try_from(spec.files.len()).unwrap_or(u32::MAX);
    let mut folder = BlobFolder::default();
    let mut fetched = 0u64;
    let mut entries: Vec<CachedFile> = Vec::new();
    for (index, file) in spec.files.iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        if let Some(dir) = &dir
            && let Some(entry) = done_before.iter().find(|e| {
                e.path == file.path || file.fallback.as_ref().is_some_and(|(p, _)| *p == e.path)
            })
            && unpinned(spec, std::slice::from_ref(entry)).is_none()
            && let Ok(blob) = dir.checked_file(entry).await
        {
            folder.insert(&entry.path, blob);
            entries.push(entry.clone());
            continue;
        }
        let mut attempt = fetch_file(dir.as_ref(), &file.path, &file.url, index, count).await;
        if let (Err(FetchError::NotFound(_)), Some((path, url))) = (&attempt, &file.fallback) {
            attempt = fetch_file(dir.as_ref(), path, url, index, count).await;
        }
        let (path, blob, entry) = match attempt {
            Ok(done) => done,
            Err(e) => {
                let message = e.to_string();
                if cache::is_quota_error(&message) {
                    // Free the space the unfinished download took.
                    if dir.is_some() {
                        cache::delete(&spec.id).await.ok();
                    }
                    let (usage, quota) = cache::estimate().await.unwrap_or((0, 0));
                    return Err(format!(
                        "the browser's storage for this site is full ({} used of {}): delete \
                         cached models or free disk space, then load again",
                        bytes_text(usage),
                        bytes_text(quota)
                    ));
                }
                return Err(message);
            }
        };
        check_pin(spec, dir.as_ref(), &path, &blob, entry.as_ref()).await?;
        fetched += blob.size() as u64;
        folder.insert(&path, blob);
        entries.extend(entry);
        if let Some(dir) = &dir {
            let done = Manifest {
                id: spec.id.clone(),
                label: spec.label.clone(),
                files: entries.clone(),
            };
            dir.write_partial(&done).await?;
        }
    }
    if let Some(dir) = &dir {
        let manifest = Manifest {
            id: spec.id.clone(),
            label: spec.label.clone(),
            files: entries,
        };
        dir.finish(&manifest).await?;
    }
    Ok((folder, fetched, false))
}

/// The most bytes one buffer may hold on this browser's WebGPU adapter (burn requests the
/// adapter's full limits), or `None` when the browser does not say.
async fn buffer_limit() -> Option<u64> {
    let GpuStatus::Adapter(adapter) = keyshift_web::gpu::probe().await else {
        return None;
    };
    adapter
        .limits
        .iter()
        .filter(|(name, _)| name == "maxStorageBufferBindingSize" || name == "maxBufferSize")
        .filter_map(|(_, value)| *value)
        .map(|v| v as u64)
        .min()
}

/// The size of the worker's wasm memory (it only grows, so after a load it is the peak).
fn wasm_memory_bytes() -> u64 {
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .map(|m| {
            m.buffer()
                .dyn_into::<js_sys::ArrayBuffer>()
                .map_or(0, |b| u64::from(b.byte_length()))
        })
        .unwrap_or(0)
}

/// The largest weight tensor of the model's `.safetensors` files, in f32 bytes (headers only).
fn largest_tensor_bytes(folder: &BlobFolder) -> u64 {
    folder
        .files()
        .filter(|(path, _)| path.ends_with(".safetensors"))
        .filter_map(|(path, blob)| {
            let source = BlobSource::new(blob.clone()).ok()?;
            let file = SafetensorsFile::open(path, Box::new(source)).ok()?;
            file.entries()
                .values()
                .map(|e| e.shape.iter().product::<usize>() as u64 * 4)
                .max()
        })
        .max()
        .unwrap_or(0)
}

/// Loads a diffusers folder. At int8, a model downloaded in float is prepared while it loads and
/// the prepared files replace the downloaded weights in the cache: the next load reads int8
/// directly (about 0.58 of the fp16 bytes, nothing to quantize). If preparing fails, the model
/// still loads and the cache keeps the download.
async fn load_diffusers(
    spec: &ModelSpec,
    folder: &BlobFolder,
    precision: Precision,
    device: &Device,
) -> Result<SdModel, String> {
    let is_prepared = folder
        .files()
        .any(|(p, _)| p.ends_with(".int8.safetensors"));
    let dir = match (precision, is_prepared) {
        (Precision::Int8, false) => ModelDir::open(&spec.id, false).await.ok().flatten(),
        _ => None,
    };
    let manifest = match &dir {
        Some(dir) => dir.manifest().await,
        None => None,
    };
    let (Some(dir), Some(manifest)) = (dir, manifest) else {
        return SdModel::load_diffusers_at(folder, precision, device).map_err(|e| e.to_string());
    };
    let mut writers = Vec::new();
    for (component, path) in ["text_encoder", "unet", "vae"].iter().zip(PREPARED_WEIGHTS) {
        let source = SdModel::component_file(folder, component).map_err(|e| e.to_string())?;
        let target = dir.create_random(path).await?;
        writers.push(StreamingWriter::new(
            path,
            Box::new(target),
            StreamingWriter::reserve_for(&source),
        ));
    }
    let (model, writers) =
        SdModel::load_diffusers_preparing(folder, writers, device).map_err(|e| e.to_string())?;
    if let Err(e) = keep_prepared(&dir, &manifest, writers).await {
        tracing_warn(&format!(
            "{}: the int8 model was not cached: {e}",
            spec.label
        ));
        for path in PREPARED_WEIGHTS {
            dir.remove(path).await.ok();
        }
    }
    Ok(model)
}

/// Finishes the prepared files and makes them the cached model: a manifest of the configs and
/// the int8 weights, then the downloaded weights deleted.
async fn keep_prepared(
    dir: &ModelDir,
    downloaded: &Manifest,
    writers: Vec<StreamingWriter>,
) -> Result<(), String> {
    for writer in writers {
        writer.finish().map_err(|e| e.to_string())?;
    }
    let mut files: Vec<CachedFile> = downloaded
        .files
        .iter()
        .filter(|f| !f.path.ends_with(".safetensors"))
        .cloned()
        .collect();
    for path in PREPARED_WEIGHTS {
        files.push(dir.entry_for(path).await?.0);
    }
    let prepared = Manifest {
        id: downloaded.id.clone(),
        label: downloaded.label.clone(),
        files,
    };
    dir.finish(&prepared).await?;
    for file in downloaded
        .files
        .iter()
        .filter(|f| f.path.ends_with(".safetensors"))
    {
        dir.remove(&file.path).await?;
    }
    Ok(())
}

/// The files of a model sent with the message (local files): read where they are, never cached.
fn attached_folder(spec: &ModelSpec, attached: Vec<Blob>) -> Result<BlobFolder, String> {
    let mut folder = BlobFolder::default();
    for file in &spec.files {
        let blob = file
            .attached()
            .and_then(|i| attached.get(i))
            .ok_or_else(|| format!("{}: the file did not reach the worker", file.path))?;
        folder.insert(&file.path, blob.clone());
    }
    Ok(folder)
}

/// Every file of a cached model, each checked (size, SHA-256) before use.
async fn cached_folder(dir: &ModelDir, manifest: &Manifest) -> Result<BlobFolder, String> {
    let mut folder = BlobFolder::default();
    for entry in &manifest.files {
        folder.insert(&entry.path, dir.checked_file(entry).await?);
    }
    Ok(folder)
}

/// Checks a downloaded file against its published SHA-256, where the spec pins one; a file
/// that does not match is removed from the cache and the load fails naming it.
async fn check_pin(
    spec: &ModelSpec,
    dir: Option<&ModelDir>,
    path: &str,
    blob: &Blob,
    entry: Option<&CachedFile>,
) -> Result<(), String> {
    let Some(pin) = spec.pin(path) else {
        return Ok(());
    };
    let got = match entry {
        Some(entry) => entry.sha256.clone(),
        None => cache::sha256_of(blob)?,
    };
    if got == pin {
        return Ok(());
    }
    if let Some(dir) = dir {
        dir.remove(path).await.ok();
    }
    Err(pin_mismatch(path, pin, &got))
}

/// Downloads one file, into the cache when there is one; reports progress.
async fn fetch_file(
    dir: Option<&ModelDir>,
    path: &str,
    url: &str,
    index: u32,
    count: u32,
) -> Result<(String, Blob, Option<CachedFile>), FetchError> {
    let started = Stopwatch::start();
    let mut last = Stopwatch::start();
    let mut writer = match dir {
        Some(dir) => Some(dir.resume(path).await?),
        None => None,
    };
    let resumed = writer.as_ref().map_or(0, CacheWriter::written);
    let progress = |done: u64, total: Option<u64>| {
        if last.elapsed_ms() > 100.0 || total == Some(done) {
            last = Stopwatch::start();
            scope::post(&FromWorker::LoadProgress {
                file: path.to_owned(),
                phase: LoadPhase::Download,
                index,
                count,
                done_bytes: done,
                total_bytes: total,
                resumed_bytes: resumed,
                elapsed_ms: started.elapsed_ms(),
            });
        }
    };
    match writer.as_mut() {
        Some(w) => {
            download(url, w, resumed, progress).await?;
            let (entry, blob) = writer
                .take()
                .ok_or_else(|| format!("{path}: the cache file went away"))?
                .close()
                .await?;
            Ok((path.to_owned(), blob, Some(entry)))
        }
        None => {
            let mut sink = MemorySink::default();
            download(url, &mut sink, 0, progress).await?;
            Ok((path.to_owned(), sink.into_blob()?, None))
        }
    }
}

fn tracing_warn(message: &str) {
    web_sys::console::warn_1(&message.into());
}

/// Posts the cached models and the storage estimate.
pub async fn report_cache() {
    let models = match cache::list().await {
        Ok(models) => models,
        Err(e) => {
            fail(Stage::Model, format!("cannot read the offline cache: {e}"));
            return;
        }
    };
    let (usage, quota) = cache::estimate().await.unwrap_or((0, 0));
    scope::post(&FromWorker::Cache {
        models: models
            .into_iter()
            .map(|m| CachedModelInfo {
                id: m.id,
                label: m.label,
                bytes: m.bytes,
                complete: m.complete,
            })
            .collect(),
        usage_bytes: usage,
        quota_bytes: quota,
    });
}

/// Deletes a cached model, then reports the cache.
pub async fn delete_cached(id: String) {
    if let Err(e) = cache::delete(&id).await {
        fail(Stage::Model, format!("could not delete {id}: {e}"));
    }
    report_cache().await;
}
