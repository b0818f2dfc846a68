//! The audio reference: load a file (decoded by WebAudio on the page, analysed in Rust by the
//! worker), its waveform and onsets under the graph (same frames in view), onsets → keyframes,
//! amplitude and pitch → time series, CSV time series.

use keyshift_core::audio::OnsetOptions;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::{JsCast, JsValue};

use super::parseq::{EditorSignal, with_editor};
use crate::app::Shared;
use crate::parseq_audio::{Series, import_csv, series_points};
use crate::parseq_ops::Unit;
use crate::parseq_view::View;
use keyshift_core::limits::{self, FileKind};

const W: f64 = 720.0;
const H: f64 = 60.0;

/// A property of a JS object.
fn get(obj: &JsValue, key: &str) -> Result<JsValue, String> {
    js_sys::Reflect::get(obj, &JsValue::from_str(key)).map_err(|e| format!("{e:?}"))
}

/// Decodes an audio file with WebAudio: mono samples (channels averaged) and their rate.
async fn decode(bytes: &[u8]) -> Result<(Vec<f32>, f64), String> {
    // A WAV header claiming hours is refused before the browser decodes it; any other format's
    // length is checked once decoded, before its samples are copied.
    if let Some(seconds) = limits::wav_seconds(bytes) {
        limits::check_audio_seconds(seconds).map_err(|e| e.to_string())?;
    }
    let ctor: js_sys::Function = get(&js_sys::global(), "OfflineAudioContext")?
        .dyn_into()
        .map_err(|_| "this browser has no WebAudio".to_owned())?;
    let args = js_sys::Array::of3(&1.into(), &1.into(), &44_100.into());
    let ctx = js_sys::Reflect::construct(&ctor, &args).map_err(|e| format!("{e:?}"))?;
    let decode: js_sys::Function = get(&ctx, "decodeAudioData")?
        .dyn_into()
        .map_err(|_| "no decodeAudioData")?;
    let buffer = js_sys::Uint8Array::from(bytes).buffer();
    let promise: js_sys::Promise = decode
        .call1(&ctx, &buffer)
        .map_err(|e| format!("{e:?}"))?
        .dyn_into()
        .map_err(|_| "no promise")?;
    let audio = wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .map_err(|_| "the browser cannot decode this file as audio".to_owned())?;
    let rate = get(&audio, "sampleRate")?.as_f64().unwrap_or(44_100.0);
    let length = get(&audio, "length")?.as_f64().unwrap_or(0.0);
    limits::check_audio(length as u64, rate).map_err(|e| e.to_string())?;
    let channels = get(&audio, "numberOfChannels")?
        .as_f64()
        .unwrap_or(1.0)
        .max(1.0) as u32;
    let channel: js_sys::Function = get(&audio, "getChannelData")?
        .dyn_into()
        .map_err(|_| "no getChannelData")?;
    let mut mixed: Vec<f32> = Vec::new();
    for c in 0..channels {
        let data = channel
            .call1(&audio, &c.into())
            .map_err(|e| format!("{e:?}"))?;
        let samples = js_sys::Float32Array::new(&data).to_vec();
        if mixed.is_empty() {
            mixed = vec![0.0; samples.len()];
        }
        for (m, s) in mixed.iter_mut().zip(samples) {
            *m += s / channels as f32;
        }
    }
    Ok((mixed, rate))
}

/// The samples as a Blob of little-endian f32 (sent to the worker without a copy).
fn samples_blob(samples: &[f32]) -> Option<web_sys::Blob> {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    crate::browser::bytes_blob(&bytes)
}

