//! Both ends of the compute worker's message channel (wasm32 only): [`WorkerHandle`] on the UI
//! thread, [`scope`] inside the worker.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Blob, ErrorEvent, MessageEvent, Worker, WorkerOptions, WorkerType};

use crate::protocol::{FromWorker, ProtocolError, Stage, ToWorker};

/// A running module worker. Dropping the handle terminates the worker.
pub struct WorkerHandle {
    worker: Worker,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(ErrorEvent)>,
}

impl WorkerHandle {
    /// Starts the module worker at `script_url`; `on_message` receives every message it sends,
    /// and a [`FromWorker::Failed`] with [`Stage::Load`] if its script fails to load or throws.
    pub fn spawn(
        script_url: &str,
        on_message: impl FnMut(Result<FromWorker, ProtocolError>) + 'static,
    ) -> Result<Self, JsValue> {
        let options = WorkerOptions::new();
        options.set_type(WorkerType::Module);
        options.set_name("keyshift-compute");
        let worker = new_worker(script_url, &options)?;
        let sink: Sink = Rc::new(RefCell::new(on_message));
        let for_errors = sink.clone();
        let on_msg = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            deliver(&sink, read_message(event.data()));
        });
        let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
            deliver(
                &for_errors,
                Ok(FromWorker::Failed {
                    stage: Stage::Load,
                    message: error_text(&event),
                }),
            );
        });
        worker.set_onmessage(Some(on_msg.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(Self {
            worker,
            _on_message: on_msg,
            _on_error: on_error,
        })
    }

    /// Sends a message to the worker.
    pub fn send(&self, message: &ToWorker) -> Result<(), JsValue> {
        self.worker
            .post_message(&JsValue::from_str(&message.to_json()))
    }

    /// Sends a message with Blobs (local files) attached; the worker receives them in order.
    /// A `File` is passed by reference: its bytes are not copied.
    pub fn send_with(&self, message: &ToWorker, blobs: &[Blob]) -> Result<(), JsValue> {
        let parts = Array::new();
        parts.push(&JsValue::from_str(&message.to_json()));
        for blob in blobs {
            parts.push(blob);
        }
        self.worker.post_message(&parts)
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        // Unhook first: an event still queued must not reach the closures dropped next.
        self.worker.set_onmessage(None);
        self.worker.set_onerror(None);
        self.worker.terminate();
    }
}

/// The callback shared by the message and error handlers.
type Sink = Rc<RefCell<dyn FnMut(Result<FromWorker, ProtocolError>)>>;

fn deliver(sink: &Sink, message: Result<FromWorker, ProtocolError>) {
    // A message arriving while the callback runs (re-entrancy) cannot be delivered; drop it.
    if let Ok(mut f) = sink.try_borrow_mut() {
        f(message);
    }
}

/// A worker message: its JSON text, or `[text, bytes]` when bytes travel beside it.
fn read_message(data: JsValue) -> Result<FromWorker, ProtocolError> {
    let Ok(parts) = data.clone().dyn_into::<Array>() else {
        return FromWorker::from_json(&data.as_string().unwrap_or_default());
    };
    let mut message = FromWorker::from_json(&parts.get(0).as_string().unwrap_or_default())?;
    if let Ok(bytes) = parts.get(1).dyn_into::<js_sys::Uint8Array>() {
        message.set_bytes(bytes.to_vec());
    }
    Ok(message)
}

fn error_text(event: &ErrorEvent) -> String {
    let message = event.message();
    let file = event.filename();
    if message.is_empty() && file.is_empty() {
        "the worker script could not be loaded".to_owned()
    } else if message.is_empty() {
        format!("an error in {file}:{}", event.lineno())
    } else {
        // Where it was thrown is for the console, not for the message the page shows.
        console_warn(&format!("{message} ({file}:{})", event.lineno()));
        message
    }
}

/// `console.warn(text)`, where there is a console.
fn console_warn(text: &str) {
    let console = js_sys::Reflect::get(&js_sys::global(), &"console".into());
    let warn = console
        .as_ref()
        .ok()
        .and_then(|c| js_sys::Reflect::get(c, &"warn".into()).ok())
        .and_then(|w| w.dyn_into::<js_sys::Function>().ok());
    if let (Ok(console), Some(warn)) = (console, warn) {
        // Nothing to do when the console itself fails.
        let _ = warn.call1(&console, &text.into());
    }
}

/// The worker's side: receive from and post to the UI thread.
pub mod scope {
    use super::*;
    use web_sys::DedicatedWorkerGlobalScope;

    fn global() -> Option<DedicatedWorkerGlobalScope> {
        js_sys::global()
            .dyn_into::<DedicatedWorkerGlobalScope>()
            .ok()
    }

    /// Posts a message to the UI thread; its bytes (a frame's PNG, an export) travel beside the
    /// JSON as a transferred buffer. Outside a worker (e.g. in tests) it does nothing.
    pub fn post(message: &FromWorker) {
        let Some(scope) = global() else { return };
        let text = JsValue::from_str(&message.to_json());
        // A failed post means the page is gone; nothing is left to tell.
        match message.bytes() {
            Some(bytes) => {
                let buffer = js_sys::Uint8Array::from(bytes);
                let parts = Array::of2(&text, &buffer);
                let _ = scope.post_message_with_transfer(&parts, &Array::of1(&buffer.buffer()));
            }
            None => {
                let _ = scope.post_message(&text);
            }
        }
    }

    /// Calls `handler` for every message from the UI thread, with the Blobs sent with it
    /// ([`WorkerHandle::send_with`]), for the worker's whole life.
    pub fn on_message(
        mut handler: impl FnMut(Result<ToWorker, ProtocolError>, Vec<Blob>) + 'static,
    ) {
        let Some(scope) = global() else { return };
        let closure = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let data = event.data();
            let (text, blobs) = match data.dyn_into::<Array>() {
                Ok(parts) => (
                    parts.get(0).as_string().unwrap_or_default(),
                    parts
                        .iter()
                        .skip(1)
                        .filter_map(|b| b.dyn_into::<Blob>().ok())
                        .collect(),
                ),
                Err(data) => (data.as_string().unwrap_or_default(), Vec::new()),
            };
            handler(ToWorker::from_json(&text), blobs);
        });
        scope.set_onmessage(Some(closure.as_ref().unchecked_ref()));
        // The handler lives as long as the worker.
        closure.forget();
    }

    /// Whether this code runs inside a dedicated worker.
    pub fn is_worker() -> bool {
        Reflect::has(&js_sys::global(), &JsValue::from_str("importScripts")).unwrap_or(false)
    }
}

/// `new Worker(url, options)` with the URL as a `TrustedScriptURL` where the page's CSP requires
/// Trusted Types for scripts: made by the page's `keyshift` policy, which `boot.js` creates and
/// which trusts only this origin's own scripts. Pages without it (tests) pass the plain string.
fn new_worker(script_url: &str, options: &WorkerOptions) -> Result<Worker, JsValue> {
    let global = js_sys::global();
    let url = JsValue::from_str(script_url);
    let trusted = match Reflect::get(&global, &JsValue::from_str("keyshiftTrustedScriptURL"))?
        .dyn_into::<js_sys::Function>()
    {
        Ok(policy) => policy.call1(&JsValue::NULL, &url)?,
        Err(_) => url,
    };
    let constructor: js_sys::Function =
        Reflect::get(&global, &JsValue::from_str("Worker"))?.dyn_into()?;
    let args = Array::of2(&trusted, options);
    Ok(Reflect::construct(&constructor, &args)?.unchecked_into())
}
