//! The Animate workspace: the mode and its options with the frame count shown before rendering,
//! Render / Cancel / Resume, the player, the frame strip, exports, and the stored renders.

use std::time::Duration;

use keyshift_core::share::{AnimationMode, Project};
use keyshift_web::cache::bytes_text;
use keyshift_web::protocol::{ExportFormat, ToWorker};
use leptos::prelude::*;

use super::travel::{TravelOptions, stage_label};
use crate::animate::{Animate, plan_text};
use crate::app::Shared;
use crate::browser;
use crate::recorder;
use crate::state::{self, ProjectCommand, ShiftField};

/// A shift-attention option field.
struct OptionField {
    label: &'static str,
    testid: &'static str,
    field: ShiftField,
    step: &'static str,
    value: fn(&Project) -> String,
}

static SHIFT_FIELDS: [OptionField; 7] = [
    OptionField {
        label: "Shift steps",
        testid: "shift-steps",
        field: ShiftField::Steps,
        step: "1",
        value: |p| p.animation.shift.shift_steps.to_string(),
    },
    OptionField {
        label: "FPS (negative: seconds)",
        testid: "shift-fps",
        field: ShiftField::Fps,
        step: "1",
        value: |p| p.animation.shift.fps.to_string(),
    },
    OptionField {
        label: "Lead in/out",
        testid: "shift-lead",
        field: ShiftField::Lead,
        step: "1",
        value: |p| p.animation.shift.lead.to_string(),
    },
    OptionField {
        label: "Upscale ratio",
        testid: "shift-upscale",
        field: ShiftField::Upscale,
        step: "0.25",
        value: |p| p.animation.shift.upscale.to_string(),
    },
    OptionField {
        label: "SSIM threshold (0: off)",
        testid: "ssim-threshold",
        field: ShiftField::SsimThreshold,
        step: "0.01",
        value: |p| p.animation.shift.ssim_threshold.to_string(),
    },
    OptionField {
        label: "SSIM minimum step",
        testid: "ssim-min-step",
        field: ShiftField::SsimMinStep,
        step: "0.0001",
        value: |p| p.animation.shift.ssim_min_step.to_string(),
    },
    OptionField {
        label: "SSIM min threshold %",
        testid: "ssim-min-pct",
        field: ShiftField::SsimMinPct,
        step: "1",
        value: |p| p.animation.shift.ssim_min_pct.to_string(),
    },
];

/// Applies a project edit (the address bar and the autosave follow); returns the error text.
pub fn edit(shared: Shared, command: ProjectCommand) -> Option<String> {
    let mut next = shared.project.get_untracked();
    match command.apply(&mut next) {
        Ok(()) => {
            browser::replace_fragment(&state::link_fragment(&next));
            shared.project.set(next);
            None
        }
        Err(e) => Some(e.to_string()),
    }
}

/// Sends what the workspace asks for, if anything.
fn send(shared: Shared, message: Option<ToWorker>) {
    if let Some(m) = message {
        shared.send(&m);
    }
}

/// The mode, its options, the counts, and Render / Cancel / Resume.
#[component]
pub fn AnimateCard() -> impl IntoView {
    let shared = expect_context::<Shared>();
    let (project, animate) = (shared.project, shared.animate);
    let error = RwSignal::new(None::<String>);
    // A memo: the mode's panels are built again only when the mode changes, not on every edit
    // of the project (which would reset the Parseq editor's undo history and what is typed).
    let mode = Memo::new(move |_| project.with(|p| p.animation.mode));
    let on_mode = move |ev| {
        error.set(edit(
            shared,
            ProjectCommand::SetMode(event_target_value(&ev)),
        ))
    };
    view! {
        <section class="card" data-testid="animate">
            <h2>"Animate"</h2>
            <label class="field">
                <span>"Mode"</span>
                <select data-testid="mode-picker" on:change=on_mode>
                    {AnimationMode::ALL.into_iter().map(|m| view! {
                        <option value=m.name() selected=move || mode.get() == m>{mode_label(m)}</option>
                    }).collect_view()}
                </select>
            </label>
            {move || match mode.get() {
                AnimationMode::Single => view! {
                    <p class="hint">"One image: use Generate below, or pick an animation mode."</p>
                }.into_any(),
                AnimationMode::ShiftAttention => view! {
                    <ShiftOptions error=error/>
                    <super::temporal::TemporalPanel error=error/>
                    <RenderControls/>
                }.into_any(),
                AnimationMode::PromptTravel => view! {
                    <TravelOptions error=error/>
                    <super::temporal::TemporalPanel error=error/>
                    <RenderControls/>
                }.into_any(),
                AnimationMode::Parseq => view! {
                    <super::parseq::ParseqCard error=error/>
                    <super::temporal::TemporalPanel error=error/>
                    <RenderControls/>
                }.into_any(),
                AnimationMode::Video => view! {
                    <super::video::VideoOptions error=error/>
                    <super::temporal::TemporalPanel error=error/>
                    <RenderControls/>
                }.into_any(),
            }}
            {move || error.get().or_else(|| animate.with(|a| a.error.clone())).map(|e| view! {
                <p class="error" role="alert" data-testid="render-error">{e}</p>
            })}
        </section>
    }
}

