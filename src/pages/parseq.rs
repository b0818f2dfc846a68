//! The Parseq mode of the Animate card: the document bar (templates, import by file, paste or
//! drop, exports), the keyframe grid, the graph, the prompt at the scrubbed frame, and the render
//! options. The editor's state is [`crate::parseq::ParseqEditor`]; the document goes into the
//! project (link, file, autosave) a moment after the last edit.

use std::time::Duration;

use keyshift_core::parseq::templates::TEMPLATES;
use keyshift_core::share::Project;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::animate::edit;
use super::parseq_graph::ParseqGraph;
use super::parseq_grid::ParseqGrid;
use crate::app::Shared;
use crate::browser;
use crate::parseq::{ParseqEditor, ParseqField};
use crate::state::ProjectCommand;
use keyshift_core::limits::FileKind;

/// The editor, shared by the Parseq views (not `Send`: it lives on the UI thread).
pub type EditorSignal = RwSignal<Option<ParseqEditor>, LocalStorage>;

/// Whether the `<details>` an event came from is open (its contents are computed only then:
/// a schedule of 10,000 frames is not rebuilt on every keystroke while nobody looks at it).
pub fn details_open(ev: &leptos::ev::Event) -> bool {
    ev.target()
        .and_then(|t| js_sys::Reflect::get(&t, &wasm_bindgen::JsValue::from_str("open")).ok())
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// Runs `f` on the editor and reports its error (the editor keeps its previous values).
pub fn with_editor<T>(
    editor: EditorSignal,
    error: RwSignal<Option<String>>,
    f: impl FnOnce(&mut ParseqEditor) -> Result<T, String>,
) -> Option<T> {
    let mut out = None;
    editor.update(|e| {
        if let Some(e) = e.as_mut() {
            match f(e) {
                Ok(v) => {
                    out = Some(v);
                    error.set(None);
                }
                Err(message) => error.set(Some(message)),
            }
        }
    });
    out
}

/// Keeps the editor and the project's document in step: the project's document (a link, a
/// file) opens in the editor; the editor's edits go into the project 250 ms after the last one.
fn sync(shared: Shared, editor: EditorSignal, error: RwSignal<Option<String>>) {
    let loaded = StoredValue::new(None::<String>);
    let document = Memo::new(move |_| shared.project.with(|p| p.animation.parseq.document.clone()));
    Effect::new(move |_| {
        let text = document.get();
        if loaded.get_value().as_deref() == Some(text.as_str()) {
            return;
        }
        let opened = match text.trim() {
            "" => ParseqEditor::default_document(),
            t => ParseqEditor::from_text(t),
        };
        match opened {
            Ok(e) => {
                loaded.set_value(Some(e.document_text()));
                editor.set(Some(e));
            }
            Err(e) => error.set(Some(e)),
        }
    });
    let pending = StoredValue::new_local(None::<TimeoutHandle>);
    let revision = Memo::new(move |_| editor.with(|e| e.as_ref().map(|e| e.revision)));
    Effect::new(move |_| {
        if revision.get().is_none_or(|r| r == 0) {
            return;
        }
        if let Some(h) = pending.get_value() {
            h.clear();
        }
        let save = move || {
            let Some(text) = editor.with_untracked(|e| e.as_ref().map(ParseqEditor::document_text))
            else {
                return;
            };
            if loaded.get_value().as_deref() != Some(text.as_str()) {
                loaded.set_value(Some(text.clone()));
                edit(
                    shared,
                    ProjectCommand::SetParseq(ParseqField::Document, text),
                );
            }
        };
        pending.set_value(set_timeout_with_handle(save, Duration::from_millis(250)).ok());
    });
}

/// The Parseq mode's views.
#[component]
pub fn ParseqCard(error: RwSignal<Option<String>>) -> impl IntoView {
    let shared = expect_context::<Shared>();
    let editor = shared.parseq;
    let editor_error = RwSignal::new(None::<String>);
    sync(shared, editor, editor_error);
    let graph_view = RwSignal::new(None::<crate::parseq_view::View>);
    // The graph's cursor follows the player: video frame p of a Parseq render is output frame
    // `first + p` of the frames rendered.
    let position = Memo::new(move |_| shared.animate.with(|a| a.position));
    Effect::new(move |_| {
        let p = position.get() as i64;
        let first = shared.project.with_untracked(|pr| {
            pr.animation
                .parseq
                .range(usize::MAX)
                .map_or(0, |r| r.start as i64)
        });
        editor.update(|e| {
            if let Some(e) = e.as_mut() {
                e.cursor = first + p;
            }
        });
    });
    view! {
        <div class="parseq" data-testid="parseq">
            <DocumentBar editor=editor error=editor_error/>
            {move || editor_error.get().map(|e| view! {
                <p class="error" role="alert" data-testid="parseq-error">{e}</p>
            })}
            <super::parseq_panels::OptionsPanel editor=editor error=editor_error/>
            <super::parseq_panels::FieldsPanel editor=editor error=editor_error/>
            <super::parseq_panels::KeyframeTools editor=editor error=editor_error/>
            <super::parseq_panels::PromptsPanel editor=editor error=editor_error/>
            <ParseqGrid editor=editor error=editor_error/>
            <ParseqGraph editor=editor error=editor_error view=graph_view/>
            <super::parseq_audio::AudioPanel editor=editor error=editor_error view=graph_view/>
            <FramePreview editor=editor/>
            <RenderOptions error=error/>
        </div>
    }
}

/// Opens `text` as a document (an import), as one undoable edit.
fn import(editor: EditorSignal, error: RwSignal<Option<String>>, name: &str, text: &str) {
    let doc = keyshift_core::parseq::document::Document::from_json_str(text)
        .map_err(|e| format!("{name}: {e}"));
    match doc {
        Ok(doc) => {
            with_editor(editor, error, |e| {
                e.open(&doc).map_err(|m| format!("{name}: {m}"))
            });
        }
        Err(e) => error.set(Some(e)),
    }
}

/// Reads a dropped or picked file and imports it.
fn import_file(editor: EditorSignal, error: RwSignal<Option<String>>, file: web_sys::File) {
    spawn_local(async move {
        let name = file.name();
        let size = keyshift_core::limits::check_file(FileKind::Project, file.size() as u64);
        if let Err(e) = size {
            return error.set(Some(format!("{name}: {e}")));
        }
        match wasm_bindgen_futures::JsFuture::from(file.text()).await {
            Ok(text) => import(editor, error, &name, &text.as_string().unwrap_or_default()),
            Err(_) => error.set(Some(format!("{name} could not be read"))),
        }
    });
}

/// The project's name for file names.
fn stem(project: &Project) -> String {
    let name: String = project
        .name
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '-' })
        .collect();
    if name.trim_matches('-').is_empty() {
        "parseq".into()
    } else {
        name
    }
}

