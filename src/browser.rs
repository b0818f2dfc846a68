//! The app's browser I/O: the URL fragment, the clipboard, the page's build metadata and the
//! service-worker update flow (driven by the boot script).

mod decode;

use js_sys::{Function, Reflect};
use keyshift_core::limits::FileKind;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

fn window() -> Option<web_sys::Window> {
    web_sys::window()
}

/// The current fragment, including its `#` (empty when there is none).
pub fn fragment() -> String {
    window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default()
}

/// Replaces the fragment without adding a history entry (an edit is not a navigation).
pub fn replace_fragment(fragment: &str) {
    let Some(w) = window() else { return };
    let Ok(history) = w.history() else { return };
    let path = w.location().pathname().unwrap_or_default();
    let search = w.location().search().unwrap_or_default();
    let url = format!("{path}{search}{fragment}");
    if let Err(e) = history.replace_state_with_url(&JsValue::NULL, "", Some(&url)) {
        tracing::warn!("could not update the address bar: {e:?}");
    }
}

/// A picked or dropped file's bytes; a file over its kind's limit is refused before it is read,
/// with a message naming the file and the limit.
pub async fn file_bytes(file: &web_sys::File, kind: FileKind) -> Result<Vec<u8>, String> {
    let name = file.name();
    keyshift_core::limits::check_file(kind, file.size() as u64)
        .map_err(|e| format!("{name}: {e}"))?;
    let buffer = wasm_bindgen_futures::JsFuture::from(file.array_buffer())
        .await
        .map_err(|_| format!("{name} could not be read"))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// Bytes as a Blob (to attach to a worker message).
pub fn bytes_blob(bytes: &[u8]) -> Option<web_sys::Blob> {
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes));
    web_sys::Blob::new_with_u8_array_sequence(&parts).ok()
}

/// A property of a JS object.
fn property(obj: &JsValue, key: &str) -> Result<JsValue, String> {
    Reflect::get(obj, &JsValue::from_str(key)).map_err(|e| format!("{e:?}"))
}

/// Calls `obj.name(args…)`.
fn call(obj: &JsValue, name: &str, args: &js_sys::Array) -> Result<JsValue, String> {
    let f: Function = property(obj, name)?
        .dyn_into()
        .map_err(|_| format!("{name} is missing"))?;
    Reflect::apply(&f, obj, args).map_err(|e| format!("{e:?}"))
}

/// The 2D context of a new `w × h` `OffscreenCanvas`.
fn canvas_2d(w: f64, h: f64) -> Result<JsValue, String> {
    let ctor: Function = property(&js_sys::global(), "OffscreenCanvas")?
        .dyn_into()
        .map_err(|_| "no OffscreenCanvas")?;
    let canvas = Reflect::construct(&ctor, &js_sys::Array::of2(&w.into(), &h.into()))
        .map_err(|e| format!("{e:?}"))?;
    call(&canvas, "getContext", &js_sys::Array::of1(&"2d".into()))
}

/// Draws `source` (an image bitmap, a video) on `ctx` and reads back its RGB bytes.
fn draw_rgb(ctx: &JsValue, source: &JsValue, w: f64, h: f64) -> Result<Vec<u8>, String> {
    call(
        ctx,
        "drawImage",
        &js_sys::Array::of3(source, &0.into(), &0.into()),
    )?;
    let args = js_sys::Array::of4(&0.into(), &0.into(), &w.into(), &h.into());
    let data = property(&call(ctx, "getImageData", &args)?, "data")?;
    let rgba = js_sys::Uint8ClampedArray::new(&data).to_vec();
    Ok(rgba
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect())
}

/// A `<video>` element playing `url` (muted, not shown), once its first frame is loaded.
async fn video_element(url: &str) -> Result<JsValue, String> {
    let document = property(&js_sys::global(), "document")?;
    let video = call(
        &document,
        "createElement",
        &js_sys::Array::of1(&"video".into()),
    )?;
    for (key, value) in [("muted", JsValue::TRUE), ("preload", "auto".into())] {
        Reflect::set(&video, &key.into(), &value).map_err(|e| format!("{e:?}"))?;
    }
    let loaded = event_promise(&video, "loadeddata");
    Reflect::set(&video, &"src".into(), &url.into()).map_err(|e| format!("{e:?}"))?;
    wasm_bindgen_futures::JsFuture::from(loaded)
        .await
        .map_err(|_| "the browser cannot play this file as a video".to_owned())?;
    Ok(video)
}