fn mode_label(mode: AnimationMode) -> &'static str {
    match mode {
        AnimationMode::Single => "Single image",
        AnimationMode::ShiftAttention => "Shift attention (a~b ranges, THEN segments)",
        AnimationMode::PromptTravel => "Prompt travel (one stage per prompt line)",
        AnimationMode::Parseq => "Parseq keyframes (Deforum 2D motion)",
        AnimationMode::Video => "Video input (each frame as img2img)",
    }
}

#[component]
fn ShiftOptions(error: RwSignal<Option<String>>) -> impl IntoView {
    let shared = expect_context::<Shared>();
    let project = shared.project;
    let flag = move |field: ShiftField| {
        move |ev: leptos::ev::Event| {
            let on = event_target_checked(&ev).to_string();
            error.set(edit(shared, ProjectCommand::SetShift(field, on)));
        }
    };
    let count_line = move || {
        project.with(|p| {
            plan_text(p).unwrap_or_else(|e| format!("The prompt cannot be rendered: {e}"))
        })
    };
    view! {
        <div class="grid">
            {SHIFT_FIELDS.iter().map(|f| {
                let stored = Memo::new(move |_| project.with(|p| (f.value)(p)));
                view! {
                <label class="field">
                    <span>{f.label}</span>
                    <input type="number" step=f.step data-testid=f.testid prop:value=stored
                        on:change=move |ev| {
                            error.set(edit(shared, ProjectCommand::SetShift(f.field, event_target_value(&ev))));
                            super::show_stored(&ev, stored);
                        }/>
                </label>
            }}).collect_view()}
        </div>
        <div class="row">
            <label class="check">
                <input type="checkbox" data-testid="shift-mirror"
                    prop:checked=move || project.with(|p| p.animation.shift.mirror)
                    on:change=flag(ShiftField::Mirror)/>
                "Mirror (play forward, then back)"
            </label>
            <label class="check">
                <input type="checkbox" data-testid="shift-remove-zero"
                    prop:checked=move || project.with(|p| p.animation.shift.remove_zero)
                    on:change=flag(ShiftField::RemoveZero)/>
                "Remove zero-strength tags"
            </label>
        </div>
        <p class="hint" data-testid="frame-count">{count_line}</p>
    }
}

#[component]
fn RenderControls() -> impl IntoView {
    let shared = expect_context::<Shared>();
    let (animate, studio) = (shared.animate, shared.studio);
    let start = move |_| {
        let project = shared.project.get_untracked();
        let id = format!("{:.0}", browser::now_ms());
        // Chosen while a model whose TAESD fits was loaded: not for another model.
        let fits = studio.with_untracked(|s| s.taesd_frames);
        animate.update(|a| a.taesd_frames &= fits);
        if project.animation.mode == AnimationMode::Video {
            return super::video::start(shared, id);
        }
        let mut result = Err(String::new());
        let tokens = studio.with_untracked(|s| s.heatmap_request());
        animate.update(|a| {
            a.heatmap_tokens = tokens;
            result = a.start(&project, id, browser::random_seed())
        });
        match result {
            Ok(m) => shared.send(&m),
            Err(e) => animate.update(|a| a.error = Some(e)),
        }
    };
    let resume = move |_| {
        let mut next = None;
        animate.update(|a| next = a.resume());
        send(shared, next);
    };
    let cancel = move |_| send(shared, animate.with_untracked(Animate::cancel));
    let ready = move || studio.with(|s| s.is_ready());
    view! {
        <div class="row">
            <button class="primary" data-testid="render"
                title=move || if ready() { "Render every frame" } else { "Load a model first" }
                disabled=move || !ready() || animate.with(Animate::is_busy)
                on:click=start>"Render"</button>
            <button data-testid="cancel-render" disabled=move || !animate.with(Animate::is_busy)
                on:click=cancel>"Cancel"</button>
            <Show when=move || animate.with(Animate::can_resume)>
                <button data-testid="resume-render" disabled=move || !ready() on:click=resume>
                    "Resume"
                </button>
            </Show>
            <TaesdFrames/>
        </div>
        <p class="hint" data-testid="render-status"
            data-heap-peak=move || animate.with(Animate::heap_peak).map(|b| b.to_string())>
            {move || animate.with(Animate::status_text)}
        </p>
        <Show when=move || animate.with(Animate::is_running)>
            <div class="row">
                <progress data-testid="render-progress" max="1" prop:value=move || animate.with(|a| {
                    a.render.as_ref().and_then(|r| r.progress).map_or(0.0, |p| {
                        p.frames_done as f64 / p.frames_expected.max(1) as f64
                    })
                })></progress>
                <span data-testid="render-progress-text">{move || animate.with(Animate::progress_text)}</span>
            </div>
        </Show>
    }
}

