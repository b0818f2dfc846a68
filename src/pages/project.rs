//! The project page: the project's prompt and settings, and its share link.

use keyshift_core::share::{GenerationSettings, Sampler};
use keyshift_web::protocol::ToWorker;
use leptos::ev::Event;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::app::Shared;
use crate::browser;
use crate::state::{self, ProjectCommand};
use keyshift_core::limits::FileKind;

/// A number field of the settings grid: the text typed goes through its [`ProjectCommand`].
struct NumberField {
    label: &'static str,
    testid: &'static str,
    min: &'static str,
    max: &'static str,
    step: &'static str,
    value: fn(&GenerationSettings) -> String,
    command: fn(String) -> ProjectCommand,
}

static NUMBER_FIELDS: [NumberField; 5] = [
    NumberField {
        label: "Width",
        testid: "width",
        min: "64",
        max: "2048",
        step: "8",
        value: |s| s.width_px.to_string(),
        command: ProjectCommand::SetWidth,
    },
    NumberField {
        label: "Height",
        testid: "height",
        min: "64",
        max: "2048",
        step: "8",
        value: |s| s.height_px.to_string(),
        command: ProjectCommand::SetHeight,
    },
    NumberField {
        label: "Steps",
        testid: "steps",
        min: "1",
        max: "150",
        step: "1",
        value: |s| s.steps.to_string(),
        command: ProjectCommand::SetSteps,
    },
    NumberField {
        label: "CFG scale",
        testid: "cfg",
        min: "0",
        max: "30",
        step: "0.5",
        value: |s| s.cfg_scale.to_string(),
        command: ProjectCommand::SetCfg,
    },
    NumberField {
        label: "Seed (-1 = random)",
        testid: "seed",
        min: "-1",
        max: "4294967295",
        step: "1",
        value: |s| s.seed.to_a1111().to_string(),
        command: ProjectCommand::SetSeed,
    },
];

