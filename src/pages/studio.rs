//! The generation card: pick and load a model, make images, watch progress, keep the results.

use keyshift_web::protocol::{ComputeBackend, ModelPrecision, ToWorker};
use leptos::ev::KeyboardEvent;
use leptos::prelude::*;

use crate::app::Shared;
use crate::browser;
use crate::state::{self, ProjectCommand};
use crate::studio::{
    ModelChoice, ModelStatus, Studio, bytes_text, is_local_host, is_model_file, model_choices,
};

fn choices() -> Vec<ModelChoice> {
    model_choices(is_local_host(&browser::host()), &browser::origin())
}

/// An object URL of the PNG `bytes` gives, made again only when the bytes change (the
/// previous one is released).
fn png_url(bytes: impl Fn() -> Option<Vec<u8>> + Send + Sync + 'static) -> Memo<Option<String>> {
    let bytes = Memo::new(move |_| bytes());
    Memo::new(move |previous: Option<&Option<String>>| {
        if let Some(Some(old)) = previous {
            browser::revoke_url(old);
        }
        bytes.with(|b| b.as_ref().map(|b| browser::object_url(b, "image/png")))
    })
}

/// The model picker and the generate controls, progress and results.
#[component]
pub fn StudioCard() -> impl IntoView {
    let shared = expect_context::<Shared>();
    let studio = shared.studio;
    let project = shared.project;
    let choices = StoredValue::new(choices());
    let picked = RwSignal::new(0usize);
    let precision = RwSignal::new(
        choices.with_value(|c| c.first().map_or(ModelPrecision::Int8, |c| c.precision)),
    );
    let backend = RwSignal::new(ComputeBackend::Webgpu);
    let batch = RwSignal::new(1u32);
    let custom = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);

    let recommended = RwSignal::new(String::new());
    let pick = move |index: usize| {
        picked.set(index);
        if let Some(p) = choices.with_value(|c| c.get(index).map(|c| c.precision)) {
            precision.set(p);
        }
        // A preset's recommended steps, sampler and CFG go into the project, with a note.
        let settings =
            choices.with_value(|c| c.get(index).and_then(crate::studio::recommended_settings));
        recommended.set(String::new());
        if let Some((steps, sampler, cfg, note)) = settings {
            let mut next = project.get_untracked();
            let edits = [
                ProjectCommand::SetSteps(steps.to_string()),
                ProjectCommand::SetSampler(sampler.to_owned()),
                ProjectCommand::SetCfg(cfg.to_string()),
            ];
            if edits.into_iter().all(|e| e.apply(&mut next).is_ok()) {
                browser::replace_fragment(&state::link_fragment(&next));
                project.set(next);
                recommended.set(note);
            }
        }
    };
    let load = move |_| {
        let named = custom.get_untracked();
        let choice = if named.trim().is_empty() {
            choices.with_value(|c| c.get(picked.get_untracked()).cloned())
        } else {
            match ModelChoice::custom(&named) {
                Ok(choice) => Some(choice),
                Err(e) => {
                    studio.update(|s| {
                        s.model = ModelStatus::Failed {
                            label: named.trim().to_owned(),
                            message: e,
                        };
                    });
                    None
                }
            }
        };
        let Some(choice) = choice else {
            return;
        };
        let mut message = None;
        studio.update(|s| {
            message = Some(s.load(&choice, precision.get_untracked(), backend.get_untracked()));
        });
        if let Some(m) = message {
            // Ask the browser to keep the cache; without it, it may evict models under pressure.
            leptos::task::spawn_local(async {
                browser::persist_storage().await;
            });
            shared.send(&m);
        }
    };
    // Local files, picked or dropped: an A1111 checkpoint with its .yaml (and config.json).
    let load_files = move |files: Vec<web_sys::File>| {
        if files.is_empty() {
            return;
        }
        let names: Vec<String> = files.iter().map(web_sys::File::name).collect();
        let mut result = Err(String::new());
        studio.update(|s| {
            result = s.load_local(&names, precision.get_untracked(), backend.get_untracked());
        });
        match result {
            Ok((message, order)) => {
                let blobs: Vec<web_sys::Blob> = order
                    .iter()
                    .filter_map(|&i| files.get(i))
                    .map(|f| web_sys::Blob::from(f.clone()))
                    .collect();
                shared.send_with(&message, &blobs);
            }
            Err(e) => studio.update(|s| s.error = Some(e)),
        }
    };
    let files_of = |list: Option<web_sys::FileList>| -> Vec<web_sys::File> {
        let Some(list) = list else { return Vec::new() };
        (0..list.length()).filter_map(|i| list.get(i)).collect()
    };
    let on_pick = move |ev: leptos::ev::Event| {
        let input = event_target::<web_sys::HtmlInputElement>(&ev);
        load_files(files_of(input.files()));
        // Picking the same file again must fire `change` again.
        input.set_value("");
    };
    let over = window_event_listener(leptos::ev::dragover, |ev| ev.prevent_default());
    let drop = window_event_listener(leptos::ev::drop, move |ev| {
        let files = files_of(ev.data_transfer().and_then(|d| d.files()));
        if files.iter().any(|f| is_model_file(&f.name())) {
            ev.prevent_default();
            load_files(files);
        }
    });
    on_cleanup(move || {
        over.remove();
        drop.remove();
    });
    let generate = move || {
        let mut result = Err(String::new());
        let p = project.get_untracked();
        studio.update(|s| result = s.generate(&p, batch.get_untracked(), browser::random_seed()));
        match result {
            Ok(message) => {
                error.set(None);
                shared.send(&message);
            }
            Err(e) => error.set(Some(e)),
        }
    };
    let cancel = move |_| {
        let mut message = None;
        studio.update(|s| message = s.cancel());
        if let Some(m) = message {
            shared.send(&m);
        }
    };
    let reuse_seed = move |_| {
        if let Some(seed) = studio.with_untracked(|s| s.last_seed) {
            let mut next = project.get_untracked();
            if ProjectCommand::SetSeed(seed.to_string())
                .apply(&mut next)
                .is_ok()
            {
                browser::replace_fragment(&state::link_fragment(&next));
                project.set(next);
            }
        }
    };
    // Ctrl+Enter (or Cmd+Enter) generates, as in A1111.
    let on_key = move |ev: KeyboardEvent| {
        if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
            ev.prevent_default();
            if studio.with_untracked(|s| s.is_ready() && !s.is_busy()) {
                generate();
            }
        }
    };
    let status = move || studio.with(Studio::model_text);
    let loading = move || studio.with(|s| matches!(s.model, ModelStatus::Loading { .. }));
    let note = move || choices.with_value(|c| c.get(picked.get()).map(|c| c.note).unwrap_or(""));
    let preview_url = png_url(move || studio.with(|s| s.preview.clone()));
    // The newest image, as a memo: its figure (and the heatmap's opacity) is built again only
    // for a new image or its heatmap, not on every message from the worker; what identifies it
    // is compared, not its PNG bytes, and those are copied only when it changes.
    let newest_key = Memo::new(move |_| {
        studio.with(|s| {
            let first = s.outputs.first();
            (s.outputs.len(), first.map(|o| (o.job, o.heatmap.is_some())))
        })
    });
    let newest = Memo::new(move |_| {
        // Read, not only tracked: a memo that is never read never computes, and so never
        // subscribes to the studio.
        let _key = newest_key.get();
        studio.with_untracked(|s| s.outputs.first().cloned())
    });
    let result_url = png_url(move || newest.with(|o| o.as_ref().map(|o| o.png.clone())));

    view! {
        <section class="card" on:keydown=on_key>
            <h2>"Generate"</h2>
            <div class="grid">
                <label class="field">
                    <span>"Model"</span>
                    <select data-testid="model-picker"
                        on:change=move |ev| pick(event_target_value(&ev).parse().unwrap_or(0))>
                        {choices.with_value(|c| c
                            .iter()
                            .enumerate()
                            .map(|(i, choice)| view! {
                                <option value=i.to_string() selected=move || picked.get() == i>
                                    {choice.label.clone()}
                                </option>
                            })
                            .collect_view())}
                    </select>
                </label>
                <label class="field">
                    <span>"Precision"</span>
                    <select data-testid="model-precision"
                        on:change=move |ev| {
                            precision.set(
                                ModelPrecision::from_name(&event_target_value(&ev))
                                    .unwrap_or_default(),
                            );
                        }>
                        <option value="int8" selected=move || precision.get() == ModelPrecision::Int8>
                            "int8 (half the memory)"
                        </option>
                        <option value="f32" selected=move || precision.get() == ModelPrecision::F32>"f32"</option>
                    </select>
                </label>
                <label class="field">
                    <span>"Compute on"</span>
                    <select data-testid="model-backend"
                        on:change=move |ev| backend.set(if event_target_value(&ev) == "cpu" {
                            ComputeBackend::Cpu
                        } else {
                            ComputeBackend::Webgpu
                        })>
                        <option value="webgpu">"GPU (WebGPU)"</option>
                        <option value="cpu">"CPU (slow fallback)"</option>
                    </select>
                </label>
            </div>
            <label class="field">
                <span>"Or another model: a Hugging Face repository id or the URL of a diffusers folder"</span>
                <input type="text" data-testid="model-custom" spellcheck="false"
                    placeholder="SimianLuo/LCM_Dreamshaper_v7"
                    prop:value=move || custom.get()
                    on:input=move |ev| custom.set(event_target_value(&ev))/>
            </label>
            <label class="field">
                <span>"Or a file from this computer: an A1111 .safetensors checkpoint, with its .yaml if it has one (or drop them on the page)"</span>
                <input type="file" data-testid="model-file" multiple
                    accept=".safetensors,.yaml,.json" on:change=on_pick/>
            </label>
            <p class="hint">{note}</p>
            <p class="hint" data-testid="model-recommended">{move || recommended.get()}</p>
            <InitImageField/>
            <super::control::ControlNetPanel/>
            <super::heatmap::TokenPicker/>
            <super::heatmap::ProbePanel/>
            <div class="row">
                <button data-testid="model-load" on:click=load disabled=loading>"Load model"</button>
                <span class="grow" data-testid="model-status" role="status"
                    title=move || studio.with(Studio::memory_text)>{status}</span>
            </div>
            <div class="row">
                <label class="field">
                    <span>"Batch count"</span>
                    <input type="number" min="1" max="100" step="1" data-testid="batch-count"
                        prop:value=move || batch.get().to_string()
                        on:change=move |ev| {
                            batch.set(event_target_value(&ev).trim().parse().unwrap_or(1).clamp(1, 100))
                        }/>
                </label>
                <button class="primary" data-testid="generate"
                    title="Ctrl+Enter"
                    disabled=move || studio.with(|s| !s.is_ready() || s.is_busy())
                    on:click=move |_| generate()>"Generate"</button>
                <button data-testid="cancel" disabled=move || studio.with(|s| !s.is_busy())
                    on:click=cancel>"Cancel"</button>
                <button class="ghost" data-testid="reuse-seed"
                    disabled=move || studio.with(|s| s.last_seed.is_none())
                    on:click=reuse_seed>"Reuse last seed"</button>
            </div>
            <Show when=move || studio.with(|s| s.is_busy())>
                <div class="row">
                    <progress data-testid="progress" max="1"
                        prop:value=move || studio.with(|s| s.fraction().unwrap_or(0.0))></progress>
                    <span data-testid="progress-text">{move || studio.with(|s| s.progress_text())}</span>
                </div>
            </Show>
            {move || {
                let message = error.get().or_else(|| studio.with(|s| s.error.clone()))?;
                Some(view! { <p class="error" role="alert" data-testid="generate-error">{message}</p> })
            }}
            {move || preview_url.get().map(|url| view! {
                <img class="preview" data-testid="preview-image" alt="Preview of the image being made"
                    src=url/>
            })}
            {move || newest.get().zip(result_url.get()).map(|(out, url)| {
                view! {
                    <figure class="result">
                        <super::heatmap::HeatmapLayer output=out.clone() image_url=url.clone()/>
                        <figcaption>
                            <span data-testid="result-info">
                                {format!(
                                    "Seed {} · {:.1} s · {:.0} ms per step",
                                    out.seed,
                                    out.elapsed_ms / 1000.0,
                                    out.step_ms
                                )}
                            </span>
                            " "
                            <a data-testid="download-png" href=url
                                download=format!("keyshift-{}.png", out.seed)>"Download PNG"</a>
                        </figcaption>
                    </figure>
                }
            })}
        </section>
    }
}

