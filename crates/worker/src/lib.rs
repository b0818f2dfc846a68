//! Keyshift's compute worker: runs the engine on a burn wgpu (WebGPU) device inside a module Web
//! Worker, so the UI thread never blocks. The UI side is `keyshift_web::worker::WorkerHandle`; the
//! messages are `keyshift_web::protocol`.
//!
//! Life cycle: `Started` → acquire the device → `DeviceReady` (or `Failed{Device}`) → self-test →
//! `SelfTest` (or `Failed{SelfTest}`); afterwards each `RunSelfTest` request runs it again.
//! `LoadModel` fetches a model's files and loads it ([`engine`]); `Generate` queues a job that
//! reports `Progress`, `Preview`s and an `Image`; `Cancel` stops a job between steps.

pub mod bench;
pub mod job;

#[cfg(target_arch = "wasm32")]
pub mod heap;

/// Every allocation of the worker is counted (live and peak bytes), for the load report.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: heap::Counting = heap::Counting;

#[cfg(target_arch = "wasm32")]
pub mod blob;
#[cfg(target_arch = "wasm32")]
mod cache;
#[cfg(target_arch = "wasm32")]
mod engine;
#[cfg(target_arch = "wasm32")]
mod fetch;
#[cfg(target_arch = "wasm32")]
mod probe;
#[cfg(target_arch = "wasm32")]
mod render;
#[cfg(target_arch = "wasm32")]
mod store;
#[cfg(target_arch = "wasm32")]
mod video;

#[cfg(target_arch = "wasm32")]
mod models;
#[cfg(target_arch = "wasm32")]
mod state;

pub mod queue;

#[cfg(target_arch = "wasm32")]
pub(crate) mod entry {
    use std::rc::Rc;

    use keyshift_sd::selftest;
    use keyshift_web::protocol::{FromWorker, Stage, ToWorker};
    use keyshift_web::worker::scope;
    use wasm_bindgen::prelude::wasm_bindgen;
    use wasm_bindgen_futures::spawn_local;

    use crate::queue::Job;
    use crate::state::WorkerState;
    use crate::{blob, engine, models, render};

