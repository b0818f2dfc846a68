//! WebCodecs `VideoEncoder` in the worker: RGB frames → VP9 (or VP8) chunks, frame-exact (each
//! frame gets its own timestamp), muxed to WebM in Rust (`keyshift_core::export::mux_webm`).
//! The bindings are declared here rather than taken from web-sys, whose WebCodecs API needs an
//! unstable cfg flag that would rebuild the whole wgpu stack.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Object, Promise, Reflect, Uint8Array};
use keyshift_core::export::{EncodedFrame, VideoCodec, WebmVideo, mux_webm};
use keyshift_core::image::RgbImage;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::cache::js_text;

#[wasm_bindgen]
extern "C" {
    type VideoEncoder;
    #[wasm_bindgen(constructor, catch)]
    fn new(init: &Object) -> Result<VideoEncoder, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn configure(this: &VideoEncoder, config: &Object) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn encode(this: &VideoEncoder, frame: &VideoFrame, options: &Object) -> Result<(), JsValue>;
    #[wasm_bindgen(method)]
    fn flush(this: &VideoEncoder) -> Promise;
    #[wasm_bindgen(method)]
    fn close(this: &VideoEncoder);
    #[wasm_bindgen(method, getter, js_name = encodeQueueSize)]
    fn encode_queue_size(this: &VideoEncoder) -> u32;
    #[wasm_bindgen(static_method_of = VideoEncoder, js_name = isConfigSupported)]
    fn is_config_supported(config: &Object) -> Promise;

    type VideoFrame;
    #[wasm_bindgen(constructor, catch)]
    fn new_with_data(data: &Uint8Array, init: &Object) -> Result<VideoFrame, JsValue>;
    #[wasm_bindgen(method)]
    fn close(this: &VideoFrame);

    type EncodedVideoChunk;
    #[wasm_bindgen(method, getter, js_name = byteLength)]
    fn byte_length(this: &EncodedVideoChunk) -> u32;
    #[wasm_bindgen(method, getter)]
    fn timestamp(this: &EncodedVideoChunk) -> f64;
    #[wasm_bindgen(method, getter, js_name = type)]
    fn kind(this: &EncodedVideoChunk) -> String;
    #[wasm_bindgen(method, js_name = copyTo)]
    fn copy_to(this: &EncodedVideoChunk, destination: &Uint8Array);
}

/// Frames between keyframes (about two seconds at 30 fps).
const KEYFRAME_EVERY: usize = 60;

fn object(pairs: &[(&str, JsValue)]) -> Object {
    let o = Object::new();
    for (key, value) in pairs {
        let _ = Reflect::set(&o, &JsValue::from_str(key), value);
    }
    o
}

/// Whether this browser has WebCodecs' `VideoEncoder`.
pub fn available() -> bool {
    Reflect::has(&js_sys::global(), &JsValue::from_str("VideoEncoder")).unwrap_or(false)
}

fn config(codec: VideoCodec, width: usize, height: usize, fps: f64) -> Object {
    object(&[
        ("codec", codec.webcodecs().into()),
        ("width", (width as f64).into()),
        ("height", (height as f64).into()),
        ("framerate", fps.into()),
        (
            "bitrate",
            (((width * height) as f64 * fps * 0.4).max(200_000.0)).into(),
        ),
        ("latencyMode", "quality".into()),
    ])
}

/// VP9 where the browser encodes it, otherwise VP8.
async fn pick_codec(width: usize, height: usize, fps: f64) -> Result<VideoCodec, String> {
    for codec in [VideoCodec::Vp9, VideoCodec::Vp8] {
        let support = JsFuture::from(VideoEncoder::is_config_supported(&config(
            codec, width, height, fps,
        )))
        .await;
        let supported = support
            .ok()
            .and_then(|s| Reflect::get(&s, &JsValue::from_str("supported")).ok())
            .and_then(|s| s.as_bool())
            .unwrap_or(false);
        if supported {
            return Ok(codec);
        }
    }
    Err(format!(
        "this browser cannot encode VP9 or VP8 video at {width}×{height}"
    ))
}

/// What the encoder's callbacks collect.
#[derive(Default)]
struct Collected {
    frames: Vec<EncodedFrame>,
    error: Option<String>,
}

