//! The Parseq editor's document-wide edits, each one undo step: options (FPS and BPM with the
//! keyframe lock, cadence, final frame, reverse render), managed and displayed fields, keyframes
//! added at positions or intervals (in frames, seconds or beats), find & delete, bulk edit.

use keyshift_core::parseq::document::{json_to_number, number_json};
use serde_json::{Map, Value as Json};

use crate::parseq::{ParseqEditor, number_text};

/// A unit of keyframe positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Frames.
    Frames,
    /// Seconds at the document's FPS.
    Seconds,
    /// Beats at the document's BPM.
    Beats,
}

impl Unit {
    /// The unit called `name` (`frames`, `seconds`, `beats`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "frames" => Some(Self::Frames),
            "seconds" => Some(Self::Seconds),
            "beats" => Some(Self::Beats),
            _ => None,
        }
    }
}

/// Which part of a keyframe's field a search looks at or an edit sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The value.
    Value,
    /// The formula (`<field>_i`).
    Formula,
}

/// How a search matches.
#[derive(Clone, Debug)]
pub enum Matcher {
    /// The text is exactly this.
    Is(String),
    /// The text matches this regular expression.
    Regex(fancy_regex::Regex),
}

impl Matcher {
    /// A matcher; `regex` reads `pattern` as a regular expression (a bad one is named).
    pub fn new(pattern: &str, regex: bool) -> Result<Self, String> {
        if regex {
            fancy_regex::Regex::new(pattern)
                .map(Self::Regex)
                .map_err(|e| format!("the regular expression \"{pattern}\" is invalid: {e}"))
        } else {
            Ok(Self::Is(pattern.to_owned()))
        }
    }

    fn matches(&self, text: &str) -> bool {
        match self {
            Self::Is(t) => t == text,
            Self::Regex(r) => r.is_match(text).unwrap_or(false),
        }
    }
}

/// The text of `part` of `field` in a keyframe (empty when unset).
fn part_text(k: &Map<String, Json>, field: &str, part: Part) -> String {
    match part {
        Part::Value => k
            .get(field)
            .filter(|v| v.is_number())
            .map(|v| number_text(json_to_number(v)))
            .unwrap_or_default(),
        Part::Formula => k
            .get(&format!("{field}_i"))
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_owned(),
    }
}

/// The keyframes array of a document map.
fn keyframes(map: &mut Map<String, Json>) -> impl Iterator<Item = &mut Map<String, Json>> {
    map.get_mut("keyframes")
        .and_then(Json::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Json::as_object_mut)
}

fn frame_of(k: &Map<String, Json>) -> f64 {
    k.get("frame").map_or(f64::NAN, json_to_number)
}

fn set_option(map: &mut Map<String, Json>, name: &str, value: Json) {
    if let Some(o) = map.get_mut("options").and_then(Json::as_object_mut) {
        o.insert(name.to_owned(), value);
    }
}

/// Adds `field` to the string list `key` (or removes it).
fn toggle(map: &mut Map<String, Json>, key: &str, field: &str, on: bool) {
    let mut list: Vec<Json> = map
        .get(key)
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    list.retain(|f| f.as_str() != Some(field));
    if on {
        list.push(Json::from(field));
    }
    map.insert(key.to_owned(), Json::Array(list));
}

impl ParseqEditor {
    /// Frames per second, beats per minute: keyframes and prompt ranges keep their place in
    /// seconds or beats when the keyframe lock says so.
    pub fn set_timing(&mut self, fps: f64, bpm: f64) -> Result<(), String> {
        if !(fps.is_finite() && fps > 0.0 && bpm.is_finite() && bpm > 0.0) {
            return Err(format!("FPS and BPM must be above 0 (got {fps} and {bpm})"));
        }
        let mut doc = self.document().clone();
        doc.retime(fps, bpm);
        let json = doc.to_json();
        self.edit_document(|map| {
            if let Json::Object(next) = json {
                *map = next;
            }
        })
    }

    /// The keyframe lock: `frames`, `seconds` or `beats`.
    pub fn set_lock(&mut self, lock: &str) -> Result<(), String> {
        if Unit::from_name(lock).is_none() {
            return Err(format!(
                "keyframe lock \"{lock}\" (use frames, seconds or beats)"
            ));
        }
        self.edit_document(|map| {
            map.insert("keyframeLock".into(), Json::from(lock));
        })
    }

    /// Diffuse every `cadence`-th frame.
    pub fn set_cadence(&mut self, cadence: f64) -> Result<(), String> {
        if !(cadence.is_finite() && cadence >= 1.0) {
            return Err(format!("cadence must be 1 or more (got {cadence})"));
        }
        self.edit_document(|map| set_option(map, "cadence", number_json(cadence.round())))
    }