/// Templates, import (file, paste, drop), undo/redo, and the exports.
#[component]
fn DocumentBar(editor: EditorSignal, error: RwSignal<Option<String>>) -> impl IntoView {
    let shared = expect_context::<Shared>();
    let pasted = RwSignal::new(String::new());
    let on_template = move |ev| {
        let id = event_target_value(&ev);
        if let Some(Ok(doc)) =
            keyshift_core::parseq::templates::Template::by_id(&id).map(|t| t.document())
        {
            with_editor(editor, error, |e| e.open(&doc));
        }
    };
    let on_file = move |ev: leptos::ev::Event| {
        use wasm_bindgen::JsCast;
        let input = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok());
        if let Some(file) = input
            .as_ref()
            .and_then(|i| i.files())
            .and_then(|f| f.get(0))
        {
            import_file(editor, error, file);
        }
        if let Some(i) = input {
            i.set_value("");
        }
    };
    // Real links, their address made as they are clicked: a second download from a page is
    // then the user's, not an automatic one the browser would hold back.
    let last_url = StoredValue::new(String::new());
    let link = move |ev: leptos::ev::MouseEvent, text: Option<String>, name: String| {
        use wasm_bindgen::JsCast;
        let target = ev
            .current_target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok());
        let (Some(text), Some(a)) = (text, target) else {
            ev.prevent_default();
            return;
        };
        browser::revoke_url(&last_url.get_value());
        let url = browser::object_url(text.as_bytes(), "application/json");
        let _ = a.set_attribute("href", &url);
        let _ = a.set_attribute("download", &name);
        last_url.set_value(url);
    };
    let export = move |ev| {
        let stamp = js_sys::Date::new_0()
            .to_utc_string()
            .as_string()
            .unwrap_or_default();
        let text = editor.with_untracked(|e| e.as_ref().map(|e| e.output_text(&stamp)));
        link(
            ev,
            text,
            format!("{}-rendered.json", shared.project.with_untracked(stem)),
        );
    };
    let save = move |ev| {
        let text = editor.with_untracked(|e| e.as_ref().map(ParseqEditor::document_text));
        link(
            ev,
            text,
            format!("{}.parseq.json", shared.project.with_untracked(stem)),
        );
    };
    let can = move |undo: bool| {
        editor.with(|e| {
            e.as_ref()
                .is_some_and(|e| if undo { e.can_undo() } else { e.can_redo() })
        })
    };
    view! {
        <div class="row wrap parseq-bar">
            <label class="field">
                <span>"Template"</span>
                <select data-testid="parseq-template" on:change=on_template>
                    <option value="" selected>"Start from a template…"</option>
                    {TEMPLATES.into_iter().map(|t| view! {
                        <option value=t.id title=t.description>{t.name}</option>
                    }).collect_view()}
                </select>
            </label>
            <label class="field">
                <span>"Open a Parseq document (.json)"</span>
                <input type="file" accept=".json,application/json" data-testid="parseq-import"
                    on:change=on_file/>
            </label>
            <button data-testid="parseq-undo" title="Undo (Ctrl+Z)" disabled=move || !can(true)
                on:click=move |_| { with_editor(editor, error, ParseqEditor::undo); }>"Undo"</button>
            <button data-testid="parseq-redo" title="Redo (Shift+Ctrl+Z)" disabled=move || !can(false)
                on:click=move |_| { with_editor(editor, error, ParseqEditor::redo); }>"Redo"</button>
            <a class="button" href="#" data-testid="parseq-export" title="Parseq's output: the document with rendered_frames, ready for Deforum"
                on:click=export>"Export rendered JSON"</a>
            <a class="button ghost" href="#" data-testid="parseq-save" on:click=save>"Save document"</a>
        </div>
        <details class="parseq-paste">
            <summary>"Paste a document"</summary>
            <textarea rows="4" data-testid="parseq-paste" spellcheck="false"
                placeholder="Paste a Parseq document (JSON) here"
                prop:value=move || pasted.get()
                on:input=move |ev| pasted.set(event_target_value(&ev))></textarea>
            <button data-testid="parseq-paste-open" on:click=move |_| {
                import(editor, error, "The pasted document", &pasted.get_untracked());
            }>"Open pasted document"</button>
        </details>
        <ScheduleStrings editor=editor/>
    }
}

