//! The Parseq editor's panels: options (FPS, BPM, cadence, final frame, keyframe lock, reverse),
//! the managed and displayed fields with sparklines, and the keyframe tools (add at positions or
//! intervals, find & delete, bulk edit).

use keyshift_core::parseq::document::{DEFAULT_FIELDS, json_to_number};
use leptos::prelude::*;

use super::parseq::{EditorSignal, with_editor};
use crate::parseq::{ParseqEditor, number_text};
use crate::parseq_ops::{Matcher, Part, Unit};

/// A number typed into an option field.
fn number(ev: &leptos::ev::Event) -> Result<f64, String> {
    let text = event_target_value(ev);
    text.trim()
        .parse::<f64>()
        .map_err(|_| format!("\"{text}\" is not a number"))
}

/// FPS, BPM, cadence, final frame, keyframe lock and reverse render.
#[component]
pub fn OptionsPanel(editor: EditorSignal, error: RwSignal<Option<String>>) -> impl IntoView {
    let option = move |name: &'static str| {
        Memo::new(move |_| {
            editor.with(|e| {
                e.as_ref()
                    .and_then(|e| {
                        e.document()
                            .option(name)
                            .map(|v| number_text(json_to_number(v)))
                    })
                    .unwrap_or_default()
            })
        })
    };
    let (fps, bpm, cadence) = (option("output_fps"), option("bpm"), option("cadence"));
    let on_fps = move |ev: leptos::ev::Event| {
        let bpm_now = editor.with_untracked(|e| e.as_ref().map_or(140.0, |e| e.timing().1));
        with_editor(editor, error, |e| e.set_timing(number(&ev)?, bpm_now));
        super::show_stored(&ev, fps);
    };
    let on_bpm = move |ev: leptos::ev::Event| {
        let fps_now = editor.with_untracked(|e| e.as_ref().map_or(20.0, |e| e.timing().0));
        with_editor(editor, error, |e| e.set_timing(fps_now, number(&ev)?));
        super::show_stored(&ev, bpm);
    };
    let lock = move || {
        editor.with(|e| {
            e.as_ref()
                .and_then(|e| {
                    e.document()
                        .json()
                        .get("keyframeLock")
                        .and_then(|v| v.as_str().map(str::to_owned))
                })
                .unwrap_or_else(|| "frames".into())
        })
    };
    let last = Memo::new(move |_| {
        editor.with(|e| {
            e.as_ref()
                .and_then(|e| e.keyframe_frames().last().map(ToString::to_string))
                .unwrap_or_default()
        })
    });
    view! {
        <details class="parseq-options">
            <summary>"Options: FPS, BPM, cadence, final frame, keyframe lock"</summary>
            <div class="grid">
                <label class="field"><span>"FPS"</span>
                    <input type="number" min="1" data-testid="parseq-fps" prop:value=fps on:change=on_fps/></label>
                <label class="field"><span>"BPM"</span>
                    <input type="number" min="1" data-testid="parseq-bpm" prop:value=bpm on:change=on_bpm/></label>
                <label class="field"><span>"Cadence"</span>
                    <input type="number" min="1" data-testid="parseq-cadence" prop:value=cadence
                        on:change=move |ev| {
                            with_editor(editor, error, |e| e.set_cadence(number(&ev)?));
                            super::show_stored(&ev, cadence);
                        }/></label>
                <label class="field"><span>"Final frame"</span>
                    <input type="number" data-testid="parseq-final-frame" prop:value=last
                        on:change=move |ev| {
                            with_editor(editor, error, |e| e.set_final_frame(number(&ev)? as i64));
                            super::show_stored(&ev, last);
                        }/></label>
                <label class="field"><span>"Keyframe lock (on FPS/BPM change)"</span>
                    <select data-testid="parseq-lock" on:change=move |ev| { with_editor(editor, error, |e| e.set_lock(&event_target_value(&ev))); }>
                        {["frames", "seconds", "beats"].into_iter().map(|l| view! {
                            <option value=l selected=move || lock() == l>{l}</option>
                        }).collect_view()}
                    </select></label>
                <label class="check">
                    <input type="checkbox" data-testid="parseq-reverse" prop:checked=move || editor.with(|e| e.as_ref().is_some_and(|e| e.rendered().reverse))
                        on:change=move |ev| { with_editor(editor, error, |e| e.set_reverse(event_target_checked(&ev))); }/>
                    "Generate in reverse"</label>
            </div>
        </details>
    }
}

