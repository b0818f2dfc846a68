//! WebM through `MediaRecorder` on a canvas stream, for browsers without WebCodecs'
//! `VideoEncoder`: each frame is drawn on a canvas and handed to the stream with
//! `requestFrame()` (a stream made with `captureStream(0)` takes frames only when asked), one
//! frame duration apart. The browser APIs are reached through `Reflect`, so no web-sys feature
//! (which would rebuild the wgpu stack) is needed.

use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// Whether this browser has WebCodecs' `VideoEncoder` (then the worker encodes frame-exactly).
pub fn has_video_encoder() -> bool {
    Reflect::has(&js_sys::global(), &JsValue::from_str("VideoEncoder")).unwrap_or(false)
}

fn get(target: &JsValue, name: &str) -> Result<JsValue, String> {
    Reflect::get(target, &JsValue::from_str(name)).map_err(|e| text(&e))
}

fn set(target: &JsValue, name: &str, value: &JsValue) {
    let _ = Reflect::set(target, &JsValue::from_str(name), value);
}

fn call(target: &JsValue, name: &str, args: &[JsValue]) -> Result<JsValue, String> {
    let f: Function = get(target, name)?
        .dyn_into()
        .map_err(|_| format!("{name} is not a function here"))?;
    f.apply(target, &args.iter().collect::<Array>())
        .map_err(|e| text(&e))
}

fn construct(class: &str, args: &[JsValue]) -> Result<JsValue, String> {
    let c: Function = get(&js_sys::global(), class)?
        .dyn_into()
        .map_err(|_| format!("this browser has no {class}"))?;
    Reflect::construct(&c, &args.iter().collect::<Array>()).map_err(|e| text(&e))
}

fn text(e: &JsValue) -> String {
    get(e, "message")
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

async fn sleep(ms: f64) {
    let promise = Promise::new(&mut |resolve, _| {
        let _ = call(
            &js_sys::global(),
            "setTimeout",
            &[resolve.into(), JsValue::from_f64(ms)],
        );
    });
    let _ = JsFuture::from(promise).await;
}

/// The WebM type this browser's `MediaRecorder` writes (VP9 preferred).
fn mime_type() -> Result<String, String> {
    let class = get(&js_sys::global(), "MediaRecorder")?;
    for mime in [
        "video/webm;codecs=vp9",
        "video/webm;codecs=vp8",
        "video/webm",
    ] {
        let ok = call(&class, "isTypeSupported", &[JsValue::from_str(mime)])?;
        if ok.as_bool() == Some(true) {
            return Ok(mime.to_owned());
        }
    }
    Err("this browser records no WebM video".into())
}

/// A decoded image of `url`.
async fn image(url: &str) -> Result<JsValue, String> {
    let img = construct("Image", &[])?;
    set(&img, "src", &JsValue::from_str(url));
    let decoding: Promise = call(&img, "decode", &[])?
        .dyn_into()
        .map_err(|_| "decode() gave no promise".to_owned())?;
    JsFuture::from(decoding).await.map_err(|e| text(&e))?;
    Ok(img)
}

/// Records `urls` (PNG frames, in video order) at `fps` as a WebM; `progress(done)` after each
/// frame. Returns the object URL of the file and its size.
pub async fn record(
    urls: &[String],
    fps: f64,
    mut progress: impl FnMut(usize),
) -> Result<(String, u64), String> {
    let first = image(urls.first().ok_or("there are no frames")?).await?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let canvas: JsValue = document
        .create_element("canvas")
        .map_err(|e| text(&e))?
        .into();
    set(&canvas, "width", &get(&first, "naturalWidth")?);
    set(&canvas, "height", &get(&first, "naturalHeight")?);
    let context = call(&canvas, "getContext", &[JsValue::from_str("2d")])?;
    let stream = call(&canvas, "captureStream", &[JsValue::from_f64(0.0)])?;
    let track = Array::from(&call(&stream, "getVideoTracks", &[])?).get(0);
    let mime = mime_type()?;
    let options = Object::new();
    set(&options, "mimeType", &JsValue::from_str(&mime));
    set(&options, "videoBitsPerSecond", &JsValue::from_f64(4e6));
    let recorder = construct("MediaRecorder", &[stream, options.into()])?;
    let chunks = Array::new();
    let on_data = {
        let chunks = chunks.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            if let Ok(data) = get(&event, "data") {
                chunks.push(&data);
            }
        })
    };
    set(&recorder, "ondataavailable", on_data.as_ref());
    let stopped = Promise::new(&mut |resolve, _| set(&recorder, "onstop", &resolve));
    call(&recorder, "start", &[])?;
    let frame_ms = 1000.0 / fps.max(0.1);
    for (i, url) in urls.iter().enumerate() {
        let img = image(url).await?;
        call(&context, "drawImage", &[img, 0.into(), 0.into()])?;
        call(&track, "requestFrame", &[])?;
        sleep(frame_ms).await;
        progress(i + 1);
    }
    call(&recorder, "stop", &[])?;
    JsFuture::from(stopped).await.map_err(|e| text(&e))?;
    let options = Object::new();
    set(&options, "type", &JsValue::from_str("video/webm"));
    let blob = construct("Blob", &[chunks.into(), options.into()])?;
    let size = get(&blob, "size")?.as_f64().unwrap_or(0.0) as u64;
    let url = call(&get(&js_sys::global(), "URL")?, "createObjectURL", &[blob])?
        .as_string()
        .unwrap_or_default();
    drop(on_data);
    Ok((url, size))
}
