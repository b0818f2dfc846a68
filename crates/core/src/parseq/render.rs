//! Rendering a document to per-frame values, exactly as Parseq's `parseqRender` does: bookend
//! keyframes, sticky formulas with persistent node state, `${}` prompts with overlaps and
//! common prompts, seeds to subseeds, meta, deltas and percentages, reverse output.
//!
//! [`Sequencer`] keeps parsed formulas and rendered columns so that an edit re-renders only what
//! it affects.

use std::collections::HashMap;
use std::ops::Range;

use serde_json::{Map, Value as Json, json};
use thiserror::Error;

use super::document::{
    CommonPromptPos, Document, DocumentError, Prompt, Prompts, field_default, is_valid_number,
    json_to_number, json_truthy, number_json,
};
use super::eval::{Context, EvalError, Formula, Keyed, KeyframeInfo, Lookup, TimeSeries};
use super::jsnum::{js_max, js_min, js_trim, to_fixed, to_precision};
use super::parser::ParseError;
use super::value::Value;

/// Most frames a document may render.
pub const MAX_FRAMES: usize = 100_000;

/// Formulas longer than this many characters are shown cut in messages.
const SHOWN_FORMULA_CHARS: usize = 120;

/// A formula as a message shows it: whole (as Parseq does) unless it is very long, then its
/// start and its length.
fn abbreviated(formula: &str) -> String {
    let chars = formula.chars().count();
    if chars <= SHOWN_FORMULA_CHARS {
        return formula.to_owned();
    }
    let start: String = formula.chars().take(SHOWN_FORMULA_CHARS).collect();
    format!("{start}… ({chars} characters)")
}

/// Why a document could not be rendered (messages as Parseq's where it has one).
#[derive(Debug, Error)]
pub enum RenderError {
    /// The document itself is malformed.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// No keyframes.
    #[error("No keyframes found.")]
    NoKeyframes,
    /// Fewer than two keyframes.
    #[error("There must be at least 2 keyframes to render.")]
    TooFewKeyframes,
    /// `output_fps` missing or 0.
    #[error("No output_fps found.")]
    NoFps,
    /// `bpm` missing or 0.
    #[error("No bpm found.")]
    NoBpm,
    /// The first or last keyframe's frame is not a whole number (or a frame is not a number).
    #[error(
        "Invalid array length: keyframe frame {} is not a whole number",
        abbreviated(.0)
    )]
    BadFrame(String),
    /// More than [`MAX_FRAMES`] frames.
    #[error("too many frames: {frames} (at most {MAX_FRAMES})")]
    TooManyFrames {
        /// Frames the document spans.
        frames: i128,
    },
    /// A formula does not parse.
    #[error(
        "Error parsing interpolation for {field} at frame {frame} ({}): Error: {error}",
        abbreviated(source_text)
    )]
    Parse {
        /// Field.
        field: String,
        /// Frame.
        frame: i64,
        /// The formula.
        source_text: String,
        /// The parse error.
        error: ParseError,
    },
    /// A formula fails at a frame.
    #[error(
        "Error calculating {field} at frame {frame} ({}): Error: {error}",
        abbreviated(source_text)
    )]
    Eval {
        /// Field.
        field: String,
        /// Frame.
        frame: i64,
        /// The keyframe's formula text at this frame (`undefined` on other frames).
        source_text: String,
        /// The evaluation error.
        error: EvalError,
    },
    /// A prompt expression fails.
    #[error(
        "Error parsing prompt on frame {frame}: Error: {}",
        abbreviated(message)
    )]
    Prompt {
        /// Frame.
        frame: i64,
        /// What failed.
        message: String,
    },
    /// An edit names a frame that has no keyframe.
    #[error("there is no keyframe at frame {0}")]
    NoKeyframeAt(i64),
    /// Parseq's delta pass reads the frame before the first one, which only exists when the
    /// first keyframe is at frame 0.
    #[error("Cannot read properties of undefined (reading '{0}')")]
    FirstFrameNotZero(String),
}

/// A rendered field: values per frame, deltas, percentages of the maximum, and meta.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RenderedField {
    /// Field name.
    pub name: String,
    /// Values per frame.
    pub values: Vec<f64>,
    /// `<field>_delta` per frame.
    pub delta: Vec<f64>,
    /// `<field>_pc` per frame.
    pub pc: Vec<f64>,
    /// Maximum of |value|.
    pub max: f64,
    /// Minimum value.
    pub min: f64,
}

impl RenderedField {
    /// Parseq's `isFlat`.
    pub fn is_flat(&self) -> bool {
        self.min == self.max
    }
}

/// The rendered frames of a document, in columns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rendered {
    /// The first frame.
    pub first_frame: i64,
    /// Number of frames.
    pub frame_count: usize,
    /// Managed fields in order.
    pub fields: Vec<RenderedField>,
    /// `deforum_prompt` per frame, when prompts are enabled.
    pub prompts: Option<Vec<String>>,
    /// The index of `seed` among the fields when it is managed (then frames carry `subseed` and
    /// `subseed_strength`).
    pub seed_field: Option<usize>,
    /// Whether the output is reversed.
    pub reverse: bool,
}