/// A field's values as a small line (LTTB-like: the extremes of each of 60 columns).
fn sparkline(values: &[f64]) -> String {
    let (lo, hi) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    if values.is_empty() || lo > hi {
        return String::new();
    }
    let y = |v: f64| {
        if hi > lo {
            14.0 - (v - lo) / (hi - lo) * 12.0
        } else {
            8.0
        }
    };
    let columns = 60.min(values.len());
    let mut d = String::new();
    for c in 0..columns {
        let a = c * values.len() / columns;
        let b = ((c + 1) * values.len() / columns).max(a + 1);
        let v = values[a..b].iter().copied().fold(f64::NAN, f64::max);
        d.push_str(&format!(
            "{}{c} {:.1}",
            if c == 0 { 'M' } else { 'L' },
            y(v)
        ));
    }
    d
}

/// Every field Parseq knows: managed (rendered) and displayed (grid, graph), with sparklines.
#[component]
pub fn FieldsPanel(editor: EditorSignal, error: RwSignal<Option<String>>) -> impl IntoView {
    let managed = Memo::new(move |_| {
        editor.with(|e| {
            e.as_ref()
                .map(|e| e.document().managed_fields())
                .unwrap_or_default()
        })
    });
    let shown = Memo::new(move |_| {
        editor.with(|e| {
            e.as_ref()
                .map(ParseqEditor::displayed_fields)
                .unwrap_or_default()
        })
    });
    let open = RwSignal::new(false);
    let line = move |field: &'static str| {
        if !open.get() {
            return String::new();
        }
        editor.with(|e| {
            e.as_ref()
                .and_then(|e| e.rendered().field(field).map(|f| sparkline(&f.values)))
                .unwrap_or_default()
        })
    };
    view! {
        <details class="parseq-fields" on:toggle=move |ev| open.set(super::parseq::details_open(&ev))>
            <summary>{move || format!("Fields: {} managed, {} shown", managed.with(Vec::len), shown.with(Vec::len))}</summary>
            <ul class="field-list">
                {DEFAULT_FIELDS.iter().map(|(name, _)| {
                    let name: &'static str = name;
                    view! {
                        <li>
                            <label class="check"><input type="checkbox" data-testid=format!("managed-{name}")
                                prop:checked=move || managed.with(|m| m.iter().any(|f| f == name))
                                on:change=move |ev| { with_editor(editor, error, |e| e.set_managed(name, event_target_checked(&ev))); }/>{name}</label>
                            <label class="check" title="Show in the grid and the graph"><input type="checkbox" data-testid=format!("shown-{name}")
                                disabled=move || !managed.with(|m| m.iter().any(|f| f == name))
                                prop:checked=move || shown.with(|m| m.iter().any(|f| f == name))
                                on:change=move |ev| { with_editor(editor, error, |e| e.set_displayed(name, event_target_checked(&ev))); }/>"shown"</label>
                            <svg class="sparkline" viewBox="0 0 60 16" preserveAspectRatio="none"><path d=move || line(name)/></svg>
                        </li>
                    }
                }).collect_view()}
            </ul>
        </details>
    }
}