/// Encodes `images` (all the same size) at `fps` to a WebM file; `progress(done)` after each
/// frame is queued.
pub async fn encode_webm(
    images: &[RgbImage],
    fps: f64,
    mut progress: impl FnMut(usize),
) -> Result<Vec<u8>, String> {
    let first = images.first().ok_or("there are no frames to encode")?;
    let (width, height) = (first.width, first.height);
    let codec = pick_codec(width, height, fps).await?;
    let collected = Rc::new(RefCell::new(Collected::default()));
    let on_chunk = {
        let collected = Rc::clone(&collected);
        Closure::<dyn FnMut(EncodedVideoChunk)>::new(move |chunk: EncodedVideoChunk| {
            let data = Uint8Array::new_with_length(chunk.byte_length());
            chunk.copy_to(&data);
            collected.borrow_mut().frames.push(EncodedFrame {
                timestamp_ms: (chunk.timestamp() / 1000.0).round() as u64,
                keyframe: chunk.kind() == "key",
                data: data.to_vec(),
            });
        })
    };
    let on_error = {
        let collected = Rc::clone(&collected);
        Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            collected.borrow_mut().error = Some(js_text(&e));
        })
    };
    let encoder = VideoEncoder::new(&object(&[
        ("output", on_chunk.as_ref().clone()),
        ("error", on_error.as_ref().clone()),
    ]))
    .map_err(|e| js_text(&e))?;
    let result = feed(&encoder, codec, images, fps, &collected, &mut progress).await;
    encoder.close();
    result?;
    let mut frames = std::mem::take(&mut collected.borrow_mut().frames);
    frames.sort_by_key(|f| f.timestamp_ms);
    let video = WebmVideo {
        codec,
        width: u32::try_from(width).unwrap_or(u32::MAX),
        height: u32::try_from(height).unwrap_or(u32::MAX),
        fps,
    };
    mux_webm(video, &frames).map_err(|e| e.to_string())
}

async fn feed(
    encoder: &VideoEncoder,
    codec: VideoCodec,
    images: &[RgbImage],
    fps: f64,
    collected: &Rc<RefCell<Collected>>,
    progress: &mut impl FnMut(usize),
) -> Result<(), String> {
    let (width, height) = images.first().map_or((0, 0), |i| (i.width, i.height));
    encoder
        .configure(&config(codec, width, height, fps))
        .map_err(|e| js_text(&e))?;
    for (i, image) in images.iter().enumerate() {
        if image.width != width || image.height != height {
            return Err(format!("frame {i} has another size than the first"));
        }
        let frame = video_frame(image, i as f64 * 1e6 / fps, 1e6 / fps)?;
        let queued = encoder.encode(
            &frame,
            &object(&[("keyFrame", (i % KEYFRAME_EVERY == 0).into())]),
        );
        frame.close();
        queued.map_err(|e| js_text(&e))?;
        while encoder.encode_queue_size() > 4 {
            crate::entry::sleep(1).await;
        }
        if let Some(e) = collected.borrow_mut().error.take() {
            return Err(e);
        }
        progress(i + 1);
    }
    JsFuture::from(encoder.flush())
        .await
        .map_err(|e| js_text(&e))?;
    match collected.borrow_mut().error.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// An RGBA `VideoFrame` of `image` at `timestamp_us`, lasting `duration_us`.
fn video_frame(
    image: &RgbImage,
    timestamp_us: f64,
    duration_us: f64,
) -> Result<VideoFrame, String> {
    let mut rgba = Vec::with_capacity(image.width * image.height * 4);
    for px in image.data.chunks_exact(3) {
        rgba.extend_from_slice(px);
        rgba.push(255);
    }
    let data = Uint8Array::from(rgba.as_slice());
    VideoFrame::new_with_data(
        &data,
        &object(&[
            ("format", "RGBA".into()),
            ("codedWidth", (image.width as f64).into()),
            ("codedHeight", (image.height as f64).into()),
            ("timestamp", timestamp_us.round().into()),
            ("duration", duration_us.round().into()),
        ]),
    )
    .map_err(|e| js_text(&e))
}