impl Rendered {
    /// A field's column by name (the last one if a name repeats, as Parseq's objects do).
    pub fn field(&self, name: &str) -> Option<&RenderedField> {
        self.fields.iter().rev().find(|f| f.name == name)
    }

    /// Output frame `i` (after reverse post-processing) as Parseq writes it.
    pub fn frame_json(&self, i: usize) -> Json {
        let (src, negate) = if self.reverse {
            (self.frame_count.saturating_sub(1 + i), true)
        } else {
            (i, false)
        };
        let frame = if self.reverse {
            i as i64
        } else {
            self.first_frame + i as i64
        };
        let mut m = Map::new();
        m.insert("frame".to_owned(), json!(frame));
        let at = |v: &[f64]| v.get(src).copied().unwrap_or(f64::NAN);
        for f in &self.fields {
            m.insert(f.name.clone(), number_json(at(&f.values)));
        }
        if let Some(p) = &self.prompts {
            m.insert("deforum_prompt".to_owned(), json!(p.get(src)));
        }
        if let Some(s) = self.seed_field.and_then(|k| self.fields.get(k)) {
            let seed = at(&s.values);
            m.insert("subseed".to_owned(), number_json(seed.ceil()));
            m.insert("subseed_strength".to_owned(), number_json(seed % 1.0));
        }
        for f in &self.fields {
            let mut d = at(&f.delta);
            if negate {
                d = if f.name == "zoom" { 1.0 / d } else { -d };
            }
            m.insert(format!("{}_delta", f.name), number_json(d));
            m.insert(format!("{}_pc", f.name), number_json(at(&f.pc)));
        }
        Json::Object(m)
    }

    /// `rendered_frames_meta` (Parseq starts it as an array, so no fields give `[]`).
    pub fn meta_json(&self) -> Json {
        if self.fields.is_empty() {
            return json!([]);
        }
        let mut m = Map::new();
        for f in &self.fields {
            m.insert(
                f.name.clone(),
                json!({"max": number_json(f.max), "min": number_json(f.min), "isFlat": f.is_flat()}),
            );
        }
        Json::Object(m)
    }

    /// Every output frame.
    pub fn frames_json(&self) -> Vec<Json> {
        (0..self.frame_count).map(|i| self.frame_json(i)).collect()
    }
}

/// A keyframe as the renderer reads it.
#[derive(Clone, Debug)]
struct Row {
    /// Parseq allows fractional frames: they count as keyframe values but never start a formula.
    frame: f64,
    json: Map<String, Json>,
}

/// A field's formulas: where each starts and the parsed formula (or its parse error).
struct FieldPlan {
    name: String,
    keyed: Keyed,
    /// (frame index, formula text, parsed formula) for keyframes with a non-empty `_i`.
    formulas: Vec<(usize, String, Result<Formula, ParseError>)>,
    default: f64,
    /// Reads other fields (`dangerous`), so it must re-render when an earlier field changes.
    reads_fields: bool,
}

/// Options that formulas see.
#[derive(Clone, Debug)]
struct Timing {
    fps: f64,
    bpm: f64,
    cadence: f64,
}

/// A document ready to render and re-render.
pub struct Sequencer {
    doc: Document,
    rows: Vec<Row>,
    infos: Vec<KeyframeInfo>,
    timing: Timing,
    series: Vec<TimeSeries>,
    prompts: Prompts,
    fields: Vec<FieldPlan>,
    rendered: Rendered,
    prompt_formulas: HashMap<String, Result<Formula, ParseError>>,
    computed: Vec<Value>,
    raw_options: [Value; 3],
}

/// Renders a document once.
pub fn render(doc: &Document) -> Result<(Document, Rendered), RenderError> {
    let mut s = Sequencer::new(doc.clone())?;
    s.render_all()?;
    Ok((s.doc, s.rendered))
}

