//! The Parseq editor as plain types: the open document with its sequencer, the edits the
//! keyframe grid and the graph make (each re-rendering only what it changes), undo and redo over
//! every edit, and what the views read (rows, curves, the prompt at a frame, the exports).
//! Tested natively.

use keyshift_core::image::Border;
use keyshift_core::parseq::deforum::{
    PromptPart, ScheduleVariant, field_schedule, prompt_schedule,
};
use keyshift_core::parseq::document::{Document, is_valid_number, json_to_number};
use keyshift_core::parseq::render::{Rendered, Sequencer};
use keyshift_core::parseq::templates::Template;
use keyshift_core::share::{AnimationMode, ParseqSettings, Project, parse_frames};
use serde_json::{Map, Value as Json};

use crate::state::{EditError, LinkNotice};

/// A Parseq option of the project (values as typed or picked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseqField {
    /// The document (JSON text, as [`ParseqEditor::document_text`] writes it).
    Document,
    /// Frames to render (`A..B`, `A..=B`, `A..`, `A`; empty: all).
    Frames,
    /// `replicate` or `wrap`.
    Border,
    /// `true` or `false`.
    ColourCoherence,
}

impl ParseqField {
    /// Sets this option of `settings` from `text`.
    pub fn apply(self, text: &str, settings: &mut ParseqSettings) -> Result<(), EditError> {
        match self {
            Self::Document => settings.document = text.to_owned(),
            Self::Frames => {
                if !text.trim().is_empty() {
                    parse_frames(text.trim(), usize::MAX).map_err(|message| {
                        EditError::Invalid {
                            field: "frames",
                            message,
                        }
                    })?;
                }
                settings.frames = text.trim().to_owned();
            }
            Self::Border => {
                settings.border = Border::from_name(text).ok_or_else(|| EditError::Invalid {
                    field: "border",
                    message: format!("\"{text}\" (use replicate or wrap)"),
                })?;
            }
            Self::ColourCoherence => settings.colour_coherence = text == "true",
        }
        Ok(())
    }
}

/// What a Parseq render will make, as one line: frames, diffused frames, the video.
pub fn plan_text(settings: &ParseqSettings) -> Result<String, String> {
    let doc = match settings.document.trim() {
        "" => Template::by_id("catduck")
            .ok_or("no default template")?
            .document(),
        text => Document::from_json_str(text),
    }
    .map_err(open_error)?;
    let frames: Vec<f64> = doc
        .keyframes()
        .iter()
        .filter_map(|k| k.get("frame").map(json_to_number))
        .filter(|f| f.is_finite())
        .collect();
    let (lo, hi) = frames
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), f| (a.min(*f), b.max(*f)));
    if frames.len() < 2 || hi < lo {
        return Err("the Parseq document needs at least 2 keyframes".into());
    }
    let n = (hi - lo) as usize + 1;
    let range = settings.range(n)?;
    let option = |name: &str, d: f64| {
        doc.option(name)
            .map(json_to_number)
            .filter(|v| v.is_finite() && *v > 0.0)
            .unwrap_or(d)
    };
    let (fps, cadence) = (
        option("output_fps", 20.0),
        option("cadence", 1.0).round().max(1.0),
    );
    let count = range.len();
    let diffused = count.div_ceil(cadence as usize);
    Ok(format!(
        "{count} frames ({}..{}) · {diffused} diffused (cadence {cadence}) · video {:.1} s at {} fps",
        range.start,
        range.end - 1,
        count as f64 / fps,
        number_text(fps)
    ))
}

/// A number as Parseq writes it (`1`, `0.5`, `1e-7`).
pub fn number_text(v: f64) -> String {
    keyshift_core::parseq::jsnum::to_js_string(v)
}

/// The raw value of `name` in a query string (`?a=1&parseq=%7B…`), not yet decoded.
pub fn query_value(search: &str, name: &str) -> Option<String> {
    search
        .trim_start_matches('?')
        .split('&')
        .find_map(|pair| pair.split_once('=').filter(|(k, _)| *k == name))
        .map(|(_, v)| v.to_owned())
}