/// Add keyframes at positions or intervals, find & delete, bulk edit.
#[component]
pub fn KeyframeTools(editor: EditorSignal, error: RwSignal<Option<String>>) -> impl IntoView {
    let (positions, unit, info) = (
        RwSignal::new(String::new()),
        RwSignal::new("frames".to_owned()),
        RwSignal::new(String::new()),
    );
    let (start, end, every) = (
        RwSignal::new("0".to_owned()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
    );
    let done = RwSignal::new(String::new());
    let unit_of = move || Unit::from_name(&unit.get_untracked()).unwrap_or(Unit::Frames);
    let at_positions = move |_| {
        let n = with_editor(editor, error, |e| {
            e.add_at_positions(&positions.get_untracked(), unit_of(), &info.get_untracked())
        });
        done.set(
            n.map(|n| format!("{n} keyframes added."))
                .unwrap_or_default(),
        );
    };
    let at_intervals = move |_| {
        let parse = |s: RwSignal<String>| {
            s.get_untracked()
                .trim()
                .parse::<f64>()
                .map_err(|_| "start, end and interval must be numbers".to_owned())
        };
        let n = with_editor(editor, error, |e| {
            e.add_at_intervals(
                parse(start)?,
                parse(end)?,
                parse(every)?,
                unit_of(),
                &info.get_untracked(),
            )
        });
        done.set(
            n.map(|n| format!("{n} keyframes added."))
                .unwrap_or_default(),
        );
    };
    let text = |s: RwSignal<String>, testid: &'static str, placeholder: &'static str| {
        view! {
            <input type="text" data-testid=testid placeholder=placeholder prop:value=move || s.get() on:input=move |ev| s.set(event_target_value(&ev))/>
        }
    };
    view! {
        <details class="parseq-tools">
            <summary>"Keyframes: add at positions or intervals, find & delete, bulk edit"</summary>
            <div class="row wrap">
                <select data-testid="add-unit" on:change=move |ev| unit.set(event_target_value(&ev))>
                    <option value="frames">"frames"</option><option value="seconds">"seconds"</option><option value="beats">"beats"</option>
                </select>
                {text(info, "add-info", "info label")}
            </div>
            <div class="row wrap">
                {text(positions, "add-positions", "positions: 10, 20.5, 32")}
                <button data-testid="add-at-positions" on:click=at_positions>"Add at positions"</button>
            </div>
            <div class="row wrap">
                {text(start, "add-start", "start")}{text(end, "add-end", "end (excluded)")}{text(every, "add-interval", "interval")}
                <button data-testid="add-at-intervals" on:click=at_intervals>"Add at intervals"</button>
            </div>
            <p class="hint" data-testid="tools-done">{move || done.get()}</p>
            <FindTools editor=editor error=error done=done/>
        </details>
    }
}

/// Find & delete and bulk edit: keyframes whose field's value or formula is, or matches, a text.
#[component]
fn FindTools(
    editor: EditorSignal,
    error: RwSignal<Option<String>>,
    done: RwSignal<String>,
) -> impl IntoView {
    let (field, part, regex, pattern) = (
        RwSignal::new("seed".to_owned()),
        RwSignal::new("value".to_owned()),
        RwSignal::new(false),
        RwSignal::new(String::new()),
    );
    let (target, target_part, new_text) = (
        RwSignal::new("seed".to_owned()),
        RwSignal::new("value".to_owned()),
        RwSignal::new(String::new()),
    );
    let part_of = |s: RwSignal<String>| {
        if s.get_untracked() == "formula" {
            Part::Formula
        } else {
            Part::Value
        }
    };
    let matcher = move || Matcher::new(&pattern.get_untracked(), regex.get_untracked());
    let delete = move |_| {
        let n = with_editor(editor, error, |e| {
            e.find_delete(&field.get_untracked(), part_of(part), &matcher()?)
        });
        done.set(
            n.map(|n| format!("{n} keyframes deleted."))
                .unwrap_or_default(),
        );
    };
    let bulk = move |_| {
        let n = with_editor(editor, error, |e| {
            let m = matcher()?;
            e.bulk_edit(
                (&field.get_untracked(), part_of(part), &m),
                (
                    &target.get_untracked(),
                    part_of(target_part),
                    &new_text.get_untracked(),
                ),
            )
        });
        done.set(
            n.map(|n| format!("{n} keyframes edited."))
                .unwrap_or_default(),
        );
    };
    let fields = move || {
        editor.with(|e| {
            e.as_ref()
                .map(|e| e.document().managed_fields())
                .unwrap_or_default()
        })
    };
    let pick = move |s: RwSignal<String>, testid: &'static str| {
        view! {
            <select data-testid=testid on:change=move |ev| s.set(event_target_value(&ev))>
                {move || fields().into_iter().map(|f| view! { <option value=f.clone() selected=s.get_untracked() == f>{f.clone()}</option> }).collect_view()}
            </select>
        }
    };
    let which = move |s: RwSignal<String>, testid: &'static str| {
        view! {
            <select data-testid=testid on:change=move |ev| s.set(event_target_value(&ev))>
                <option value="value">"value"</option><option value="formula">"formula"</option>
            </select>
        }
    };
    view! {
        <div class="row wrap">
            "Where" {pick(field, "find-field")} {which(part, "find-part")}
            <select data-testid="find-how" on:change=move |ev| regex.set(event_target_value(&ev) == "regex")>
                <option value="is">"is"</option><option value="regex">"matches (regex)"</option>
            </select>
            <input type="text" data-testid="find-pattern" prop:value=move || pattern.get() on:input=move |ev| pattern.set(event_target_value(&ev))/>
            <button class="ghost" data-testid="find-delete" on:click=delete>"Delete them"</button>
        </div>
        <div class="row wrap">
            "…set" {pick(target, "bulk-field")} {which(target_part, "bulk-part")} "to"
            <input type="text" data-testid="bulk-text" prop:value=move || new_text.get() on:input=move |ev| new_text.set(event_target_value(&ev))/>
            <button class="ghost" data-testid="bulk-edit" on:click=bulk>"Bulk edit"</button>
        </div>
    }
}

