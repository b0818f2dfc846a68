//! Runs the conformance case files (`shared/conformance/*.json`, `clip_tokens.json`) against this
//! crate and reports, per case, whether Keyshift matches what the original tool did.
//!
//! Keyshift's behaviour is compared first. A case flagged `quirk` whose quirk Keyshift fixes (see
//! [`QUIRK_DECISIONS`] and `docs/compat.md`) may differ, but only if the same case run with
//! [`Fidelity::Original`] reproduces the original exactly: the difference is then the documented
//! fix and nothing else, and is listed as a deviation. Every other difference is a failure.

use std::fmt;
use std::str::FromStr;

use serde_json::{Value, json};
use thiserror::Error;

use crate::prompt::{
    Fidelity, ScheduleOptions, parse_attention_pairs, prompt_schedule, python_repr, split_and,
};
use crate::shift::run::{InfoHeader, RunSettings, info_text, run};
use crate::shift::{GapSettings, ShiftFrame, ShiftRequest};
use crate::tokens::{ClipTokenizer, ModelFamily, TokenError};

/// A conformance suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    /// `a1111_prompt_cases*.json`: A1111's prompt parser.
    A1111,
    /// `shift_attention_cases*.json`: shift-attention's script.
    ShiftAttention,
    /// `clip_tokens.json`: CLIP token ids.
    ClipTokens,
    /// `parseq_lang_cases*.json`: Parseq's interpolation language.
    ParseqLang,
    /// `parseq_render_cases*.json`: Parseq's renderer.
    ParseqRender,
}

impl Suite {
    /// Every suite.
    pub const ALL: [Self; 5] = [
        Self::A1111,
        Self::ShiftAttention,
        Self::ClipTokens,
        Self::ParseqLang,
        Self::ParseqRender,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::A1111 => "a1111",
            Self::ShiftAttention => "shift-attention",
            Self::ClipTokens => "clip-tokens",
            Self::ParseqLang => "parseq-lang",
            Self::ParseqRender => "parseq-render",
        }
    }
}

impl FromStr for Suite {
    type Err = ConformanceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|suite| suite.name() == s)
            .ok_or_else(|| ConformanceError::UnknownSuite(s.to_owned()))
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a suite could not be run at all.
#[derive(Debug, Error)]
pub enum ConformanceError {
    /// Not one of [`Suite::ALL`].
    #[error(
        "unknown suite {0:?} (expected a1111, shift-attention, clip-tokens, parseq-lang or parseq-render)"
    )]
    UnknownSuite(String),
    /// The file is not JSON.
    #[error("the case file is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON does not have the documented shape.
    #[error("the case file does not have the expected shape: {0}")]
    Format(String),
    /// The CLIP tokenizer could not be loaded.
    #[error(transparent)]
    Tokenizer(#[from] TokenError),
    /// The record of fixed outputs (`--fixes`) is not JSON or not `{suite: {case id: {…}}}`.
    #[error("the record of fixed outputs is not usable: {0}")]
    Fixes(String),
}

/// A case whose result differs from the expected one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The case id.
    pub id: String,
    /// What differs (`schedules.steps_10`, `frames`, …).
    pub field: String,
    /// The expected value (compact JSON).
    pub expected: String,
    /// What Keyshift produced (compact JSON).
    pub got: String,
}

/// A quirk case where Keyshift differs from the original by a documented decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deviation {
    /// The case id.
    pub id: String,
    /// The decision that explains the difference.
    pub decision: &'static str,
    /// Whether Keyshift's output was checked against the output recorded for the fix
    /// (`conformance_fixed.json`); false for a case file whose fixes were never recorded.
    pub checked: bool,
}

/// The outcome of a suite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The suite.
    pub suite: Suite,
    /// Cases that pass, deviations included.
    pub passed: usize,
    /// Cases that fail.
    pub failures: Vec<Failure>,
    /// Passing quirk cases where Keyshift's documented fix differs from the original.
    pub deviations: Vec<Deviation>,
}

impl Report {
    /// Whether no case failed.
    pub fn is_success(&self) -> bool {
        self.failures.is_empty()
    }

    /// Deviations whose fixed output had no record to be checked against.
    pub fn unchecked(&self) -> usize {
        self.deviations.iter().filter(|d| !d.checked).count()
    }

