//! The keyframe grid: one row per keyframe, a value and a formula column per displayed field,
//! interpolated values in empty cells, inline errors, Ctrl+A / Ctrl+D / Ctrl+Z / Shift+Ctrl+Z.
//! Virtualised: only the rows in view exist, so thousands of keyframes scroll smoothly.

use leptos::html::Input;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::parseq::{EditorSignal, with_editor};
use crate::parseq::{ParseqEditor, Row};

/// Height of a row in pixels (the stylesheet's `.parseq-grid tr`).
const ROW_PX: f64 = 30.0;
/// Rows rendered beyond those in view.
const OVERSCAN: usize = 4;
/// Rows in view (the grid's height / the row height).
const IN_VIEW: usize = 10;

/// A number as the grid shows it: up to 4 decimals.
pub fn short(v: f64) -> String {
    let text = format!("{v:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.to_owned()
    }
}

/// The keyframe grid.
#[component]
pub fn ParseqGrid(editor: EditorSignal, error: RwSignal<Option<String>>) -> impl IntoView {
    let scroll = RwSignal::new(0.0f64);
    let focused = RwSignal::new(None::<i64>);
    let fields = Memo::new(move |_| {
        editor.with(|e| {
            e.as_ref()
                .map(ParseqEditor::displayed_fields)
                .unwrap_or_default()
        })
    });
    let count = Memo::new(move |_| {
        editor.with(|e| e.as_ref().map_or(0, |e| e.document().keyframes().len()))
    });
    let first = move || ((scroll.get() / ROW_PX) as usize).saturating_sub(OVERSCAN);
    let last = move || (first() + IN_VIEW + 2 * OVERSCAN).min(count.get());
    let on_scroll = move |ev: leptos::ev::Event| {
        if let Some(el) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        {
            scroll.set(f64::from(el.scroll_top()));
        }
    };
    let on_key = move |ev: leptos::ev::KeyboardEvent| shortcut(editor, error, focused, &ev);
    view! {
        <div class="parseq-grid" data-testid="parseq-grid" on:scroll=on_scroll on:keydown=on_key>
            <table>
                <thead><tr>
                    <th>"Frame"</th><th>"Info"</th>
                    {move || fields.get().into_iter().map(|f| view! {
                        <th>{f.clone()}</th><th class="formula">{format!("{f} formula")}</th>
                    }).collect_view()}
                </tr></thead>
                <tbody>
                    <tr class="spacer" style:height=move || format!("{}px", first() as f64 * ROW_PX)></tr>
                    <For each=move || first()..last() key=|i| *i let:index>
                        <GridRow editor=editor error=error index=index fields=fields focused=focused/>
                    </For>
                    <tr class="spacer" style:height=move || format!("{}px", count.get().saturating_sub(last()) as f64 * ROW_PX)></tr>
                </tbody>
            </table>
        </div>
    }
}

/// Ctrl+A adds a keyframe after the focused one, Ctrl+D deletes it, Ctrl+Z / Shift+Ctrl+Z undo
/// and redo.
fn shortcut(
    editor: EditorSignal,
    error: RwSignal<Option<String>>,
    focused: RwSignal<Option<i64>>,
    ev: &leptos::ev::KeyboardEvent,
) {
    if !(ev.ctrl_key() || ev.meta_key()) {
        return;
    }
    let frame = focused.get_untracked();
    match (
        ev.key().to_ascii_lowercase().as_str(),
        ev.shift_key(),
        frame,
    ) {
        ("a", _, Some(f)) => {
            with_editor(editor, error, |e| e.add_keyframe_after(f).map(drop));
        }
        ("d", _, Some(f)) => {
            with_editor(editor, error, |e| e.delete_keyframe(f));
        }
        ("z", false, _) => {
            with_editor(editor, error, ParseqEditor::undo);
        }
        ("z", true, _) | ("y", _, _) => {
            with_editor(editor, error, ParseqEditor::redo);
        }
        _ => return,
    }
    ev.prevent_default();
}

