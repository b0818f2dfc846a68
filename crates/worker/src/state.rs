//! The worker's state, owned by its message handler and shared (`Rc`) with the tasks it starts:
//! the WebGPU device, the loaded model, the tokenizer and the job queue.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use keyshift_core::tokens::ClipTokenizer;
use keyshift_sd::Device;

use crate::models::{Loaded, LoadedControl};
use crate::queue::JobQueue;

/// Everything the worker keeps between messages.
#[derive(Default)]
pub struct WorkerState {
    /// The model ready to generate with.
    pub(crate) loaded: RefCell<Option<Rc<Loaded>>>,
    /// The ControlNet for the loaded model.
    pub(crate) control: RefCell<Option<Rc<LoadedControl>>>,
    /// Waiting jobs and cancellations.
    pub(crate) queue: RefCell<JobQueue>,
    tokenizer: RefCell<Option<Rc<ClipTokenizer>>>,
    device: RefCell<Option<Device>>,
    acquiring: Cell<bool>,
}

impl WorkerState {
    /// The loaded model, if any.
    pub(crate) fn loaded(&self) -> Option<Rc<Loaded>> {
        self.loaded.borrow().clone()
    }

    /// The loaded ControlNet, if any.
    pub(crate) fn control(&self) -> Option<Rc<LoadedControl>> {
        self.control.borrow().clone()
    }

    /// The CLIP tokenizer (built once: inflating the vocabulary takes a moment).
    pub(crate) fn tokenizer(&self) -> Result<Rc<ClipTokenizer>, String> {
        if let Some(t) = self.tokenizer.borrow().clone() {
            return Ok(t);
        }
        let t = Rc::new(ClipTokenizer::embedded().map_err(|e| e.to_string())?);
        self.tokenizer.replace(Some(Rc::clone(&t)));
        Ok(t)
    }

    /// The WebGPU device, acquired on first use and reused afterwards.
    pub(crate) async fn device(&self) -> Result<Device, String> {
        self.acquire().await.map(|(device, _)| device)
    }

    /// The device, and the time it took to acquire it when this call did so. One acquisition
    /// at a time: a second caller (a model load during the start-up self-test) waits for the
    /// first one's device instead of initialising the GPU twice.
    pub(crate) async fn acquire(&self) -> Result<(Device, Option<f64>), String> {
        while self.acquiring.get() {
            crate::entry::sleep(20).await;
        }
        if let Some(device) = self.device.borrow().clone() {
            return Ok((device, None));
        }
        self.acquiring.set(true);
        let start = keyshift_sd::clock::Stopwatch::start();
        let device = Device::wgpu_options().init_async().await;
        self.acquiring.set(false);
        let device = device.map_err(|e| e.to_string())?;
        self.device.replace(Some(device.clone()));
        Ok((device, Some(start.elapsed_ms())))
    }
}