    /// One line per failing case (`FAIL id field: expected … got …`), one per documented
    /// deviation, and `N passed, N failed` last.
    pub fn render(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for x in &self.failures {
            writeln!(
                f,
                "FAIL {} {}: expected {} got {}",
                x.id, x.field, x.expected, x.got
            )?;
        }
        for d in &self.deviations {
            let how = if d.checked {
                "fixed output as recorded"
            } else {
                "fixed output not recorded, unchecked"
            };
            writeln!(f, "deviation {} (documented: {}; {how})", d.id, d.decision)?;
        }
        write!(f, "{} passed, {} failed", self.passed, self.failures.len())
    }
}

/// What Keyshift does about one kind of quirk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Keyshift behaves like the original.
    Reproduce,
    /// Keyshift fixes it.
    Fix,
}

/// A kind of quirk, how it is recognised in a case's `quirk` text, and Keyshift's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuirkDecision {
    /// Short name (as in `docs/compat.md`).
    pub name: &'static str,
    /// Texts that identify the quirk in a case's `quirk` field (any of them).
    pub markers: &'static [&'static str],
    /// Reproduce or fix.
    pub decision: Decision,
}

const fn quirk(
    name: &'static str,
    markers: &'static [&'static str],
    decision: Decision,
) -> QuirkDecision {
    QuirkDecision {
        name,
        markers,
        decision,
    }
}

const HASH_SEED_QUIRK: &str = "a1111-hash-seed-parse";

/// Keyshift's decision for every quirk the case files flag (the table in `docs/compat.md`).
pub const QUIRK_DECISIONS: &[QuirkDecision] = &[
    quirk(
        HASH_SEED_QUIRK,
        &["Nondeterministic", "PYTHONHASHSEED"],
        Decision::Fix,
    ),
    quirk(
        "a1111-stale-doctest",
        &["not handling this right now"],
        Decision::Reproduce,
    ),
    quirk(
        "a1111-weight-crash",
        &["parse_prompt_attention crashes"],
        Decision::Reproduce,
    ),
    quirk(
        "a1111-break-in-brackets",
        &["BREAK inside brackets"],
        Decision::Fix,
    ),
    quirk(
        "a1111-lone-backslash",
        &["A backslash not followed"],
        Decision::Reproduce,
    ),
    quirk(
        "a1111-exponents",
        &["Exponent numbers"],
        Decision::Reproduce,
    ),
    quirk(
        "a1111-nested-alternation",
        &["Nested alternation"],
        Decision::Reproduce,
    ),
    quirk(
        "sa-scientific-notation",
        &["scientific notation"],
        Decision::Fix,
    ),
    quirk(
        "sa-unparsable-range",
        &["float() cannot parse", "could not convert"],
        Decision::Fix,
    ),
    quirk("sa-zero-steps", &["steps=0"], Decision::Reproduce),
    quirk("sa-seed-zero", &["seed=0"], Decision::Fix),
    quirk("sa-cfg-zero", &["cfg=0"], Decision::Fix),
    quirk("sa-unstripped-keys", &["not stripped"], Decision::Fix),
    quirk("sa-then-inside-words", &["STRENGTHEN"], Decision::Fix),
    quirk("sa-spaced-options", &["with a space"], Decision::Reproduce),
    quirk(
        "sa-empty-segment-stops",
        &["stops the"],
        Decision::Reproduce,
    ),
    quirk(
        "sa-duplicated-boundary",
        &["both end points"],
        Decision::Reproduce,
    ),
    quirk("sa-mirror-twice", &["applied twice"], Decision::Fix),
    quirk(
        "sa-info-file-crash",
        &["FileNotFoundError", "UnboundLocalError", "info file"],
        Decision::Fix,
    ),
    quirk(
        "sa-log-order",
        &["generation log", "log order"],
        Decision::Fix,
    ),
    quirk(
        "sa-zero-strength-rule",
        &["Zero-strength removal"],
        Decision::Reproduce,
    ),
    quirk("sa-gap-given-up", &["min_pct=0"], Decision::Reproduce),
    quirk(
        "parseq-right-associative",
        &["right-associative", "right-recursive"],
        Decision::Reproduce,
    ),
    quirk("parseq-unary-minus", &["Unary minus"], Decision::Reproduce),
    quirk(
        "parseq-divide-by-zero",
        &["Divide by zero"],
        Decision::Reproduce,
    ),
    quirk(
        "parseq-logic-positive",
        &["test `> 0`"],
        Decision::Reproduce,
    ),
    quirk(
        "parseq-if-whitespace",
        &["followed by whitespace"],
        Decision::Reproduce,
    ),
    quirk("parseq-alias-s", &["Alias \"s\""], Decision::Reproduce),
    quirk(
        "parseq-reverse-deltas",
        &["reverseRender only"],
        Decision::Reproduce,
    ),
    quirk(
        "parseq-lone-prompt-weight",
        &["single active prompt"],
        Decision::Reproduce,
    ),
    quirk(
        "parseq-zoom-delta",
        &["zoom_delta = 1 +"],
        Decision::Reproduce,
    ),
];