impl Sequencer {
    /// Validates and prepares a document (sorting its keyframes as Parseq does).
    pub fn new(mut doc: Document) -> Result<Self, RenderError> {
        let keyframes = doc.keyframes();
        if keyframes.len() < 2 {
            return Err(RenderError::TooFewKeyframes);
        }
        let (timing, raw_options) = timing_of(&doc)?;
        let mut rows = rows_of(keyframes)?;
        rows.sort_by(|a, b| {
            a.frame
                .partial_cmp(&b.frame)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let sorted: Vec<Json> = rows.iter().map(|r| Json::Object(r.json.clone())).collect();
        doc.json_mut()
            .insert("keyframes".to_owned(), Json::Array(sorted));
        let (first, last) = match (rows.first(), rows.last()) {
            (Some(f), Some(l)) => (f.frame, l.frame),
            _ => return Err(RenderError::TooFewKeyframes),
        };
        // Parseq builds `Array(last - first + 1)`: the ends must be whole frames.
        for end in [first, last] {
            if end.fract() != 0.0 {
                return Err(RenderError::BadFrame(super::jsnum::to_js_string(end)));
            }
        }
        let (first, last) = (first as i64, last as i64);
        let span = i128::from(last) - i128::from(first) + 1;
        if span > MAX_FRAMES as i128 {
            return Err(RenderError::TooManyFrames { frames: span });
        }
        let infos = rows
            .iter()
            .map(|r| KeyframeInfo {
                frame: r.frame,
                info: r.json.get("info").and_then(Json::as_str).map(str::to_owned),
            })
            .collect();
        let series = super::document::time_series(doc.json().get("timeSeries"));
        let prompts = doc.prompts()?;
        let managed = doc.managed_fields();
        let mut s = Self {
            rendered: Rendered {
                first_frame: first,
                frame_count: span as usize,
                reverse: doc.reverse_render(),
                ..Rendered::default()
            },
            doc,
            rows,
            infos,
            timing,
            series,
            prompts,
            fields: Vec::new(),
            prompt_formulas: HashMap::new(),
            computed: Vec::new(),
            raw_options,
        };
        s.fields = managed.iter().map(|f| s.plan_field(f)).collect();
        s.rendered.fields = managed
            .iter()
            .map(|name| RenderedField {
                name: name.clone(),
                ..RenderedField::default()
            })
            .collect();
        s.rendered.seed_field = managed.iter().rposition(|f| f == "seed");
        Ok(s)
    }

    /// The document (keyframes sorted).
    pub fn document(&self) -> &Document {
        &self.doc
    }

    /// The last render.
    pub fn rendered(&self) -> &Rendered {
        &self.rendered
    }

    /// Renders everything.
    pub fn render_all(&mut self) -> Result<(), RenderError> {
        for k in 0..self.fields.len() {
            self.render_field(k)?;
        }
        self.render_prompts()?;
        self.finish_fields(0..self.fields.len())
    }

    /// Parseq's output JSON: the document, `rendered_frames` and `rendered_frames_meta`.
    pub fn output_json(&self, generated_at: &str) -> Json {
        let mut out = self.doc.json().clone();
        out.insert(
            "meta".to_owned(),
            json!({"generated_by": "sd_parseq", "version": "0.1.112", "generated_at": generated_at,
                   "doc_id": "unknown", "version_id": "unknown"}),
        );
        out.insert(
            "rendered_frames".to_owned(),
            Json::Array(self.rendered.frames_json()),
        );
        out.insert("rendered_frames_meta".to_owned(), self.rendered.meta_json());
        Json::Object(out)
    }

    fn plan_field(&self, field: &str) -> FieldPlan {
        let first = self.rendered.first_frame;
        let formula_key = format!("{field}_i");
        let mut frames = Vec::new();
        let mut values = Vec::new();
        let (Some(first_row), Some(last_row)) = (self.rows.first(), self.rows.last()) else {
            return FieldPlan {
                name: field.to_owned(),
                keyed: Keyed::default(),
                formulas: Vec::new(),
                default: field_default(field),
                reads_fields: false,
            };
        };
        let valid = |r: &Row| is_valid_number(r.json.get(field));
        let value = |r: &Row| json_to_number(r.json.get(field).unwrap_or(&Json::Null));
        if !valid(first_row) {
            let v = self
                .rows
                .iter()
                .find(|r| valid(r))
                .map_or(field_default(field), value);
            frames.push(first_row.frame);
            values.push(v);
        }
        for r in self.rows.iter().filter(|r| valid(r)) {
            frames.push(r.frame);
            values.push(value(r));
        }
        if !valid(last_row) {
            let v = self
                .rows
                .iter()
                .rev()
                .find(|r| valid(r))
                .map_or(field_default(field), value);
            frames.push(last_row.frame);
            values.push(v);
        }
        let mut formulas = Vec::new();
        let mut seen_frames = Vec::new();
        for r in &self.rows {
            // `keyframes.find(kf => kf.frame === frame)`: only the first row of a frame counts.
            if seen_frames.contains(&r.frame) {
                continue;
            }
            seen_frames.push(r.frame);
            let Some(text) = r.json.get(&formula_key).filter(|v| json_truthy(v)) else {
                continue;
            };
            let text = match text {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            if r.frame.fract() != 0.0 {
                continue;
            }
            let idx = (r.frame as i64 - first) as usize;
            formulas.push((idx, text.clone(), Formula::parse(&text)));
        }
        let reads_fields = formulas.iter().any(|(_, t, _)| t.contains("dangerous"));
        FieldPlan {
            name: field.to_owned(),
            keyed: Keyed::new(frames, values),
            formulas,
            default: field_default(field),
            reads_fields,
        }
    }

    fn render_field(&mut self, k: usize) -> Result<(), RenderError> {
        let n = self.rendered.frame_count;
        if let Some(out) = self.rendered.fields.get_mut(k) {
            out.values.clear();
            out.values.resize(n, f64::NAN);
        }
        self.computed.clear();
        self.render_range(k, 0..n)
    }

    /// Renders frame indices `range` of field `k`. The range must start where the formula state
    /// is known: at the first frame, at a keyframe formula, or under the stateless default `L`;
    /// `self.computed` holds the field's values before the range.
    fn render_range(&mut self, k: usize, range: Range<usize>) -> Result<(), RenderError> {
        let first = self.rendered.first_frame;
        let (before, rest) = self.rendered.fields.split_at_mut(k);
        let Some(out) = rest.first_mut() else {
            return Ok(());
        };
        let Some(plan) = self.fields.get_mut(k) else {
            return Ok(());
        };
        let computed = &mut self.computed;
        computed.truncate(range.start);
        let mut default_l = Formula::parse("L").map_err(|error| RenderError::Parse {
            field: plan.name.clone(),
            frame: first,
            source_text: "L".to_owned(),
            error,
        })?;
        let mut cursor = Cursor::at(plan, range.start, first);
        for i in range {
            let frame = first + i as i64;
            cursor.advance(plan, i, frame)?;
            let lookup = FieldLookup {
                prev: previous(computed, frame),
                earlier: before,
                own: (&plan.name, &out.values[..i.min(out.values.len())]),
                first,
            };
            let ctx = Context {
                frame: frame as f64,
                active_keyframe: cursor.active_keyframe,
                field_name: &plan.name,
                keyed: &plan.keyed,
                keyframes: &self.infos,
                fps: self.timing.fps,
                bpm: self.timing.bpm,
                cadence: self.timing.cadence,
                computed,
                lookup: &lookup,
                time_series: &self.series,
                prompt_type: None,
                field_default: plan.default,
                raw_options: Some(&self.raw_options),
            };
            let formula = match cursor.active.and_then(|a| plan.formulas.get_mut(a)) {
                Some((_, _, Ok(formula))) => formula,
                _ => &mut default_l,
            };
            let v = formula.eval(&ctx).map_err(|error| RenderError::Eval {
                field: plan.name.clone(),
                frame,
                source_text: keyframe_text(&plan.formulas, i),
                error,
            })?;
            if let Some(slot) = out.values.get_mut(i) {
                *slot = v.to_number();
            }
            computed.push(v);
        }
        Ok(())
    }

    /// Frame indices an edit of `field`'s value at `frame` can change, given the keyframe frames
    /// before and after the edit; `None` when the whole field must re-render (formulas that read
    /// every keyframe or earlier results, parse errors, edits at the ends).
    fn dirty_range(&self, k: usize, old: &[f64], frame: i64) -> Option<Range<usize>> {
        let plan = self.fields.get(k)?;
        for (_, _, parsed) in &plan.formulas {
            let d = parsed.as_ref().ok()?.dependencies();
            if d.all_keyframes || d.own_history || d.other_fields {
                return None;
            }
        }
        let f = frame as f64;
        let both = || old.iter().chain(plan.keyed.frames()).copied();
        let before = both()
            .filter(|&x| x < f)
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))?;
        let after = both()
            .filter(|&x| x > f)
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.min(x))))?;
        let first = self.rendered.first_frame as f64;
        let (lo, hi) = ((before - first) as usize, (after - first) as usize);
        let start = plan
            .formulas
            .iter()
            .rev()
            .map(|(idx, _, _)| *idx)
            .find(|&idx| idx <= lo)
            .unwrap_or(lo);
        let stop = plan
            .formulas
            .iter()
            .map(|(idx, _, _)| *idx)
            .find(|&idx| idx > hi)
            .unwrap_or(self.rendered.frame_count);
        Some(start..stop)
    }

    fn render_prompts(&mut self) -> Result<(), RenderError> {
        if !self.prompts.enabled {
            self.rendered.prompts = None;
            return Ok(());
        }
        self.rendered.prompts = Some(vec![String::new(); self.rendered.frame_count]);
        self.render_prompts_range(0..self.rendered.frame_count)
    }

    /// Re-renders the prompts of frame indices `range` (each frame's prompt depends only on that
    /// frame).
    fn render_prompts_range(&mut self, range: Range<usize>) -> Result<(), RenderError> {
        let first = self.rendered.first_frame;
        let last = self.rows.last().map_or(first, |r| r.frame as i64);
        let all_frames: Vec<f64> = self.rows.iter().map(|r| r.frame).collect();
        let keyed = Keyed::new(all_frames, Vec::new());
        for i in range {
            let frame = first + i as i64;
            let text = self
                .prompt_at(i, frame, last, &keyed)
                .map_err(|message| RenderError::Prompt { frame, message })?;
            if let Some(slot) = self.rendered.prompts.as_mut().and_then(|p| p.get_mut(i)) {
                *slot = text;
            }
        }
        Ok(())
    }

    fn prompt_at(
        &mut self,
        i: usize,
        frame: i64,
        last: i64,
        keyed: &Keyed,
    ) -> Result<String, String> {
        let f = frame as f64;
        let lookup = PromptLookup {
            fields: &self.rendered.fields,
            index: i,
        };
        let ctx = |prompt_type| Context {
            frame: f,
            active_keyframe: f,
            field_name: "prompt",
            keyed,
            keyframes: &self.infos,
            fps: self.timing.fps,
            bpm: self.timing.bpm,
            cadence: self.timing.cadence,
            computed: &[],
            lookup: &lookup,
            time_series: &self.series,
            prompt_type,
            field_default: 0.0,
            raw_options: Some(&self.raw_options),
        };
        let mut parts = Vec::new();
        let active: Vec<&Prompt> = self
            .prompts
            .list
            .iter()
            .filter(|p| p.all_frames || (f >= p.from && f <= p.to))
            .collect();
        for p in active {
            let positive = apply_common(&self.prompts, &p.positive, true);
            let negative = apply_common(&self.prompts, &p.negative, false);
            let weight = calculate_weight(p, f, last as f64);
            let mut pos = expand(&mut self.prompt_formulas, &positive, &ctx(Some(true)))?;
            let mut neg = expand(&mut self.prompt_formulas, &negative, &ctx(Some(false)))?;
            move_substrings(&mut pos, &mut neg);
            move_substrings(&mut neg, &mut pos);
            let weight = expand(&mut self.prompt_formulas, &weight, &ctx(None))?;
            parts.push((pos, neg, weight));
        }
        let many = parts.len() > 1;
        let join = |pick: &dyn Fn(&(String, String, String)) -> String| {
            parts
                .iter()
                .map(|p| {
                    let mut s = pick(p);
                    if many {
                        s.push_str(": ");
                        s.push_str(&p.2);
                    }
                    s
                })
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        let positive = join(&|p| p.0.clone());
        let negative = join(&|p| p.1.clone());
        Ok(if negative.is_empty() {
            positive
        } else {
            format!("{positive} --neg {negative}")
        })
    }

    /// Seeds, meta, deltas and percentages for the given fields.
    fn finish_fields(&mut self, fields: std::ops::Range<usize>) -> Result<(), RenderError> {
        let first = self.rendered.first_frame;
        for f in &mut self.rendered.fields[fields] {
            if first != 0 {
                return Err(RenderError::FirstFrameNotZero(f.name.clone()));
            }
            f.max = f
                .values
                .iter()
                .fold(f64::NEG_INFINITY, |m, v| js_max(m, v.abs()));
            f.min = f.values.iter().fold(f64::INFINITY, |m, v| js_min(m, *v));
            let (max, zoom) = (f.max, f.name == "zoom");
            f.delta.clear();
            f.pc.clear();
            let mut prev = None;
            for &v in &f.values {
                f.delta.push(match prev {
                    None => v,
                    Some(p) if zoom => 1.0 + (v - p),
                    Some(p) => v - p,
                });
                f.pc.push(if max != 0.0 { v / max * 100.0 } else { v });
                prev = Some(v);
            }
        }
        Ok(())
    }

    /// Sets (or, with `None`, clears) `field`'s value on the keyframe at `frame` and re-renders
    /// only what that can change: the field between the neighbouring keyframes (from the formula
    /// in force there to the next keyframe formula; the whole field when its formulas read every
    /// keyframe or earlier results), fields after it that read other fields (`dangerous`), and
    /// the same frames of prompts that refer to a re-rendered field. Returns each re-rendered
    /// field with the frames re-rendered.
    pub fn set_value(
        &mut self,
        frame: i64,
        field: &str,
        value: Option<f64>,
    ) -> Result<Vec<(String, Range<i64>)>, RenderError> {
        let old = self
            .fields
            .iter()
            .find(|p| p.name == field)
            .map(|p| p.keyed.frames().to_vec());
        let Some(row) = self.rows.iter_mut().find(|r| r.frame == frame as f64) else {
            return Err(RenderError::NoKeyframeAt(frame));
        };
        match value {
            Some(v) => {
                row.json.insert(field.to_owned(), number_json(v));
            }
            None => {
                row.json.remove(field);
            }
        }
        self.sync_keyframe(frame);
        self.refresh_field(field, frame, old)
    }

    /// Sets (or clears) `field`'s formula on the keyframe at `frame` and re-renders what it
    /// affects (as [`Sequencer::set_value`]).
    pub fn set_formula(
        &mut self,
        frame: i64,
        field: &str,
        formula: Option<&str>,
    ) -> Result<Vec<(String, Range<i64>)>, RenderError> {
        let Some(row) = self.rows.iter_mut().find(|r| r.frame == frame as f64) else {
            return Err(RenderError::NoKeyframeAt(frame));
        };
        let key = format!("{field}_i");
        match formula {
            Some(t) => {
                row.json.insert(key, json!(t));
            }
            None => {
                row.json.remove(&key);
            }
        }
        self.sync_keyframe(frame);
        self.refresh_field(field, frame, None)
    }

    /// Copies the edited keyframe row back into the document.
    fn sync_keyframe(&mut self, frame: i64) {
        let Some(i) = self.rows.iter().position(|r| r.frame == frame as f64) else {
            return;
        };
        let row = Json::Object(self.rows[i].json.clone());
        if let Some(slot) = self
            .doc
            .json_mut()
            .get_mut("keyframes")
            .and_then(Json::as_array_mut)
            .and_then(|k| k.get_mut(i))
        {
            *slot = row;
        }
    }

    /// Re-renders `field` after an edit at `frame` (`old` are its keyframe frames before the
    /// edit, `None` for a formula edit), later fields that read other fields, and prompts that
    /// mention a re-rendered field.
    fn refresh_field(
        &mut self,
        field: &str,
        frame: i64,
        old: Option<Vec<f64>>,
    ) -> Result<Vec<(String, Range<i64>)>, RenderError> {
        let Some(start) = self.fields.iter().position(|p| p.name == field) else {
            return Ok(Vec::new());
        };
        let first = self.rendered.first_frame;
        let all = 0..self.rendered.frame_count;
        let mut touched = Vec::new();
        let mut prompt_range: Option<Range<usize>> = None;
        for k in start..self.fields.len() {
            if !(k == start || self.fields[k].reads_fields || self.fields[k].name == field) {
                continue;
            }
            self.fields[k] = self.plan_field(&self.fields[k].name.clone());
            let range = match (&old, k == start) {
                (Some(old), true) => self.dirty_range(k, old, frame),
                _ => None,
            };
            let range = match range {
                Some(r) => {
                    self.computed = self.rendered.fields[k].values[..r.start]
                        .iter()
                        .map(|v| Value::Num(*v))
                        .collect();
                    self.render_range(k, r.clone())?;
                    r
                }
                None => {
                    self.render_field(k)?;
                    all.clone()
                }
            };
            self.finish_fields(k..k + 1)?;
            let name = self.fields[k].name.clone();
            if self.prompts_mention(std::slice::from_ref(&name)) {
                prompt_range = Some(match prompt_range {
                    Some(p) => p.start.min(range.start)..p.end.max(range.end),
                    None => range.clone(),
                });
            }
            touched.push((name, first + range.start as i64..first + range.end as i64));
        }
        if let (Some(r), true) = (prompt_range, self.prompts.enabled) {
            self.render_prompts_range(r)?;
        }
        Ok(touched)
    }

    /// Whether a prompt's expressions may read one of `fields` (prompts see every managed
    /// field's value as a variable).
    fn prompts_mention(&self, fields: &[String]) -> bool {
        let p = &self.prompts;
        let mut texts = p
            .list
            .iter()
            .chain(std::iter::once(&p.common))
            .flat_map(|q| [&q.positive, &q.negative, &q.overlap.custom]);
        texts.any(|t| t.contains("${") && fields.iter().any(|f| t.contains(f.as_str())))
            || p.list.iter().any(|q| {
                q.overlap.kind == "custom"
                    && fields.iter().any(|f| q.overlap.custom.contains(f.as_str()))
            })
    }
}

