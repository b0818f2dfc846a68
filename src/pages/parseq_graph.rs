//! The graph: each displayed field's curve over the frames in view (SVG, decimated to the
//! pixels), keyframe nodes to drag, zoom (wheel) and pan (drag), beat markers, prompt ranges, an
//! x axis in frames, seconds or beats, and the cursor of the scrubbed frame.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::parseq::{EditorSignal, with_editor};
use super::parseq_grid::short;
use crate::parseq::{ParseqEditor, number_text};
use crate::parseq_view::{
    Axis, View, curve_path, field_values, keyframe_nodes, prompt_spans, ticks, value_range,
};

/// The drawing's size in SVG units.
const W: f64 = 720.0;
const H: f64 = 220.0;

/// What a pointer is doing on the graph.
#[derive(Clone, Debug, PartialEq)]
enum Gesture {
    /// Dragging a keyframe node of a field; `lo..hi` is the field's range when it began.
    Node {
        field: String,
        frame: i64,
        lo: f64,
        hi: f64,
    },
    /// Panning from this x with this view.
    Pan { x: f64, view: View, moved: bool },
}

/// The graph.
#[component]
pub fn ParseqGraph(
    editor: EditorSignal,
    error: RwSignal<Option<String>>,
    view: RwSignal<Option<View>>,
) -> impl IntoView {
    let axis = RwSignal::new(Axis::Frames);
    let gesture = RwSignal::new(None::<Gesture>);
    let full = move || editor.with(|e| View::all(e.as_ref()));
    let shown = move || view.get().unwrap_or_else(full);
    let shown_memo = Memo::new(move |_| shown());
    let fields = Memo::new(move |_| {
        editor.with(|e| {
            e.as_ref()
                .map(ParseqEditor::displayed_fields)
                .unwrap_or_default()
        })
    });
    // Each field's range, for the legend (and to drag a node in).
    let ranges = Memo::new(move |_| {
        fields.with(|fields| {
            editor.with(|e| {
                let Some(e) = e.as_ref() else {
                    return Vec::new();
                };
                fields
                    .iter()
                    .filter_map(|f| Some((f.clone(), value_range(field_values(e, f)?.1))))
                    .collect::<Vec<_>>()
            })
        })
    });
    let svg = NodeRef::<leptos::svg::Svg>::new();
    let point = move |ev: &web_sys::MouseEvent| {
        svg.get().map_or((0.0, 0.0), |el| {
            let (w, h) = (
                f64::from(el.client_width().max(1)),
                f64::from(el.client_height().max(1)),
            );
            (
                f64::from(ev.offset_x()) * W / w,
                f64::from(ev.offset_y()) * H / h,
            )
        })
    };
    let on_down = move |ev: leptos::ev::PointerEvent| {
        let node = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .and_then(|el| {
                Some((
                    el.get_attribute("data-field")?,
                    el.get_attribute("data-frame")?,
                ))
            });
        let next = match node {
            Some((field, frame)) => {
                let Some((lo, hi)) = ranges.with_untracked(|r| {
                    r.iter().find(|(f, _)| *f == field).map(|(_, range)| *range)
                }) else {
                    return;
                };
                Gesture::Node {
                    field,
                    frame: frame.parse().unwrap_or(0),
                    lo,
                    hi,
                }
            }
            None => Gesture::Pan {
                x: point(&ev).0,
                view: shown(),
                moved: false,
            },
        };
        if let Some(el) = svg.get() {
            let _ = el.set_pointer_capture(ev.pointer_id());
        }
        gesture.set(Some(next));
    };
    let on_move = move |ev: leptos::ev::PointerEvent| {
        let (x, y) = point(&ev);
        match gesture.get_untracked() {
            Some(Gesture::Node {
                field,
                frame,
                lo,
                hi,
            }) => {
                let value = crate::parseq_view::value_at_y(y, lo, hi, H);
                with_editor(editor, error, |e| {
                    e.cursor = frame;
                    e.set_value(frame, &field, &number_text(value))
                });
            }
            Some(Gesture::Pan { x: x0, view: v, .. }) => {
                let dx = (x - x0) / W * (v.end - v.start);
                if dx.abs() > 0.0 {
                    view.set(Some(
                        View {
                            start: v.start - dx,
                            end: v.end - dx,
                        }
                        .within(full()),
                    ));
                    gesture.set(Some(Gesture::Pan {
                        x: x0,
                        view: v,
                        moved: true,
                    }));
                }
            }
            None => {}
        }
    };
    let on_up = move |ev: leptos::ev::PointerEvent| {
        match gesture.get_untracked() {
            Some(Gesture::Pan { moved: false, .. }) => {
                let frame = shown().frame_at(point(&ev).0, W).round() as i64;
                editor.update(|e| {
                    if let Some(e) = e.as_mut() {
                        e.cursor = frame
                    }
                });
            }
            Some(Gesture::Node { .. }) => editor.update(|e| {
                if let Some(e) = e.as_mut() {
                    e.commit()
                }
            }),
            _ => {}
        }
        gesture.set(None);
    };
    let on_wheel = move |ev: leptos::ev::WheelEvent| {
        ev.prevent_default();
        let v = shown();
        let at = v.frame_at(point(&ev).0, W);
        let factor = if ev.delta_y() < 0.0 { 0.8 } else { 1.25 };
        view.set(Some(v.zoom(at, factor).within(full())));
    };
    let cursor_x = move || {
        let c = editor.with(|e| e.as_ref().map_or(0, |e| e.cursor)) as f64;
        shown().x_of(c, W)
    };
    let timing = move || editor.with(|e| e.as_ref().map_or((20.0, 140.0), ParseqEditor::timing));
    view! {
        <div class="parseq-graph-bar row">
            <label class="field">
                <span>"X axis"</span>
                <select data-testid="graph-axis" on:change=move |ev| axis.set(Axis::from_name(&event_target_value(&ev)))>
                    <option value="frames">"Frames"</option>
                    <option value="seconds">"Seconds"</option>
                    <option value="beats">"Beats"</option>
                </select>
            </label>
            <button class="ghost" data-testid="graph-reset" on:click=move |_| view.set(None)>"Show all frames"</button>
            <span class="hint">"Drag a node to change its value; wheel to zoom, drag to pan, click to move the cursor."</span>
        </div>
        <svg class="parseq-graph" data-testid="parseq-graph" node_ref=svg
            viewBox=format!("0 0 {W} {H}") preserveAspectRatio="none"
            on:pointerdown=on_down on:pointermove=on_move on:pointerup=on_up on:wheel=on_wheel
            on:dblclick=move |_| view.set(None)>
            <rect class="bg" x="0" y="0" width=W height=H/>
            {move || {
                let (fps, bpm) = timing();
                ticks(shown(), axis.get(), fps, bpm, W).into_iter().map(|(x, label, beat)| view! {
                    <line class=if beat { "beat" } else { "tick" } x1=x x2=x y1="12" y2=H - 14.0/>
                    <text class="tick-label" x=x + 2.0 y=H - 3.0>{label}</text>
                }).collect_view()
            }}
            {move || editor.with(|e| e.as_ref().map(|e| prompt_spans(e, shown(), W)).unwrap_or_default())
                .into_iter().map(|(x1, x2, name)| view! {
                    <rect class="prompt-span" x=x1 y="0" width=(x2 - x1).max(1.0) height="10"><title>{name}</title></rect>
                }).collect_view()}
            <For each=move || fields.get().into_iter().enumerate() key=|f| f.clone() let:((colour, field))>
                <FieldCurve editor=editor field=field colour=colour % 8 view=shown_memo/>
            </For>
            <line class="cursor" data-testid="graph-cursor" x1=cursor_x x2=cursor_x y1="0" y2=H/>
        </svg>
        <ul class="legend">
            {move || ranges.get().into_iter().enumerate().map(|(colour, (field, (lo, hi)))| view! {
                <li class=format!("series-{}", colour % 8)>{format!("{field} ({} … {})", short(lo), short(hi))}</li>
            }).collect_view()}
        </ul>
    }
}