/// The decisions that apply to a case's `quirk` text.
pub fn quirk_decisions_for(quirk_text: &str) -> Vec<&'static QuirkDecision> {
    QUIRK_DECISIONS
        .iter()
        .filter(|q| q.markers.iter().any(|m| quirk_text.contains(m)))
        .collect()
}

/// The first fix decision among a case's quirks, if any.
fn fix_for(case: &Value) -> Option<&'static QuirkDecision> {
    let text = case.get("quirk")?.as_str()?;
    quirk_decisions_for(text)
        .into_iter()
        .find(|q| q.decision == Decision::Fix)
}

/// Runs every case of a suite's file with Keyshift's behaviour; quirk cases may deviate by the
/// documented decisions.
pub fn run_suite(suite: Suite, json: &str) -> Result<Report, ConformanceError> {
    run_suite_with_fixes(suite, json, FIXED_OUTPUTS)
}

/// The outputs of Keyshift's fixes, recorded per suite and case id (see [`record_fixes`]): the
/// case's own fields as Keyshift fills them.
pub const FIXED_OUTPUTS: &str = include_str!("conformance_fixed.json");

/// [`run_suite`] with another record of fixed outputs (`{suite: {case id: {field: value}}}`).
pub fn run_suite_with_fixes(
    suite: Suite,
    json: &str,
    fixes: &str,
) -> Result<Report, ConformanceError> {
    let fixes: Value =
        serde_json::from_str(fixes).map_err(|e| ConformanceError::Fixes(e.to_string()))?;
    let fixes = match fixes.get(suite.name()) {
        None => Value::Null,
        Some(Value::Object(record)) => Value::Object(record.clone()),
        Some(_) => {
            let problem = format!("`{}` is not an object of case ids", suite.name());
            return Err(ConformanceError::Fixes(problem));
        }
    };
    run_suite_with(suite, json, Mode::Keyshift, &fixes)
}

/// Runs every case with [`Fidelity::Original`] and allows no deviation: checks that Keyshift
/// knows exactly what the original does, quirks included (a hash-seed-dependent parse may match
/// any of the readings the case lists).
pub fn run_suite_original(suite: Suite, json: &str) -> Result<Report, ConformanceError> {
    run_suite_with(suite, json, Mode::Original, &Value::Null)
}

/// Keyshift's outputs for every case of a suite's file whose documented fix makes it differ from
/// the original, as `{case id: {field: value}}` in the case's own format: what
/// `conformance_fixed.json` records under the suite's name. Written once, read by a person,
/// committed; [`run_suite`] then holds Keyshift's fixes to it.
pub fn record_fixes(suite: Suite, json: &str) -> Result<Value, ConformanceError> {
    let file: Value = serde_json::from_str(json)?;
    let fixed = file.get("fixed_settings").cloned().unwrap_or(Value::Null);
    let outputs = |case: &Value| match suite {
        Suite::A1111 => a1111_outputs(case, Fidelity::Keyshift),
        Suite::ShiftAttention => shift_outputs(case, &fixed, Fidelity::Keyshift),
        _ => Ok(Value::Null),
    };
    let check = |case: &Value| match suite {
        Suite::A1111 => a1111_case(case, Fidelity::Keyshift),
        Suite::ShiftAttention => shift_case(case, &fixed, Fidelity::Keyshift),
        _ => Ok(None),
    };
    let mut record = serde_json::Map::new();
    for case in file
        .get("cases")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = case.get("id").and_then(Value::as_str);
        if let (Some(id), Some(_)) = (id, fix_for(case))
            && check(case)?.is_some()
        {
            record.insert(id.to_owned(), outputs(case)?);
        }
    }
    Ok(Value::Object(record))
}

