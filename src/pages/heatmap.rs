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

/// Visualize Cross-Attention: the chosen tokens' map in one layer for a picked image.
#[component]
pub fn ProbePanel() -> impl IntoView {
    let shared = expect_context::<Shared>();
    let studio = shared.studio;
    let (time, grey, unit) = (
        RwSignal::new("1".to_owned()),
        RwSignal::new(false),
        RwSignal::new(false),
    );
    let layer = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let layers = Memo::new(move |_| studio.with(|s| s.layers.clone()));
    // VXA's default layer, the middle block, until another is picked.
    Effect::new(move |_| {
        let names = layers.get();
        if !names.iter().any(|(n, _)| *n == layer.get_untracked()) {
            let mid = names.iter().find(|(n, _)| n.starts_with("mid_block"));
            layer.set(
                mid.or(names.first())
                    .map(|(n, _)| n.clone())
                    .unwrap_or_default(),
            );
        }
    });
    let side = move || studio.with(|s| s.probe.image.as_ref().map_or(512, |i| i.width));
    let run = move |_| {
        let prompt = shared.project.with_untracked(|p| p.prompt.clone());
        let mut message = Err(String::new());
        studio.update(|s| {
            message = s.probe(
                &prompt,
                &layer.get_untracked(),
                &time.get_untracked(),
                grey.get_untracked(),
                unit.get_untracked(),
            )
        });
        let image = studio.with_untracked(|s| {
            s.probe
                .image
                .as_ref()
                .and_then(|i| browser::bytes_blob(&i.rgb))
        });
        match (message, image) {
            (Ok(m), Some(blob)) => {
                shared.send_with(&m, &[blob]);
                error.set(None);
            }
            (Err(e), _) => error.set(Some(e)),
            (Ok(_), None) => error.set(Some("the image could not be sent".into())),
        }
    };
    let result = Memo::new(move |_| studio.with(|s| s.probe.result.clone()));
    let result_url = Memo::new(move |_| {
        result.with(|r| {
            r.as_ref()
                .map(|(png, _)| browser::object_url(png, "image/png"))
        })
    });
    view! {
        <details class="probe" data-testid="vxa">
            <summary>"Visualize cross-attention of an image (VXA)"</summary>
            <p class="hint">"One layer's attention to the chosen tokens (none chosen: every token after the start) for the current prompt, in one UNet pass on the image."</p>
            <ProbeImage error=error/>
            <div class="grid">
                <label class="field"><span>"Layer"</span>
                    <select data-testid="vxa-layer" on:change=move |ev| layer.set(event_target_value(&ev))>
                        {move || layers.get().into_iter().map(|l| {
                            let name = l.0.clone();
                            let label = studio.with_untracked(|s| s.layer_label(&l, side()));
                            view! { <option value=name.clone() selected=move || layer.get() == name>{label}</option> }
                        }).collect_view()}
                    </select></label>
                <label class="field"><span>"Time (0–999)"</span>
                    <input type="text" data-testid="vxa-time" prop:value=move || time.get()
                        on:change=move |ev| time.set(event_target_value(&ev))/></label>
                <label class="field"><span>"Output"</span>
                    <select data-testid="vxa-mode" on:change=move |ev| grey.set(event_target_value(&ev) == "grey")>
                        <option value="masked">"masked (image × map)"</option>
                        <option value="grey">"grey (the map)"</option>
                    </select></label>
            </div>
            <label class="check"><input type="checkbox" data-testid="vxa-unit" prop:checked=move || unit.get()
                on:change=move |ev| unit.set(event_target_checked(&ev))/>
                "Image to the VAE in [0, 1], as the original does (Keyshift's default is [−1, 1], what the VAE expects)"</label>
            <button data-testid="vxa-run" disabled=move || studio.with(|s| !s.is_ready() || s.probe.image.is_none() || s.probe.running.is_some())
                on:click=run>"Visualize"</button>
            {move || error.get().map(|e| view! { <p class="error" role="alert" data-testid="vxa-error">{e}</p> })}
            {move || result_url.get().map(|url| view! {
                <figure class="result">
                    <img data-testid="vxa-result" alt="The probed attention" src=url/>
                    <figcaption>{result.with(|r| r.as_ref().map(|r| r.1.clone()).unwrap_or_default())}</figcaption>
                </figure>
            })}
        </details>
    }
}

/// The probed image's file picker.
#[component]
fn ProbeImage(error: RwSignal<Option<String>>) -> impl IntoView {
    let studio = expect_context::<Shared>().studio;
    let on_pick = move |ev: leptos::ev::Event| {
        let Some(file) = browser::picked_file(&ev) else {
            return;
        };
        leptos::task::spawn_local(async move {
            match super::studio::pick_image(&file).await {
                Ok((pick, _)) => {
                    studio.update(|s| s.probe.image = Some(pick));
                    error.set(None);
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    view! {
        <label class="field">
            <span>"Image (sides a multiple of the model's size multiple)"</span>
            <input type="file" accept="image/*" data-testid="vxa-image" on:change=on_pick/>
        </label>
    }
}