/// The prompts: each one's texts, range and fades; the common prompt; evenly spacing; import.
#[component]
pub fn PromptsPanel(editor: EditorSignal, error: RwSignal<Option<String>>) -> impl IntoView {
    let count =
        Memo::new(move |_| editor.with(|e| e.as_ref().map_or(0, |e| e.prompt_list().len())));
    let (fade, pasted, done) = (
        RwSignal::new("10".to_owned()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
    );
    let common = move |key: &'static str| {
        Memo::new(move |_| {
            editor.with(|e| {
                e.as_ref()
                    .and_then(|e| {
                        e.document()
                            .json()
                            .get("prompts")
                            .and_then(|p| p.get("commonPrompt"))
                            .and_then(|c| c.get(key))
                            .and_then(|v| v.as_str().map(str::to_owned))
                    })
                    .unwrap_or_default()
            })
        })
    };
    let set_common = move |key: &'static str| {
        move |ev: leptos::ev::Event| {
            with_editor(editor, error, |e| {
                e.set_common(key, &event_target_value(&ev))
            });
        }
    };
    let pos = move || {
        editor.with(|e| {
            e.as_ref()
                .and_then(|e| {
                    e.document()
                        .json()
                        .get("prompts")
                        .and_then(|p| p.get("commonPromptPos"))
                        .and_then(|v| v.as_str().map(str::to_owned))
                })
                .unwrap_or_else(|| "append".into())
        })
    };
    let space = move |_| {
        let f = fade.get_untracked().trim().parse::<i64>().unwrap_or(0);
        with_editor(editor, error, |e| e.evenly_space(f));
    };
    let import = move |_| {
        let n = with_editor(editor, error, |e| e.import_prompts(&pasted.get_untracked()));
        done.set(
            n.map(|n| format!("{n} prompts imported."))
                .unwrap_or_default(),
        );
    };
    view! {
        <details class="parseq-prompts" open>
            <summary>{move || format!("Prompts ({})", count.get())}</summary>
            <For each=move || 0..count.get() key=|i| *i let:index>
                <PromptRow editor=editor error=error index=index/>
            </For>
            <div class="row wrap">
                <button class="ghost" data-testid="prompt-add" on:click=move |_| { with_editor(editor, error, ParseqEditor::add_prompt); }>"Add a prompt"</button>
                <input type="number" min="0" class="short" data-testid="prompt-fade" prop:value=move || fade.get() on:input=move |ev| fade.set(event_target_value(&ev))/>
                <button class="ghost" data-testid="prompts-space" on:click=space>"Evenly space (fade frames)"</button>
            </div>
            <div class="grid">
                <label class="field"><span>"Common prompt"</span>
                    <textarea rows="2" data-testid="common-positive" prop:value=common("positive") on:change=set_common("positive")></textarea></label>
                <label class="field"><span>"Common negative"</span>
                    <textarea rows="2" data-testid="common-negative" prop:value=common("negative") on:change=set_common("negative")></textarea></label>
                <label class="field"><span>"Common prompt goes"</span>
                    <select data-testid="common-pos" on:change=set_common("pos")>
                        {["append", "prepend", "template"].into_iter().map(|p| view! { <option value=p selected=move || pos() == p>{p}</option> }).collect_view()}
                    </select></label>
            </div>
            <label class="field"><span>"Import prompts: {\"0\": \"a cat --neg blurry\", \"60\": \"a dog\"} or one prompt per line"</span>
                <textarea rows="3" data-testid="prompts-import-text" prop:value=move || pasted.get() on:input=move |ev| pasted.set(event_target_value(&ev))></textarea></label>
            <button class="ghost" data-testid="prompts-import" on:click=import>"Import prompts"</button>
            <p class="hint">{move || done.get()}</p>
        </details>
    }
}