/// Deforum / FizzNodes schedule strings per field.
#[component]
fn ScheduleStrings(editor: EditorSignal) -> impl IntoView {
    let field = RwSignal::new(String::new());
    let deltas = RwSignal::new(true);
    let open = RwSignal::new(false);
    let fields = move || {
        editor.with(|e| {
            e.as_ref()
                .map(|e| e.document().managed_fields())
                .unwrap_or_default()
        })
    };
    let text = move || {
        if !open.get() {
            return String::new();
        }
        let f = field.get();
        editor.with(|e| {
            e.as_ref()
                .and_then(|e| {
                    e.schedule(
                        if f.is_empty() { "deforum_prompt" } else { &f },
                        deltas.get(),
                    )
                })
                .unwrap_or_default()
        })
    };
    view! {
        <details class="parseq-schedules" on:toggle=move |ev| open.set(details_open(&ev))>
            <summary>"Deforum / FizzNodes schedules"</summary>
            <div class="row">
                <select data-testid="schedule-field" on:change=move |ev| field.set(event_target_value(&ev))>
                    <option value="">"Prompts"</option>
                    {move || fields().into_iter().map(|f| view! { <option value=f.clone()>{f.clone()}</option> }).collect_view()}
                </select>
                <label class="check">
                    <input type="checkbox" prop:checked=move || deltas.get()
                        on:change=move |ev| deltas.set(event_target_checked(&ev))/>
                    "Deltas (as Deforum reads motion)"
                </label>
            </div>
            <textarea rows="3" readonly data-testid="schedule-text" prop:value=text></textarea>
        </details>
    }
}

