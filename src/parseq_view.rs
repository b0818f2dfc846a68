//! The Parseq graph's geometry as plain functions: the frames in view, zoom and pan, each
//! field's curve decimated to the pixels (min and max per column), keyframe nodes, axis ticks in
//! frames, seconds or beats, beat markers and prompt ranges. Tested natively.

use std::fmt::Write as _;

use serde_json::Value as Json;

use crate::parseq::ParseqEditor;

/// The plot's top and bottom margins (the prompt strip above, the axis labels below).
const TOP: f64 = 14.0;
const BOTTOM: f64 = 18.0;

/// The frames in view.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View {
    /// First frame in view.
    pub start: f64,
    /// Last frame in view.
    pub end: f64,
}

impl View {
    /// The frame at `x` of a `width`-wide drawing.
    pub fn frame_at(&self, x: f64, width: f64) -> f64 {
        self.start + x / width * (self.end - self.start)
    }

    /// The x of `frame`.
    pub fn x_of(&self, frame: f64, width: f64) -> f64 {
        (frame - self.start) / (self.end - self.start).max(f64::EPSILON) * width
    }

    /// Zoomed by `factor` (below 1: in) about `at`.
    pub fn zoom(&self, at: f64, factor: f64) -> Self {
        Self {
            start: at - (at - self.start) * factor,
            end: at + (self.end - at) * factor,
        }
    }

    /// Kept within `full`, at least 4 frames wide.
    pub fn within(self, full: View) -> Self {
        let span = (self.end - self.start)
            .clamp(4.0_f64.min(full.end - full.start), full.end - full.start);
        let start = self.start.clamp(full.start, full.end - span);
        Self {
            start,
            end: start + span,
        }
    }
}

impl View {
    /// Every frame of `editor`'s document (`None`: a placeholder of one frame).
    pub fn all(editor: Option<&ParseqEditor>) -> Self {
        editor.map_or(
            Self {
                start: 0.0,
                end: 1.0,
            },
            |e| {
                let r = e.rendered();
                let last = (r.first_frame + r.frame_count as i64 - 1).max(r.first_frame + 1);
                Self {
                    start: r.first_frame as f64,
                    end: last as f64,
                }
            },
        )
    }
}

/// The x axis' unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// Frame numbers.
    Frames,
    /// Seconds at the document's FPS.
    Seconds,
    /// Beats at the document's BPM.
    Beats,
}

impl Axis {
    /// The unit called `name` (frames when unknown).
    pub fn from_name(name: &str) -> Self {
        match name {
            "seconds" => Self::Seconds,
            "beats" => Self::Beats,
            _ => Self::Frames,
        }
    }
}

/// A field's curve.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    /// The field.
    pub field: String,
    /// Its colour's index in the stylesheet's palette (`series-N`).
    pub colour: usize,
    /// The SVG path.
    pub path: String,
    /// The lowest and highest values (the plot's range for this field).
    pub lo: f64,
    /// Highest value.
    pub hi: f64,
    /// Keyframe nodes in view: frame, x, y.
    pub nodes: Vec<(i64, f64, f64)>,
}

/// The y of `value` on a plot `height` high for the range `lo..hi`.
fn y_of(value: f64, lo: f64, hi: f64, height: f64) -> f64 {
    let t = if hi > lo {
        (value - lo) / (hi - lo)
    } else {
        0.5
    };
    TOP + (1.0 - t) * (height - TOP - BOTTOM)
}

/// The value at `y` for the range `lo..hi` (the inverse of the plot; a flat field's range is
/// widened so a node can be dragged off it).
pub fn value_at_y(y: f64, lo: f64, hi: f64, height: f64) -> f64 {
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 1.0, hi + 1.0)
    };
    let t = 1.0 - (y - TOP) / (height - TOP - BOTTOM);
    let v = lo + t * (hi - lo);
    // Four significant decimals are enough for a dragged value.
    (v * 10_000.0).round() / 10_000.0
}

