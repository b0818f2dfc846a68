//! The ControlNet panel in the Generate card: pick and load a ControlNet for the loaded model,
//! its strength, guess mode and steps; for single images a control image (or the init image)
//! whose canny edges, or itself, guide the image. Video input uses the same ControlNet with each
//! frame's edges.

use leptos::prelude::*;

use crate::app::Shared;
use crate::browser;
use crate::control::{ControlChoice, ControlField, ControlStatus, controlnet_choices};
use crate::studio::is_local_host;

fn choices() -> Vec<ControlChoice> {
    controlnet_choices(is_local_host(&browser::host()), &browser::origin())
}

static FIELDS: [(&str, &str, ControlField); 3] = [
    ("Control weight", "controlnet-scale", ControlField::Scale),
    (
        "Starting control step (0–1)",
        "controlnet-start",
        ControlField::Start,
    ),
    (
        "Ending control step (0–1)",
        "controlnet-end",
        ControlField::End,
    ),
];

/// The panel.
#[component]
pub fn ControlNetPanel() -> impl IntoView {
    let shared = expect_context::<Shared>();
    let studio = shared.studio;
    let choices = StoredValue::new(choices());
    let picked = RwSignal::new(0usize);
    let error = RwSignal::new(None::<String>);
    let load = move |_| {
        let Some(choice) = choices.with_value(|c| c.get(picked.get_untracked()).cloned()) else {
            return;
        };
        if !studio.with_untracked(|s| s.is_ready()) {
            return error.set(Some("Load a model first: a ControlNet guides it.".into()));
        }
        let mut message = None;
        studio.update(|s| message = Some(s.control.load(&choice)));
        error.set(None);
        if let Some(m) = message {
            shared.send(&m);
        }
    };
    let unload = move |_| {
        let mut message = None;
        studio.update(|s| message = Some(s.control.unload()));
        if let Some(m) = message {
            shared.send(&m);
        }
    };
    let loading =
        move || studio.with(|s| matches!(s.control.status, ControlStatus::Loading { .. }));
    let note = move || choices.with_value(|c| c.get(picked.get()).map(|c| c.note).unwrap_or(""));
    view! {
        <details class="controlnet" data-testid="controlnet-panel">
            <summary>"ControlNet"</summary>
            <div class="row">
                <select data-testid="controlnet-choice"
                    on:change=move |ev| picked.set(event_target_value(&ev).parse().unwrap_or(0))>
                    {choices.with_value(|c| c.iter().enumerate().map(|(i, choice)| view! {
                        <option value=i.to_string()>{choice.label.clone()}</option>
                    }).collect_view())}
                </select>
                <button data-testid="controlnet-load" on:click=load disabled=loading>"Load ControlNet"</button>
                <button class="ghost" data-testid="controlnet-unload" on:click=unload
                    disabled=move || studio.with(|s| !s.control.is_ready())>"Unload"</button>
            </div>
            <p class="hint">{note}</p>
            <p class="hint" data-testid="controlnet-status" role="status">
                {move || studio.with(|s| s.control.text())}
            </p>
            <ControlSettingsFields error/>
            <ControlImageField error/>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </details>
    }
}

/// Whether it guides, how strongly, on which steps.
#[component]
fn ControlSettingsFields(error: RwSignal<Option<String>>) -> impl IntoView {
    let studio = expect_context::<Shared>().studio;
    let value = move |field: ControlField| {
        studio.with(|s| {
            let c = &s.control.settings;
            match field {
                ControlField::Scale => c.scale,
                ControlField::Start => c.start,
                ControlField::End => c.end,
            }
            .to_string()
        })
    };
    let set = move |field: ControlField, text: String| {
        let mut result = Ok(());
        studio.update(|s| result = s.control.set(field, &text));
        error.set(result.err());
    };
    view! {
        <div class="row">
            <label class="check">
                <input type="checkbox" data-testid="controlnet-on"
                    prop:checked=move || studio.with(|s| s.control.on)
                    on:change=move |ev| studio.update(|s| s.control.on = event_target_checked(&ev))/>
                "Guide images and video frames"
            </label>
            <label class="check" title="The ControlNet sees only the prompt's half of the guidance batch; its residuals grow from 0.1× to 1× (A1111's “ControlNet is more important”)">
                <input type="checkbox" data-testid="controlnet-guess"
                    prop:checked=move || studio.with(|s| s.control.settings.guess_mode)
                    on:change=move |ev| studio.update(|s| s.control.settings.guess_mode = event_target_checked(&ev))/>
                "Guess mode"
            </label>
        </div>
        <div class="grid">
            {FIELDS.iter().map(|(label, id, field)| {
                let stored = Memo::new(move |_| value(*field));
                view! {
                <label class="field"><span>{*label}</span>
                    <input type="text" class="short" data-testid=*id prop:value=stored
                        on:change=move |ev| { set(*field, event_target_value(&ev)); super::show_stored(&ev, stored); }/>
                </label>
            }}).collect_view()}
        </div>
    }
}

/// A single image's control image and hint kind.
#[component]
fn ControlImageField(error: RwSignal<Option<String>>) -> impl IntoView {
    let studio = expect_context::<Shared>().studio;
    let on_pick = move |ev: leptos::ev::Event| {
        let Some(file) = browser::picked_file(&ev) else {
            return;
        };
        leptos::task::spawn_local(async move {
            match super::studio::pick_image(&file).await {
                Ok((pick, _)) => {
                    studio.update(|s| s.control.image = Some(pick));
                    error.set(None);
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let image_text = move || {
        studio.with(|s| match &s.control.image {
            Some(i) => format!("Control image: {} ({}x{}).", i.name, i.width, i.height),
            None => "Single images take their hint from the init image unless a control \
                     image is picked; video input takes each frame's edges."
                .to_owned(),
        })
    };
    view! {
        <div class="row">
            <label class="field">
                <span>"Hint of a single image"</span>
                <select data-testid="controlnet-hint"
                    on:change=move |ev| studio.update(|s| s.control.canny = event_target_value(&ev) == "canny")>
                    <option value="canny" selected=move || studio.with(|s| s.control.canny)>"Canny edges (50, 200) of the control image"</option>
                    <option value="image" selected=move || studio.with(|s| !s.control.canny)>"The control image itself (a depth map, a pose…)"</option>
                </select>
            </label>
            <label class="field">
                <span>"Control image"</span>
                <input type="file" accept="image/*" data-testid="controlnet-image" on:change=on_pick/>
            </label>
            <button class="ghost" data-testid="controlnet-image-clear"
                disabled=move || studio.with(|s| s.control.image.is_none())
                on:click=move |_| studio.update(|s| s.control.image = None)>"No control image"</button>
        </div>
        <p class="hint">{image_text}</p>
    }
}