/// How cases are judged.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Keyshift,
    Original,
}

fn run_suite_with(
    suite: Suite,
    json: &str,
    mode: Mode,
    fixes: &Value,
) -> Result<Report, ConformanceError> {
    let file: Value = serde_json::from_str(json)?;
    let mut report = Report {
        suite,
        passed: 0,
        failures: Vec::new(),
        deviations: Vec::new(),
    };
    match suite {
        Suite::A1111 => run_cases(&file, "cases", mode, fixes, &mut report, a1111_case)?,
        Suite::ShiftAttention => {
            let fixed = file.get("fixed_settings").cloned().unwrap_or(Value::Null);
            run_cases(
                &file,
                "cases",
                mode,
                fixes,
                &mut report,
                |case, fidelity| shift_case(case, &fixed, fidelity),
            )?;
        }
        Suite::ClipTokens => {
            let tokenizer = clip_tokenizer()?;
            run_cases(&file, "vectors", mode, fixes, &mut report, |case, _| {
                clip_case(&tokenizer, case)
            })?;
        }
        Suite::ParseqLang => run_cases(&file, "cases", mode, fixes, &mut report, |case, _| {
            crate::parseq::cases::lang_case(case).map_err(ConformanceError::Format)
        })?,
        Suite::ParseqRender => run_cases(&file, "cases", mode, fixes, &mut report, |case, _| {
            crate::parseq::cases::render_case(case).map_err(ConformanceError::Format)
        })?,
    }
    Ok(report)
}

#[cfg(feature = "embedded-clip-vocab")]
fn clip_tokenizer() -> Result<ClipTokenizer, ConformanceError> {
    Ok(ClipTokenizer::embedded()?)
}

#[cfg(not(feature = "embedded-clip-vocab"))]
fn clip_tokenizer() -> Result<ClipTokenizer, ConformanceError> {
    Err(ConformanceError::Format(
        "clip-tokens needs the `embedded-clip-vocab` feature".to_owned(),
    ))
}

/// A mismatch: (field, expected, got).
pub(crate) type Mismatch = (String, Value, Value);

fn run_cases(
    file: &Value,
    key: &str,
    mode: Mode,
    fixes: &Value,
    report: &mut Report,
    mut check: impl FnMut(&Value, Fidelity) -> Result<Option<Mismatch>, ConformanceError>,
) -> Result<(), ConformanceError> {
    let cases = file
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| ConformanceError::Format(format!("no `{key}` array")))?;
    for (n, case) in cases.iter().enumerate() {
        let id = case
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| format!("{key}-{n:03}"), str::to_owned);
        judge(report, id, case, mode, fixes, &mut check)?;
    }
    Ok(())
}

/// What became of one case.
enum Verdict {
    Pass,
    /// A documented fix; `checked` when Keyshift's output equalled the one recorded for it.
    Deviation {
        decision: &'static str,
        checked: bool,
    },
    Fail(Mismatch),
}

/// Decides one case: pass, documented deviation, or failure. A case that does not have the
/// documented shape is a failure of that case; the suite goes on.
fn judge(
    report: &mut Report,
    id: String,
    case: &Value,
    mode: Mode,
    fixes: &Value,
    check: &mut impl FnMut(&Value, Fidelity) -> Result<Option<Mismatch>, ConformanceError>,
) -> Result<(), ConformanceError> {
    let verdict = match verdict(case, mode, fixes.get(&id), check) {
        Err(ConformanceError::Tokenizer(e)) => Verdict::Fail((
            "tokens".to_owned(),
            json!("token ids"),
            json!(e.to_string()),
        )),
        Err(ConformanceError::Format(message)) => Verdict::Fail((
            "case".to_owned(),
            json!("a case of the documented shape"),
            json!(message),
        )),
        other => other?,
    };
    match verdict {
        Verdict::Pass => report.passed += 1,
        Verdict::Deviation { decision, checked } => {
            report.passed += 1;
            report.deviations.push(Deviation {
                id,
                decision,
                checked,
            });
        }
        Verdict::Fail((field, expected, got)) => report.failures.push(Failure {
            id,
            field,
            expected: compact(&expected),
            got: compact(&got),
        }),
    }
    Ok(())
}