/// A field's rendered values and the frame of the first: what its curve is drawn from.
pub fn field_values<'e>(editor: &'e ParseqEditor, field: &str) -> Option<(i64, &'e [f64])> {
    let rendered = editor.rendered();
    Some((rendered.first_frame, &rendered.field(field)?.values))
}

/// The lowest and highest finite values (the plot's range for a field); 0..1 when none is.
pub fn value_range(values: &[f64]) -> (f64, f64) {
    let (lo, hi) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    if lo <= hi { (lo, hi) } else { (0.0, 1.0) }
}

/// The SVG path of a field's `values` (frame `first + i`) over `view`, in the range `lo..hi`.
pub fn curve_path(
    values: &[f64],
    first: i64,
    (lo, hi): (f64, f64),
    view: View,
    width: f64,
    height: f64,
) -> String {
    path(values, first, view, width, |v| y_of(v, lo, hi, height))
}

/// The keyframe nodes of `field` in view: frame, x, y (`values` as [`field_values`] gives them).
pub fn keyframe_nodes(
    editor: &ParseqEditor,
    field: &str,
    (first, values): (i64, &[f64]),
    (lo, hi): (f64, f64),
    view: View,
    (width, height): (f64, f64),
) -> Vec<(i64, f64, f64)> {
    editor
        .document()
        .keyframes()
        .iter()
        .filter_map(|k| {
            let frame = k.get("frame").and_then(Json::as_f64)? as i64;
            k.get(field).and_then(Json::as_f64)?;
            let v = *values.get(usize::try_from(frame - first).ok()?)?;
            let x = view.x_of(frame as f64, width);
            (-1.0..=width + 1.0)
                .contains(&x)
                .then(|| (frame, x, y_of(v, lo, hi, height)))
        })
        .collect()
}

/// The curves of the displayed fields over `view`.
pub fn curves(editor: &ParseqEditor, view: View, width: f64, height: f64) -> Vec<Curve> {
    editor
        .displayed_fields()
        .into_iter()
        .enumerate()
        .filter_map(|(colour, field)| {
            let (first, values) = field_values(editor, &field)?;
            let range = value_range(values);
            let path = curve_path(values, first, range, view, width, height);
            let nodes = keyframe_nodes(
                editor,
                &field,
                (first, values),
                range,
                view,
                (width, height),
            );
            Some(Curve {
                field,
                colour: colour % 8,
                path,
                lo: range.0,
                hi: range.1,
                nodes,
            })
        })
        .collect()
}

/// Appends `v` rounded to one decimal (all an SVG coordinate needs here), without the cost of
/// formatting a float.
fn push_tenths(out: &mut String, v: f64) {
    let tenths = (v * 10.0).round();
    if !tenths.is_finite() || tenths.abs() > 1e15 {
        let _ = write!(out, "{v:.1}");
        return;
    }
    let t = tenths as i64;
    if t < 0 {
        out.push('-');
    }
    let a = t.unsigned_abs();
    let _ = write!(out, "{}", a / 10);
    if !a.is_multiple_of(10) {
        out.push('.');
        out.push(char::from(b'0' + (a % 10) as u8));
    }
}