/// The options formulas see, as numbers and as given; Parseq's validation of fps and bpm.
fn timing_of(doc: &Document) -> Result<(Timing, [Value; 3]), RenderError> {
    let fps = doc.option("output_fps").cloned().unwrap_or(Json::Null);
    if !json_truthy(&fps) {
        return Err(RenderError::NoFps);
    }
    let bpm = doc.option("bpm").cloned().unwrap_or(Json::Null);
    if !json_truthy(&bpm) {
        return Err(RenderError::NoBpm);
    }
    // `options.cadence ?? 1`
    let cadence = doc
        .option("cadence")
        .filter(|c| !c.is_null())
        .cloned()
        .unwrap_or(json!(1));
    let raw = |v: &Json| match v {
        Json::String(s) => Value::str(s),
        other => Value::Num(json_to_number(other)),
    };
    let timing = Timing {
        fps: json_to_number(&fps),
        bpm: json_to_number(&bpm),
        cadence: json_to_number(&cadence),
    };
    Ok((timing, [raw(&fps), raw(&bpm), raw(&cadence)]))
}

/// Where a field's render is: the active formula and the active keyframe.
struct Cursor {
    active: Option<usize>,
    next_formula: usize,
    next_defined: usize,
    active_keyframe: f64,
}

impl Cursor {
    /// The cursor just before frame index `start`.
    fn at(plan: &FieldPlan, start: usize, first: i64) -> Self {
        let f = (first + start as i64) as f64;
        let frames = plan.keyed.frames();
        let next_defined = frames.partition_point(|&x| x < f);
        let next_formula = plan.formulas.partition_point(|(idx, _, _)| *idx < start);
        Self {
            active: next_formula.checked_sub(1),
            next_formula,
            next_defined,
            // Parseq starts `activeKeyframe` at 0 whatever the first keyframe.
            active_keyframe: next_defined
                .checked_sub(1)
                .and_then(|i| frames.get(i).copied())
                .unwrap_or(0.0),
        }
    }

