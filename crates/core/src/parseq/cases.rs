//! Adapters from the Parseq conformance case files (`parseq_lang_cases*.json`,
//! `parseq_render_cases*.json`) to this module, used by [`crate::conformance`].

use std::collections::HashMap;

use serde_json::{Map, Value as Json, json};

use super::document::{Document, keyframe_infos, time_series};
use super::eval::{Context, EvalError, Formula, Keyed, Lookup};
use super::render::{RenderError, Sequencer};
use super::value::Value;
use crate::conformance::{Mismatch, json_close};

/// The message prefixes of Parseq's argument validation: the only eval messages compared exactly.
const CONTRACT_MESSAGES: [&str; 5] = [
    "1 or more missing required arguments",
    "1 or more unrecognised arguments",
    "Too many arguments",
    "Duplicate arguments",
    "Invalid argument type",
];

fn nums(v: Option<&Json>) -> Vec<f64> {
    v.and_then(Json::as_array)
        .map(|a| a.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect())
        .unwrap_or_default()
}

fn json_value(v: &Json) -> Value {
    match v {
        Json::Number(n) => Value::Num(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Value::str(s),
        Json::Null => Value::Undefined,
        Json::Bool(b) => Value::Num(f64::from(u8::from(*b))),
        other => Value::str(&other.to_string()),
    }
}

struct MapLookup(HashMap<String, Value>);

impl Lookup for MapLookup {
    fn variable(&self, name: &str) -> Option<Value> {
        self.0.get(name).cloned()
    }
}

/// A JSON rendering of a value as `JSON.stringify` would write it, and its special kind.
pub(crate) fn value_json(v: &Value) -> (Json, Option<&'static str>) {
    match v {
        Value::Num(n) if n.is_nan() => (Json::Null, Some("NaN")),
        Value::Num(n) if n.is_infinite() => (
            Json::Null,
            Some(if *n > 0.0 { "Infinity" } else { "-Infinity" }),
        ),
        Value::Num(n) if *n == 0.0 && n.is_sign_negative() => (json!(0), Some("-0")),
        Value::Num(n) => (json!(n), None),
        Value::Str(s) => (Json::String(s.to_string()), None),
        Value::Undefined => (Json::Null, Some("undefined")),
    }
}

/// One `parseq_lang_cases` case.
pub fn lang_case(case: &Json) -> Result<Option<Mismatch>, String> {
    let ctx = case.get("context").ok_or("a case has no `context`")?;
    let expr = case
        .get("expr")
        .and_then(Json::as_str)
        .ok_or("a case has no `expr`")?;
    let frames = nums(case.get("frames"));
    let actives = nums(case.get("active_keyframes"));
    let keyed = Keyed::new(
        nums(ctx.get("definedFrames")),
        nums(ctx.get("definedValues")),
    );
    let keyframes = keyframe_infos(ctx.get("allKeyframes"));
    let series = time_series(ctx.get("timeSeries"));
    let computed: Vec<Value> = ctx
        .get("computed_values")
        .and_then(Json::as_array)
        .map(|a| a.iter().map(json_value).collect())
        .unwrap_or_default();
    let vars = MapLookup(
        ctx.get("variableMap")
            .and_then(Json::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), json_value(v))).collect())
            .unwrap_or_default(),
    );
    let num = |k: &str| ctx.get(k).and_then(Json::as_f64).unwrap_or(f64::NAN);
    let field = ctx.get("fieldName").and_then(Json::as_str).unwrap_or("");
    let outcome = run_lang(expr, &frames, &actives, |frame, active| Context {
        frame,
        active_keyframe: active,
        field_name: field,
        keyed: &keyed,
        keyframes: &keyframes,
        fps: num("FPS"),
        bpm: num("BPM"),
        cadence: num("cadence"),
        computed: &computed,
        lookup: &vars,
        time_series: &series,
        prompt_type: ctx.get("promptType").and_then(Json::as_bool),
        field_default: super::document::field_default(field),
        raw_options: None,
    });
    Ok(judge_lang(case, outcome))
}

enum LangOutcome {
    Values(Vec<Value>),
    ParseError(String),
    EvalError { frame: f64, error: EvalError },
}

fn run_lang<'a>(
    expr: &str,
    frames: &[f64],
    actives: &[f64],
    ctx: impl Fn(f64, f64) -> Context<'a>,
) -> LangOutcome {
    let mut formula = match Formula::parse(expr) {
        Ok(f) => f,
        Err(e) => return LangOutcome::ParseError(e.to_string()),
    };
    let mut out = Vec::with_capacity(frames.len());
    for (i, &frame) in frames.iter().enumerate() {
        let active = actives.get(i).copied().unwrap_or(0.0);
        match formula.eval(&ctx(frame, active)) {
            Ok(v) => out.push(v),
            Err(error) => return LangOutcome::EvalError { frame, error },
        }
    }
    LangOutcome::Values(out)
}