/// Opens a Parseq document given in a link's `?parseq=` (as Parseq's own links carry it) into
/// `project`, in the Parseq mode; says what happened.
pub fn open_query_document(project: &mut Project, text: &str) -> LinkNotice {
    match ParseqEditor::from_text(text) {
        Ok(editor) => {
            project.animation.mode = AnimationMode::Parseq;
            project.animation.parseq.document = editor.document_text();
            LinkNotice {
                is_error: false,
                title: "Opened the Parseq document from the link.".into(),
                details: vec![format!(
                    "{} keyframes, {} frames.",
                    editor.keyframe_frames().len(),
                    editor.rendered().frame_count
                )],
            }
        }
        Err(e) => LinkNotice {
            is_error: true,
            title: "The link's Parseq document could not be opened; nothing was changed.".into(),
            details: vec![e],
        },
    }
}

/// The most undo steps kept.
const UNDO_LIMIT: usize = 200;

/// One reversible edit.
#[derive(Debug, Clone, PartialEq)]
enum Edit {
    /// A keyframe's value of a field (`None`: empty).
    Value {
        frame: i64,
        field: String,
        before: Option<f64>,
        after: Option<f64>,
    },
    /// A keyframe's formula of a field (`None`: empty).
    Formula {
        frame: i64,
        field: String,
        before: Option<String>,
        after: Option<String>,
    },
    /// The whole document (keyframes added or deleted, an import, options).
    Document { before: Box<Json>, after: Box<Json> },
}

impl Edit {
    /// Whether `next` continues typing in the same cell (one undo step per cell, not per key).
    fn continues(&self, next: &Edit) -> bool {
        match (self, next) {
            (
                Edit::Value { frame, field, .. },
                Edit::Value {
                    frame: f2,
                    field: g2,
                    ..
                },
            )
            | (
                Edit::Formula { frame, field, .. },
                Edit::Formula {
                    frame: f2,
                    field: g2,
                    ..
                },
            ) => frame == f2 && field == g2,
            _ => false,
        }
    }

    /// `self` followed by `next` as one edit.
    fn merge(&mut self, next: Edit) {
        match (self, next) {
            (Edit::Value { after, .. }, Edit::Value { after: a2, .. }) => *after = a2,
            (Edit::Formula { after, .. }, Edit::Formula { after: a2, .. }) => *after = a2,
            _ => {}
        }
    }

    /// Whether the edit changes nothing (typing the value that is there already).
    fn is_noop(&self) -> bool {
        match self {
            Edit::Value { before, after, .. } => before == after,
            Edit::Formula { before, after, .. } => before == after,
            Edit::Document { before, after } => before == after,
        }
    }

    /// The edit that undoes this one.
    fn inverse(&self) -> Edit {
        match self.clone() {
            Edit::Value {
                frame,
                field,
                before,
                after,
            } => Edit::Value {
                frame,
                field,
                before: after,
                after: before,
            },
            Edit::Formula {
                frame,
                field,
                before,
                after,
            } => Edit::Formula {
                frame,
                field,
                before: after,
                after: before,
            },
            Edit::Document { before, after } => Edit::Document {
                before: after,
                after: before,
            },
        }
    }
}

/// One row of the keyframe grid for a displayed field.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The keyframe's own value, as typed.
    pub value: Option<f64>,
    /// The keyframe's formula.
    pub formula: String,
    /// The rendered value at this frame (shown in an empty cell).
    pub rendered: Option<f64>,
}

/// One keyframe of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Its frame.
    pub frame: i64,
    /// Its info text.
    pub info: String,
    /// One cell per displayed field.
    pub cells: Vec<Cell>,
}

/// The Parseq editor.
pub struct ParseqEditor {
    sequencer: Sequencer,
    /// What went wrong with the last edit or render (the previous values were kept).
    pub error: Option<String>,
    undo: Vec<Edit>,
    redo: Vec<Edit>,
    /// Whether the last undo entry may absorb the next edit of the same cell.
    typing: bool,
    /// Bumped on every change, so views re-read only when something changed.
    pub revision: u64,
    /// The scrubbed frame (graph cursor, prompt preview).
    pub cursor: i64,
}

impl std::fmt::Debug for ParseqEditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParseqEditor")
            .field("revision", &self.revision)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// Why a document could not be opened.
pub fn open_error(e: impl std::fmt::Display) -> String {
    format!("The Parseq document could not be opened: {e}")
}