/// The scrubbed frame: a slider, the prompt there, and the rendered frame's JSON.
#[component]
fn FramePreview(editor: EditorSignal) -> impl IntoView {
    let bounds = move || {
        editor.with(|e| {
            e.as_ref().map_or((0, 0), |e| {
                let r = e.rendered();
                (r.first_frame, r.first_frame + r.frame_count as i64 - 1)
            })
        })
    };
    let cursor = move || editor.with(|e| e.as_ref().map_or(0, |e| e.cursor));
    let open = RwSignal::new(false);
    let json = move || {
        if !open.get() {
            return String::new();
        }
        editor.with(|e| {
            e.as_ref()
                .and_then(|e| {
                    let r = e.rendered();
                    let i = usize::try_from(e.cursor - r.first_frame).ok()?;
                    (i < r.frame_count).then(|| r.frame_json(i))
                })
                .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
                .unwrap_or_default()
        })
    };
    let prompt = move || {
        editor.with(|e| {
            e.as_ref()
                .and_then(|e| e.prompt_at(e.cursor))
                .unwrap_or_default()
        })
    };
    view! {
        <label class="field">
            <span>{move || format!("Frame {}", cursor())}</span>
            <input type="range" data-testid="parseq-cursor" min=move || bounds().0 max=move || bounds().1
                prop:value=move || cursor().to_string()
                on:input=move |ev| {
                    if let Ok(f) = event_target_value(&ev).parse::<i64>() {
                        editor.update(|e| if let Some(e) = e.as_mut() { e.cursor = f });
                    }
                }/>
        </label>
        <p class="hint" data-testid="parseq-prompt">{prompt}</p>
        <details class="parseq-rendered" on:toggle=move |ev| open.set(details_open(&ev))>
            <summary data-testid="parseq-rendered-toggle">"Rendered values at this frame"</summary>
            <pre data-testid="parseq-rendered">{json}</pre>
        </details>
    }
}

/// Which frames to render, the border and the colour coherence.
#[component]
fn RenderOptions(error: RwSignal<Option<String>>) -> impl IntoView {
    let shared = expect_context::<Shared>();
    let project = shared.project;
    let frames = Memo::new(move |_| project.with(|p| p.animation.parseq.frames.clone()));
    let set = move |field: ParseqField| {
        move |ev: leptos::ev::Event| {
            error.set(edit(
                shared,
                ProjectCommand::SetParseq(field, event_target_value(&ev)),
            ));
            if field == ParseqField::Frames {
                super::show_stored(&ev, frames);
            }
        }
    };
    view! {
        <div class="grid">
            <label class="field">
                <span>"Frames to render (A..B, empty: all)"</span>
                <input type="text" data-testid="parseq-frames" placeholder="all"
                    prop:value=frames
                    on:change=set(ParseqField::Frames)/>
            </label>
            <label class="field">
                <span>"Border"</span>
                <select data-testid="parseq-border" on:change=set(ParseqField::Border)>
                    {["replicate", "wrap"].into_iter().map(|b| view! {
                        <option value=b selected=move || project.with(|p| p.animation.parseq.border.name() == b)>{b}</option>
                    }).collect_view()}
                </select>
            </label>
            <label class="check">
                <input type="checkbox" data-testid="parseq-coherence"
                    prop:checked=move || project.with(|p| p.animation.parseq.colour_coherence)
                    on:change=move |ev| error.set(edit(shared, ProjectCommand::SetParseq(
                        ParseqField::ColourCoherence, event_target_checked(&ev).to_string())))/>
                "Colour coherence (LAB, to the first frame)"
            </label>
        </div>
        <p class="hint" data-testid="frame-count">{move || project.with(|p| {
            crate::parseq::plan_text(&p.animation.parseq)
                .unwrap_or_else(|e| format!("The document cannot be rendered: {e}"))
        })}</p>
        <p class="hint">"Unmanaged fields use Parseq's defaults: strength 0.6, noise 0.08, contrast 1, scale 7, no motion; an unmanaged or −1 seed is the document's own, counting up per frame."</p>
    }
}