/// A case with a fix decision and a recorded fixed output must produce exactly that output, and
/// its original reading must still be reproduced exactly with [`Fidelity::Original`]. Without a
/// record (a case file we have not seen), the fix may differ from the original only where the
/// original reading is still reproduced: that deviation is reported as not checked.
fn verdict(
    case: &Value,
    mode: Mode,
    record: Option<&Value>,
    check: &mut impl FnMut(&Value, Fidelity) -> Result<Option<Mismatch>, ConformanceError>,
) -> Result<Verdict, ConformanceError> {
    let fix = fix_for(case).filter(|_| mode == Mode::Keyshift);
    if let (Some(fix), Some(record)) = (fix, record) {
        if let Some(m) = check(&overlay(case, record), Fidelity::Keyshift)? {
            return Ok(Verdict::Fail(renamed("fixed ", m)));
        }
        if let Some(m) = check(case, Fidelity::Original)? {
            return Ok(Verdict::Fail(renamed("original ", m)));
        }
        return Ok(Verdict::Deviation {
            decision: fix.name,
            checked: true,
        });
    }
    let fidelity = match mode {
        Mode::Keyshift => Fidelity::Keyshift,
        Mode::Original => Fidelity::Original,
    };
    let Some(mismatch) = check(case, fidelity)? else {
        return Ok(Verdict::Pass);
    };
    match fix {
        Some(fix) if check(case, Fidelity::Original)?.is_none() => Ok(Verdict::Deviation {
            decision: fix.name,
            checked: false,
        }),
        _ => Ok(Verdict::Fail(mismatch)),
    }
}

fn renamed(prefix: &str, (field, expected, got): Mismatch) -> Mismatch {
    (format!("{prefix}{field}"), expected, got)
}

/// The case with the recorded fields put in place of its own.
fn overlay(case: &Value, record: &Value) -> Value {
    let mut case = case.clone();
    if let (Some(c), Some(r)) = (case.as_object_mut(), record.as_object()) {
        for (k, v) in r {
            c.insert(k.clone(), v.clone());
        }
    }
    case
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Field access with a format error naming the field.
fn field<'v>(case: &'v Value, name: &str) -> Result<&'v Value, ConformanceError> {
    case.get(name)
        .ok_or_else(|| ConformanceError::Format(format!("a case has no `{name}`")))
}

fn str_field<'v>(case: &'v Value, name: &str) -> Result<&'v str, ConformanceError> {
    field(case, name)?
        .as_str()
        .ok_or_else(|| ConformanceError::Format(format!("`{name}` is not a string")))
}

/// Equality of JSON values with a relative tolerance of 1e-12 on numbers.
pub fn json_close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            // `-0` and `0` are different values (JSON can write both).
            (Some(x), Some(y)) if x == 0.0 && y == 0.0 => {
                x.is_sign_negative() == y.is_sign_negative()
            }
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_close(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_close(v, w)))
        }
        _ => a == b,
    }
}

/// `Some(mismatch)` when `got` is not close to `expected`.
fn compare(name: &str, expected: &Value, got: Value) -> Option<Mismatch> {
    (!json_close(expected, &got)).then(|| (name.to_owned(), expected.clone(), got))
}

// ---------------------------------------------------------------------------------------------
// a1111

/// The schedule variants of the a1111 files: key, base steps, hires steps, old scheduling.
const SCHEDULE_VARIANTS: [(&str, u32, Option<u32>, bool); 6] = [
    ("steps_10", 10, None, false),
    ("steps_20", 20, None, false),
    ("hires_10_20", 10, Some(20), false),
    ("hires_20_10", 20, Some(10), false),
    ("old_steps_10", 10, None, true),
    ("old_hires_10_20", 10, Some(20), true),
];

fn a1111_case(case: &Value, fidelity: Fidelity) -> Result<Option<Mismatch>, ConformanceError> {
    let got = a1111_outputs(case, fidelity)?;
    let expected_multicond = field(case, "multicond")?;
    field(case, "schedules")?;
    let has = |k: &str| case.get(k).is_some_and(|v| !v.is_null());
    if !has("parse_prompt_attention") && !has("parse_prompt_attention_error") {
        return Err(ConformanceError::Format(
            "a case has neither `parse_prompt_attention` nor `parse_prompt_attention_error`"
                .to_owned(),
        ));
    }
    Ok(a1111_attention(case, &got)
        .or_else(|| a1111_schedules(case, &got["schedules"]))
        .or_else(|| compare("multicond", expected_multicond, got["multicond"].clone())))
}