/// The offline model cache: what is stored, how much room is left, and deleting.
#[component]
pub fn CacheCard() -> impl IntoView {
    let shared = expect_context::<Shared>();
    let studio = shared.studio;
    let refresh = move |_| shared.send(&ToWorker::ListCache);
    view! {
        <section class="card">
            <h2>"Offline models"</h2>
            <p class="hint">
                "Loaded models are kept in this browser's storage, so the next load needs no network."
            </p>
            <div class="row">
                <span class="grow" data-testid="storage-estimate">
                    {move || studio.with(|s| s.cache.as_ref().map(|c| format!(
                        "{} used of {} available to this site",
                        bytes_text(c.usage),
                        bytes_text(c.quota)
                    )).unwrap_or_else(|| "Storage not checked yet.".into()))}
                </span>
                <button class="ghost" data-testid="cache-refresh" on:click=refresh>"Refresh"</button>
            </div>
            <ul class="cache-list" data-testid="cache-list">
                {move || studio.with(|s| s.cache.as_ref().map(|c| c.models.clone()).unwrap_or_default())
                    .into_iter()
                    .map(|m| {
                        let id = m.id.clone();
                        let state = if m.complete { "" } else { " (incomplete download)" };
                        view! {
                            <li data-testid="cached-model">
                                <span class="grow">{format!("{} — {}{state}", m.label, bytes_text(m.bytes))}</span>
                                <button class="ghost" data-testid="cache-delete"
                                    on:click=move |_| shared.send(&ToWorker::DeleteCached { id: id.clone() })>
                                    "Delete"
                                </button>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </section>
    }
}

/// img2img: an init image (picked or dropped here) and its denoising strength.
#[component]
fn InitImageField() -> impl IntoView {
    let studio = expect_context::<Shared>().studio;
    let (error, url) = (RwSignal::new(None::<String>), RwSignal::new(None::<String>));
    let open = move |file: web_sys::File| {
        leptos::task::spawn_local(async move {
            match pick_image(&file).await {
                Ok((pick, bytes)) => {
                    if let Some(old) = url.get_untracked() {
                        browser::revoke_url(&old);
                    }
                    url.set(Some(browser::object_url(&bytes, &file.type_())));
                    studio.update(|s| s.init = Some(pick));
                    error.set(None);
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let on_pick = move |ev: leptos::ev::Event| {
        if let Some(file) = browser::picked_file(&ev) {
            open(file);
        }
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        // Here a dropped image is the init image, not settings to restore.
        ev.prevent_default();
        ev.stop_propagation();
        if let Some(file) = ev
            .data_transfer()
            .and_then(|d| d.files())
            .and_then(|f| f.get(0))
        {
            open(file);
        }
    };
    let strength = Memo::new(move |_| {
        studio.with(|s| {
            s.init
                .as_ref()
                .map(|i| i.strength.to_string())
                .unwrap_or_default()
        })
    });
    let set_strength = move |ev: leptos::ev::Event| {
        let text = event_target_value(&ev);
        let mut result = Ok(());
        studio.update(|s| {
            if let Some(i) = s.init.as_mut() {
                result = i.set_strength(&text)
            }
        });
        error.set(result.err());
        super::show_stored(&ev, strength);
    };
    let clear = move |_| {
        studio.update(|s| s.init = None);
        if let Some(old) = url.get_untracked() {
            browser::revoke_url(&old);
        }
        url.set(None);
    };
    view! {
        <div class="init-image" on:dragover=|ev: leptos::ev::DragEvent| ev.prevent_default() on:drop=on_drop>
            <label class="field">
                <span>"img2img: an init image (pick or drop it here)"</span>
                <input type="file" accept="image/*" data-testid="init-image" on:change=on_pick/>
            </label>
            <Show when=move || studio.with(|s| s.init.is_some())>
                <div class="row">
                    {move || url.get().map(|u| view! { <img class="init-thumb" data-testid="init-preview" alt="Init image" src=u/> })}
                    <label class="field"><span>"Denoising strength"</span>
                        <input type="number" min="0.01" max="1" step="0.05" class="short" data-testid="init-strength"
                            prop:value=strength on:change=set_strength/></label>
                    <button class="ghost" data-testid="init-clear" on:click=clear>"No init image"</button>
                </div>
            </Show>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </div>
    }
}

/// A picked image file decoded to RGB (with the file's bytes), or what is wrong with it.
pub(super) async fn pick_image(
    file: &web_sys::File,
) -> Result<(crate::studio::InitPick, Vec<u8>), String> {
    let name = file.name();
    let bytes = browser::file_bytes(file, keyshift_core::limits::FileKind::Image).await?;
    let (w, h, rgb) = browser::decode_image(&bytes)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let pick =
        crate::studio::InitPick::new(&name, w, h, rgb).map_err(|e| format!("{name}: {e}"))?;
    Ok((pick, bytes))
}
