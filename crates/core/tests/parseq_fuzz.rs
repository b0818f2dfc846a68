//! Property and fuzz tests for the Parseq language and renderer: any formula or document is
//! accepted or refused with a typed error, never a panic; evaluation is bounded; the fast
//! recursive-descent parser and the nearley-exact Earley parser agree wherever the grammar is
//! unambiguous.
//!
//! The `*_smoke` tests run a few thousand inputs in `cargo test`. The ignored `*_million` test
//! runs 1,000,000 formulas:
//! `cargo test -p keyshift-core --release --test parseq_fuzz -- --ignored --nocapture`.

#![cfg(not(target_arch = "wasm32"))]

use std::sync::atomic::{AtomicU64, Ordering};

use keyshift_core::parseq::document::Document;
use keyshift_core::parseq::parser::{parse, parse_nearley};
use keyshift_core::parseq::render::Sequencer;
use keyshift_core::parseq::{Context, Formula, Keyed, KeyframeInfo, Lookup, TimeSeries, Value};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const SMOKE: u32 = 3_000;
const MILLION: u32 = 1_000_000;

/// Pieces of the language, so that random strings hit the syntax often.
const PIECES: &[&str] = &[
    "(",
    ")",
    ",",
    "=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    ":",
    "<",
    "<=",
    ">",
    ">=",
    "==",
    "!=",
    "&&",
    "||",
    " and ",
    " or ",
    "if ",
    " else ",
    "true",
    "false",
    " ",
    "  ",
    "\n",
    "\t",
    "#",
    "\"",
    "\"a-b\"",
    "\"x\"",
    "\"\\n\"",
    "0",
    "1",
    "2.5",
    "10",
    "3s",
    "2b",
    "5f",
    "007",
    ".5",
    "1.",
    "f",
    "k",
    "b",
    "s",
    "L",
    "C",
    "P",
    "S",
    "fps",
    "bpm",
    "wb",
    "prev_computed_value",
    "active_keyframe",
    "next_keyframe",
    "next_keyframe_value",
    "last_frame",
    "PI",
    "x",
    "ts",
    "sin(",
    "sq(",
    "tri(",
    "saw(",
    "pulse(",
    "p=",
    "a=",
    "li=",
    "pw=",
    "bez(",
    "slide(",
    "x1=",
    "c=\"easeIn\"",
    "s=",
    "t=",
    "os=",
    "d=",
    "rand(",
    "smrand(",
    "perlin(",
    "vibe(",
    "h=",
    "min(",
    "max(",
    "abs(",
    "round(",
    "floor(",
    "ceil(",
    "_sin(",
    "_log(",
    "_clz32(",
    "f2b(",
    "b2f(",
    "s2f(",
    "f2s(",
    "info_match(",
    "info_match_prev(",
    "info_match_gap(",
    "r=\"k\"",
    "r=\"(\"",
    "posneg(",
    "posneg_lora(",
    "w=",
    "computed_at(",
    "start_of_beat(",
    "recompute_if(",
    "dangerous(",
    "is_generation(",
    "ts(",
    "unknown(",
    "猫",
    "é",
];

fn formula_strategy() -> BoxedStrategy<String> {
    let pieces =
        prop::collection::vec(prop::sample::select(PIECES), 0..24).prop_map(|v| v.concat());
    prop_oneof![1 => any::<String>(), 6 => pieces].boxed()
}

fn fuzz<T: std::fmt::Debug>(
    name: &str,
    cases: u32,
    strategy: impl Strategy<Value = T>,
    check: impl Fn(T) -> Result<(), TestCaseError>,
) -> u64 {
    let count = AtomicU64::new(0);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |input| {
        count.fetch_add(1, Ordering::Relaxed);
        check(input)
    });
    let n = count.load(Ordering::Relaxed);
    eprintln!("fuzz {name}: {n} inputs");
    if let Err(e) = result {
        panic!("fuzz {name}: {e}");
    }
    n
}

struct Vars;

impl Lookup for Vars {
    fn variable(&self, name: &str) -> Option<Value> {
        match name {
            "prev_computed_value" => Some(Value::Num(2.0)),
            "x" => Some(Value::str("hello")),
            _ => None,
        }
    }
    fn rendered(&self, frame: f64, field: &str) -> Option<f64> {
        (field == "x" && frame >= 0.0).then_some(frame)
    }
}

