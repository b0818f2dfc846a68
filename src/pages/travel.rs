//! Prompt travel in the Animate workspace: its options, the stage editor (a second view of the
//! prompt's lines) and the α curve of the chosen easing.

use keyshift_core::share::{Project, TravelSettings};
use keyshift_core::travel::easing::Easing;
use keyshift_core::travel::editor::{StageEdit, rows, transition_steps};
use keyshift_core::travel::{Genesis, Interp, ReplaceDim, ReplaceOrder, TokenOrder, TravelMode};
use leptos::prelude::*;

use super::animate::edit;
use crate::animate::plan_text;
use crate::app::Shared;
use crate::state::ProjectCommand;
use crate::travel::{TravelField, shown};

/// A select over a named choice.
struct Choice {
    label: &'static str,
    testid: &'static str,
    field: TravelField,
    options: fn() -> Vec<&'static str>,
    value: fn(&TravelSettings) -> &'static str,
}

static CHOICES: [Choice; 6] = [
    Choice {
        label: "Travel mode",
        testid: "travel-mode",
        field: TravelField::Mode,
        options: || TravelMode::ALL.iter().map(|(_, n)| *n).collect(),
        value: |t| t.mode.name(),
    },
    Choice {
        label: "Interpolation (linear)",
        testid: "travel-interp",
        field: TravelField::Interp,
        options: || Interp::ALL.iter().map(|(_, n)| *n).collect(),
        value: |t| t.interp.name(),
    },
    Choice {
        label: "Frame genesis",
        testid: "genesis",
        field: TravelField::Genesis,
        options: || Genesis::ALL.iter().map(|(_, n)| *n).collect(),
        value: |t| t.genesis.name(),
    },
    Choice {
        label: "Replace dimension",
        testid: "replace-dim",
        field: TravelField::ReplaceDim,
        options: || ReplaceDim::ALL.iter().map(|(_, n)| *n).collect(),
        value: |t| t.replace_dim.name(),
    },
    Choice {
        label: "Token order (replace-ids)",
        testid: "token-order",
        field: TravelField::TokenOrder,
        options: || TokenOrder::ALL.iter().map(|(_, n)| *n).collect(),
        value: |t| t.token_order.name(),
    },
    Choice {
        label: "Replace order",
        testid: "replace-order",
        field: TravelField::ReplaceOrder,
        options: || ReplaceOrder::ALL.iter().map(|(_, n)| *n).collect(),
        value: |t| t.replace_order.name(),
    },
];

/// A text or number field.
struct Entry {
    label: &'static str,
    testid: &'static str,
    field: TravelField,
    value: fn(&TravelSettings) -> String,
}

static ENTRIES: [Entry; 8] = [
    Entry {
        label: "Travel steps (one number, or one per transition: 12, 24)",
        testid: "travel-steps",
        field: TravelField::Steps,
        value: |t| t.steps.clone(),
    },
    Entry {
        label: "Denoise strength (successive)",
        testid: "travel-denoise",
        field: TravelField::Denoise,
        value: |t| t.denoise.to_string(),
    },
    Entry {
        label: "Embryo step (count, or ratio below 1)",
        testid: "embryo-step",
        field: TravelField::EmbryoStep,
        value: |t| t.embryo_step.to_string(),
    },
    Entry {
        label: "Pad begin/end frames",
        testid: "travel-pad",
        field: TravelField::Pad,
        value: |t| t.pad.to_string(),
    },
    Entry {
        label: "Pick frames by slice (start:stop:step)",
        testid: "travel-slice",
        field: TravelField::Slice,
        value: |t| t.slice.clone(),
    },
    Entry {
        label: "Variation seed (-1: random per frame)",
        testid: "travel-subseed",
        field: TravelField::Subseed,
        value: |t| t.subseed.to_string(),
    },
    Entry {
        label: "Variation strength (one line may wander)",
        testid: "travel-subseed-strength",
        field: TravelField::SubseedStrength,
        value: |t| t.subseed_strength.to_string(),
    },
    Entry {
        label: "Video FPS",
        testid: "travel-fps",
        field: TravelField::Fps,
        value: |t| t.fps.to_string(),
    },
];

static SSIM_ENTRIES: [Entry; 5] = [
    Entry {
        label: "SSIM threshold (0: off)",
        testid: "travel-ssim-threshold",
        field: TravelField::SsimThreshold,
        value: |t| t.ssim_threshold.to_string(),
    },
    Entry {
        label: "SSIM minimum step",
        testid: "travel-ssim-min-step",
        field: TravelField::SsimMinStep,
        value: |t| t.ssim_min_step.to_string(),
    },
    Entry {
        label: "SSIM min threshold %",
        testid: "travel-ssim-min-pct",
        field: TravelField::SsimMinPct,
        value: |t| t.ssim_min_pct.to_string(),
    },
    Entry {
        label: "SSIM blur (radius)",
        testid: "travel-ssim-blur",
        field: TravelField::SsimBlur,
        value: |t| t.ssim_blur.to_string(),
    },
    Entry {
        label: "SSIM centre crop %",
        testid: "travel-ssim-crop",
        field: TravelField::SsimCrop,
        value: |t| t.ssim_crop.to_string(),
    },
];