/// Decode the frames with TAESD: offered when the model's TAESD fits its latents.
#[component]
fn TaesdFrames() -> impl IntoView {
    let shared = expect_context::<Shared>();
    let (animate, studio) = (shared.animate, shared.studio);
    view! {
        <Show when=move || studio.with(|s| s.taesd_frames)>
            <label class="check" title="Decode each frame with TAESD instead of the model's VAE: much faster, \
                          slightly softer. The frames' parameters say so.">
                <input type="checkbox" data-testid="animate-taesd"
                    prop:checked=move || animate.with(|a| a.taesd_frames)
                    on:change=move |e| {
                        let on = event_target_checked(&e);
                        animate.update(|a| a.taesd_frames = on);
                    }/>
                "TAESD frames (fast draft)"
            </label>
        </Show>
    }
}

/// The player, the strip and exports.
#[component]
pub fn PlayerCard() -> impl IntoView {
    let animate = expect_context::<Shared>().animate;
    Playback::start(animate);
    let has_frames =
        move || animate.with(|a| a.render.as_ref().is_some_and(|r| !r.frames.is_empty()));
    view! {
        <section class="card stage-card">
            <Show when=has_frames fallback=|| view! {
                <p class="hint">"Rendered frames appear here as they finish."</p>
            }>
                <Player/>
                <FrameStrip/>
                <Exports/>
            </Show>
        </section>
    }
}

/// Playback timing and the arrow keys.
struct Playback;