/// A field's curve and its keyframe nodes. Each part is its own memo: an edit of another
/// field, or one that leaves this field's values as they were, changes nothing here.
#[component]
fn FieldCurve(
    editor: EditorSignal,
    field: String,
    colour: usize,
    view: Memo<View>,
) -> impl IntoView {
    // A copy of the field's values, kept (and not signalled) while an edit leaves them equal.
    let values = Memo::new_owning({
        let field = field.clone();
        move |old: Option<Option<(i64, Vec<f64>)>>| {
            editor.with(|e| {
                let now = e.as_ref().and_then(|e| field_values(e, &field));
                match (old, now) {
                    (Some(Some((f, v))), Some((first, now))) if f == first && v == now => {
                        (Some((f, v)), false)
                    }
                    (_, now) => (now.map(|(f, v)| (f, v.to_vec())), true),
                }
            })
        }
    });
    let range =
        Memo::new(move |_| values.with(|v| v.as_ref().map_or((0.0, 1.0), |(_, v)| value_range(v))));
    let path = Memo::new(move |_| {
        let (r, v) = (range.get(), view.get());
        values.with(|values| {
            values
                .as_ref()
                .map(|(first, values)| curve_path(values, *first, r, v, W, H))
                .unwrap_or_default()
        })
    });
    let nodes = Memo::new({
        let field = field.clone();
        move |_| {
            let (r, v) = (range.get(), view.get());
            values.with(|values| {
                editor.with(|e| match (e.as_ref(), values.as_ref()) {
                    (Some(e), Some((first, values))) => {
                        keyframe_nodes(e, &field, (*first, values), r, v, (W, H))
                    }
                    _ => Vec::new(),
                })
            })
        }
    });
    let class = format!("series series-{colour}");
    view! {
        <path class=class.clone() data-testid=format!("curve-{field}") d=move || path.get()/>
        {move || nodes.get().into_iter().map(|(frame, x, y)| view! {
            <circle class=class.clone() r="4" cx=x cy=y data-field=field.clone() data-frame=frame
                data-testid=format!("node-{field}-{frame}")/>
        }).collect_view()}
    }
}