    /// Render in reverse.
    pub fn set_reverse(&mut self, on: bool) -> Result<(), String> {
        self.edit_document(|map| {
            map.insert("reverseRender".into(), Json::Bool(on));
        })
    }

    /// Moves the last keyframe to `frame` (not onto or below the one before it).
    pub fn set_final_frame(&mut self, frame: i64) -> Result<(), String> {
        let frames = self.keyframe_frames();
        let (Some(&last), Some(&before)) = (frames.last(), frames.iter().rev().nth(1)) else {
            return Err("the document has fewer than 2 keyframes".into());
        };
        if frame <= before {
            return Err(format!(
                "the final frame must be after the keyframe before it ({before})"
            ));
        }
        self.edit_document(|map| {
            for k in keyframes(map) {
                if frame_of(k) == last as f64 {
                    k.insert("frame".into(), Json::from(frame));
                }
            }
        })
    }

    /// Whether Parseq manages `field` (unmanaged fields fall back to defaults).
    pub fn set_managed(&mut self, field: &str, on: bool) -> Result<(), String> {
        self.edit_document(|map| toggle(map, "managedFields", field, on))
    }

    /// Whether the grid and the graph show `field`.
    pub fn set_displayed(&mut self, field: &str, on: bool) -> Result<(), String> {
        let shown = self.displayed_fields();
        self.edit_document(|map| {
            map.insert(
                "displayedFields".into(),
                Json::Array(shown.into_iter().map(Json::from).collect()),
            );
            toggle(map, "displayedFields", field, on);
        })
    }

    /// `positions` in `unit` as whole frames (rounded), at the document's FPS and BPM.
    pub fn frames_in(&self, positions: &[f64], unit: Unit) -> Vec<i64> {
        let (fps, bpm) = self.timing();
        let per = match unit {
            Unit::Frames => 1.0,
            Unit::Seconds => fps,
            Unit::Beats => fps * 60.0 / bpm,
        };
        positions
            .iter()
            .filter(|p| p.is_finite())
            .map(|p| (p * per).round() as i64)
            .collect()
    }