impl ParseqEditor {
    /// An editor of `doc`, rendered. A document that does not render is refused with the reason.
    pub fn new(doc: Document) -> Result<Self, String> {
        let mut sequencer = Sequencer::new(doc).map_err(open_error)?;
        sequencer.render_all().map_err(open_error)?;
        Ok(Self {
            sequencer,
            error: None,
            undo: Vec::new(),
            redo: Vec::new(),
            typing: false,
            revision: 0,
            cursor: 0,
        })
    }

    /// An editor of the document in `text` (a project's, a file's, a pasted one, a link's).
    pub fn from_text(text: &str) -> Result<Self, String> {
        Self::new(Document::from_json_str(text).map_err(open_error)?)
    }

    /// An editor of Parseq's default template.
    pub fn default_document() -> Result<Self, String> {
        let t = Template::by_id("catduck").ok_or("no default template")?;
        Self::new(t.document().map_err(open_error)?)
    }

    /// The document.
    pub fn document(&self) -> &Document {
        self.sequencer.document()
    }

    /// The rendered frames.
    pub fn rendered(&self) -> &Rendered {
        self.sequencer.rendered()
    }

    /// The document as the project keeps it (compact JSON, keys sorted).
    pub fn document_text(&self) -> String {
        self.document().to_json().to_string()
    }

    /// Parseq's output: the document with `rendered_frames` and `rendered_frames_meta`.
    pub fn output_text(&self, generated_at: &str) -> String {
        serde_json::to_string_pretty(&self.sequencer.output_json(generated_at)).unwrap_or_default()
    }

    /// Whether there is an edit to undo / redo.
    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    /// Whether there is an edit to redo.
    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    fn changed(&mut self) {
        self.revision += 1;
    }

    /// Applies `edit` to the sequencer (re-rendering what it changes).
    fn perform(&mut self, edit: &Edit) -> Result<(), String> {
        let result = match edit {
            Edit::Value {
                frame,
                field,
                after,
                ..
            } => self.sequencer.set_value(*frame, field, *after).map(drop),
            Edit::Formula {
                frame,
                field,
                after,
                ..
            } => self
                .sequencer
                .set_formula(*frame, field, after.as_deref())
                .map(drop),
            Edit::Document { after, .. } => {
                let doc = Document::from_json((**after).clone()).map_err(|e| e.to_string())?;
                let mut next = Sequencer::new(doc).map_err(|e| e.to_string())?;
                next.render_all().map_err(|e| e.to_string())?;
                self.sequencer = next;
                Ok(())
            }
        };
        result.map_err(|e| e.to_string())
    }

    /// Makes an edit (undone by `Undo`); a failing one is taken back, with the reason.
    fn edit(&mut self, edit: Edit) -> Result<(), String> {
        if edit.is_noop() {
            self.error = None;
            self.changed();
            return Ok(());
        }
        if let Err(e) = self.perform(&edit) {
            // Put back what was there: the render stays as it was.
            let _ = self.perform(&edit.inverse());
            self.error = Some(e.clone());
            self.changed();
            return Err(e);
        }
        self.error = None;
        self.redo.clear();
        match self.undo.last_mut() {
            Some(last) if self.typing && last.continues(&edit) => last.merge(edit),
            _ => self.undo.push(edit),
        }
        if self.undo.len() > UNDO_LIMIT {
            self.undo.remove(0);
        }
        self.typing = true;
        self.changed();
        Ok(())
    }

    /// Ends the current typing: the next edit of the same cell is its own undo step.
    pub fn commit(&mut self) {
        self.typing = false;
    }

    /// The keyframe at `frame`.
    fn keyframe(&self, frame: i64) -> Option<&Map<String, Json>> {
        self.document()
            .keyframes()
            .iter()
            .filter_map(Json::as_object)
            .find(|k| k.get("frame").map(json_to_number) == Some(frame as f64))
    }