/// The SVG path of `values` (frame `first + i`) over `view`: every frame when they are few,
/// else the lowest and highest value of each pixel column.
fn path(values: &[f64], first: i64, view: View, width: f64, y: impl Fn(f64) -> f64) -> String {
    let from = ((view.start.floor() as i64 - first).max(0)) as usize;
    let to = ((view.end.ceil() as i64 - first + 1).max(0) as usize).min(values.len());
    let mut points: Vec<(f64, f64)> = Vec::new();
    let columns = width.max(1.0) as usize;
    if to.saturating_sub(from) <= 2 * columns {
        for (i, v) in values.iter().enumerate().take(to).skip(from) {
            points.push((view.x_of((first + i as i64) as f64, width), y(*v)));
        }
    } else {
        let per = (to - from) as f64 / columns as f64;
        for c in 0..columns {
            let a = from + (c as f64 * per) as usize;
            let b = (from + ((c + 1) as f64 * per) as usize).min(to).max(a + 1);
            let (lo, hi) = values[a..b]
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
            let x = c as f64 + 0.5;
            points.push((x, y(hi)));
            points.push((x, y(lo)));
        }
    }
    let mut d = String::with_capacity(points.len() * 14);
    for (i, (x, y)) in points.iter().filter(|p| p.1.is_finite()).enumerate() {
        d.push(if i == 0 { 'M' } else { 'L' });
        push_tenths(&mut d, *x);
        d.push(' ');
        push_tenths(&mut d, *y);
    }
    d
}

/// Axis ticks over `view`: x, label, and whether it is a beat marker (drawn fainter).
pub fn ticks(view: View, axis: Axis, fps: f64, bpm: f64, width: f64) -> Vec<(f64, String, bool)> {
    let frames_per = match axis {
        Axis::Frames => 1.0,
        Axis::Seconds => fps,
        Axis::Beats => fps * 60.0 / bpm,
    };
    let span_units = (view.end - view.start) / frames_per;
    // About one labelled tick per 80 pixels, at 1, 2 or 5 × 10^k units.
    let raw = span_units / (width / 80.0).max(1.0);
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(magnitude * 10.0);
    let mut out = Vec::new();
    let mut u = (view.start / frames_per / step).ceil() * step;
    while u * frames_per <= view.end && out.len() < 200 {
        let label = if step >= 1.0 {
            format!("{u:.0}")
        } else {
            format!("{u:.1}")
        };
        out.push((view.x_of(u * frames_per, width), label, false));
        u += step;
    }
    // Beat markers when they are at least 6 pixels apart.
    let per_beat = fps * 60.0 / bpm;
    if per_beat > 0.0 && view.x_of(view.start + per_beat, width) >= 6.0 {
        let mut b = (view.start / per_beat).ceil() * per_beat;
        while b <= view.end && out.len() < 600 {
            out.push((view.x_of(b, width), String::new(), true));
            b += per_beat;
        }
    }
    out
}