impl Playback {
    fn start(animate: RwSignal<Animate>) {
        let handle = StoredValue::new_local(None::<IntervalHandle>);
        Effect::new(move || {
            let (playing, fps) = animate.with(|a| (a.playing, a.play_fps()));
            handle.update_value(|h| {
                if let Some(h) = h.take() {
                    h.clear();
                }
            });
            if playing {
                let every = Duration::from_secs_f64(1.0 / fps.max(0.1));
                let tick = move || animate.update(Animate::tick);
                handle.set_value(set_interval_with_handle(tick, every).ok());
            }
        });
        let keys = window_event_listener(leptos::ev::keydown, move |ev| {
            let typing = ev
                .target()
                .and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(t).ok())
                .is_some_and(|e| matches!(e.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"));
            let delta = match ev.key().as_str() {
                "ArrowRight" => 1,
                "ArrowLeft" => -1,
                _ => return,
            };
            if !typing && animate.with_untracked(|a| a.render.is_some()) {
                ev.prevent_default();
                animate.update(|a| {
                    a.playing = false;
                    a.step(delta);
                });
            }
        });
        on_cleanup(move || {
            keys.remove();
            handle.update_value(|h| {
                if let Some(h) = h.take() {
                    h.clear();
                }
            });
        });
    }
}

#[component]
fn Player() -> impl IntoView {
    let animate = expect_context::<Shared>().animate;
    let current = Memo::new(move |_| animate.with(|a| a.current().cloned()));
    let opacity = RwSignal::new(0.5f32);
    let heat = Memo::new(move |_| {
        animate.with(|a| {
            let index = a.current()?.info.index;
            a.render.as_ref()?.heatmaps.get(&index).cloned()
        })
    });
    let length = move || animate.with(|a| a.sequence().len());
    let toggle = move |_| {
        animate.update(|a| {
            if !a.playing && a.position + 1 >= a.sequence().len() {
                a.position = 0;
            }
            a.playing = !a.playing;
        })
    };
    view! {
        <div class="player" data-testid="player" tabindex="0">
            <div class="player-stack">
                {move || current.get().map(|f| view! {
                    <img class="player-image" data-testid="player-image" alt="The frame at the scrubber"
                        src=f.url title=f.info.parameters.clone()/>
                })}
                {move || heat.get().map(|url| view! {
                    <img class="player-heatmap" data-testid="player-heatmap"
                        alt="Where the chosen tokens were attended in this frame"
                        src=url style:opacity=move || opacity.get().to_string()/>
                })}
            </div>
        </div>
        <Show when=move || heat.with(Option::is_some)>
            <label class="field">
                <span>"Heatmap opacity"</span>
                <input type="range" min="0" max="1" step="0.05" data-testid="player-heatmap-opacity"
                    prop:value=move || opacity.get().to_string()
                    on:input=move |ev| opacity.set(event_target_value(&ev).parse().unwrap_or(0.5))/>
            </label>
        </Show>
        <div class="row">
            <button data-testid="play" on:click=toggle>
                {move || if animate.with(|a| a.playing) { "Pause" } else { "Play" }}
            </button>
            <input type="range" class="grow" min="0" data-testid="scrubber"
                prop:max=move || length().saturating_sub(1).to_string()
                prop:value=move || animate.with(|a| a.position.to_string())
                on:input=move |ev| {
                    let p = event_target_value(&ev).parse().unwrap_or(0);
                    animate.update(|a| { a.playing = false; a.seek(p); });
                }/>
            <span class="tabular" data-testid="player-position">
                {move || format!("{}/{}", animate.with(|a| a.position) + 1, length())}
            </span>
            <label class="check">
                <input type="checkbox" data-testid="loop"
                    prop:checked=move || animate.with(|a| a.looping)
                    on:change=move |ev| animate.update(|a| a.looping = event_target_checked(&ev))/>
                "Loop"
            </label>
            <span class="hint">{move || format!("{} fps", animate.with(Animate::play_fps))}</span>
        </div>
        <FrameDetails current=current/>
    }
}

#[component]
fn FrameDetails(current: Memo<Option<crate::animate::FrameView>>) -> impl IntoView {
    let shared = expect_context::<Shared>();
    let animate = shared.animate;
    let rerender = move |index: usize| {
        let mut next = None;
        animate.update(|a| next = a.rerender(index));
        send(shared, next);
    };
    let can = move || {
        animate.with(|a| a.is_finished() && !a.is_busy()) && shared.studio.with(|s| s.is_ready())
    };
    view! {
        {move || current.get().map(|f| view! {
            <div class="row">
                <p class="frame-prompt grow" data-testid="prompt-at-frame">
                    {format!("Frame {}: {}", f.info.index, f.info.prompt)}
                </p>
                <button class="ghost" data-testid="rerender-frame" disabled=move || !can()
                    title="Render this frame again with the loaded model"
                    on:click=move |_| rerender(f.info.index)>
                    {move || if animate.with(|a| a.rerendering.is_some()) { "Rendering…" } else { "Re-render frame" }}
                </button>
            </div>
            <details>
                <summary>"Frame parameters"</summary>
                <pre class="parameters" data-testid="frame-parameters">{f.info.parameters.clone()}</pre>
            </details>
            {(!f.info.losses.is_empty()).then(|| view! {
                <p class="hint" data-testid="frame-losses">{loss_text(&f.info.losses)}</p>
            })}
        })}
    }
}

/// Grad mode's losses of a frame, one PGD step after another.
fn loss_text(losses: &[[f64; 2]]) -> String {
    let steps: Vec<String> = losses
        .iter()
        .enumerate()
        .map(|(i, [latent, cond])| format!("step {}: latent {latent:.4}, cond {cond:.4}", i + 1))
        .collect();
    format!("Grad losses — {}", steps.join("; "))
}

#[component]
fn FrameStrip() -> impl IntoView {
    let animate = expect_context::<Shared>().animate;
    let strip = Memo::new(move |_| animate.with(Animate::strip));
    let current = Memo::new(move |_| animate.with(|a| a.current().map(|f| f.info.index)));
    view! {
        <div class="strip" data-testid="frame-strip">
            <For each=move || strip.get() key=|i| *i children=move |index| {
                // One memo per thumbnail: its DOM changes only when its own frame does.
                let frame = Memo::new(move |_| {
                    animate.with(|a| a.render.as_ref().and_then(|r| r.frames.get(&index).cloned()))
                });
                let heat = Memo::new(move |_| {
                    animate.with(|a| a.render.as_ref().and_then(|r| r.heatmaps.get(&index).cloned()))
                });
                move || frame.get().map(|f| view! {
                    <button class="thumb" data-testid="frame" data-index=index.to_string()
                        class:selected=move || current.get() == Some(index)
                        title=f.info.parameters.clone()
                        on:click=move |_| animate.update(|a| a.select(index))>
                        <img src=f.url alt=format!("Frame {index}")/>
                        {move || heat.get().map(|url| view! {
                            <img class="thumb-heat" data-testid="frame-heatmap" src=url
                                alt=format!("Heatmap of frame {index}")/>
                        })}
                        {f.info.stages.map(|s| view! {
                            <span class="thumb-label" data-testid="frame-stages">
                                {stage_label(s.from, s.to, s.alpha)}
                            </span>
                        })}
                    </button>
                })
            }/>
        </div>
    }
}

#[component]
fn Exports() -> impl IntoView {
    let shared = expect_context::<Shared>();
    let animate = shared.animate;
    let export = move |format: ExportFormat| {
        move |_| {
            if format == ExportFormat::Webm && !recorder::has_video_encoder() {
                record_on_page(animate);
                return;
            }
            let mut next = None;
            animate.update(|a| next = a.start_export(format));
            send(shared, next);
        }
    };
    let idle = move || animate.with(|a| a.is_finished() && a.export.is_none());
    view! {
        <div class="row">
            <span class="grow hint">"Export"</span>
            <button class="ghost" data-testid="export-webm" disabled=move || !idle() on:click=export(ExportFormat::Webm)>"WebM"</button>
            <button class="ghost" data-testid="export-gif" disabled=move || !idle() on:click=export(ExportFormat::Gif)>"GIF"</button>
            <button class="ghost" data-testid="export-zip" disabled=move || !idle() on:click=export(ExportFormat::Zip)>"Zip of PNGs"</button>
            <Show when=move || animate.with(|a| a.render.as_ref().is_some_and(|r| !r.heatmaps.is_empty()))>
                <button class="ghost" data-testid="export-heatmaps" disabled=move || !idle()
                    on:click=export(ExportFormat::Heatmaps)>"Zip of heatmaps"</button>
            </Show>
        </div>
        {move || animate.with(|a| a.export).map(|e| view! {
            <p class="hint" data-testid="export-progress">
                {format!("Exporting {}… {}/{} frames", e.format.extension(), e.done.0, e.done.1)}
            </p>
        })}
        {move || animate.with(|a| a.exported.clone()).map(|f| {
            let (url, name) = (f.url.clone(), f.name.clone());
            view! {
                <p class="row">
                    <a data-testid="export-download" href=f.url download=f.name.clone()
                        data-frames=f.frames.to_string()>{format!("Save {} ({}, {} frames)", f.name, bytes_text(f.bytes as u64), f.frames)}</a>
                    <button class="ghost" on:click=move |_| browser::download(&url, &name)>"Download again"</button>
                </p>
            }
        })}
    }
}

/// WebM through `MediaRecorder` on this page (browsers without WebCodecs' `VideoEncoder`).
fn record_on_page(animate: RwSignal<Animate>) {
    let mut started = None;
    animate.update(|a| started = a.start_local_export(ExportFormat::Webm));
    let Some((urls, fps)) = started else { return };
    leptos::task::spawn_local(async move {
        let progress = move |done| animate.update(|a| a.local_export_progress(done));
        let result = recorder::record(&urls, fps, progress).await;
        animate.update(|a| a.finish_local_export(result));
    });
}

/// The renders kept in this browser: open, delete, sizes.
#[component]
pub fn RendersCard() -> impl IntoView {
    let shared = expect_context::<Shared>();
    let animate = shared.animate;
    let open = move |id: String| {
        let mut m = None;
        animate.update(|a| m = Some(a.open(&id)));
        send(shared, m);
    };
    let stored = Memo::new(move |_| animate.with(|a| a.stored.clone()));
    view! {
        <section class="card">
            <h2>"Renders in this browser"</h2>
            <ul class="cache-list" data-testid="render-list">
                {move || stored.get().into_iter().map(|r| {
                    let (id, del) = (r.id.clone(), r.id.clone());
                    let state = if r.complete { "" } else { " · unfinished" };
                    view! {
                        <li data-testid="stored-render">
                            <span class="grow">{format!("{} — {} frames, {}{state}",
                                short(&r.job.frame.prompt), r.frames, bytes_text(r.bytes))}</span>
                            <button class="ghost" on:click=move |_| open(id.clone())>"Open"</button>
                            <button class="ghost" data-testid="render-delete"
                                on:click=move |_| shared.send(&ToWorker::DeleteRender { render: del.clone() })>
                                "Delete"
                            </button>
                        </li>
                    }
                }).collect_view()}
            </ul>
        </section>
    }
}

fn short(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(48).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}