/// Keyshift's outputs for an a1111 case, as the case's own fields.
fn a1111_outputs(case: &Value, fidelity: Fidelity) -> Result<Value, ConformanceError> {
    let prompt = str_field(case, "prompt")?;
    let (attention, error) = match parse_attention_pairs(prompt, fidelity) {
        Ok(pairs) => (
            Value::Array(pairs.into_iter().map(|(t, w)| json!([t, w])).collect()),
            Value::Null,
        ),
        Err(_) => (Value::Null, json!({"type": "ValueError"})),
    };
    let multicond: Vec<Value> = split_and(prompt)
        .into_iter()
        .map(|p| json!({"text": p.text, "weight": p.weight}))
        .collect();
    Ok(json!({
        "parse_prompt_attention": attention,
        "parse_prompt_attention_error": error,
        "schedules": a1111_schedule_values(prompt),
        "nondeterministic_schedules": null,
        "multicond": multicond,
    }))
}

fn a1111_attention(case: &Value, got: &Value) -> Option<Mismatch> {
    let got = match &got["parse_prompt_attention_error"] {
        Value::Null => got["parse_prompt_attention"].clone(),
        error => error.clone(),
    };
    let expected_error = case
        .get("parse_prompt_attention_error")
        .filter(|e| !e.is_null());
    match expected_error {
        Some(err) => {
            let expected = json!({"type": err.get("type").cloned().unwrap_or(Value::Null)});
            compare("parse_prompt_attention_error", &expected, got)
        }
        None => compare(
            "parse_prompt_attention",
            case.get("parse_prompt_attention").unwrap_or(&Value::Null),
            got,
        ),
    }
}

/// The schedules of every variant the a1111 files record.
fn a1111_schedule_values(prompt: &str) -> Value {
    let mut got = serde_json::Map::new();
    for (key, base_steps, hires_steps, old_scheduling) in SCHEDULE_VARIANTS {
        let options = ScheduleOptions {
            base_steps,
            hires_steps,
            old_scheduling,
        };
        let value = match prompt_schedule(prompt, options) {
            Ok(entries) => entries
                .into_iter()
                .map(|e| json!([e.end_at_step, e.text]))
                .collect(),
            Err(e) => json!({"error": e.to_string()}),
        };
        got.insert(key.to_owned(), value);
    }
    Value::Object(got)
}

