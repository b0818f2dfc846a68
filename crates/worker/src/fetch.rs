//! Downloads with progress that resume after an interruption: the body is read chunk by chunk
//! into a [`Sink`] (a file in the offline cache, or JavaScript memory outside wasm), and a dropped
//! connection is picked up again with an HTTP `Range` request from the last byte received.

use js_sys::{Array, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Blob, Headers, ReadableStreamDefaultReader, RequestInit, Response, WorkerGlobalScope,
};

/// How many times a dropped download is resumed before giving up.
const RESUMES: u32 = 5;

fn js_text(e: &JsValue) -> String {
    e.as_string()
        .or_else(|| {
            Reflect::get(e, &JsValue::from_str("message"))
                .ok()
                .and_then(|m| m.as_string())
        })
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Why a download failed.
#[derive(Debug)]
pub enum FetchError {
    /// The server has no such file (404).
    NotFound(String),
    /// Anything else, said in words.
    Failed(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound(m) | Self::Failed(m) => f.write_str(m),
        }
    }
}

impl From<String> for FetchError {
    fn from(message: String) -> Self {
        Self::Failed(message)
    }
}

async fn request(url: &str, from: u64) -> Result<Response, FetchError> {
    let scope: WorkerGlobalScope = js_sys::global().unchecked_into();
    let init = RequestInit::new();
    if from > 0 {
        let headers = Headers::new().map_err(|e| FetchError::Failed(js_text(&e)))?;
        headers
            .set("Range", &format!("bytes={from}-"))
            .map_err(|e| FetchError::Failed(js_text(&e)))?;
        init.set_headers(&headers);
    }
    let response = JsFuture::from(scope.fetch_with_str_and_init(url, &init))
        .await
        .map_err(|e| FetchError::Failed(format!("{url}: the download failed ({})", js_text(&e))))?;
    let response: Response = response
        .dyn_into()
        .map_err(|_| FetchError::Failed(format!("{url}: not an HTTP response")))?;
    if !response.ok() {
        let message = format!(
            "{url}: the server answered {} {}",
            response.status(),
            response.status_text()
        );
        return Err(if response.status() == 404 {
            FetchError::NotFound(message)
        } else {
            FetchError::Failed(message)
        });
    }
    Ok(response)
}

fn content_length(response: &Response) -> Option<u64> {
    response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse().ok())
}

/// Where downloaded bytes go.
pub trait Sink {
    /// Appends a chunk.
    fn write(&mut self, chunk: &Uint8Array) -> Result<(), String>;
    /// Forgets everything written (the server ignored a range request).
    fn restart(&mut self) -> Result<(), String>;
}

/// Chunks kept as JavaScript memory, then one Blob.
#[derive(Default)]
pub struct MemorySink {
    parts: Array,
}

impl MemorySink {
    /// The bytes written, as a Blob.
    pub fn into_blob(self) -> Result<Blob, String> {
        Blob::new_with_u8_array_sequence(&self.parts).map_err(|e| js_text(&e))
    }
}

impl Sink for MemorySink {
    fn write(&mut self, chunk: &Uint8Array) -> Result<(), String> {
        self.parts.push(chunk);
        Ok(())
    }

    fn restart(&mut self) -> Result<(), String> {
        self.parts.set_length(0);
        Ok(())
    }
}

impl Sink for crate::cache::CacheWriter {
    fn write(&mut self, chunk: &Uint8Array) -> Result<(), String> {
        crate::cache::CacheWriter::write(self, &chunk.to_vec())
    }

    fn restart(&mut self) -> Result<(), String> {
        crate::cache::CacheWriter::restart(self)
    }
}

/// Fetches `url` into `sink`, which already holds its first `from` bytes (a download resumed
/// after a reload), calling `progress(received, total)` as bytes arrive; returns the byte count.
pub async fn download(
    url: &str,
    sink: &mut dyn Sink,
    from: u64,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<u64, FetchError> {
    let mut received = from;
    let mut total = None;
    let mut resumes = 0;
    loop {
        let response = match request(url, received).await {
            // Nothing left after `received` (or the file changed): start again from byte 0.
            Err(FetchError::Failed(m)) if received > 0 && m.contains(" 416 ") => {
                sink.restart()?;
                received = 0;
                request(url, 0).await?
            }
            other => other?,
        };
        if received > 0 && response.status() != 206 {
            // The server ignored the range: start again from the first byte.
            sink.restart()?;
            received = 0;
        }
        if total.is_none() {
            total = content_length(&response).map(|len| len + received);
        }
        let Some(body) = response.body() else {
            break;
        };
        let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
        let interrupted = loop {
            let chunk = match JsFuture::from(reader.read()).await {
                Ok(chunk) => chunk,
                Err(e) => break Some(js_text(&e)),
            };
            let done = Reflect::get(&chunk, &JsValue::from_str("done"))
                .ok()
                .and_then(|d| d.as_bool())
                .unwrap_or(true);
            if done {
                break None;
            }
            let Ok(value) = Reflect::get(&chunk, &JsValue::from_str("value")) else {
                break None;
            };
            let bytes: Uint8Array = value.unchecked_into();
            received += u64::from(bytes.length());
            if let Err(e) = sink.write(&bytes) {
                return Err(FetchError::Failed(format!("{url}: {e}")));
            }
            progress(received, total);
        };
        let complete = total.is_none_or(|t| received >= t);
        if interrupted.is_none() && complete {
            break;
        }
        if resumes >= RESUMES {
            let why = interrupted.unwrap_or_else(|| "the connection closed early".into());
            return Err(FetchError::Failed(format!(
                "{url}: the download broke off at byte {received} ({why})"
            )));
        }
        resumes += 1;
    }
    if let Some(total) = total
        && received != total
    {
        return Err(FetchError::Failed(format!(
            "{url}: received {received} of {total} bytes"
        )));
    }
    Ok(received)
}