    /// Moves to frame index `i`: a keyframe formula here becomes active with fresh state (a
    /// parse error surfaces now), and a keyframe with a value here becomes the active keyframe.
    fn advance(&mut self, plan: &mut FieldPlan, i: usize, frame: i64) -> Result<(), RenderError> {
        while let Some((idx, text, parsed)) = plan.formulas.get_mut(self.next_formula) {
            if *idx != i {
                break;
            }
            match parsed {
                Ok(formula) => formula.reset(),
                Err(error) => {
                    return Err(RenderError::Parse {
                        field: plan.name.clone(),
                        frame,
                        source_text: text.clone(),
                        error: error.clone(),
                    });
                }
            }
            self.active = Some(self.next_formula);
            self.next_formula += 1;
        }
        let f = frame as f64;
        let frames = plan.keyed.frames();
        while self.next_defined < frames.len() && frames[self.next_defined] < f {
            self.next_defined += 1;
        }
        if frames.get(self.next_defined) == Some(&f) {
            self.active_keyframe = f;
        }
        Ok(())
    }
}

/// `prev_computed_value`: Parseq indexes the values computed so far by `frame - 1`.
fn previous(computed: &[Value], frame: i64) -> Value {
    if frame > 0 {
        usize::try_from(frame - 1)
            .ok()
            .and_then(|i| computed.get(i))
            .cloned()
            .unwrap_or(Value::Undefined)
    } else {
        Value::Num(0.0)
    }
}