/// A promise settled by the element's next `event` (resolved) or `error` (rejected).
fn event_promise(element: &JsValue, event: &str) -> js_sys::Promise {
    let target = element.clone();
    let event = event.to_owned();
    js_sys::Promise::new(&mut move |resolve: Function, reject: Function| {
        let once = js_sys::Object::new();
        let _ = Reflect::set(&once, &"once".into(), &JsValue::TRUE);
        let listen = |name: &str, f: &Function| {
            let _ = call(
                &target,
                "addEventListener",
                &js_sys::Array::of3(&name.into(), f, &once),
            );
        };
        listen(&event, &resolve);
        listen("error", &reject);
    })
}

/// Refuses frames over the image limits, or more of them than the video limit holds, before a
/// canvas or a buffer is made for them.
pub fn check_video_frames(w: u32, h: u32, frames: usize) -> Result<(), String> {
    keyshift_core::limits::check_video_frames(w, h, frames).map_err(|e| e.to_string())
}

/// A video file's length in seconds and its frame size (refused when a frame is larger than an
/// image may be).
pub async fn video_metadata(bytes: &[u8], mime: &str) -> Result<(f64, u32, u32), String> {
    // A WebM's header is read first: a frame size it claims is refused before the browser
    // decodes anything.
    if let Some((w, h)) = keyshift_core::export::webm_claimed_size(bytes) {
        check_video_frames(w, h, 1)?;
    }
    let url = object_url(bytes, mime);
    let result = async {
        let video = video_element(&url).await?;
        let number = |key| property(&video, key).map(|v| v.as_f64().unwrap_or(0.0));
        let (w, h) = (number("videoWidth")? as u32, number("videoHeight")? as u32);
        check_video_frames(w, h, 1)?;
        Ok((number("duration")?, w, h))
    }
    .await;
    revoke_url(&url);
    result
}

/// The RGB bytes of the video's frames at `times` (seconds), one frame after another, and what
/// read them: a WebM through WebCodecs' `VideoDecoder` where the browser has one; otherwise (or
/// if that fails) a `<video>` element sought to each time, drawing the frame it presents.
pub async fn video_frames(
    bytes: &[u8],
    mime: &str,
    times: &[f64],
) -> Result<((u32, u32, Vec<u8>), &'static str), String> {
    const EBML: [u8; 4] = [0x1a, 0x45, 0xdf, 0xa3];
    if bytes.starts_with(&EBML) && decode::available() {
        match decode::webm_frames(bytes, times).await {
            Ok(frames) => return Ok((frames, "WebCodecs")),
            Err(e) => tracing::warn!("WebCodecs could not read the video ({e}); seeking instead"),
        }
    }
    Ok((
        element_frames(bytes, mime, times).await?,
        "the video element",
    ))
}

/// [`video_frames`] through a `<video>` element: each time is sought and, where the browser
/// has `requestVideoFrameCallback`, the frame it then presents is awaited before drawing.
async fn element_frames(
    bytes: &[u8],
    mime: &str,
    times: &[f64],
) -> Result<(u32, u32, Vec<u8>), String> {
    let url = object_url(bytes, mime);
    let result = async {
        let video = video_element(&url).await?;
        let number = |key| property(&video, key).map(|v| v.as_f64().unwrap_or(0.0));
        let (w, h) = (number("videoWidth")?, number("videoHeight")?);
        check_video_frames(w as u32, h as u32, times.len())?;
        let ctx = canvas_2d(w, h)?;
        let mut rgb = Vec::new();
        for &t in times {
            let seeked = event_promise(&video, "seeked");
            Reflect::set(&video, &"currentTime".into(), &t.into()).map_err(|e| format!("{e:?}"))?;
            wasm_bindgen_futures::JsFuture::from(seeked)
                .await
                .map_err(|_| format!("the video cannot be read at {t:.2} s"))?;
            presented(&video).await;
            rgb.extend(draw_rgb(&ctx, &video, w, h)?);
        }
        Ok((w as u32, h as u32, rgb))
    }
    .await;
    revoke_url(&url);
    result
}

