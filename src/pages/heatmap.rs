//! Attention heatmaps in the Generate card: the token picker (the prompt's context positions as
//! chips, with start, end, padding and chunk boundaries marked and weights shown; click to
//! choose) and the chosen tokens' attention over the generated image, with its opacity and a
//! PNG to save.

use keyshift_core::tokens::{TokenChip, TokenKind};
use leptos::prelude::*;

use crate::app::Shared;
use crate::browser;
use crate::studio::{HeatmapView, Output};

/// The prompt's tokens as chips.
#[component]
pub fn TokenPicker() -> impl IntoView {
    let shared = expect_context::<Shared>();
    let studio = shared.studio;
    let chips = Memo::new(move |_| studio.with(|s| s.chips.clone()));
    let chosen = Memo::new(move |_| studio.with(|s| s.heatmap_tokens.clone()));
    let shown = move || {
        chips.with(|c| {
            c.iter()
                .filter(|c| c.kind != TokenKind::Padding)
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    let padding = move || chips.with(|c| c.iter().filter(|c| c.kind == TokenKind::Padding).count());
    view! {
        <details class="token-picker" data-testid="token-picker">
            <summary>{move || match chosen.with(|c| c.len()) {
                0 => "Attention heatmap: choose tokens".to_owned(),
                n => format!("Attention heatmap of {n} token{}", if n == 1 { "" } else { "s" }),
            }}</summary>
            <p class="hint">"Each image then comes with where these tokens were attended, summed over every layer and step."</p>
            <div class="chips">
                {move || shown().into_iter().map(|chip| view! {
                    <Chip chip=chip chosen=chosen/>
                }).collect_view()}
                {move || (padding() > 0).then(|| view! {
                    <span class="chip padding" title="Padding up to 77 positions per chunk">{format!("padding ×{}", padding())}</span>
                })}
            </div>
            <button class="ghost" data-testid="token-clear"
                disabled=move || chosen.with(|c| c.is_empty())
                on:click=move |_| studio.update(|s| s.heatmap_tokens.clear())>"Clear"</button>
        </details>
    }
}

/// One position: a word (its weight when not 1) or the end token can be chosen.
#[component]
fn Chip(chip: TokenChip, chosen: Memo<std::collections::BTreeSet<usize>>) -> impl IntoView {
    let shared = expect_context::<Shared>();
    let index = chip.index;
    let pickable = matches!(chip.kind, TokenKind::Word | TokenKind::End);
    let label = match chip.kind {
        TokenKind::Start if chip.chunk > 0 => format!("| {index}"),
        TokenKind::Start => "start".to_owned(),
        TokenKind::End => "end".to_owned(),
        _ if (chip.weight - 1.0).abs() > 1e-9 => format!("{} ({:.2})", chip.text, chip.weight),
        _ => chip.text.clone(),
    };
    let class = match chip.kind {
        TokenKind::Word => "chip",
        TokenKind::Start => "chip start",
        _ => "chip end",
    };
    view! {
        <button class=class data-testid="token-chip" data-index=index title=format!("position {index}")
            class:chosen=move || chosen.with(|c| c.contains(&index)) disabled=!pickable
            on:click=move |_| shared.studio.update(|s| s.toggle_token(index))>
            <small>{index}</small>" "{label}
        </button>
    }
}

/// The heatmap over the newest image (when it has one), its opacity and a PNG to save.
#[component]
pub fn HeatmapLayer(output: Output, image_url: String) -> impl IntoView {
    let opacity = RwSignal::new(0.5f32);
    let map = output.heatmap.clone();
    let layer = map
        .as_ref()
        .and_then(|m| m.layer_png().ok())
        .map(|png| browser::object_url(&png, "image/png"));
    if let Some(url) = layer.clone() {
        on_cleanup(move || browser::revoke_url(&url));
    }
    let save = move |_| {
        if let Some(png) = map
            .as_ref()
            .and_then(|m: &HeatmapView| m.over_png(&output.png, opacity.get_untracked()).ok())
        {
            browser::download(
                &browser::object_url(&png, "image/png"),
                &format!("keyshift-{}-heatmap.png", output.seed),
            );
        }
    };
    view! {
        <div class="heatmap-wrap">
            <img data-testid="result-image" alt="The generated image" src=image_url/>
            {layer.clone().map(|url| view! {
                <img class="heatmap" data-testid="heatmap-overlay" alt="Where the chosen tokens were attended"
                    src=url style:opacity=move || opacity.get().to_string()/>
            })}
        </div>
        {layer.map(|_| view! {
            <div class="row">
                <label class="field">
                    <span>"Heatmap opacity"</span>
                    <input type="range" min="0" max="1" step="0.05" data-testid="heatmap-opacity"
                        prop:value=move || opacity.get().to_string()
                        on:input=move |ev| opacity.set(event_target_value(&ev).parse().unwrap_or(0.5))/>
                </label>
                <button class="ghost" data-testid="heatmap-save" on:click=save>"Save heatmap PNG"</button>
            </div>
        })}
    }
}