static GRAD_ENTRIES: [Entry; 5] = [
    Entry {
        label: "Grad iterations per frame",
        testid: "grad-iter",
        field: TravelField::GradIter,
        value: |t| t.grad.iterations.to_string(),
    },
    Entry {
        label: "Grad step (alpha)",
        testid: "grad-alpha",
        field: TravelField::GradAlpha,
        value: |t| t.grad.alpha.to_string(),
    },
    Entry {
        label: "Grad method (clip, sign, tanh)",
        testid: "grad-method",
        field: TravelField::GradMethod,
        value: |t| t.grad.method.name().to_owned(),
    },
    Entry {
        label: "Weight of the latent loss",
        testid: "grad-w-latent",
        field: TravelField::GradWLatent,
        value: |t| t.grad.w_latent.to_string(),
    },
    Entry {
        label: "Weight of the conditioning loss",
        testid: "grad-w-cond",
        field: TravelField::GradWCond,
        value: |t| t.grad.w_cond.to_string(),
    },
];

/// Text fields for `entries`.
fn entry_fields(entries: &'static [Entry], error: RwSignal<Option<String>>) -> impl IntoView {
    let shared = expect_context::<Shared>();
    let project = shared.project;
    entries
        .iter()
        .map(|e| {
            let stored = Memo::new(move |_| project.with(|p| (e.value)(&p.animation.travel)));
            view! {
                <label class="field" style:display=move || project.with(|p| {
                    if shown(e.field, &p.animation.travel) { "" } else { "none" }
                })>
                    <span>{e.label}</span>
                    <input type="text" data-testid=e.testid
                        prop:value=stored
                        on:change=move |ev| {
                            error.set(edit(shared, ProjectCommand::SetTravel(e.field, event_target_value(&ev))));
                            super::show_stored(&ev, stored);
                        }/>
                </label>
            }
        })
        .collect_view()
}

/// Prompt travel's options, the stage editor and the counts.
#[component]
pub fn TravelOptions(error: RwSignal<Option<String>>) -> impl IntoView {
    let shared = expect_context::<Shared>();
    let project = shared.project;
    let set = move |field: TravelField| {
        move |ev: leptos::ev::Event| {
            error.set(edit(
                shared,
                ProjectCommand::SetTravel(field, event_target_value(&ev)),
            ));
        }
    };
    view! {
        <p class="hint">"One stage per line of the prompt; the negative prompt's last line repeats."</p>
        <StageEditor error=error/>
        <div class="grid">
            {CHOICES.iter().map(|c| view! {
                <label class="field" style:display=move || project.with(|p| {
                    if shown(c.field, &p.animation.travel) { "" } else { "none" }
                })>
                    <span>{c.label}</span>
                    <select data-testid=c.testid on:change=set(c.field)>
                        {(c.options)().into_iter().map(|o| view! {
                            <option value=o selected=move || project.with(|p| (c.value)(&p.animation.travel) == o)>{o}</option>
                        }).collect_view()}
                    </select>
                </label>
            }).collect_view()}
            {entry_fields(&ENTRIES, error)}
        </div>
        <EasingPicker error=error/>
        <Show when=move || project.with(|p| p.animation.travel.mode == TravelMode::Grad)>
            <div class="grid">{entry_fields(&GRAD_ENTRIES, error)}</div>
        </Show>
        <Show when=move || project.with(|p| p.animation.travel.mode == TravelMode::Linear
            && p.animation.travel.genesis == Genesis::Fixed)>
            <details class="ssim">
                <summary>"SSIM gap filling (linear, fixed)"</summary>
                <div class="grid">{entry_fields(&SSIM_ENTRIES, error)}</div>
            </details>
        </Show>
        <p class="hint" data-testid="frame-count">{move || project.with(|p| plan_text(p)
            .unwrap_or_else(|e| format!("The prompt cannot be rendered: {e}")))}</p>
    }
}

const NAMED_EASINGS: [&str; 4] = ["linear", "ease-in", "ease-out", "ease-in-out"];

