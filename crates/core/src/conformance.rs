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
use crate::shift::run::{InfoHeader, RunFailure, RunSettings, ShiftRun, info_text, run};
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
            writeln!(f, "deviation {} (documented: {})", d.id, d.decision)?;
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
    run_suite_with(suite, json, Mode::Keyshift)
}

/// Runs every case with [`Fidelity::Original`] and allows no deviation: checks that Keyshift
/// knows exactly what the original does, quirks included (a hash-seed-dependent parse may match
/// any of the readings the case lists).
pub fn run_suite_original(suite: Suite, json: &str) -> Result<Report, ConformanceError> {
    run_suite_with(suite, json, Mode::Original)
}

/// How cases are judged.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Keyshift,
    Original,
}

fn run_suite_with(suite: Suite, json: &str, mode: Mode) -> Result<Report, ConformanceError> {
    let file: Value = serde_json::from_str(json)?;
    let mut report = Report {
        suite,
        passed: 0,
        failures: Vec::new(),
        deviations: Vec::new(),
    };
    match suite {
        Suite::A1111 => run_cases(&file, "cases", mode, &mut report, a1111_case)?,
        Suite::ShiftAttention => {
            let fixed = file.get("fixed_settings").cloned().unwrap_or(Value::Null);
            run_cases(&file, "cases", mode, &mut report, |case, fidelity| {
                shift_case(case, &fixed, fidelity)
            })?;
        }
        Suite::ClipTokens => {
            let tokenizer = clip_tokenizer()?;
            run_cases(&file, "vectors", mode, &mut report, |case, _| {
                clip_case(&tokenizer, case)
            })?;
        }
        Suite::ParseqLang => run_cases(&file, "cases", mode, &mut report, |case, _| {
            crate::parseq::cases::lang_case(case).map_err(ConformanceError::Format)
        })?,
        Suite::ParseqRender => run_cases(&file, "cases", mode, &mut report, |case, _| {
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
        judge(report, id, case, mode, &mut check)?;
    }
    Ok(())
}

/// Decides one case: pass, documented deviation, or failure.
fn judge(
    report: &mut Report,
    id: String,
    case: &Value,
    mode: Mode,
    check: &mut impl FnMut(&Value, Fidelity) -> Result<Option<Mismatch>, ConformanceError>,
) -> Result<(), ConformanceError> {
    let fidelity = match mode {
        Mode::Keyshift => Fidelity::Keyshift,
        Mode::Original => Fidelity::Original,
    };
    let Some((field, expected, got)) = check(case, fidelity)? else {
        report.passed += 1;
        return Ok(());
    };
    if let Some(fix) = fix_for(case).filter(|_| mode == Mode::Keyshift) {
        // lark's reading depends on the hash seed; the file lists the readings of 16 seeds, a
        // sample of those possible, and Keyshift's fixed rule may pick another possible one.
        let hash_seed_reading = fix.name == HASH_SEED_QUIRK && field == "schedules";
        if hash_seed_reading || check(case, Fidelity::Original)?.is_none() {
            report.passed += 1;
            report.deviations.push(Deviation {
                id,
                decision: fix.name,
            });
            return Ok(());
        }
    }
    report.failures.push(Failure {
        id,
        field,
        expected: compact(&expected),
        got: compact(&got),
    });
    Ok(())
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
    let prompt = str_field(case, "prompt")?;
    if let Some(m) = a1111_attention(case, prompt, fidelity) {
        return Ok(Some(m));
    }
    if let Some(m) = a1111_schedules(case, prompt)? {
        return Ok(Some(m));
    }
    let parts: Vec<Value> = split_and(prompt)
        .into_iter()
        .map(|p| json!({"text": p.text, "weight": p.weight}))
        .collect();
    Ok(compare(
        "multicond",
        field(case, "multicond")?,
        Value::Array(parts),
    ))
}

fn a1111_attention(case: &Value, prompt: &str, fidelity: Fidelity) -> Option<Mismatch> {
    let got = match parse_attention_pairs(prompt, fidelity) {
        Ok(pairs) => Value::Array(pairs.into_iter().map(|(t, w)| json!([t, w])).collect()),
        Err(_) => json!({"type": "ValueError"}),
    };
    match case.get("parse_prompt_attention_error") {
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

/// Schedules of all variants; a hash-seed-dependent case may match any of the readings the
/// original produced.
fn a1111_schedules(case: &Value, prompt: &str) -> Result<Option<Mismatch>, ConformanceError> {
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
    let got = Value::Object(got);
    let expected = field(case, "schedules")?;
    if json_close(expected, &got) {
        return Ok(None);
    }
    let variants = case
        .get("nondeterministic_schedules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let any_variant = variants
        .iter()
        .any(|v| v.get("schedules").is_some_and(|s| json_close(s, &got)));
    Ok((!any_variant).then(|| ("schedules".to_owned(), expected.clone(), got)))
}

// ---------------------------------------------------------------------------------------------
// shift-attention

fn shift_case(
    case: &Value,
    fixed: &Value,
    fidelity: Fidelity,
) -> Result<Option<Mismatch>, ConformanceError> {
    let input = field(case, "input")?;
    let request = shift_request(input)?;
    let settings = run_settings(input);
    let mut similarity = fake_ssim(input.get("ssim"));
    let result = run(&request, settings, fidelity, &mut similarity);
    if case.get("expect_error").and_then(Value::as_bool) == Some(true) {
        return Ok(shift_error_mismatch(case, result));
    }
    let expected = field(case, "expected")?;
    let Ok(run) = result else {
        let got = json!({"error": result.err().map(|f| f.error.to_string())});
        return Ok(Some(("frames".to_owned(), expected.clone(), got)));
    };
    let header = info_header(&request, input, fixed);
    Ok(compare_run(expected, &run, &header))
}

fn compare_run(expected: &Value, run: &ShiftRun, header: &InfoHeader) -> Option<Mismatch> {
    let frames = |v: &[crate::shift::run::RunFrame]| serde_json::to_value(v).unwrap_or_default();
    let null = Value::Null;
    let get = |k: &str| expected.get(k).unwrap_or(&null);
    compare("frames", get("frames"), frames(&run.frames))
        .or_else(|| {
            compare(
                "generation_calls",
                get("generation_calls"),
                frames(&run.generation_calls),
            )
        })
        .or_else(|| {
            compare(
                "info_txt",
                get("info_txt"),
                Value::String(info_text(header, run)),
            )
        })
}

fn shift_error_mismatch(case: &Value, result: Result<ShiftRun, RunFailure>) -> Option<Mismatch> {
    let null = Value::Null;
    let expected = json!({
        "type": case.get("error").and_then(|e| e.get("type")).unwrap_or(&null),
        "frames_generated_before_error": case.get("frames_generated_before_error").unwrap_or(&null),
    });
    let got = match result {
        Ok(run) => json!({"type": null, "frames": run.frames.len()}),
        Err(failure) => json!({
            "type": failure.error.python_type(),
            "frames_generated_before_error": serde_json::to_value(&failure.generated).unwrap_or_default(),
        }),
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
        cfg_scale: field(input, "cfg_scale")?.as_f64().unwrap_or(7.0),
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
    for (key, family) in [
        ("sd1_ids_77_eos_pad", ModelFamily::Sd1),
        ("clip_tokenize_77_zero_pad", ModelFamily::Sd2),
    ] {
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