    /// Resolves after `ms` milliseconds (lets other tasks run).
    pub async fn sleep(ms: i32) {
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            let scope: web_sys::WorkerGlobalScope =
                wasm_bindgen::JsCast::unchecked_into(js_sys::global());
            let _ = scope.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        });
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    }

    /// Runs the self-test and posts its report (or what failed).
    async fn self_test(state: Rc<WorkerState>) {
        let device = match state.acquire().await {
            Ok((device, Some(init_ms))) => {
                scope::post(&FromWorker::DeviceReady { init_ms });
                device
            }
            Ok((device, None)) => device,
            Err(message) => {
                scope::post(&FromWorker::Failed {
                    stage: Stage::Device,
                    message,
                });
                return;
            }
        };
        let message = match selftest::run(&device).await {
            Ok(report) => FromWorker::SelfTest { report },
            Err(e) => FromWorker::Failed {
                stage: Stage::SelfTest,
                message: e.to_string(),
            },
        };
        scope::post(&message);
    }

    /// The mono samples (little-endian f32) of the attached Blob.
    fn audio_samples(attached: Vec<web_sys::Blob>) -> Result<Vec<f32>, String> {
        Ok(keyshift_core::audio::samples_from_le_bytes(
            &attached_bytes(attached)?,
        ))
    }

    /// The first attached Blob's bytes.
    fn attached_bytes(attached: Vec<web_sys::Blob>) -> Result<Vec<u8>, String> {
        use keyshift_sd::weights::ByteSource as _;
        let blob = attached.into_iter().next().ok_or("nothing was attached")?;
        let mut source = blob::BlobSource::new(blob)?;
        let mut bytes = vec![0u8; usize::try_from(source.len()).unwrap_or(0)];
        source
            .read_exact_at(0, &mut bytes)
            .map_err(|e| format!("the attached data could not be read: {e}"))?;
        Ok(bytes)
    }

    /// A video render's frames: their RGB bytes, one after another, are attached (and a hint
    /// video's frames after them, in a second Blob).
    fn video_frames(
        job: &mut keyshift_web::protocol::RenderJob,
        mut attached: Vec<web_sys::Blob>,
    ) -> Result<(), String> {
        let Some(video) = job.video.as_mut() else {
            return Ok(());
        };
        let hint_size = job
            .control
            .as_ref()
            .filter(|c| !c.canny)
            .and_then(|c| c.image);
        if let (Some(size), Some(control)) = (hint_size, job.control.as_mut()) {
            if attached.len() < 2 {
                return Err("the hint video's frames did not arrive: pick it again".into());
            }
            let blob = attached
                .pop()
                .ok_or("the hint video's frames did not arrive")?;
            control.frames = rgb_frames(attached_bytes(vec![blob])?, size, video.names.len())
                .map_err(|e| format!("the hint video's {e}"))?;
        }
        if attached.is_empty() {
            return Err(
                "the video's frames are not kept with the render: pick the video \
                        again to render or resume it"
                    .into(),
            );
        }
        let size = keyshift_web::protocol::ImageSize {
            width: video.width,
            height: video.height,
        };
        video.frames = rgb_frames(attached_bytes(attached)?, size, video.names.len())
            .map_err(|e| format!("the video's {e}"))?;
        Ok(())
    }

    /// `count` RGB frames of `size`, one after another in `data`.
    fn rgb_frames(
        data: Vec<u8>,
        size: keyshift_web::protocol::ImageSize,
        count: usize,
    ) -> Result<Vec<keyshift_core::image::RgbImage>, String> {
        let (width, height) = (size.width as usize, size.height as usize);
        let bytes = width * height * 3;
        if bytes == 0 || data.len() != bytes * count {
            return Err(format!(
                "{} bytes are not {count} frames of {width}x{height} RGB",
                data.len()
            ));
        }
        Ok(data
            .chunks_exact(bytes)
            .map(|c| keyshift_core::image::RgbImage {
                width,
                height,
                data: c.to_vec(),
            })
            .collect())
    }

    /// A probe's image: its RGB bytes are attached beside the message.
    fn probe_image(
        job: &keyshift_web::protocol::ProbeJob,
        attached: Vec<web_sys::Blob>,
    ) -> Result<keyshift_core::image::RgbImage, String> {
        let size = keyshift_web::protocol::ImageSize {
            width: job.width,
            height: job.height,
        };
        rgb_image(attached_bytes(attached)?, size).map_err(|e| format!("the probed image's {e}"))
    }

    /// One RGB image of `size` in `data`.
    fn rgb_image(
        data: Vec<u8>,
        size: keyshift_web::protocol::ImageSize,
    ) -> Result<keyshift_core::image::RgbImage, String> {
        let (width, height) = (size.width as usize, size.height as usize);
        if data.len() != width * height * 3 || width == 0 {
            return Err(format!("{} bytes are not {width}x{height} RGB", data.len()));
        }
        Ok(keyshift_core::image::RgbImage {
            width,
            height,
            data,
        })
    }

    /// An img2img job's init image: its RGB bytes are attached beside the message.
    fn init_image(
        job: &keyshift_web::protocol::GenerateJob,
        attached: Vec<web_sys::Blob>,
    ) -> Result<Option<keyshift_core::image::RgbImage>, String> {
        let Some(spec) = job.init else {
            return Ok(None);
        };
        let size = keyshift_web::protocol::ImageSize {
            width: spec.width,
            height: spec.height,
        };
        rgb_image(attached_bytes(attached)?, size)
            .map(Some)
            .map_err(|e| format!("the init image's {e}"))
    }

    /// A generate job's attached images: the init image's RGB bytes first, the ControlNet's
    /// control image's last.
    fn generate_images(
        job: &mut keyshift_web::protocol::GenerateJob,
        mut attached: Vec<web_sys::Blob>,
    ) -> Result<(), String> {
        let control_size = job.control.as_ref().and_then(|c| c.image);
        let control_blob = match control_size {
            Some(_) => Some(attached.pop().ok_or("the control image did not arrive")?),
            None => None,
        };
        job.init_image = init_image(job, attached)?.map(Box::new);
        if let (Some(control), Some(size), Some(blob)) =
            (job.control.as_mut(), control_size, control_blob)
        {
            let image = rgb_image(attached_bytes(vec![blob])?, size)
                .map_err(|e| format!("the control image's {e}"))?;
            control.image_data = Some(Box::new(image));
        }
        Ok(())
    }

    /// Handles one message from the UI thread.
    fn handle(state: &Rc<WorkerState>, message: ToWorker, attached: Vec<web_sys::Blob>) {
        let shared = Rc::clone(state);
        match message {
            ToWorker::RunSelfTest => spawn_local(self_test(shared)),
            ToWorker::LoadModel {
                model,
                backend,
                previewer,
            } => spawn_local(models::load(shared, model, backend, previewer, attached)),
            ToWorker::Probe { mut job } => match probe_image(&job, attached) {
                Ok(image) => {
                    job.image = Some(Box::new(image));
                    engine::enqueue(state, Job::Probe(job));
                }
                Err(message) => scope::post(&FromWorker::Failed {
                    stage: Stage::Generate,
                    message,
                }),
            },
            ToWorker::Generate { mut job } => match generate_images(&mut job, attached) {
                Ok(()) => engine::enqueue(state, Job::Generate(job)),
                Err(message) => scope::post(&FromWorker::Failed {
                    stage: Stage::Generate,
                    message,
                }),
            },
            ToWorker::Render { mut job } => match video_frames(&mut job, attached) {
                Ok(()) => engine::enqueue(state, Job::Render(Box::new(job))),
                Err(message) => scope::post(&FromWorker::Failed {
                    stage: Stage::Render,
                    message,
                }),
            },
            ToWorker::RerenderFrame { job } => engine::enqueue(state, Job::Rerender(job)),
            ToWorker::Benchmark { job } => engine::enqueue(state, Job::Bench(job)),
            ToWorker::Cancel { job } => engine::cancel(state, job),
            ToWorker::CountTokens {
                prompt,
                negative,
                steps,
            } => models::count_tokens(state, &prompt, &negative, steps),
            ToWorker::AnalyseAudio {
                id,
                rate,
                options,
                columns,
            } => scope::post(&FromWorker::AudioAnalysed {
                id,
                result: audio_samples(attached)
                    .map(|s| Box::new(keyshift_core::audio::analyse(&s, rate, &options, columns))),
            }),
            ToWorker::LoadControlNet { controlnet } => {
                spawn_local(models::load_controlnet(shared, controlnet));
            }
            ToWorker::UnloadControlNet => models::unload_controlnet(state),
            ToWorker::ListCache => spawn_local(models::report_cache()),
            ToWorker::DeleteCached { id } => spawn_local(models::delete_cached(id)),
            ToWorker::ListRenders => spawn_local(render::report()),
            ToWorker::OpenRender { render } => spawn_local(render::open(render)),
            ToWorker::DeleteRender { render } => spawn_local(render::delete(render)),
            ToWorker::Export { render, format } => spawn_local(render::export(render, format)),
        }
    }

    /// The bytes the worker's heap holds now: the loader script's soak hook reads it (wasm
    /// memory only grows, so its size says nothing about what is still in use).
    #[wasm_bindgen]
    pub fn heap_live_bytes() -> f64 {
        crate::heap::live_bytes() as f64
    }

    thread_local! {
        /// The worker's state, for [`gpu_memory`] (set once by [`worker_main`]).
        static STATE: std::cell::RefCell<Option<Rc<WorkerState>>> =
            const { std::cell::RefCell::new(None) };
    }

    /// What the loaded model's device allocator holds now, for the loader script's soak hook:
    /// `[live allocations, bytes in use, bytes reserved]`, or `undefined` without a model or on
    /// a backend that does not report it (the CPU). GPU buffers are pages of cubecl's pools,
    /// kept for reuse; allocations and bytes in use are what the engine's tensors hold.
    #[wasm_bindgen]
    pub fn gpu_memory() -> Option<Vec<f64>> {
        let loaded = STATE.with(|s| s.borrow().as_ref().and_then(|state| state.loaded()))?;
        let usage = loaded.device.memory_pool_usage()?;
        #[allow(clippy::cast_precision_loss, reason = "below 2^53")]
        Some(vec![
            usage.number_allocs as f64,
            usage.bytes_in_use as f64,
            usage.bytes_reserved as f64,
        ])
    }

    /// The worker's entry point, called by its loader script once the module is instantiated.
    #[wasm_bindgen]
    pub fn worker_main() {
        // A panic (a lost device, exhausted memory, a bug) leaves the module unusable: log it,
        // and tell the UI, which starts a fresh worker.
        std::panic::set_hook(Box::new(|info| {
            console_error_panic_hook::hook(info);
            scope::post(&FromWorker::Failed {
                stage: Stage::Crashed,
                message: info.to_string(),
            });
        }));
        let state = Rc::new(WorkerState::default());
        STATE.with(|s| s.replace(Some(Rc::clone(&state))));
        let for_messages = Rc::clone(&state);
        scope::on_message(move |message, attached| match message {
            Ok(message) => handle(&for_messages, message, attached),
            Err(e) => scope::post(&FromWorker::Failed {
                stage: Stage::Message,
                message: e.to_string(),
            }),
        });
        scope::post(&FromWorker::Started);
        spawn_local(self_test(state));
    }
}

/// The WebGPU device of this thread, for the browser tests (burn registers one device per
/// thread, so every caller shares one; the worker itself keeps its device in its state).
#[cfg(target_arch = "wasm32")]
pub async fn device() -> Result<keyshift_sd::Device, String> {
    thread_local! {
        static SHARED: std::rc::Rc<state::WorkerState> = std::rc::Rc::default();
    }
    SHARED.with(std::rc::Rc::clone).device().await
}