fn keyframe_text(formulas: &[(usize, String, Result<Formula, ParseError>)], i: usize) -> String {
    formulas
        .iter()
        .find(|(idx, _, _)| *idx == i)
        .map_or_else(|| "undefined".to_owned(), |(_, t, _)| t.clone())
}

fn rows_of(keyframes: &[Json]) -> Result<Vec<Row>, RenderError> {
    keyframes
        .iter()
        .map(|kf| {
            let json = kf.as_object().cloned().unwrap_or_default();
            let f = json.get("frame").map_or(f64::NAN, json_to_number);
            if !f.is_finite() || f.abs() > 1e15 {
                return Err(RenderError::BadFrame(
                    json.get("frame")
                        .map_or("undefined".to_owned(), Json::to_string),
                ));
            }
            Ok(Row { frame: f, json })
        })
        .collect()
}

struct FieldLookup<'a> {
    prev: Value,
    earlier: &'a [RenderedField],
    /// The field being rendered and its values for the frames before the current one.
    own: (&'a str, &'a [f64]),
    first: i64,
}

impl Lookup for FieldLookup<'_> {
    fn variable(&self, name: &str) -> Option<Value> {
        (name == "prev_computed_value").then(|| self.prev.clone())
    }

    fn rendered(&self, frame: f64, field: &str) -> Option<f64> {
        let idx = frame - self.first as f64;
        if idx.fract() != 0.0 || idx < 0.0 {
            return None;
        }
        let idx = idx as usize;
        let (own_name, own) = self.own;
        let exists = !self.earlier.is_empty() || idx < own.len();
        if field == "frame" {
            return exists.then_some(frame);
        }
        if field == own_name && idx < own.len() {
            return own.get(idx).copied();
        }
        self.earlier
            .iter()
            .rev()
            .find(|f| f.name == field)
            .and_then(|f| f.values.get(idx).copied())
    }
}

