//! The temporal consistency panel, shared by every animation mode: attention interpolation with
//! the previous frames (Attention-Interpolation's options) and colour matching to the first
//! frame, with what the interpolation keeps on the GPU while a render runs.

use keyshift_core::temporal::{Block, Scheduler, Temporal, UnetPart};
use leptos::prelude::*;

use super::animate::edit;
use crate::app::Shared;
use crate::state::ProjectCommand;
use crate::temporal::{TemporalField, Tensor};

/// A number field of the blocks.
struct Entry {
    label: &'static str,
    testid: &'static str,
    field: TemporalField,
    value: fn(&Block, &Block) -> String,
}

static ENTRIES: [Entry; 8] = [
    Entry {
        label: "Weight of the previous frames (ema)",
        testid: "temporal-ema",
        field: TemporalField::Ema,
        value: |u, _| u.ema.to_string(),
    },
    Entry {
        label: "Decay per step (eta)",
        testid: "temporal-eta",
        field: TemporalField::Eta,
        value: |u, _| u.eta.to_string(),
    },
    Entry {
        label: "After step",
        testid: "temporal-start",
        field: TemporalField::StartStep,
        value: |u, _| u.start_step.to_string(),
    },
    Entry {
        label: "Before step (empty: the last)",
        testid: "temporal-end",
        field: TemporalField::EndStep,
        value: |u, _| u.end_step.map_or(String::new(), |s| s.to_string()),
    },
    Entry {
        label: "Constant steps",
        testid: "temporal-const",
        field: TemporalField::ConstSteps,
        value: |u, _| u.const_steps.to_string(),
    },
    Entry {
        label: "Probabilities up to this resolution",
        testid: "temporal-res",
        field: TemporalField::AttentionRes,
        value: |u, _| u.attention_res.to_string(),
    },
    Entry {
        label: "Latent weight (0: off)",
        testid: "temporal-latent-ema",
        field: TemporalField::LatentEma,
        value: |_, p| p.ema.to_string(),
    },
    Entry {
        label: "Latent decay (eta)",
        testid: "temporal-latent-eta",
        field: TemporalField::LatentEta,
        value: |_, p| p.eta.to_string(),
    },
];

static TENSORS: [(Tensor, &str, &str); 5] = [
    (Tensor::Probabilities, "probabilities", "probs"),
    (Tensor::Output, "projected output", "out"),
    (Tensor::Query, "queries", "query"),
    (Tensor::Key, "keys", "key"),
    (Tensor::Value, "values", "value"),
];

static PARTS: [(UnetPart, &str); 3] = [
    (UnetPart::Down, "down"),
    (UnetPart::Mid, "mid"),
    (UnetPart::Up, "up"),
];

/// The panel.
#[component]
pub fn TemporalPanel(error: RwSignal<Option<String>>) -> impl IntoView {
    let shared = expect_context::<Shared>();
    let temporal = Memo::new(move |_| shared.project.with(|p| p.animation.temporal.clone()));
    let set = move |field: TemporalField, value: String| {
        error.set(edit(shared, ProjectCommand::SetTemporal(field, value)));
    };
    let on = move || temporal.with(|t| t.interpolation.is_some());
    let colour = move || temporal.with(|t| t.colour.map_or("none", |c| colour_name(c)));
    view! {
        <details class="temporal" data-testid="temporal-panel">
            <summary>{move || temporal.with(summary)}</summary>
            <label class="check">
                <input type="checkbox" data-testid="temporal-interp" prop:checked=on
                    on:change=move |ev| set(TemporalField::Interpolation, event_target_checked(&ev).to_string())/>
                "Attention interpolation with the previous frames (Attention-Interpolation)"
            </label>
            <Show when=on>
                <InterpolationOptions temporal=temporal set=set/>
            </Show>
            <label class="field">
                <span>"Match every frame's colours to the first"</span>
                <select data-testid="temporal-colour"
                    on:change=move |ev| set(TemporalField::Colour, event_target_value(&ev))>
                    {["none", "lab", "hsv", "rgb"].into_iter().map(|c| view! {
                        <option value=c selected=move || colour() == c>{c}</option>
                    }).collect_view()}
                </select>
            </label>
            <p class="hint" data-testid="temporal-storage">{move || storage_text(shared)}</p>
        </details>
    }
}