/// The prompts' frame ranges over `view`: x from, x to, name.
pub fn prompt_spans(editor: &ParseqEditor, view: View, width: f64) -> Vec<(f64, f64, String)> {
    let doc = editor.document().json();
    let Some(list) = doc
        .get("prompts")
        .and_then(|p| p.get("promptList"))
        .and_then(Json::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter(|p| p.get("enabled") != Some(&Json::Bool(false)))
        .filter(|p| p.get("allFrames") != Some(&Json::Bool(true)))
        .filter_map(|p| {
            let from = p.get("from").and_then(Json::as_f64)?;
            let to = p.get("to").and_then(Json::as_f64)?;
            let name = p
                .get("name")
                .and_then(Json::as_str)
                .unwrap_or("Prompt")
                .to_owned();
            let (x1, x2) = (view.x_of(from, width), view.x_of(to, width));
            (x2 >= 0.0 && x1 <= width).then(|| (x1.max(0.0), x2.min(width), name))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parseq::tests::catduck;

    #[test]
    fn views_zoom_pan_and_stay_within_the_frames() {
        let full = View {
            start: 0.0,
            end: 119.0,
        };
        assert_eq!(full.x_of(119.0, 720.0), 720.0);
        assert_eq!(full.frame_at(360.0, 720.0), 59.5);
        let z = full.zoom(60.0, 0.5);
        assert_eq!((z.start, z.end), (30.0, 89.5));
        let panned = View {
            start: -20.0,
            end: 39.5,
        }
        .within(full);
        assert_eq!((panned.start, panned.end), (0.0, 59.5));
        let tiny = View {
            start: 10.0,
            end: 10.5,
        }
        .within(full);
        assert_eq!(tiny.end - tiny.start, 4.0);
    }

    #[test]
    fn curves_have_nodes_and_follow_edits() {
        let mut e = catduck();
        let view = View {
            start: 0.0,
            end: 119.0,
        };
        let before = curves(&e, view, 720.0, 220.0);
        let zoom = before.iter().find(|c| c.field == "zoom").cloned();
        let Some(zoom) = zoom else {
            panic!("zoom is displayed");
        };
        assert_eq!(
            zoom.nodes.iter().map(|n| n.0).collect::<Vec<_>>(),
            [0, 40, 119]
        );
        // Catmull-Rom ("C") overshoots the 1.5 keyframe a little.
        assert!(
            zoom.lo == 0.5 && zoom.hi > 1.5 && zoom.hi < 1.52,
            "{zoom:?}"
        );
        assert!(zoom.path.starts_with('M'));
        assert_eq!(e.set_value(40, "zoom", "2"), Ok(()));
        let after = curves(&e, view, 720.0, 220.0);
        let changed = after
            .iter()
            .find(|c| c.field == "zoom")
            .map(|c| c.path.clone());
        assert_ne!(changed, Some(zoom.path));
        // A dragged node's y maps back to its value.
        let y = y_of(1.25, 0.5, 1.5, 220.0);
        assert!((value_at_y(y, 0.5, 1.5, 220.0) - 1.25).abs() < 1e-4);
    }

    #[test]
    fn coordinates_are_written_to_a_tenth() {
        for v in [
            0.0, 0.04, 0.05, 0.96, 1.0, 12.34, 219.99, -0.04, -0.06, -3.25, 719.5,
        ] {
            let mut ours = String::new();
            push_tenths(&mut ours, v);
            let parsed: f64 = ours.parse().unwrap();
            assert!((parsed - v).abs() <= 0.05 + 1e-9, "{v} written as {ours}");
            assert!(
                !ours.ends_with(".0") && ours != "-0",
                "{v} written as {ours}"
            );
        }
        let mut out = String::new();
        push_tenths(&mut out, 3.96);
        assert_eq!(out, "4");
    }

    #[test]
    fn long_series_are_decimated_to_the_pixels() {
        let values: Vec<f64> = (0..10_000).map(|i| f64::from(i % 7)).collect();
        let view = View {
            start: 0.0,
            end: 9_999.0,
        };
        let d = path(&values, 0, view, 100.0, |v| v);
        assert_eq!(d.matches('L').count() + 1, 200, "two points per column");
        let short = path(
            &values[..50],
            0,
            View {
                start: 0.0,
                end: 49.0,
            },
            100.0,
            |v| v,
        );
        assert_eq!(short.matches('L').count() + 1, 50);
    }

    #[test]
    fn ticks_in_every_unit_and_beats() {
        let view = View {
            start: 0.0,
            end: 119.0,
        };
        let frames = ticks(view, Axis::Frames, 20.0, 140.0, 720.0);
        let labels: Vec<&str> = frames
            .iter()
            .filter(|t| !t.2)
            .map(|t| t.1.as_str())
            .collect();
        assert_eq!(labels, ["0", "20", "40", "60", "80", "100"]);
        let seconds = ticks(view, Axis::Seconds, 20.0, 140.0, 720.0);
        assert!(seconds.iter().any(|t| t.1 == "5"));
        let beats = frames.iter().filter(|t| t.2).count();
        // 120 frames at 20 fps and 140 bpm: 14 beats.
        assert_eq!(beats, 14);
        assert_eq!(Axis::from_name("beats"), Axis::Beats);
    }

    #[test]
    fn prompt_spans_come_from_the_prompts() {
        let e = catduck();
        let spans = prompt_spans(
            &e,
            View {
                start: 0.0,
                end: 119.0,
            },
            720.0,
        );
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].2, "Prompt 1");
        assert_eq!((spans[0].0, spans[0].1), (0.0, 720.0));
    }
}