struct PromptLookup<'a> {
    fields: &'a [RenderedField],
    index: usize,
}

impl Lookup for PromptLookup<'_> {
    fn variable(&self, name: &str) -> Option<Value> {
        self.fields
            .iter()
            .rev()
            .find(|f| f.name == name)
            .and_then(|f| f.values.get(self.index))
            .map(|v| Value::Num(*v))
    }
}

fn apply_common(prompts: &Prompts, text: &str, positive: bool) -> String {
    let common = if positive {
        &prompts.common.positive
    } else {
        &prompts.common.negative
    };
    match prompts.common_pos {
        CommonPromptPos::Append => js_trim(&format!("{text} {common}")).to_owned(),
        CommonPromptPos::Prepend => js_trim(&format!("{common} {text}")).to_owned(),
        CommonPromptPos::Template => {
            if js_trim(common).is_empty() {
                text.to_owned()
            } else {
                replace_all_js(common, "[prompt]", text)
            }
        }
        CommonPromptPos::Other => "undefined".to_owned(),
    }
}

/// `s.replace(/needle/g, replacement)` with JS replacement patterns (`$$`, `$&`, `` $` ``, `$'`).
fn replace_all_js(s: &str, needle: &str, replacement: &str) -> String {
    let mut out = String::new();
    let mut rest = 0;
    while let Some(pos) = s[rest..].find(needle) {
        let at = rest + pos;
        out.push_str(&s[rest..at]);
        let mut chars = replacement.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            if c != '$' {
                out.push(c);
                continue;
            }
            match chars.peek().map(|(_, c)| *c) {
                Some('$') => out.push('$'),
                Some('&') => out.push_str(needle),
                Some('`') => out.push_str(&s[..at]),
                Some('\'') => out.push_str(&s[at + needle.len()..]),
                _ => {
                    out.push('$');
                    continue;
                }
            }
            chars.next();
        }
        rest = at + needle.len();
    }
    out.push_str(&s[rest..]);
    out
}