/// The interpolation's options (shown while it is on).
#[component]
fn InterpolationOptions(
    temporal: Memo<Temporal>,
    set: impl Fn(TemporalField, String) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let blocks = move |f: fn(&Block, &Block) -> String| {
        temporal.with(|t| {
            t.interpolation
                .as_ref()
                .map(|i| f(&i.unet_config, &i.pipe_config))
                .unwrap_or_default()
        })
    };
    let scheduler = move || blocks(|u, _| scheduler_name(u.interpolation_scheduler).to_owned());
    view! {
        <div class="grid">
            <label class="field">
                <span>"Weight schedule"</span>
                <select data-testid="temporal-scheduler"
                    on:change=move |ev| set(TemporalField::Scheduler, event_target_value(&ev))>
                    {["ema", "cos", "linear"].into_iter().map(|s| view! {
                        <option value=s selected=move || scheduler() == s>{s}</option>
                    }).collect_view()}
                </select>
            </label>
            {ENTRIES.iter().map(|e| {
                let stored = Memo::new(move |_| blocks(e.value));
                view! {
                <label class="field">
                    <span>{e.label}</span>
                    <input type="text" data-testid=e.testid prop:value=stored
                        on:change=move |ev| { set(e.field, event_target_value(&ev)); super::show_stored(&ev, stored); }/>
                </label>
            }}).collect_view()}
        </div>
        <div class="row wrap">
            <span>"Blend:"</span>
            {TENSORS.iter().map(|(tensor, label, id)| {
                let tensor = *tensor;
                let checked = move || temporal.with(|t| t.interpolation.as_ref().is_some_and(|i| uses(&i.unet_config, tensor)));
                view! {
                    <label class="check"><input type="checkbox" data-testid=format!("temporal-use-{id}")
                        prop:checked=checked
                        on:change=move |ev| set(TemporalField::Use(tensor), event_target_checked(&ev).to_string())/>{*label}</label>
                }
            }).collect_view()}
            <span>"in"</span>
            {PARTS.iter().map(|(part, label)| {
                let part = *part;
                let checked = move || temporal.with(|t| t.interpolation.as_ref().is_some_and(|i| i.unet_config.allow_names.contains(&part)));
                view! {
                    <label class="check"><input type="checkbox" data-testid=format!("temporal-part-{label}")
                        prop:checked=checked
                        on:change=move |ev| set(TemporalField::Part(part), event_target_checked(&ev).to_string())/>{*label}</label>
                }
            }).collect_view()}
        </div>
    }
}

fn uses(u: &Block, tensor: Tensor) -> bool {
    let f = u.use_interpolation;
    match tensor {
        Tensor::Query => f.query,
        Tensor::Key => f.key,
        Tensor::Value => f.value,
        Tensor::Probabilities => f.attention_probs,
        Tensor::Output => f.out_linear,
    }
}

fn scheduler_name(s: Scheduler) -> &'static str {
    match s {
        Scheduler::Ema => "ema",
        Scheduler::Cos => "cos",
        Scheduler::Linear => "linear",
    }
}

fn colour_name(c: keyshift_core::image::ColourSpace) -> &'static str {
    use keyshift_core::image::ColourSpace;
    match c {
        ColourSpace::Lab => "lab",
        ColourSpace::Hsv => "hsv",
        ColourSpace::Rgb => "rgb",
    }
}

/// The panel's summary line: what is on.
fn summary(t: &Temporal) -> String {
    let mut on = Vec::new();
    if t.interpolation.is_some() {
        on.push("attention interpolation".to_owned());
    }
    if let Some(c) = t.colour {
        on.push(format!("{} colour matching", colour_name(c).to_uppercase()));
    }
    if on.is_empty() {
        "Temporal consistency: off".into()
    } else {
        format!("Temporal consistency: {}", on.join(", "))
    }
}

/// What the running (or last) render keeps for the previous frame.
fn storage_text(shared: Shared) -> String {
    let bytes = shared
        .animate
        .with(|a| a.render.as_ref().map_or(0, |r| r.temporal_bytes));
    if bytes == 0 {
        "Interpolation keeps every blended tensor of every step of the previous frame on the GPU: \
         its size shows here while a render runs (SD 1.5 at 512², 25 steps, with these defaults: \
         about 10 GB; probabilities only up to 16² or none: about 2 GB)."
            .into()
    } else {
        format!(
            "Kept for the previous frame on the compute device: {}",
            crate::studio::bytes_text(bytes)
        )
    }
}
