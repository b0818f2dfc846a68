//! Keyshift's compute worker: runs the engine on a burn wgpu (WebGPU) device inside a module Web
//! Worker, so the UI thread never blocks. The UI side is `keyshift_web::worker::WorkerHandle`; the
//! messages are `keyshift_web::protocol`.
//!
//! Life cycle: `Started` → acquire the device → `DeviceReady` (or `Failed{Device}`) → self-test →
//! `SelfTest` (or `Failed{SelfTest}`); afterwards each `RunSelfTest` request runs it again.
//! `LoadModel` fetches a model's files and loads it ([`engine`]); `Generate` queues a job that
//! reports `Progress`, `Preview`s and an `Image`; `Cancel` stops a job between steps.

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
mod render;
#[cfg(target_arch = "wasm32")]
mod store;
#[cfg(target_arch = "wasm32")]
mod video;

#[cfg(target_arch = "wasm32")]
pub(crate) mod entry {
    use std::cell::RefCell;

    use keyshift_sd::clock::Stopwatch;
    use keyshift_sd::{Device, selftest};
    use keyshift_web::protocol::{FromWorker, Stage, ToWorker};
    use keyshift_web::worker::scope;
    use wasm_bindgen::prelude::wasm_bindgen;
    use wasm_bindgen_futures::spawn_local;

    thread_local! {
        static DEVICE: RefCell<Option<Device>> = const { RefCell::new(None) };
        static ACQUIRING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Resolves after `ms` milliseconds (lets other tasks run).
    pub async fn sleep(ms: i32) {
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            let scope: web_sys::WorkerGlobalScope =
                wasm_bindgen::JsCast::unchecked_into(js_sys::global());
            let _ = scope.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        });
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    }

    /// The WebGPU device, acquired on first use and reused afterwards.
    pub async fn device() -> Result<Device, String> {
        acquire().await.map(|(device, _)| device)
    }

    /// The device, and the time it took to acquire it when this call did so.
    /// One acquisition at a time: a second caller (a model load during the start-up self-test)
    /// waits for the first one's device instead of initialising the GPU twice.
    async fn acquire() -> Result<(Device, Option<f64>), String> {
        while ACQUIRING.with(std::cell::Cell::get) {
            sleep(20).await;
        }
        if let Some(device) = DEVICE.with(|d| d.borrow().clone()) {
            return Ok((device, None));
        }
        ACQUIRING.with(|a| a.set(true));
        let start = Stopwatch::start();
        let device = Device::wgpu_options().init_async().await;
        ACQUIRING.with(|a| a.set(false));
        let device = device.map_err(|e| e.to_string())?;
        DEVICE.with(|d| *d.borrow_mut() = Some(device.clone()));
        Ok((device, Some(start.elapsed_ms())))
    }

    /// Runs the self-test and posts its report (or what failed).
    async fn self_test() {
        let device = match acquire().await {
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
        scope::on_message(|message, attached| match message {
            Ok(ToWorker::RunSelfTest) => spawn_local(self_test()),
            Ok(ToWorker::LoadModel {
                model,
                backend,
                previewer,
            }) => {
                spawn_local(crate::engine::load(model, backend, previewer, attached));
            }
            Ok(ToWorker::Generate { job }) => {
                crate::engine::enqueue(crate::engine::Job::Generate(job));
            }
            Ok(ToWorker::Render { job }) => crate::engine::enqueue(crate::engine::Job::Render(job)),
            Ok(ToWorker::ListRenders) => spawn_local(crate::render::report()),
            Ok(ToWorker::OpenRender { render }) => spawn_local(crate::render::open(render)),
            Ok(ToWorker::DeleteRender { render }) => spawn_local(crate::render::delete(render)),
            Ok(ToWorker::Export { render, format }) => {
                spawn_local(crate::render::export(render, format));
            }
            Ok(ToWorker::Cancel { job }) => crate::engine::cancel(job),
            Ok(ToWorker::CountTokens {
                prompt,
                negative,
                steps,
            }) => crate::engine::count_tokens(&prompt, &negative, steps),
            Ok(ToWorker::ListCache) => spawn_local(crate::engine::report_cache()),
            Ok(ToWorker::DeleteCached { id }) => spawn_local(crate::engine::delete_cached(id)),
            Err(e) => scope::post(&FromWorker::Failed {
                stage: Stage::Message,
                message: e.to_string(),
            }),
        });
        scope::post(&FromWorker::Started);
        spawn_local(self_test());
    }
}

#[cfg(target_arch = "wasm32")]
pub use entry::device;