/// One prompt: name, range, all frames, overlap and fades, texts, remove.
#[component]
fn PromptRow(editor: EditorSignal, error: RwSignal<Option<String>>, index: usize) -> impl IntoView {
    use crate::parseq_prompts::PromptKey;
    let get = move |path: &'static [&'static str]| {
        Memo::new(move |_| {
            editor.with(|e| {
                let list = e
                    .as_ref()
                    .map(ParseqEditor::prompt_list)
                    .unwrap_or_default();
                let mut v = list.get(index).cloned().unwrap_or_default();
                for key in path {
                    v = v.get(*key).cloned().unwrap_or_default();
                }
                match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                }
            })
        })
    };
    let set = move |key: PromptKey| {
        move |ev: leptos::ev::Event| {
            with_editor(editor, error, |e| {
                e.set_prompt(index, key, &event_target_value(&ev))
            });
        }
    };
    let all = get(&["allFrames"]);
    let kind = get(&["overlap", "type"]);
    view! {
        <div class="prompt-row" data-testid="parseq-prompt-row">
            <div class="row wrap">
                <input type="text" class="name" data-testid="prompt-name" prop:value=get(&["name"]) on:change=set(PromptKey::Name)/>
                <label class="check"><input type="checkbox" data-testid="prompt-all" prop:checked=move || all.get() == "true"
                    on:change=move |ev| { with_editor(editor, error, |e| e.set_prompt(index, PromptKey::AllFrames, &event_target_checked(&ev).to_string())); }/>"All frames"</label>
                <span>"from"</span><input type="number" class="short" data-testid="prompt-from" prop:value=get(&["from"]) on:change=set(PromptKey::From)/>
                <span>"to"</span><input type="number" class="short" data-testid="prompt-to" prop:value=get(&["to"]) on:change=set(PromptKey::To)/>
                <select data-testid="prompt-overlap" on:change=set(PromptKey::Overlap)>
                    {["none", "linear", "custom"].into_iter().map(|k| view! { <option value=k selected=move || kind.get() == k>{k}</option> }).collect_view()}
                </select>
                <span>"fade in"</span><input type="number" class="short" data-testid="prompt-in" prop:value=get(&["overlap", "inFrames"]) on:change=set(PromptKey::InFrames)/>
                <span>"out"</span><input type="number" class="short" data-testid="prompt-out" prop:value=get(&["overlap", "outFrames"]) on:change=set(PromptKey::OutFrames)/>
                <input type="text" data-testid="prompt-custom" title="Custom weight formula" prop:value=get(&["overlap", "custom"]) on:change=set(PromptKey::Custom)/>
                <button class="ghost" data-testid="prompt-remove" on:click=move |_| { with_editor(editor, error, |e| e.remove_prompt(index)); }>"Remove"</button>
            </div>
            <textarea rows="2" data-testid="prompt-positive" prop:value=get(&["positive"]) on:change=set(PromptKey::Positive)></textarea>
            <textarea rows="1" data-testid="prompt-negative" placeholder="negative" prop:value=get(&["negative"]) on:change=set(PromptKey::Negative)></textarea>
        </div>
    }
}