    /// Sets `field` at keyframe `frame` from the text typed (empty clears it).
    pub fn set_value(&mut self, frame: i64, field: &str, text: &str) -> Result<(), String> {
        let after = match text.trim() {
            "" => None,
            t => Some(
                t.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| format!("{field} at frame {frame}: \"{t}\" is not a number"))?,
            ),
        };
        let before = self
            .keyframe(frame)
            .and_then(|k| k.get(field))
            .filter(|v| is_valid_number(Some(v)))
            .map(json_to_number);
        self.edit(Edit::Value {
            frame,
            field: field.to_owned(),
            before,
            after,
        })
    }

    /// Sets `field`'s formula at keyframe `frame` (empty clears it). A formula that does not
    /// parse or evaluate is refused with its position; the previous one stays.
    pub fn set_formula(&mut self, frame: i64, field: &str, text: &str) -> Result<(), String> {
        let key = format!("{field}_i");
        let before = self
            .keyframe(frame)
            .and_then(|k| k.get(&key))
            .and_then(Json::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let after = Some(text.to_owned()).filter(|t| !t.trim().is_empty());
        self.edit(Edit::Formula {
            frame,
            field: field.to_owned(),
            before,
            after,
        })
    }

    /// Replaces the document with `doc` edited by `change` (one undo step).
    pub(crate) fn edit_document(
        &mut self,
        change: impl FnOnce(&mut Map<String, Json>),
    ) -> Result<(), String> {
        let before = self.document().to_json();
        let mut after = before.clone();
        if let Json::Object(map) = &mut after {
            change(map);
        }
        self.commit();
        self.edit(Edit::Document {
            before: Box::new(before),
            after: Box::new(after),
        })?;
        self.commit();
        Ok(())
    }

    /// Opens another document (an import, a template) as one undoable edit.
    pub fn open(&mut self, doc: &Document) -> Result<(), String> {
        let json = doc.to_json();
        self.edit_document(|map| {
            if let Json::Object(next) = json {
                *map = next;
            }
        })
    }

    /// The frames of the keyframes, in order.
    pub fn keyframe_frames(&self) -> Vec<i64> {
        self.document()
            .keyframes()
            .iter()
            .filter_map(|k| k.get("frame").map(json_to_number))
            .filter(|f| f.is_finite())
            .map(|f| f as i64)
            .collect()
    }

    /// Adds a keyframe after the one at `frame`, at the next free frame (Parseq's Ctrl+A).
    pub fn add_keyframe_after(&mut self, frame: i64) -> Result<i64, String> {
        let frames = self.keyframe_frames();
        let next = frames.iter().copied().find(|f| *f > frame);
        let new = frame + 1;
        if next == Some(new) {
            return Err(format!(
                "there is no free frame between keyframes {frame} and {new}"
            ));
        }
        self.add_keyframes(&[new], "")?;
        Ok(new)
    }

    /// Adds keyframes at `frames` with `info`; a frame that is a keyframe already gets `info`
    /// merged into its own ("Merged: a + b", as Parseq's dialogs do).
    pub fn add_keyframes(&mut self, frames: &[i64], info: &str) -> Result<usize, String> {
        let existing = self.keyframe_frames();
        let mut new: Vec<i64> = frames
            .iter()
            .copied()
            .filter(|f| *f >= 0 && !existing.contains(f))
            .collect();
        new.sort_unstable();
        new.dedup();
        let merged: Vec<i64> = frames
            .iter()
            .copied()
            .filter(|f| existing.contains(f))
            .collect();
        if new.is_empty() && (merged.is_empty() || info.is_empty()) {
            return Err("every frame given is a keyframe already".into());
        }
        let count = new.len();
        self.edit_document(|map| {
            let Some(Json::Array(k)) = map.get_mut("keyframes") else {
                return;
            };
            for row in k.iter_mut().filter_map(Json::as_object_mut) {
                let at = row.get("frame").map_or(f64::NAN, json_to_number) as i64;
                if !info.is_empty() && merged.contains(&at) {
                    let old = row.get("info").and_then(Json::as_str).unwrap_or("");
                    let text = if old.is_empty() {
                        info.to_owned()
                    } else {
                        format!("Merged: {old} + {info}")
                    };
                    row.insert("info".into(), Json::from(text));
                }
            }
            for f in new {
                let mut row = Map::new();
                row.insert("frame".into(), Json::from(f));
                if !info.is_empty() {
                    row.insert("info".into(), Json::from(info));
                }
                k.push(Json::Object(row));
            }
        })?;
        Ok(count)
    }

    /// Deletes the keyframe at `frame`; the first and last stay (Parseq's Ctrl+D).
    pub fn delete_keyframe(&mut self, frame: i64) -> Result<(), String> {
        let frames = self.keyframe_frames();
        if frames.first() == Some(&frame) || frames.last() == Some(&frame) {
            return Err(format!(
                "keyframe {frame} is the first or the last: it cannot be deleted"
            ));
        }
        if !frames.contains(&frame) {
            return Err(format!("there is no keyframe at frame {frame}"));
        }
        self.edit_document(|map| {
            if let Some(Json::Array(k)) = map.get_mut("keyframes") {
                k.retain(|row| row.get("frame").map(json_to_number) != Some(frame as f64));
            }
        })
    }

    /// Sets a keyframe's info text.
    pub fn set_info(&mut self, frame: i64, text: &str) -> Result<(), String> {
        self.edit_document(|map| {
            if let Some(Json::Array(k)) = map.get_mut("keyframes") {
                for row in k.iter_mut().filter_map(Json::as_object_mut) {
                    if row.get("frame").map(json_to_number) == Some(frame as f64) {
                        row.insert("info".into(), Json::from(text));
                    }
                }
            }
        })
    }

    /// Undoes the last edit.
    pub fn undo(&mut self) -> Result<(), String> {
        let Some(edit) = self.undo.pop() else {
            return Err("nothing to undo".into());
        };
        self.perform(&edit.inverse())?;
        self.redo.push(edit);
        self.typing = false;
        self.error = None;
        self.changed();
        Ok(())
    }

    /// Redoes the last undone edit.
    pub fn redo(&mut self) -> Result<(), String> {
        let Some(edit) = self.redo.pop() else {
            return Err("nothing to redo".into());
        };
        self.perform(&edit)?;
        self.undo.push(edit);
        self.typing = false;
        self.error = None;
        self.changed();
        Ok(())
    }

    /// The fields the grid and the graph show (the document's `displayedFields`, else the first
    /// five managed ones), as far as they are managed.
    pub fn displayed_fields(&self) -> Vec<String> {
        let managed = self.document().managed_fields();
        let shown: Vec<String> = self
            .document()
            .json()
            .get("displayedFields")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Json::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let shown: Vec<String> = shown.into_iter().filter(|f| managed.contains(f)).collect();
        if shown.is_empty() {
            managed.into_iter().take(5).collect()
        } else {
            shown
        }
    }

    /// A field's rendered value at `frame`.
    pub fn value_at(&self, field: &str, frame: i64) -> Option<f64> {
        let r = self.rendered();
        let i = usize::try_from(frame - r.first_frame).ok()?;
        r.field(field).and_then(|f| f.values.get(i).copied())
    }

    /// The grid rows `range` (by position among the keyframes) for `fields`.
    pub fn rows(&self, range: std::ops::Range<usize>, fields: &[String]) -> Vec<Row> {
        let keyframes = self.document().keyframes();
        let end = range.end.min(keyframes.len());
        let start = range.start.min(end);
        keyframes[start..end]
            .iter()
            .filter_map(Json::as_object)
            .map(|k| {
                let frame = k.get("frame").map_or(0.0, json_to_number) as i64;
                let cells = fields
                    .iter()
                    .map(|f| Cell {
                        value: k
                            .get(f)
                            .filter(|v| is_valid_number(Some(v)))
                            .map(json_to_number),
                        formula: k
                            .get(&format!("{f}_i"))
                            .and_then(Json::as_str)
                            .unwrap_or("")
                            .to_owned(),
                        rendered: self.value_at(f, frame),
                    })
                    .collect();
                Row {
                    frame,
                    info: k
                        .get("info")
                        .and_then(Json::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    cells,
                }
            })
            .collect()
    }

    /// `deforum_prompt` at `frame`.
    pub fn prompt_at(&self, frame: i64) -> Option<String> {
        let r = self.rendered();
        let i = usize::try_from(frame - r.first_frame).ok()?;
        r.prompts.as_ref().and_then(|p| p.get(i)).cloned()
    }

    /// The output frames per second and beats per minute.
    pub fn timing(&self) -> (f64, f64) {
        let option = |name: &str, default: f64| {
            self.document()
                .option(name)
                .map(json_to_number)
                .filter(|v| v.is_finite() && *v > 0.0)
                .unwrap_or(default)
        };
        (option("output_fps", 20.0), option("bpm", 140.0))
    }

    /// The Deforum / FizzNodes schedule of `field` (its deltas or values), or of the prompts
    /// (`field` = `deforum_prompt`).
    pub fn schedule(&self, field: &str, deltas: bool) -> Option<String> {
        if field == "deforum_prompt" {
            return prompt_schedule(self.rendered(), PromptPart::Full);
        }
        let variant = if deltas {
            ScheduleVariant::Delta
        } else {
            ScheduleVariant::Absolute
        };
        field_schedule(self.rendered(), field, variant)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Parseq's default document in an editor (shared by the Parseq tests of the app).
    pub(crate) fn catduck() -> ParseqEditor {
        let editor = ParseqEditor::default_document();
        let Ok(editor) = editor else {
            panic!("{editor:?}");
        };
        editor
    }

    #[test]
    fn a_value_edit_re_renders_and_undo_restores() {
        let mut e = catduck();
        let before = e.value_at("zoom", 20);
        assert_eq!(e.value_at("zoom", 40), Some(1.5));
        assert_eq!(e.set_value(40, "zoom", "2"), Ok(()));
        assert_eq!(e.value_at("zoom", 40), Some(2.0));
        assert_ne!(e.value_at("zoom", 20), before, "the curve follows");
        assert!(e.document_text().contains("\"zoom\":2"));
        assert_eq!(e.undo(), Ok(()));
        assert_eq!(e.value_at("zoom", 40), Some(1.5));
        assert_eq!(e.value_at("zoom", 20), before);
        assert_eq!(e.redo(), Ok(()));
        assert_eq!(e.value_at("zoom", 40), Some(2.0));
    }

    #[test]
    fn typing_in_one_cell_is_one_undo_step() {
        let mut e = catduck();
        for text in ["1", "1.", "1.2", "1.25"] {
            let _ = e.set_value(40, "zoom", text);
        }
        assert_eq!(e.value_at("zoom", 40), Some(1.25));
        e.commit();
        assert_eq!(e.set_value(40, "zoom", "1.3"), Ok(()));
        assert_eq!(e.undo(), Ok(()));
        assert_eq!(e.value_at("zoom", 40), Some(1.25));
        assert_eq!(e.undo(), Ok(()));
        assert_eq!(e.value_at("zoom", 40), Some(1.5));
        assert!(!e.can_undo());
    }

    #[test]
    fn a_bad_value_or_formula_keeps_the_previous_one() {
        let mut e = catduck();
        let err = e.set_value(40, "zoom", "abc");
        assert_eq!(err, Err("zoom at frame 40: \"abc\" is not a number".into()));
        assert_eq!(e.value_at("zoom", 40), Some(1.5));
        let before = e.value_at("zoom", 10);
        let err = e.set_formula(0, "zoom", "L + (");
        let Err(message) = err else {
            panic!("a broken formula is refused");
        };
        assert!(
            message.contains("zoom") && message.contains("frame 0"),
            "{message}"
        );
        assert_eq!(e.value_at("zoom", 10), before);
        assert!(e.document_text().contains("\"zoom_i\":\"C\""));
        // Typing back the formula that is there is no edit to undo.
        assert_eq!(e.set_formula(0, "zoom", "C"), Ok(()));
        assert!(!e.can_undo());
        assert_eq!(e.set_formula(0, "zoom", "S"), Ok(()));
        assert_eq!(
            e.value_at("zoom", 10),
            Some(1.0),
            "step interpolation holds"
        );
    }

    #[test]
    fn keyframes_are_added_and_deleted_but_not_the_ends() {
        let mut e = catduck();
        assert_eq!(e.keyframe_frames(), [0, 40, 80, 119]);
        assert_eq!(e.add_keyframe_after(40), Ok(41));
        assert_eq!(e.keyframe_frames(), [0, 40, 41, 80, 119]);
        assert!(e.add_keyframe_after(40).is_err(), "41 is taken");
        assert_eq!(e.delete_keyframe(41), Ok(()));
        assert!(e.delete_keyframe(0).is_err());
        assert!(e.delete_keyframe(119).is_err());
        assert_eq!(e.add_keyframes(&[10, 20, 40], "beat"), Ok(2));
        assert_eq!(e.keyframe_frames(), [0, 10, 20, 40, 80, 119]);
        let rows = e.rows(1..2, &["zoom".to_owned()]);
        assert_eq!(rows[0].frame, 10);
        assert_eq!(rows[0].info, "beat");
        assert_eq!(rows[0].cells[0].value, None);
        assert!(rows[0].cells[0].rendered.is_some());
        for _ in 0..3 {
            assert_eq!(e.undo(), Ok(()));
        }
        assert_eq!(e.keyframe_frames(), [0, 40, 80, 119]);
    }

    #[test]
    fn views_read_fields_prompts_and_schedules() {
        let e = catduck();
        assert_eq!(
            e.displayed_fields(),
            ["seed", "prompt_weight_1", "prompt_weight_2", "zoom"]
        );
        let prompt = e.prompt_at(0).unwrap_or_default();
        assert!(prompt.starts_with("A lone (black cat:1.00000)"), "{prompt}");
        assert_eq!(e.timing(), (20.0, 140.0));
        let schedule = e.schedule("zoom", true).unwrap_or_default();
        assert!(schedule.starts_with("0: (1), 1: ("), "{schedule}");
        let output = e.output_text("now");
        assert!(output.contains("\"rendered_frames\""));
        let reopened = ParseqEditor::from_text(&e.document_text());
        assert!(reopened.is_ok());
        assert!(ParseqEditor::from_text("{").is_err());
    }

    #[test]
    fn a_query_document_opens_in_the_parseq_mode() {
        assert_eq!(
            query_value("?a=1&parseq=%7B%7D&b", "parseq"),
            Some("%7B%7D".into())
        );
        assert_eq!(query_value("?a=1", "parseq"), None);
        let mut p = Project::default();
        let doc = r#"{"keyframes":[{"frame":0,"zoom":1},{"frame":9,"zoom":2}],
            "managedFields":["zoom"],"prompts":{"positive":"a cat","negative":""}}"#;
        let notice = open_query_document(&mut p, doc);
        assert!(!notice.is_error, "{notice:?}");
        assert_eq!(notice.details, ["2 keyframes, 10 frames."]);
        assert_eq!(p.animation.mode, AnimationMode::Parseq);
        assert!(p.animation.parseq.document.contains("\"zoom\":2"));
        let before = p.clone();
        let notice = open_query_document(&mut p, "{\"keyframes\":[]}");
        assert!(notice.is_error);
        assert_eq!(p, before);
    }

    #[test]
    fn the_plan_line_counts_frames_and_diffusions() {
        let mut s = ParseqSettings::default();
        assert_eq!(
            plan_text(&s),
            Ok("120 frames (0..119) · 120 diffused (cadence 1) · video 6.0 s at 20 fps".into())
        );
        s.frames = "0..4".into();
        assert_eq!(
            plan_text(&s),
            Ok("4 frames (0..3) · 4 diffused (cadence 1) · video 0.2 s at 20 fps".into())
        );
        s.frames = "0..400".into();
        assert!(plan_text(&s).is_err());
    }

    #[test]
    fn project_options_are_checked() {
        let mut s = ParseqSettings::default();
        assert!(ParseqField::Frames.apply("0..4", &mut s).is_ok());
        assert_eq!(s.frames, "0..4");
        assert!(ParseqField::Frames.apply("4..1", &mut s).is_err());
        assert_eq!(s.frames, "0..4");
        assert!(ParseqField::Border.apply("wrap", &mut s).is_ok());
        assert_eq!(s.border, Border::Wrap);
        assert!(ParseqField::Border.apply("mirror", &mut s).is_err());
        assert!(ParseqField::ColourCoherence.apply("false", &mut s).is_ok());
        assert!(!s.colour_coherence);
    }

    #[test]
    fn opening_another_document_is_undoable() {
        let mut e = catduck();
        let Some(Ok(blank)) = Template::by_id("blank").map(|t| t.document()) else {
            panic!("template");
        };
        assert_eq!(e.open(&blank), Ok(()));
        assert_eq!(e.keyframe_frames(), [0, 119]);
        assert_eq!(e.undo(), Ok(()));
        assert_eq!(e.keyframe_frames(), [0, 40, 80, 119]);
    }
}