/// The audio panel.
#[component]
pub fn AudioPanel(
    editor: EditorSignal,
    error: RwSignal<Option<String>>,
    view: RwSignal<Option<View>>,
) -> impl IntoView {
    let shared = expect_context::<Shared>();
    let audio = shared.audio;
    let decoded = StoredValue::new_local(None::<(web_sys::Blob, f64)>);
    let options = RwSignal::new(OnsetOptions::default());
    let (label, alias, csv, csv_ms) = (
        RwSignal::new("onset".to_owned()),
        RwSignal::new("amplitude".to_owned()),
        RwSignal::new(String::new()),
        RwSignal::new(true),
    );
    let analyse = move || {
        if let Some((blob, rate)) = decoded.get_value() {
            let mut message = None;
            let name = audio.with_untracked(|a| a.name.clone());
            audio.update(|a| message = Some(a.analyse(&name, rate, options.get_untracked())));
            if let Some(m) = message {
                shared.send_with(&m, &[blob]);
            }
        }
    };
    let on_file = move |ev: leptos::ev::Event| {
        let Some(file) = crate::browser::picked_file(&ev) else {
            return;
        };
        spawn_local(async move {
            let name = file.name();
            let bytes = match crate::browser::file_bytes(&file, FileKind::Audio).await {
                Ok(bytes) => bytes,
                Err(e) => return error.set(Some(e)),
            };
            match decode(&bytes).await {
                Ok((samples, rate)) => {
                    decoded.set_value(samples_blob(&samples).map(|b| (b, rate)));
                    audio.update(|a| a.name = name);
                    analyse();
                }
                Err(e) => error.set(Some(format!("{name}: {e}"))),
            }
        });
    };
    let set_option = move |f: fn(&mut OnsetOptions, f64)| {
        move |ev: leptos::ev::Event| {
            if let Ok(v) = event_target_value(&ev).trim().parse::<f64>() {
                options.update(|o| f(o, v));
                analyse();
            }
        }
    };
    let to_keyframes = move |_| {
        let onsets = audio.with_untracked(|a| {
            a.analysis
                .as_ref()
                .map(|a| a.onsets.clone())
                .unwrap_or_default()
        });
        let text = onsets
            .iter()
            .map(|t| format!("{t:.3}"))
            .collect::<Vec<_>>()
            .join(",");
        with_editor(editor, error, |e| {
            e.add_at_positions(&text, Unit::Seconds, &label.get_untracked())
        });
    };
    let to_series = move |series: Series| {
        move |_| {
            let points = audio.with_untracked(|a| {
                a.analysis
                    .as_ref()
                    .map(|a| series_points(a, series))
                    .unwrap_or_default()
            });
            with_editor(editor, error, |e| {
                e.set_time_series(&alias.get_untracked(), &points, true)
            });
        }
    };
    let from_csv = move |_| {
        with_editor(editor, error, |e| {
            import_csv(
                e,
                &alias.get_untracked(),
                &csv.get_untracked(),
                csv_ms.get_untracked(),
            )
        });
    };
    let text = |s: RwSignal<String>, testid: &'static str, placeholder: &'static str| {
        view! {
            <input type="text" data-testid=testid placeholder=placeholder prop:value=move || s.get() on:input=move |ev| s.set(event_target_value(&ev))/>
        }
    };
    view! {
        <details class="parseq-audio" open>
            <summary>"Audio reference"</summary>
            <div class="row wrap">
                <label class="field"><span>"Load audio (decoded in the browser)"</span>
                    <input type="file" accept="audio/*" data-testid="audio-load" on:change=on_file/></label>
                <label class="field"><span>"Threshold"</span><input type="number" step="0.1" class="short" data-testid="onset-threshold"
                    prop:value=move || options.get().threshold.to_string() on:change=set_option(|o, v| o.threshold = v)/></label>
                <label class="field"><span>"Silence dB"</span><input type="number" class="short" data-testid="onset-silence"
                    prop:value=move || options.get().silence_db.to_string() on:change=set_option(|o, v| o.silence_db = v)/></label>
                <label class="field"><span>"Offset ms"</span><input type="number" class="short" data-testid="onset-offset"
                    prop:value=move || options.get().offset_ms.to_string() on:change=set_option(|o, v| o.offset_ms = v)/></label>
            </div>
            <p class="hint" data-testid="audio-status">{move || audio.with(|a| a.error.clone().unwrap_or_else(|| a.summary()))}</p>
            <Waveform editor=editor view=view/>
            <div class="row wrap">
                {text(label, "onset-label", "info label")}
                <button class="ghost" data-testid="onsets-to-keyframes" on:click=to_keyframes
                    disabled=move || audio.with(|a| a.analysis.is_none())>"Keyframes at onsets"</button>
                {text(alias, "series-alias", "time series name")}
                <button class="ghost" data-testid="amplitude-series" on:click=to_series(Series::Amplitude)
                    disabled=move || audio.with(|a| a.analysis.is_none())>"Amplitude → time series"</button>
                <button class="ghost" data-testid="pitch-series" on:click=to_series(Series::Pitch)
                    disabled=move || audio.with(|a| a.analysis.is_none())>"Pitch → time series"</button>
            </div>
            <label class="field"><span>"CSV time series (timestamp,value per line), named as above"</span>
                <textarea rows="2" data-testid="csv-text" prop:value=move || csv.get() on:input=move |ev| csv.set(event_target_value(&ev))></textarea></label>
            <div class="row wrap">
                <label class="check"><input type="checkbox" prop:checked=move || csv_ms.get() on:change=move |ev| csv_ms.set(event_target_checked(&ev))/>"timestamps in milliseconds (else frames)"</label>
                <button class="ghost" data-testid="csv-import" on:click=from_csv>"Import CSV"</button>
                <span class="hint">{move || editor.with(|e| e.as_ref().map(|e| e.time_series_aliases().join(", ")).unwrap_or_default())}</span>
            </div>
        </details>
    }
}

/// The waveform and onsets over the graph's frames in view.
#[component]
fn Waveform(editor: EditorSignal, view: RwSignal<Option<View>>) -> impl IntoView {
    let shared = expect_context::<Shared>();
    let audio = shared.audio;
    let drawn = move || {
        let fps = editor.with(|e| e.as_ref().map_or(20.0, |e| e.timing().0));
        let full = editor.with(|e| View::all(e.as_ref()));
        let v = view.get().unwrap_or(full);
        audio.with(|a| {
            let Some(a) = a
                .analysis
                .as_ref()
                .filter(|a| a.duration > 0.0 && !a.waveform.is_empty())
            else {
                return (String::new(), Vec::new());
            };
            let cols = a.waveform.len();
            let mut d = String::new();
            for x in 0..W as usize {
                let t = v.frame_at(x as f64, W) / fps;
                let c = (t / a.duration * cols as f64).floor();
                if c < 0.0 || c >= cols as f64 {
                    continue;
                }
                let (lo, hi) = a.waveform[c as usize];
                let y = |s: f32| H / 2.0 - f64::from(s) * H / 2.0;
                d.push_str(&format!("M{x} {:.1}L{x} {:.1}", y(hi), y(lo)));
            }
            let onsets = a
                .onsets
                .iter()
                .map(|t| v.x_of(t * fps, W))
                .filter(|x| (0.0..=W).contains(x))
                .collect();
            (d, onsets)
        })
    };
    view! {
        <svg class="waveform" data-testid="audio-waveform" viewBox=format!("0 0 {W} {H}") preserveAspectRatio="none">
            <path d=move || drawn().0/>
            {move || drawn().1.into_iter().map(|x| view! { <line class="onset" x1=x x2=x y1="0" y2=H/> }).collect_view()}
        </svg>
    }
}