/// Schedules of all variants; a hash-seed-dependent case may match any of the readings the
/// original produced.
fn a1111_schedules(case: &Value, got: &Value) -> Option<Mismatch> {
    let got = got.clone();
    let null = Value::Null;
    let expected = case.get("schedules").unwrap_or(&null);
    if json_close(expected, &got) {
        return None;
    }
    let variants = case
        .get("nondeterministic_schedules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let any_variant = variants
        .iter()
        .any(|v| v.get("schedules").is_some_and(|s| json_close(s, &got)));
    (!any_variant).then(|| ("schedules".to_owned(), expected.clone(), got))
}

// ---------------------------------------------------------------------------------------------
// shift-attention

fn shift_case(
    case: &Value,
    fixed: &Value,
    fidelity: Fidelity,
) -> Result<Option<Mismatch>, ConformanceError> {
    let got = shift_outputs(case, fixed, fidelity)?;
    if case.get("expect_error").and_then(Value::as_bool) == Some(true) {
        return Ok(shift_error_mismatch(case, &got));
    }
    let expected = field(case, "expected")?;
    if got["expect_error"] == Value::Bool(true) {
        let error = json!({"error": got["error"]["message"]});
        return Ok(Some(("frames".to_owned(), expected.clone(), error)));
    }
    Ok(compare_run(expected, &got["expected"]))
}

/// Keyshift's outputs for a shift-attention case, as the case's own fields.
fn shift_outputs(
    case: &Value,
    fixed: &Value,
    fidelity: Fidelity,
) -> Result<Value, ConformanceError> {
    let input = field(case, "input")?;
    let request = shift_request(input)?;
    let settings = run_settings(input);
    let mut similarity = fake_ssim(input.get("ssim"));
    let frames = |v: &[crate::shift::run::RunFrame]| serde_json::to_value(v).unwrap_or_default();
    Ok(match run(&request, settings, fidelity, &mut similarity) {
        Ok(run) => {
            let header = info_header(&request, input, fixed);
            json!({
                "expect_error": false,
                "expected": {
                    "frames": frames(&run.frames),
                    "generation_calls": frames(&run.generation_calls),
                    "info_txt": info_text(&header, &run),
                },
            })
        }
        Err(failure) => json!({
            "expect_error": true,
            "error": {
                "type": failure.error.python_type(),
                "message": failure.error.to_string(),
            },
            "frames_generated_before_error": frames(&failure.generated),
        }),
    })
}

fn compare_run(expected: &Value, got: &Value) -> Option<Mismatch> {
    let null = Value::Null;
    let pair = |k: &str| (expected.get(k).unwrap_or(&null), got[k].clone());
    ["frames", "generation_calls", "info_txt"]
        .into_iter()
        .find_map(|k| {
            let (e, g) = pair(k);
            compare(k, e, g)
        })
}

fn shift_error_mismatch(case: &Value, got: &Value) -> Option<Mismatch> {
    let null = Value::Null;
    let expected = json!({
        "type": case.get("error").and_then(|e| e.get("type")).unwrap_or(&null),
        "frames_generated_before_error": case.get("frames_generated_before_error").unwrap_or(&null),
    });
    let got = if got["expect_error"] == Value::Bool(true) {
        json!({
            "type": got["error"]["type"],
            "frames_generated_before_error": got["frames_generated_before_error"],
        })
    } else {
        json!({"type": null, "frames": got["expected"]["frames"].as_array().map_or(0, Vec::len)})
    };
    compare("error", &expected, got)
}

fn shift_request(input: &Value) -> Result<ShiftRequest, ConformanceError> {
    let int = |k: &str| {
        field(input, k)?
            .as_i64()
            .ok_or_else(|| ConformanceError::Format(format!("`{k}` is not an integer")))
    };
    Ok(ShiftRequest {
        prompt: str_field(input, "prompt")?.to_owned(),
        negative_prompt: str_field(input, "negative_prompt")?.to_owned(),
        steps: int("steps")?,
        seed: int("seed")?,
        cfg_scale: field(input, "cfg_scale")?
            .as_f64()
            .ok_or_else(|| ConformanceError::Format("`cfg_scale` is not a number".to_owned()))?,
        remove_zero_strength: input
            .get("rm_zero_strength")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

fn run_settings(input: &Value) -> RunSettings {
    let ssim = input.get("ssim");
    let num = |k: &str, default: f64| {
        ssim.and_then(|s| s.get(k))
            .and_then(Value::as_f64)
            .unwrap_or(default)
    };
    RunSettings {
        gap: GapSettings {
            threshold: num("threshold", 0.0),
            min_step: num("substep_min", 0.0001),
            min_threshold_pct: num("min_pct", 75.0),
        },
        mirror: input
            .get("mirror_mode")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        video_fps: input
            .get("video_fps")
            .and_then(Value::as_f64)
            .unwrap_or(30.0),
    }
}

/// The cases' declared similarity, a function of the two frames' distances (`subseed_strength`):
/// `gap`: `1 − k·|da − db|`; `jump`: 0 when `(min, max]` contains `at`, else `1 − |da − db|`.
fn fake_ssim(ssim: Option<&Value>) -> impl FnMut(&ShiftFrame, &ShiftFrame) -> f64 + use<> {
    let metric = ssim.and_then(|s| s.get("metric"));
    let kind = metric
        .and_then(|m| m.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("gap")
        .to_owned();
    let scale = metric
        .and_then(|m| m.get("scale"))
        .and_then(Value::as_f64)
        .unwrap_or(1.0);
    let at = metric
        .and_then(|m| m.get("at"))
        .and_then(Value::as_f64)
        .unwrap_or(f64::NAN);
    move |a: &ShiftFrame, b: &ShiftFrame| {
        let (da, db) = (a.subseed_strength, b.subseed_strength);
        let gap = (da - db).abs();
        if kind == "jump" {
            if da.min(db) < at && at <= da.max(db) {
                0.0
            } else {
                1.0 - gap
            }
        } else {
            1.0 - scale * gap
        }
    }
}

/// Python's `str()` of a JSON scalar.
fn python_str(v: Option<&Value>, default: &str) -> String {
    match v {
        Some(Value::Number(n)) if n.is_f64() => python_repr(n.as_f64().unwrap_or(0.0)),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => if *b { "True" } else { "False" }.to_owned(),
        Some(Value::String(s)) => s.clone(),
        _ => default.to_owned(),
    }
}

fn info_header(request: &ShiftRequest, input: &Value, fixed: &Value) -> InfoHeader {
    let p = fixed.get("p");
    let ssim = input.get("ssim");
    let fix = |k: &str, default: &str| python_str(fixed.get(k), default);
    InfoHeader {
        prompt: request.prompt.clone(),
        negative_prompt: request.negative_prompt.clone(),
        width: python_str(p.and_then(|p| p.get("width")), "512"),
        height: python_str(p.and_then(|p| p.get("height")), "512"),
        sampler: python_str(p.and_then(|p| p.get("sampler_name")), "Euler a"),
        sampling_steps: python_str(p.and_then(|p| p.get("steps")), "20"),
        seed: request.seed.to_string(),
        steps: request.steps.to_string(),
        fps: python_str(input.get("video_fps"), "30"),
        lead_inout: fix("lead_inout", "0"),
        ssim_threshold: python_str(ssim.and_then(|s| s.get("threshold")), "0.0"),
        ssim_ccrop: fix("ssim_ccrop", "0"),
        rife_passes: fix("rife_passes", "0"),
        rife_drop: fix("rife_drop", "False"),
        upscaler: fix("upscale_meth", "None"),
        upscale_ratio: fix("upscale_ratio", "1.0"),
        ssim_min_step: python_str(ssim.and_then(|s| s.get("substep_min")), "0.0001"),
        ssim_min_threshold: python_str(ssim.and_then(|s| s.get("min_pct")), "75"),
    }
}

// ---------------------------------------------------------------------------------------------
// clip-tokens

fn clip_case(
    tokenizer: &ClipTokenizer,
    case: &Value,
) -> Result<Option<Mismatch>, ConformanceError> {
    let prompt = str_field(case, "prompt")?;
    let keys = [
        ("sd1_ids_77_eos_pad", ModelFamily::Sd1),
        ("clip_tokenize_77_zero_pad", ModelFamily::Sd2),
    ];
    if keys.iter().all(|(key, _)| case.get(key).is_none()) {
        return Err(ConformanceError::Format(
            "a vector has neither `sd1_ids_77_eos_pad` nor `clip_tokenize_77_zero_pad`".to_owned(),
        ));
    }
    for (key, family) in keys {
        let Some(expected) = case.get(key) else {
            continue;
        };
        let got = json!(tokenizer.context_ids(prompt, family)?);
        if let Some(m) = compare(key, expected, got) {
            return Ok(Some(m));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_names_round_trip() {
        for suite in Suite::ALL {
            assert_eq!(suite.name().parse::<Suite>().ok(), Some(suite));
        }
        assert!("parseq".parse::<Suite>().is_err());
    }

    #[test]
    fn report_ends_with_counts() {
        let report = Report {
            suite: Suite::A1111,
            passed: 2,
            failures: vec![Failure {
                id: "x".into(),
                field: "schedules".into(),
                expected: "1".into(),
                got: "2".into(),
            }],
            deviations: Vec::new(),
        };
        assert_eq!(
            report.render(),
            "FAIL x schedules: expected 1 got 2\n2 passed, 1 failed"
        );
    }

    #[test]
    fn tolerance_is_relative() {
        assert!(json_close(&json!(1.0), &json!(1.0 + 1e-15)));
        assert!(!json_close(&json!(1.0), &json!(1.0001)));
        assert!(json_close(&json!([1, "a"]), &json!([1.0, "a"])));
    }

    #[test]
    fn every_marker_names_one_decision() {
        for q in QUIRK_DECISIONS {
            for marker in q.markers {
                let found = quirk_decisions_for(marker);
                assert_eq!(found, vec![q], "{marker}");
            }
        }
    }
}
