//! Video frames through WebCodecs: a WebM demuxed in Rust (`keyshift_core::export::demux_webm`),
//! its chunks fed to a `VideoDecoder` from the keyframe before the first wanted frame, and each
//! wanted decoded frame drawn on an `OffscreenCanvas` (the same drawing as the `<video>` path).
//! Reached through `js_sys` reflection, as the worker's encoder is (no unstable web-sys APIs).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use js_sys::{Function, Reflect};
use keyshift_core::export::{WebmTrack, demux_webm};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::{call, canvas_2d, draw_rgb, property};
use crate::video::decode_plan;

/// Whether this browser has WebCodecs' `VideoDecoder`.
pub fn available() -> bool {
    property(&js_sys::global(), "VideoDecoder").is_ok_and(|v| v.is_function())
}

/// The WebCodecs codec string of a Matroska codec id.
fn codec(id: &str) -> Option<&'static str> {
    match id {
        "V_VP8" => Some("vp8"),
        "V_VP9" => Some("vp09.00.10.08"),
        "V_AV1" => Some("av01.0.04M.08"),
        _ => None,
    }
}

/// The RGB bytes of the frames of the WebM `bytes` shown at `times` (seconds), one after another.
pub async fn webm_frames(bytes: &[u8], times: &[f64]) -> Result<(u32, u32, Vec<u8>), String> {
    let track = demux_webm(bytes).map_err(|e| e.to_string())?;
    let codec = codec(&track.codec_id)
        .ok_or_else(|| format!("WebCodecs does not decode {}", track.codec_id))?;
    let stamps: Vec<i64> = track.frames.iter().map(|f| f.timestamp_us).collect();
    let keys: Vec<bool> = track.frames.iter().map(|f| f.keyframe).collect();
    let plan = decode_plan(&stamps, &keys, times).ok_or("the video has no frame to decode")?;
    let wanted: Vec<i64> = plan.shown.iter().map(|&i| stamps[i]).collect();
    let (w, h) = (track.width as f64, track.height as f64);
    super::check_video_frames(w as u32, h as u32, wanted.len())?;
    let drawn = decode(&track, codec, plan.start..=plan.last, &wanted, (w, h)).await?;
    let mut rgb = Vec::with_capacity(wanted.len() * (w * h * 3.0) as usize);
    for ts in &wanted {
        rgb.extend(
            drawn
                .get(ts)
                .ok_or_else(|| format!("the frame at {} µs was not decoded", ts))?,
        );
    }
    Ok((w as u32, h as u32, rgb))
}

type Drawn = Rc<RefCell<BTreeMap<i64, Vec<u8>>>>;

/// Decodes `range` of the track; the frames whose timestamps are `wanted` are drawn.
async fn decode(
    track: &WebmTrack,
    codec: &str,
    range: std::ops::RangeInclusive<usize>,
    wanted: &[i64],
    (w, h): (f64, f64),
) -> Result<BTreeMap<i64, Vec<u8>>, String> {
    let ctx = canvas_2d(w, h)?;
    let drawn: Drawn = Rc::default();
    let failure: Rc<RefCell<Option<String>>> = Rc::default();
    let output = {
        let (drawn, failure, wanted) = (Rc::clone(&drawn), Rc::clone(&failure), wanted.to_vec());
        Closure::<dyn FnMut(JsValue)>::new(move |frame: JsValue| {
            let ts = property(&frame, "timestamp")
                .ok()
                .and_then(|t| t.as_f64())
                .map_or(i64::MIN, |t| t.round() as i64);
            if wanted.contains(&ts) {
                match draw_rgb(&ctx, &frame, w, h) {
                    Ok(rgb) => {
                        drawn.borrow_mut().insert(ts, rgb);
                    }
                    Err(e) => *failure.borrow_mut() = Some(e),
                }
            }
            let _ = call(&frame, "close", &js_sys::Array::new());
        })
    };
    let error = {
        let failure = Rc::clone(&failure);
        Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            *failure.borrow_mut() = Some(format!("the video decoder failed: {e:?}"));
        })
    };
    let init = js_sys::Object::new();
    set(&init, "output", output.as_ref())?;
    set(&init, "error", error.as_ref())?;
    let decoder = construct("VideoDecoder", &init.into())?;
    let config = js_sys::Object::new();
    set(&config, "codec", &codec.into())?;
    set(&config, "codedWidth", &w.into())?;
    set(&config, "codedHeight", &h.into())?;
    call(&decoder, "configure", &js_sys::Array::of1(&config))?;
    for frame in &track.frames[range] {
        let chunk = js_sys::Object::new();
        let kind = if frame.keyframe { "key" } else { "delta" };
        set(&chunk, "type", &kind.into())?;
        set(&chunk, "timestamp", &(frame.timestamp_us as f64).into())?;
        set(
            &chunk,
            "data",
            &js_sys::Uint8Array::from(frame.data.as_slice()),
        )?;
        let chunk = construct("EncodedVideoChunk", &chunk.into())?;
        call(&decoder, "decode", &js_sys::Array::of1(&chunk))?;
    }
    let flushed: js_sys::Promise = call(&decoder, "flush", &js_sys::Array::new())?
        .dyn_into()
        .map_err(|_| "flush gave no promise")?;
    let flushed = wasm_bindgen_futures::JsFuture::from(flushed).await;
    let _ = call(&decoder, "close", &js_sys::Array::new());
    if let Some(e) = failure.borrow_mut().take() {
        return Err(e);
    }
    flushed.map_err(|e| format!("the video decoder failed: {e:?}"))?;
    drop((output, error));
    Ok(std::mem::take(&mut *drawn.borrow_mut()))
}

fn set(obj: &js_sys::Object, key: &str, value: &JsValue) -> Result<(), String> {
    Reflect::set(obj, &key.into(), value)
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

fn construct(name: &str, arg: &JsValue) -> Result<JsValue, String> {
    let ctor: Function = property(&js_sys::global(), name)?
        .dyn_into()
        .map_err(|_| format!("no {name}"))?;
    Reflect::construct(&ctor, &js_sys::Array::of1(arg)).map_err(|e| format!("{name}: {e:?}"))
}