/// One keyframe's row (the `index`-th keyframe).
#[component]
fn GridRow(
    editor: EditorSignal,
    error: RwSignal<Option<String>>,
    index: usize,
    fields: Memo<Vec<String>>,
    focused: RwSignal<Option<i64>>,
) -> impl IntoView {
    let row = Memo::new(move |_| {
        let fields = fields.get();
        editor.with(|e| {
            e.as_ref()
                .and_then(|e| e.rows(index..index + 1, &fields).pop())
        })
    });
    let frame = move || row.with(|r| r.as_ref().map_or(0, |r| r.frame));
    let on_focus = move |_| {
        let f = frame();
        focused.set(Some(f));
        editor.update(|e| {
            if let Some(e) = e.as_mut() {
                e.cursor = f
            }
        });
    };
    let cell = move |k: usize, formula: bool| {
        let text = Signal::derive(move || row.with(|r| cell_text(r.as_ref(), k, formula)));
        let hint = Signal::derive(move || {
            row.with(|r| {
                r.as_ref()
                    .and_then(|r| r.cells.get(k))
                    .filter(|_| !formula)
                    .and_then(|c| c.rendered)
                    .map(short)
                    .unwrap_or_default()
            })
        });
        let field = move || fields.with(|f| f.get(k).cloned().unwrap_or_default());
        let testid = move || {
            format!(
                "cell-{}-{}{}",
                frame(),
                field(),
                if formula { "_i" } else { "" }
            )
        };
        let on_input = move |text: String| {
            let (f, name) = (frame(), field());
            with_editor(editor, error, |e| {
                e.cursor = f;
                if formula {
                    e.set_formula(f, &name, &text)
                } else {
                    e.set_value(f, &name, &text)
                }
            });
        };
        view! { <td class:formula=formula><CellInput text=text hint=hint testid=Signal::derive(testid) on_input=on_input editor=editor/></td> }
    };
    let info = Signal::derive(move || {
        row.with(|r| r.as_ref().map(|r| r.info.clone()).unwrap_or_default())
    });
    view! {
        <tr on:focusin=on_focus class:current=move || focused.get() == Some(frame())>
            <td class="frame" data-testid="grid-frame">{frame}</td>
            <td><CellInput text=info hint=Signal::derive(String::new)
                testid=Signal::derive(move || format!("cell-{}-info", frame()))
                on_input=move |t: String| { let f = frame(); with_editor(editor, error, |e| e.set_info(f, &t)); }
                editor=editor/></td>
            {move || (0..fields.with(Vec::len)).map(|k| (cell(k, false), cell(k, true))).collect_view()}
        </tr>
    }
}

fn cell_text(row: Option<&Row>, k: usize, formula: bool) -> String {
    let Some(c) = row.and_then(|r| r.cells.get(k)) else {
        return String::new();
    };
    match (formula, c.value) {
        (true, _) => c.formula.clone(),
        (false, Some(v)) => crate::parseq::number_text(v),
        (false, None) => String::new(),
    }
}

/// A text input that follows `text` unless the user is typing in it.
#[component]
fn CellInput(
    text: Signal<String>,
    hint: Signal<String>,
    testid: Signal<String>,
    on_input: impl Fn(String) + 'static,
    editor: EditorSignal,
) -> impl IntoView {
    let node = NodeRef::<Input>::new();
    Effect::new(move |_| {
        let t = text.get();
        if let Some(el) = node.get() {
            let active = el.owner_document().and_then(|d| d.active_element());
            let typing = active.is_some_and(|a| {
                wasm_bindgen::JsValue::from(a) == wasm_bindgen::JsValue::from(el.clone())
            });
            if !typing {
                el.set_value(&t);
            }
        }
    });
    let commit = move |_| {
        editor.update(|e| {
            if let Some(e) = e.as_mut() {
                e.commit()
            }
        })
    };
    view! {
        <input type="text" node_ref=node spellcheck="false" data-testid=testid
            value=text.get_untracked() placeholder=hint
            on:input=move |ev| on_input(event_target_value(&ev)) on:change=commit/>
    }
}