/// Parses and evaluates a formula over 12 frames; everything must end in a value or a typed error.
fn check_formula(s: String) -> Result<(), TestCaseError> {
    let keyed = Keyed::new(vec![0.0, 5.0, 10.0], vec![5.0, 0.0, 10.0]);
    let infos = vec![
        KeyframeInfo {
            frame: 0.0,
            info: Some("kick".into()),
        },
        KeyframeInfo {
            frame: 5.0,
            info: None,
        },
        KeyframeInfo {
            frame: 10.0,
            info: Some("snare".into()),
        },
    ];
    let series = vec![TimeSeries {
        alias: "ts".into(),
        points: vec![(0.0, 1.0), (6.0, 3.0)],
        millis: false,
    }];
    let computed: Vec<Value> = (0..12).map(|i| Value::Num(f64::from(i))).collect();
    let Ok(mut formula) = Formula::parse(&s) else {
        return Ok(());
    };
    for (frame, prompt_type) in (0..12).zip([None, Some(true), Some(false)].into_iter().cycle()) {
        let f = f64::from(frame);
        let ctx = Context {
            frame: f,
            active_keyframe: if frame >= 10 {
                10.0
            } else if frame >= 5 {
                5.0
            } else {
                0.0
            },
            field_name: "zoom",
            keyed: &keyed,
            keyframes: &infos,
            fps: 30.0,
            bpm: 120.0,
            cadence: 2.0,
            computed: &computed[..frame as usize],
            lookup: &Vars,
            time_series: &series,
            prompt_type,
            field_default: 1.0,
            raw_options: None,
        };
        if formula.eval(&ctx).is_err() {
            break;
        }
    }
    Ok(())
}

/// The recursive-descent parser and nearley's algorithm agree (same tree or both refuse).
fn check_parsers_agree(s: String) -> Result<(), TestCaseError> {
    let (fast, exact) = (parse(&s), parse_nearley(&s));
    match (&fast, &exact) {
        // Compared as text: the function table's NaN defaults are never `==` themselves.
        (Ok(a), Ok(b)) => prop_assert_eq!(format!("{a:?}"), format!("{b:?}"), "{:?}", s),
        (Err(_), Err(_)) => {}
        _ => prop_assert!(false, "{s:?}: fast {fast:?} vs nearley {exact:?}"),
    }
    Ok(())
}

fn document_strategy() -> impl Strategy<Value = (Vec<(i64, String, f64)>, String, bool, u8)> {
    (
        prop::collection::vec((-3i64..40, formula_strategy(), -5.0f64..5.0), 0..6),
        formula_strategy(),
        any::<bool>(),
        0u8..4,
    )
}

fn check_document(
    (kfs, prompt, reverse, shape): (Vec<(i64, String, f64)>, String, bool, u8),
) -> Result<(), TestCaseError> {
    let keyframes: Vec<serde_json::Value> = kfs
        .iter()
        .map(|(frame, formula, v)| {
            serde_json::json!({"frame": frame, "zoom": v, "zoom_i": formula, "seed": v * 3.0,
                               "info": formula})
        })
        .collect();
    let prompts = match shape {
        0 => serde_json::json!({"positive": format!("a ${{{prompt}}}"), "negative": prompt}),
        1 => serde_json::json!([{"positive": prompt, "negative": "", "from": 0, "to": 5,
                                  "allFrames": false, "name": "p",
                                  "overlap": {"type": "custom", "custom": prompt, "inFrames": 2, "outFrames": 2}}]),
        2 => serde_json::Value::Null,
        _ => serde_json::json!("nonsense"),
    };
    let doc = serde_json::json!({
        "managedFields": ["zoom", "seed", "strength"],
        "prompts": prompts,
        "keyframes": keyframes,
        "reverseRender": reverse,
        "options": {"output_fps": 12, "bpm": 100},
    });
    let Ok(doc) = Document::from_json(doc) else {
        return Ok(());
    };
    let Ok(mut s) = Sequencer::new(doc) else {
        return Ok(());
    };
    if s.render_all().is_ok() {
        let out = s.output_json("now");
        prop_assert!(out.get("rendered_frames").is_some());
    }
    Ok(())
}

#[test]
fn formulas_smoke() {
    fuzz("parseq formulas", SMOKE, formula_strategy(), check_formula);
}

#[test]
fn parsers_agree_smoke() {
    fuzz(
        "parseq parsers agree",
        SMOKE,
        formula_strategy(),
        check_parsers_agree,
    );
}

#[test]
fn documents_smoke() {
    fuzz("parseq documents", 500, document_strategy(), check_document);
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(parse(&deep).is_err());
    let chain = vec!["1"; 5000].join("+");
    assert!(parse(&chain).is_err());
    let neg = format!("if {} 1", "-(".repeat(3000));
    assert!(parse(&neg).is_err());
}

#[test]
#[ignore = "1,000,000 formulas; run in release"]
fn formulas_million() {
    let n = fuzz("parseq formulas", MILLION, formula_strategy(), |s| {
        check_parsers_agree(s.clone())?;
        check_formula(s)
    });
    assert_eq!(n, u64::from(MILLION));
}