/// Waits for the video's next presented frame (`requestVideoFrameCallback`), at most 200 ms
/// (a paused video may present nothing new after a seek).
async fn presented(video: &JsValue) {
    if !property(video, "requestVideoFrameCallback").is_ok_and(|f| f.is_function()) {
        return;
    }
    let video = video.clone();
    let promise = js_sys::Promise::new(&mut move |resolve: Function, _reject: Function| {
        let _ = call(
            &video,
            "requestVideoFrameCallback",
            &js_sys::Array::of1(&resolve),
        );
        if let Some(w) = window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 200);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// The first file of the `<input type="file">` an event came from.
pub fn picked_file(ev: &web_sys::Event) -> Option<web_sys::File> {
    ev.target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        .and_then(|i| i.files())
        .and_then(|f| f.get(0))
}

/// Decodes an image file (PNG, JPEG, WebP… whatever the browser reads) to RGB.
pub async fn decode_image(bytes: &[u8]) -> Result<(u32, u32, Vec<u8>), String> {
    // A header claiming too many pixels is refused before the browser decodes anything.
    if let Some((w, h)) = keyshift_core::image::claimed_size(bytes) {
        keyshift_core::pngtext::check_image_size(w, h).map_err(|e| e.to_string())?;
    }
    let blob = bytes_blob(bytes).ok_or("the image could not be read")?;
    let global = js_sys::global();
    let promise: js_sys::Promise = call(&global, "createImageBitmap", &js_sys::Array::of1(&blob))?
        .dyn_into()
        .map_err(|_| "no createImageBitmap")?;
    let bitmap = wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .map_err(|_| "the browser cannot decode this file as an image".to_owned())?;
    let (w, h) = (
        property(&bitmap, "width")?.as_f64().unwrap_or(0.0),
        property(&bitmap, "height")?.as_f64().unwrap_or(0.0),
    );
    keyshift_core::pngtext::check_image_size(w as u32, h as u32).map_err(|e| e.to_string())?;
    let ctx = canvas_2d(w, h)?;
    let rgb = draw_rgb(&ctx, &bitmap, w, h)?;
    Ok((w as u32, h as u32, rgb))
}

/// The query parameter `name` (`?parseq=…`), percent-decoded.
pub fn query_param(name: &str) -> Option<String> {
    let search = window()?.location().search().ok()?;
    let raw = crate::parseq::query_value(&search, name)?;
    // `+` is a space in a query string.
    js_sys::decode_uri_component(&raw.replace('+', " "))
        .ok()
        .and_then(|v| v.as_string())
}

/// Drops the query string from the address bar (keeping the path and the fragment).
pub fn drop_query() {
    let Some(w) = window() else { return };
    let Ok(history) = w.history() else { return };
    let path = w.location().pathname().unwrap_or_default();
    let hash = w.location().hash().unwrap_or_default();
    if let Err(e) =
        history.replace_state_with_url(&JsValue::NULL, "", Some(&format!("{path}{hash}")))
    {
        tracing::warn!("could not update the address bar: {e:?}");
    }
}

/// The page's full URL without its fragment.
pub fn page_url() -> String {
    window()
        .and_then(|w| {
            let l = w.location();
            Some(format!("{}{}", l.origin().ok()?, l.pathname().ok()?))
        })
        .unwrap_or_default()
}

/// Copies text to the clipboard; resolves to whether it worked.
pub async fn copy_to_clipboard(text: &str) -> bool {
    let Some(w) = window() else { return false };
    let promise = w.navigator().clipboard().write_text(text);
    wasm_bindgen_futures::JsFuture::from(promise).await.is_ok()
}

/// The `content` of `<meta name="…">` in the page, written by the build.
pub fn meta(name: &str) -> Option<String> {
    let document = window()?.document()?;
    let element = document
        .query_selector(&format!("meta[name=\"{name}\"]"))
        .ok()??;
    element.get_attribute("content")
}

/// Calls `on_update` when the boot script reports a new version waiting to take over.
pub fn on_update_available(on_update: impl Fn() + 'static) {
    let Some(w) = window() else { return };
    let closure = Closure::<dyn Fn()>::new(on_update);
    let result =
        w.add_event_listener_with_callback("keyshift:update", closure.as_ref().unchecked_ref());
    if result.is_ok() {
        // Lives as long as the page.
        closure.forget();
    }
}

/// Whether an update was already waiting when the app mounted.
pub fn update_waiting() -> bool {
    window()
        .and_then(|w| Reflect::get(&w, &JsValue::from_str("keyshiftUpdateWaiting")).ok())
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// Asks the waiting service worker to take over; the boot script reloads the page when it has.
pub fn apply_update() {
    let Some(w) = window() else { return };
    let Ok(f) = Reflect::get(&w, &JsValue::from_str("keyshiftApplyUpdate")) else {
        return;
    };
    if let Ok(f) = f.dyn_into::<Function>() {
        let _ = f.call0(&JsValue::NULL);
    }
}

/// The page's host name (`127.0.0.1`, `example.org`).
pub fn host() -> String {
    window()
        .and_then(|w| w.location().hostname().ok())
        .unwrap_or_default()
}

/// The page's origin (`http://127.0.0.1:8080`).
pub fn origin() -> String {
    window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default()
}

/// Sets the tab title.
pub fn set_title(title: &str) {
    if let Some(document) = window().and_then(|w| w.document()) {
        document.set_title(title);
    }
}

/// A random 32-bit seed.
pub fn random_seed() -> u32 {
    (js_sys::Math::random() * 4_294_967_296.0) as u32
}

/// Asks the browser to keep the site's storage (cached models) under storage pressure; resolves
/// to whether it agreed.
pub async fn persist_storage() -> bool {
    let Some(w) = window() else { return false };
    let Ok(promise) = w.navigator().storage().persist() else {
        return false;
    };
    wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = URL, js_name = createObjectURL, catch)]
    fn create_object_url(blob: &JsValue) -> Result<String, JsValue>;
    #[wasm_bindgen(js_namespace = URL, js_name = revokeObjectURL)]
    fn revoke_object_url(url: &str);
    #[wasm_bindgen(js_namespace = localStorage, js_name = getItem, catch)]
    fn local_get(key: &str) -> Result<Option<String>, JsValue>;
    #[wasm_bindgen(js_namespace = localStorage, js_name = setItem, catch)]
    fn local_set(key: &str, value: &str) -> Result<(), JsValue>;
}

/// An object URL of `bytes` typed `mime` (a frame, an export); revoke it with [`revoke_url`].
pub fn object_url(bytes: &[u8], mime: &str) -> String {
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes));
    let options = js_sys::Object::new();
    let _ = Reflect::set(
        &options,
        &JsValue::from_str("type"),
        &JsValue::from_str(mime),
    );
    let blob = Reflect::get(&js_sys::global(), &JsValue::from_str("Blob"))
        .ok()
        .and_then(|c| c.dyn_into::<Function>().ok())
        .and_then(|c| Reflect::construct(&c, &js_sys::Array::of2(&parts, &options)).ok());
    blob.and_then(|b| create_object_url(&b).ok())
        .unwrap_or_default()
}

/// Releases an object URL.
pub fn revoke_url(url: &str) {
    if !url.is_empty() {
        revoke_object_url(url);
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

const AUTOSAVE: &str = "keyshift-autosave";

/// The project saved by [`autosave`] (a share-link fragment), if any.
pub fn autosaved() -> Option<String> {
    local_get(AUTOSAVE).ok().flatten()
}

/// Keeps `fragment` (the project as a share link) for the next visit.
pub fn autosave(fragment: &str) {
    if let Err(e) = local_set(AUTOSAVE, fragment) {
        tracing::warn!("the project could not be saved in the browser: {e:?}");
    }
}

/// Starts a download of `url` as `name`.
pub fn download(url: &str, name: &str) {
    let Some(document) = window().and_then(|w| w.document()) else {
        return;
    };
    let Ok(link) = document.create_element("a") else {
        return;
    };
    let _ = link.set_attribute("href", url);
    let _ = link.set_attribute("download", name);
    if let Ok(link) = link.dyn_into::<web_sys::HtmlElement>() {
        link.click();
    }
}