/// The project page.
#[component]
pub fn ProjectPage() -> impl IntoView {
    let shared = expect_context::<Shared>();
    let project = shared.project;
    let edit_error = RwSignal::new(None::<String>);
    // One handler applies every edit; the address bar follows edits (not page loads, so a bad
    // link stays in the address bar until the user changes something).
    let apply = move |command: ProjectCommand| {
        let mut next = project.get_untracked();
        match command.apply(&mut next) {
            Ok(()) => {
                browser::replace_fragment(&state::link_fragment(&next));
                project.set(next);
                edit_error.set(None);
            }
            Err(e) => edit_error.set(Some(e.to_string())),
        }
    };
    let on = move |make: fn(String) -> ProjectCommand| {
        move |ev: Event| apply(make(event_target_value(&ev)))
    };
    let settings = move || project.get().settings;
    // The token counters follow the prompt boxes; the worker counts (it holds the vocabulary).
    let counted = Memo::new(move |_| {
        project.with(|p| {
            (
                p.prompt.clone(),
                p.negative_prompt.clone(),
                p.settings.steps,
            )
        })
    });
    Effect::new(move |_| {
        let (prompt, negative, steps) = counted.get();
        shared.send(&ToWorker::CountTokens {
            prompt,
            negative,
            steps,
        });
    });
    // Dropping a PNG from Keyshift or A1111 anywhere on the page restores its settings.
    let notice = shared.link_notice;
    let over = window_event_listener(leptos::ev::dragover, |ev| ev.prevent_default());
    let drop = window_event_listener(leptos::ev::drop, move |ev| {
        ev.prevent_default();
        let Some(file) = ev
            .data_transfer()
            .and_then(|d| d.files())
            .and_then(|f| f.get(0))
        else {
            return;
        };
        // Model files are the generate card's.
        if crate::studio::is_model_file(&file.name()) {
            return;
        }
        spawn_local(async move {
            let name = file.name();
            let bytes = match browser::file_bytes(&file, FileKind::Project).await {
                Ok(bytes) => bytes,
                Err(e) => {
                    return notice.set(Some(state::LinkNotice {
                        is_error: true,
                        title: format!("{name}: nothing was opened; the open project stays."),
                        details: vec![e],
                    }));
                }
            };
            // A Parseq document opens in the Parseq mode (as a `?parseq=` link does).
            if name.to_ascii_lowercase().ends_with(".json") {
                let mut next = project.get_untracked();
                let text = String::from_utf8_lossy(&bytes);
                let mut message = crate::parseq::open_query_document(&mut next, &text);
                message.title = message
                    .title
                    .replace("from the link", &format!("from {name}"));
                if !message.is_error {
                    browser::replace_fragment(&state::link_fragment(&next));
                    project.set(next);
                }
                notice.set(Some(message));
                return;
            }
            if name
                .to_ascii_lowercase()
                .ends_with(state::PROJECT_EXTENSION)
            {
                let (opened, message) =
                    state::open_project_file(&name, &String::from_utf8_lossy(&bytes));
                if let Some(next) = opened {
                    browser::replace_fragment(&state::link_fragment(&next));
                    project.set(next);
                }
                notice.set(Some(message));
                return;
            }
            let mut next = project.get_untracked();
            match state::restore_from_png(&bytes, &mut next) {
                Ok(restored) => {
                    browser::replace_fragment(&state::link_fragment(&next));
                    project.set(next);
                    notice.set(Some(state::LinkNotice {
                        is_error: false,
                        title: format!("Settings restored from {name}."),
                        details: restored
                            .skipped
                            .iter()
                            .map(|s| format!("Not restored: {s}"))
                            .collect(),
                    }));
                }
                Err(e) => notice.set(Some(state::LinkNotice {
                    is_error: true,
                    title: format!("{name}: nothing was restored."),
                    details: vec![e],
                })),
            }
        });
    });
    on_cleanup(move || {
        over.remove();
        drop.remove();
    });
    let at_frame = move || {
        shared.animate.with(|a| {
            a.current()
                .map(|f| format!("At frame {}: {}", f.info.index, f.info.prompt))
        })
    };
    view! {
        <LinkNoticeBanner/>
        <div class="workspace">
        <div class="column">
        <section class="card">
            <h1>"Project"</h1>
            <label class="field">
                <span>"Name"</span>
                <input type="text" data-testid="project-name"
                    prop:value=move || project.get().name
                    on:input=on(ProjectCommand::SetName)/>
            </label>
            <label class="field">
                <span class="label-row">"Prompt"
                    <span class="tokens" data-testid="prompt-tokens"
                        title="Tokens of the longest AND part or prompt-editing step, out of 75 per chunk (as A1111 counts them)">
                        {move || shared.studio.with(|s| s.token_text(false))}
                    </span>
                </span>
                <textarea rows="4" data-testid="prompt" spellcheck="false"
                    placeholder="a (cat:1.2) sitting on a [chair|sofa], by an old master"
                    prop:value=move || project.get().prompt
                    on:input=on(ProjectCommand::SetPrompt)></textarea>
                <span class="hint" data-testid="prompt-frame-value">{at_frame}</span>
            </label>
            <label class="field">
                <span class="label-row">"Negative prompt"
                    <span class="tokens" data-testid="negative-tokens"
                        title="Tokens, out of 75 per chunk (as A1111 counts them)">
                        {move || shared.studio.with(|s| s.token_text(true))}
                    </span>
                </span>
                <textarea rows="2" data-testid="negative-prompt" spellcheck="false"
                    prop:value=move || project.get().negative_prompt
                    on:input=on(ProjectCommand::SetNegativePrompt)></textarea>
            </label>
            <div class="grid">
                {NUMBER_FIELDS
                    .iter()
                    .map(|f| {
                        let stored = Memo::new(move |_| (f.value)(&settings()));
                        let changed = on(f.command);
                        view! {
                        <label class="field">
                            <span>{f.label}</span>
                            <input type="number" min=f.min max=f.max step=f.step data-testid=f.testid
                                prop:value=stored
                                on:change=move |ev: Event| { changed(ev.clone()); super::show_stored(&ev, stored); }/>
                        </label>
                    }})
                    .collect_view()}
                <label class="field">
                    <span>"Sampler"</span>
                    <select data-testid="sampler" on:change=on(ProjectCommand::SetSampler)>
                        {Sampler::ALL
                            .into_iter()
                            .map(|s| view! {
                                <option value=s.name() selected=move || settings().sampler == s>
                                    {s.name()}
                                </option>
                            })
                            .collect_view()}
                    </select>
                </label>
            </div>
            <Show when=move || edit_error.get().is_some()>
                <p class="error" role="alert" data-testid="edit-error">
                    {move || edit_error.get().unwrap_or_default()}
                </p>
            </Show>
        </section>
        <super::animate::AnimateCard/>
        <super::studio::StudioCard/>
        <ShareCard/>
        </div>
        <div class="column stage">
        <super::animate::PlayerCard/>
        <super::animate::RendersCard/>
        <super::studio::CacheCard/>
        </div>
        </div>
    }
}