fn judge_lang(case: &Json, outcome: LangOutcome) -> Option<Mismatch> {
    let expect_error = case.get("expect_error").and_then(Json::as_bool) == Some(true);
    let got = match &outcome {
        LangOutcome::Values(vs) => {
            let (values, specials): (Vec<Json>, Vec<Option<&str>>) =
                vs.iter().map(value_json).unzip();
            let specials: Map<String, Json> = specials
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.map(|s| (i.to_string(), json!(s))))
                .collect();
            json!({"values": values, "special": specials})
        }
        LangOutcome::ParseError(m) => json!({"phase": "parse", "message": m}),
        LangOutcome::EvalError { frame, error } => {
            json!({"phase": "eval", "frame": frame, "message": error.to_string()})
        }
    };
    if expect_error {
        let err = case.get("error").cloned().unwrap_or(Json::Null);
        let phase = err.get("phase").cloned().unwrap_or(Json::Null);
        let message = err.get("message").and_then(Json::as_str).unwrap_or("");
        let mut expected = json!({"phase": phase});
        let mut mine = json!({"phase": got.get("phase").cloned().unwrap_or(Json::Null)});
        if phase == "eval" {
            expected["frame"] = err.get("frame").cloned().unwrap_or(Json::Null);
            mine["frame"] = got.get("frame").cloned().unwrap_or(Json::Null);
            if CONTRACT_MESSAGES.iter().any(|p| message.starts_with(p)) {
                expected["message"] = json!(message);
                mine["message"] = got.get("message").cloned().unwrap_or(Json::Null);
            }
        }
        return (!json_close(&expected, &mine)).then(|| ("error".to_owned(), expected, got));
    }
    let values = case.get("expected").cloned().unwrap_or(Json::Null);
    let special = case
        .get("expected_special")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut expected = json!({"values": values, "special": special});
    // JSON writes `-0` as 0: the file's `expected_special` says where the original had `-0`,
    // and Keyshift's `-0`s must be exactly those.
    if got.get("phase").is_some() {
        expected = json!({"values": expected["values"].clone()});
    }
    (!json_close(&expected, &got)).then(|| ("expected".to_owned(), expected, got))
}

/// Top-level validation messages of Parseq's renderer: the only render errors compared exactly.
const RENDER_CONTRACT_MESSAGES: [&str; 4] = [
    "No keyframes found.",
    "There must be at least 2 keyframes to render.",
    "No output_fps found.",
    "No bpm found.",
];

/// One `parseq_render_cases` case.
pub fn render_case(case: &Json) -> Result<Option<Mismatch>, String> {
    let input = case.get("input").cloned().ok_or("a case has no `input`")?;
    let outcome = Document::from_json(input)
        .map_err(RenderError::from)
        .and_then(|doc| {
            let mut s = Sequencer::new(doc)?;
            s.render_all()?;
            Ok(s)
        });
    if case.get("expect_error").and_then(Json::as_bool) == Some(true) {
        let message = case
            .get("error")
            .and_then(|e| {
                e.as_str()
                    .or_else(|| e.get("message").and_then(Json::as_str))
            })
            .unwrap_or("");
        let got = match &outcome {
            Ok(_) => json!({"error": null}),
            Err(e) => json!({"error": e.to_string()}),
        };
        let ok = match &outcome {
            Ok(_) => false,
            Err(e) => !RENDER_CONTRACT_MESSAGES.contains(&message) || e.to_string() == message,
        };
        return Ok((!ok).then(|| ("error".to_owned(), json!({"error": message}), got)));
    }
    let expected = case.get("expected").ok_or("a case has no `expected`")?;
    let s = match outcome {
        Ok(s) => s,
        Err(e) => {
            return Ok(Some((
                "document".to_owned(),
                expected.get("document").cloned().unwrap_or(Json::Null),
                json!({"error": e.to_string()}),
            )));
        }
    };
    let mut out = s.output_json("Sun, 01 Jan 2023 14:00:00 GMT");
    let frames = out
        .as_object_mut()
        .and_then(|o| {
            o.remove("timeSeries");
            o.remove("rendered_frames")
        })
        .unwrap_or(Json::Null);
    let null = Json::Null;
    let exp_doc = expected.get("document").unwrap_or(&null);
    if !json_close(exp_doc, &out) {
        let (e, g) = diff_keys(exp_doc, &out);
        return Ok(Some(("document".to_owned(), e, g)));
    }
    let kept = expected
        .get("rendered_frames")
        .and_then(Json::as_array)
        .map_or(0, Vec::len);
    let got_frames: Vec<Json> = frames
        .as_array()
        .map(|a| a.iter().take(kept).cloned().collect())
        .unwrap_or_default();
    if let Some(exp) = expected.get("rendered_frames").and_then(Json::as_array) {
        for (i, (e, g)) in exp.iter().zip(&got_frames).enumerate() {
            if !json_close(e, g) {
                let (e, g) = diff_keys(e, g);
                return Ok(Some((format!("rendered_frames[{i}]"), e, g)));
            }
        }
        if exp.len() != got_frames.len() {
            return Ok(Some((
                "rendered_frames".to_owned(),
                json!(exp.len()),
                json!(got_frames.len()),
            )));
        }
    }
    let total = frames.as_array().map_or(0, Vec::len);
    Ok(compare_total(expected.get("rendered_frames_total"), total))
}

fn compare_total(expected: Option<&Json>, total: usize) -> Option<Mismatch> {
    let e = expected.cloned().unwrap_or(Json::Null);
    (!json_close(&e, &json!(total))).then(|| ("rendered_frames_total".to_owned(), e, json!(total)))
}

/// The differing keys of two objects (whole values otherwise), for short failure lines.
fn diff_keys(expected: &Json, got: &Json) -> (Json, Json) {
    let (Some(e), Some(g)) = (expected.as_object(), got.as_object()) else {
        return (expected.clone(), got.clone());
    };
    let mut de = Map::new();
    let mut dg = Map::new();
    for k in e.keys().chain(g.keys()) {
        let (a, b) = (e.get(k), g.get(k));
        let same = match (a, b) {
            (Some(a), Some(b)) => json_close(a, b),
            _ => false,
        };
        if !same {
            de.insert(
                k.clone(),
                a.cloned().unwrap_or(Json::String("<absent>".into())),
            );
            dg.insert(
                k.clone(),
                b.cloned().unwrap_or(Json::String("<absent>".into())),
            );
        }
    }
    (Json::Object(de), Json::Object(dg))
}