fn calculate_weight(p: &Prompt, f: f64, last: f64) -> String {
    match p.overlap.kind.as_str() {
        "linear" => {
            let start = if p.all_frames { 0.0 } else { p.from };
            let end = if p.all_frames { last } else { p.to };
            let (fade_in, fade_out) = (p.overlap.in_frames, p.overlap.out_frames);
            let truthy = |x: f64| x != 0.0 && !x.is_nan();
            if truthy(fade_in) && f < start + fade_in {
                to_precision((f - start) / fade_in, 4)
            } else if truthy(fade_out) && f > end - fade_out {
                to_precision(1.0 - (f - (end - fade_out)) / fade_out, 4)
            } else {
                "1".to_owned()
            }
        }
        "custom" => format!("${{{}}}", p.overlap.custom),
        _ => "1".to_owned(),
    }
}

/// Evaluates every `${…}` (non-greedy, across lines) with a fresh formula, then turns newlines
/// into spaces.
fn expand(
    cache: &mut HashMap<String, Result<Formula, ParseError>>,
    text: &str,
    ctx: &Context<'_>,
) -> Result<String, String> {
    if !text.contains("${") {
        return Ok(text.replace('\n', " "));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    while let Some(open) = text[rest..].find("${") {
        let start = rest + open;
        let Some(close) = text[start + 2..].find('}') else {
            break;
        };
        let end = start + 2 + close;
        out.push_str(&text[rest..start]);
        let expr = &text[start + 2..end];
        if !cache.contains_key(expr) {
            cache.insert(expr.to_owned(), Formula::parse(expr));
        }
        let Some(formula) = cache.get_mut(expr) else {
            return Err("internal: prompt formula cache".to_owned());
        };
        let formula = formula.as_mut().map_err(|e| e.to_string())?;
        formula.reset();
        match formula.eval(ctx).map_err(|e| e.to_string())? {
            Value::Num(n) => out.push_str(&to_fixed(n, 5)),
            other => other.write_js(&mut out),
        }
        rest = end + 1;
    }
    out.push_str(&text[rest..]);
    Ok(out.replace('\n', " "))
}

/// Moves `__PARSEQ_MOVE__x__PARSEQ_END_MOVE__` markers from `from` to the start of `to`.
fn move_substrings(from: &mut String, to: &mut String) {
    const OPEN: &str = "__PARSEQ_MOVE__";
    const CLOSE: &str = "__PARSEQ_END_MOVE__";
    let mut found = Vec::new();
    let mut rest = 0;
    while let Some(o) = from[rest..].find(OPEN) {
        let start = rest + o;
        let body = start + OPEN.len();
        let Some(c) = from[body..].find(CLOSE) else {
            break;
        };
        let end = body + c + CLOSE.len();
        found.push((from[start..end].to_owned(), from[body..body + c].to_owned()));
        rest = end;
    }
    for (whole, inner) in found {
        if let Some(at) = from.find(&whole) {
            from.replace_range(at..at + whole.len(), "");
        }
        *to = format!(" {inner} {to}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_formulas_are_cut_in_messages_and_short_ones_kept_whole() {
        assert_eq!(abbreviated("bez(0,0.6,1,0.4)"), "bez(0,0.6,1,0.4)");
        let long = "f+".repeat(20_000);
        let shown = abbreviated(&long);
        assert_eq!(
            shown.chars().count(),
            SHOWN_FORMULA_CHARS + "… (40000 characters)".chars().count()
        );
        assert!(shown.ends_with("… (40000 characters)"), "{shown}");
    }

    #[test]
    fn long_frames_and_prompt_errors_are_cut_too() {
        let frame = format!("\"{}\"", "9".repeat(5_000));
        let message = RenderError::BadFrame(frame).to_string();
        assert!(
            message.len() < 300 && message.contains("(5002 characters)"),
            "{message}"
        );
        let message = RenderError::Prompt {
            frame: 3,
            message: "x".repeat(100_000),
        }
        .to_string();
        assert!(message.len() < 300 && message.starts_with("Error parsing prompt on frame 3"));
    }
}