#[component]
fn LinkNoticeBanner() -> impl IntoView {
    let notice = expect_context::<Shared>().link_notice;
    move || {
        notice.get().map(|n| {
            let class = if n.is_error { "banner error" } else { "banner warn" };
            let testid = if n.is_error { "link-error" } else { "link-warnings" };
            view! {
                <div class=class role="alert" data-testid=testid>
                    <div>
                        <strong>{n.title}</strong>
                        <ul>{n.details.into_iter().map(|d| view! { <li>{d}</li> }).collect_view()}</ul>
                    </div>
                    <button class="ghost" data-testid="notice-dismiss" aria-label="Dismiss"
                        on:click=move |_| notice.set(None)>"Dismiss"</button>
                </div>
            }
        })
    }
}

#[component]
fn ShareCard() -> impl IntoView {
    let project = expect_context::<Shared>().project;
    let copied = RwSignal::new(None::<bool>);
    let link = move || {
        format!(
            "{}{}",
            browser::page_url(),
            state::link_fragment(&project.get())
        )
    };
    let copy = move |_| {
        let text = link();
        spawn_local(async move { copied.set(Some(browser::copy_to_clipboard(&text).await)) });
    };
    view! {
        <section class="card">
            <h2>"Share"</h2>
            <p class="hint">"The whole project travels in the link; nothing is uploaded."</p>
            <div class="row">
                <input type="text" readonly class="grow" data-testid="share-link"
                    prop:value=link on:focus=|ev| {
                        use wasm_bindgen::JsCast;
                        if let Some(el) = ev.target()
                            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) {
                            el.select();
                        }
                    }/>
                <button data-testid="copy-link" on:click=copy>"Copy link"</button>
                <button class="ghost" data-testid="download-project" title="A .keyshift file: drop it on the page to open it"
                    on:click=move |_| {
                        let (text, name) = state::project_file(&project.get_untracked());
                        browser::download(&browser::object_url(text.as_bytes(), "text/plain"), &name);
                    }>"Save project file"</button>
            </div>
            {move || {
                let chars = link().len();
                (chars > state::LINK_WARN_CHARS).then(|| view! {
                    <p class="warn" role="status" data-testid="share-too-long">
                        {format!(
                            "This link is {chars} characters long: many browsers, chat apps and \
                             forms cut links past {} characters. Save the project file instead \
                             (it holds the same project) and share the file.",
                            state::LINK_WARN_CHARS
                        )}
                    </p>
                })
            }}
            <p class="hint" data-testid="copy-status">
                {move || match copied.get() {
                    Some(true) => "Copied to the clipboard.",
                    Some(false) => "The browser refused the clipboard; select the link and copy it.",
                    None => "",
                }}
            </p>
        </section>
    }
}