/// The easing: a named curve or a cubic Bézier, with its α curve.
#[component]
fn EasingPicker(error: RwSignal<Option<String>>) -> impl IntoView {
    let shared = expect_context::<Shared>();
    let easing = Memo::new(move |_| shared.project.with(|p| p.animation.travel.easing));
    let pick = move |ev| {
        let name = event_target_value(&ev);
        let text = if name == "bezier" {
            "0.25,0.1,0.25,1".to_owned()
        } else {
            name
        };
        error.set(edit(
            shared,
            ProjectCommand::SetTravel(TravelField::Easing, text),
        ));
    };
    let is_bezier = move || matches!(easing.get(), Easing::Bezier { .. });
    view! {
        <div class="row">
            <label class="field">
                <span>"Easing between stages"</span>
                <select data-testid="easing" on:change=pick>
                    {NAMED_EASINGS.iter().map(|n| view! {
                        <option value=*n selected=move || easing.get().text() == *n>{*n}</option>
                    }).collect_view()}
                    <option value="bezier" selected=is_bezier>"cubic Bézier…"</option>
                </select>
            </label>
            <Show when=is_bezier>
                <label class="field">
                    <span>"x1, y1, x2, y2 (as Parseq's bez())"</span>
                    <input type="text" data-testid="easing-bezier" prop:value=move || easing.get().text()
                        on:change=move |ev| error.set(edit(shared,
                            ProjectCommand::SetTravel(TravelField::Easing, event_target_value(&ev))))/>
                </label>
            </Show>
            <AlphaCurve easing=easing/>
        </div>
    }
}

/// A small plot of α over a transition.
#[component]
fn AlphaCurve(easing: Memo<Easing>) -> impl IntoView {
    let points = move || {
        easing.get().curve().map_or_else(
            |_| String::new(),
            |curve| {
                (0..=32)
                    .map(|i| {
                        let t = f64::from(i) / 32.0;
                        format!("{:.1},{:.1}", t * 100.0, 100.0 - curve.at(t) * 100.0)
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            },
        )
    };
    view! {
        <svg class="alpha-curve" data-testid="alpha-curve" viewBox="-4 -4 108 108" width="96" height="96"
            role="img" aria-label="α over a transition">
            <rect x="0" y="0" width="100" height="100" class="frame"/>
            <polyline points=points class="curve"/>
        </svg>
    }
}

/// The stage editor: a row per prompt line (text, own seed, steps to the next), with add, remove
/// and reorder. It edits the prompt box's lines and the travel steps.
#[component]
fn StageEditor(error: RwSignal<Option<String>>) -> impl IntoView {
    let shared = expect_context::<Shared>();
    let stages = Memo::new(move |_| {
        shared.project.with(|p: &Project| {
            let rows = rows(&p.prompt);
            let steps = transition_steps(&p.animation.travel.steps, rows.len());
            rows.into_iter()
                .enumerate()
                .map(|(i, r)| (i, r.text, r.seed, steps.get(i).copied()))
                .collect::<Vec<_>>()
        })
    });
    let count = move || stages.with(Vec::len);
    let apply = move |e: StageEdit| error.set(edit(shared, ProjectCommand::EditStage(e)));
    view! {
        <ol class="stages" data-testid="stage-editor">
            <For each=move || stages.get() key=|row| row.clone() children=move |(i, text, seed, steps)| {
                let last = move || i + 1 >= count();
                view! {
                    <li class="stage" data-testid="stage">
                        <input type="text" class="grow" data-testid="stage-prompt" prop:value=text
                            on:change=move |ev| apply(StageEdit::Text(i, event_target_value(&ev)))/>
                        <input type="text" class="seed" data-testid="stage-seed" placeholder="seed"
                            prop:value=seed.map(|s| s.to_string()).unwrap_or_default()
                            on:change=move |ev| apply(StageEdit::Seed(i, event_target_value(&ev)))/>
                        <button class="ghost" title="Move up" disabled=i == 0
                            on:click=move |_| apply(StageEdit::Up(i))>"↑"</button>
                        <button class="ghost" title="Move down" disabled=last
                            on:click=move |_| apply(StageEdit::Down(i))>"↓"</button>
                        <button class="ghost" title="Remove" data-testid="stage-remove"
                            on:click=move |_| apply(StageEdit::Remove(i))>"×"</button>
                        {move || (!last()).then(|| view! {
                            <label class="steps">"→ steps "
                                <input type="number" min="1" data-testid="stage-steps"
                                    prop:value=steps.unwrap_or(1).to_string()
                                    on:change=move |ev| apply(StageEdit::Steps(i, event_target_value(&ev)))/>
                            </label>
                        })}
                    </li>
                }
            }/>
        </ol>
        <button class="ghost" data-testid="stage-add" on:click=move |_| apply(StageEdit::Add)>"Add stage"</button>
    }
}

/// The label of a travel choice, for tests and titles.
pub fn stage_label(from: usize, to: usize, alpha: f64) -> String {
    format!("{}→{} α {alpha:.2}", from + 1, to + 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn stage_labels_count_from_one() {
        assert_eq!(super::stage_label(0, 1, 0.25), "1→2 α 0.25");
    }
}