    /// Adds keyframes at the positions listed in `text` (commas or spaces) in `unit`; an
    /// existing keyframe's info gets `info` merged in.
    pub fn add_at_positions(
        &mut self,
        text: &str,
        unit: Unit,
        info: &str,
    ) -> Result<usize, String> {
        let positions = text
            .split([',', ' ', ';'])
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                p.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("\"{}\" is not a position", p.trim()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let frames = self.frames_in(&positions, unit);
        self.add_keyframes(&frames, info)
    }

    /// Adds keyframes every `interval` from `start` up to (not including) `end`, in `unit`.
    pub fn add_at_intervals(
        &mut self,
        start: f64,
        end: f64,
        interval: f64,
        unit: Unit,
        info: &str,
    ) -> Result<usize, String> {
        if !(interval.is_finite() && interval > 0.0 && start.is_finite() && end.is_finite()) {
            return Err("start, end and a positive interval are needed".into());
        }
        let count = ((end - start) / interval).ceil().max(0.0) as usize;
        if count > 100_000 {
            return Err(format!("{count} keyframes are too many at once"));
        }
        let positions: Vec<f64> = (0..count).map(|i| start + i as f64 * interval).collect();
        let frames = self.frames_in(&positions, unit);
        self.add_keyframes(&frames, info)
    }

    /// Deletes the keyframes whose `part` of `field` matches (never the first or the last).
    pub fn find_delete(
        &mut self,
        field: &str,
        part: Part,
        matcher: &Matcher,
    ) -> Result<usize, String> {
        let frames = self.keyframe_frames();
        let (first, last) = (frames.first().copied(), frames.last().copied());
        let doomed: Vec<f64> = self
            .document()
            .keyframes()
            .iter()
            .filter_map(Json::as_object)
            .filter(|k| matcher.matches(&part_text(k, field, part)))
            .map(frame_of)
            .filter(|f| Some(*f as i64) != first && Some(*f as i64) != last)
            .collect();
        if doomed.is_empty() {
            return Err(format!(
                "no keyframe between the first and the last matches in {field}"
            ));
        }
        let count = doomed.len();
        self.edit_document(|map| {
            if let Some(Json::Array(k)) = map.get_mut("keyframes") {
                k.retain(|row| {
                    !row.as_object()
                        .is_some_and(|r| doomed.contains(&frame_of(r)))
                });
            }
        })?;
        Ok(count)
    }

    /// Sets `target`'s `set_part` to `text` on every keyframe whose `part` of `field` matches; a
    /// formula that does not render leaves every keyframe as it was.
    pub fn bulk_edit(
        &mut self,
        (field, part, matcher): (&str, Part, &Matcher),
        (target, set_part, text): (&str, Part, &str),
    ) -> Result<usize, String> {
        let value = match set_part {
            Part::Value => Some(
                text.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("\"{text}\" is not a number"))?,
            ),
            Part::Formula => None,
        };
        let mut count = 0;
        self.edit_document(|map| {
            for k in keyframes(map) {
                if !matcher.matches(&part_text(k, field, part)) {
                    continue;
                }
                count += 1;
                match value {
                    Some(v) => k.insert(target.to_owned(), number_json(v)),
                    None => k.insert(format!("{target}_i"), Json::from(text)),
                };
            }
        })?;
        if count == 0 {
            // Nothing changed, so nothing was recorded to undo.
            return Err(format!("no keyframe matches in {field}"));
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parseq::tests::catduck;

    #[test]
    fn timing_remaps_with_the_lock() {
        let mut e = catduck();
        assert_eq!(e.set_timing(40.0, 140.0), Ok(()));
        assert_eq!(e.keyframe_frames(), [0, 40, 80, 119], "locked to frames");
        assert_eq!(e.undo(), Ok(()));
        assert_eq!(e.set_lock("seconds"), Ok(()));
        assert_eq!(e.set_timing(40.0, 140.0), Ok(()));
        assert_eq!(e.keyframe_frames(), [0, 80, 160, 238]);
        assert_eq!(e.timing(), (40.0, 140.0));
        assert!(e.set_timing(0.0, 120.0).is_err());
    }

    #[test]
    fn options_fields_and_the_final_frame() {
        let mut e = catduck();
        assert_eq!(e.set_cadence(3.0), Ok(()));
        assert!(e.document_text().contains("\"cadence\":3"));
        assert_eq!(e.set_reverse(true), Ok(()));
        assert!(e.rendered().reverse);
        assert!(e.set_final_frame(80).is_err());
        assert_eq!(e.set_final_frame(150), Ok(()));
        assert_eq!(e.rendered().frame_count, 151);
        assert_eq!(e.set_managed("angle", true), Ok(()));
        assert!(e.rendered().field("angle").is_some());
        assert_eq!(e.set_displayed("angle", true), Ok(()));
        assert!(e.displayed_fields().contains(&"angle".to_owned()));
        assert_eq!(e.set_displayed("seed", false), Ok(()));
        assert!(!e.displayed_fields().contains(&"seed".to_owned()));
    }

    #[test]
    fn keyframes_at_positions_and_intervals_merge_infos() {
        let mut e = catduck();
        // 20 fps, 140 bpm: a beat is 8.57 frames.
        assert_eq!(e.add_at_positions("1, 2", Unit::Beats, "beat"), Ok(2));
        assert_eq!(e.keyframe_frames(), [0, 9, 17, 40, 80, 119]);
        assert_eq!(
            e.add_at_intervals(0.0, 3.0, 1.0, Unit::Seconds, "sec"),
            Ok(1)
        );
        assert_eq!(e.keyframe_frames(), [0, 9, 17, 20, 40, 80, 119]);
        let rows = e.rows(0..1, &[]);
        assert_eq!(rows[0].info, "sec");
        assert!(e.add_at_positions("4 x", Unit::Frames, "").is_err());
    }

    #[test]
    fn find_delete_and_bulk_edit() {
        let mut e = catduck();
        let _ = e.add_keyframes(&[10, 20, 30], "");
        let _ = e.set_value(20, "zoom", "1.25");
        let regex = Matcher::new("^$", true);
        let Ok(empty) = regex else {
            panic!("regex");
        };
        assert_eq!(
            e.find_delete("zoom", Part::Value, &empty),
            Ok(3),
            "10, 30 and 80 are empty"
        );
        assert_eq!(e.keyframe_frames(), [0, 20, 40, 119]);
        let is = Matcher::Is("1.25".into());
        assert_eq!(
            e.bulk_edit(("zoom", Part::Value, &is), ("zoom", Part::Formula, "S")),
            Ok(1)
        );
        assert_eq!(e.value_at("zoom", 30), Some(1.25), "step from frame 20");
        let bad = e.bulk_edit(("zoom", Part::Value, &is), ("zoom", Part::Formula, "L + ("));
        assert!(bad.is_err());
        assert_eq!(e.value_at("zoom", 30), Some(1.25));
        assert!(Matcher::new("(", true).is_err());
    }
}
