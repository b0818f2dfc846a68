//! Property and fuzz tests for every parser: any input parses or yields a typed error with a
//! position, never a panic, and what parses keeps its invariants.
//!
//! The `*_smoke` tests run a few thousand inputs per parser in `cargo test`. The ignored
//! `*_million` tests run 1,000,000 inputs per parser:
//! `cargo test -p keyshift-core --release --test fuzz -- --ignored --nocapture`.

#![cfg(not(target_arch = "wasm32"))]

use std::sync::atomic::{AtomicU64, Ordering};

use keyshift_core::prompt::{
    Chunk, Fidelity, ParsedPrompt, PromptError, ScheduleOptions, ScheduleTree, parse_attention,
    split_and,
};
use keyshift_core::shift::run::{RunSettings, run};
use keyshift_core::shift::{GapSettings, RangedText, ShiftRequest, split_segments};
use keyshift_core::tokens::{BOS, CONTEXT_LENGTH, ClipTokenizer, EOS, ModelFamily, clean_text};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const SMOKE: u32 = 3_000;
const MILLION: u32 = 1_000_000;

/// Pieces of the prompt languages, so that random strings hit the syntax often.
const PIECES: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    ":",
    "|",
    "\\",
    "\\(",
    "\\]",
    "\\\\",
    "BREAK",
    " BREAK ",
    "AND",
    " AND ",
    "THEN",
    "THEN(",
    "THEN(seed=3)",
    "THEN(cfg=4.5, seed=1)",
    "=",
    ",",
    "~",
    "1~0",
    "0.5~1~0",
    "1~~2",
    "-",
    ".",
    "e",
    "1e5",
    "1.2.3",
    "0",
    "1",
    "5",
    "10",
    ".5",
    "1.",
    "+2",
    "猫",
    "café",
    " ",
    "  ",
    "\t",
    "\n",
    "cat",
    "x",
    "(tag:0)",
    ":1.5)",
    "１",
    "٣",
    "\u{0345}",
    "&amp;",
    "Ã©",
    "<lora:x:1~0>",
    "\u{3000}",
    "ﬁ",
    "“",
];

/// Random prompt-like strings: arbitrary Unicode or concatenated syntax pieces.
fn prompt_strategy() -> BoxedStrategy<String> {
    let pieces =
        prop::collection::vec(prop::sample::select(PIECES), 0..40).prop_map(|v| v.concat());
    prop_oneof![1 => any::<String>(), 3 => pieces].boxed()
}

/// Runs `check` on `cases` inputs and reports how many ran.
fn fuzz<T: std::fmt::Debug>(
    name: &str,
    cases: u32,
    strategy: impl Strategy<Value = T>,
    check: impl Fn(T) -> Result<(), TestCaseError>,
) {
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
    eprintln!("fuzz {name}: {} inputs", count.load(Ordering::Relaxed));
    if let Err(e) = result {
        panic!("fuzz {name}: {e}");
    }
}

fn check_attention(s: String) -> Result<(), TestCaseError> {
    let n = s.chars().count();
    for fidelity in [Fidelity::Keyshift, Fidelity::Original] {
        match parse_attention(&s, fidelity) {
            Ok(chunks) => {
                prop_assert!(!chunks.is_empty());
                if !s.contains(['(', ')', '[', ']', ':', '\\']) {
                    let all_plain = chunks.iter().all(|c| match c {
                        Chunk::Text { weight, .. } => *weight == 1.0,
                        Chunk::Break => true,
                    });
                    prop_assert!(all_plain, "no brackets, no emphasis");
                }
            }
            Err(e) => {
                let p = PromptError::from(e).position();
                prop_assert!(p < n, "position {p} outside {n} chars");
            }
        }
    }
    Ok(())
}

fn check_schedule((s, steps): (String, u32)) -> Result<(), TestCaseError> {
    match ScheduleTree::parse(&s) {
        Ok(tree) => {
            let entries = tree.schedule(ScheduleOptions::steps(steps));
            prop_assert!(!entries.is_empty());
            prop_assert!(
                entries
                    .windows(2)
                    .all(|w| w[0].end_at_step < w[1].end_at_step)
            );
            prop_assert_eq!(
                entries.last().map(|e| e.end_at_step),
                Some(i64::from(steps))
            );
            if !s.contains(['[', ']', '(', ')', ':', '|', '\\']) {
                prop_assert_eq!(entries.len(), 1);
                prop_assert_eq!(&entries[0].text, &s);
            }
        }
        Err(e) => prop_assert!(PromptError::from(e).position() < s.chars().count()),
    }
    Ok(())
}

fn check_and(s: String) -> Result<(), TestCaseError> {
    let parts = split_and(&s);
    prop_assert!(!parts.is_empty());
    prop_assert!(parts.len() <= s.matches("AND").count() + 1);
    Ok(())
}

fn check_parsed(s: String) -> Result<(), TestCaseError> {
    let options = ScheduleOptions {
        base_steps: 8,
        hires_steps: Some(6),
        old_scheduling: false,
    };
    if let Ok(parsed) = ParsedPrompt::parse(&s, options, Fidelity::Keyshift) {
        prop_assert!(!parsed.parts.is_empty());
        prop_assert!(parsed.parts.iter().all(|p| !p.schedule.is_empty()));
    }
    Ok(())
}

fn check_ranges((s, d): (String, f64)) -> Result<(), TestCaseError> {
    if let Ok(text) = RangedText::new(&s, Fidelity::Keyshift) {
        let out = text.at(d);
        prop_assert!(out.is_ok(), "checked ranges never fail later: {out:?}");
        if !text.has_ranges() {
            prop_assert_eq!(out.ok(), Some(s.clone()));
        }
    }
    if let Ok(text) = RangedText::new(&s, Fidelity::Original) {
        let _ = text.at(d);
    }
    for fidelity in [Fidelity::Keyshift, Fidelity::Original] {
        let _ = split_segments(&s, "n THEN m", fidelity);
    }
    Ok(())
}

/// A request for a short run, and gap settings that keep the frame count bounded.
fn run_strategy() -> impl Strategy<Value = (String, String, i64, f64, f64, u32, bool)> {
    (
        prompt_strategy(),
        prompt_strategy(),
        -1i64..5,
        0.0f64..1.0,
        0.02f64..0.5,
        0u32..100,
        any::<bool>(),
    )
}

fn check_run(
    (prompt, negative, steps, threshold, min_step, seed, mirror): (
        String,
        String,
        i64,
        f64,
        f64,
        u32,
        bool,
    ),
) -> Result<(), TestCaseError> {
    let request = ShiftRequest {
        prompt,
        negative_prompt: negative,
        steps,
        seed: i64::from(seed),
        cfg_scale: 7.0,
        remove_zero_strength: seed % 2 == 0,
    };
    let settings = RunSettings {
        gap: GapSettings {
            threshold,
            min_step,
            min_threshold_pct: 75.0,
        },
        mirror,
        video_fps: 30.0,
    };
    // A deterministic but irregular similarity.
    let mut similarity = |a: &keyshift_core::shift::ShiftFrame,
                          b: &keyshift_core::shift::ShiftFrame| {
        let x = (a.subseed_strength * 7.3 + b.subseed_strength * 3.1 + f64::from(seed)).sin();
        x.abs()
    };
    for fidelity in [Fidelity::Keyshift, Fidelity::Original] {
        if let Ok(r) = run(&request, settings, fidelity, &mut similarity) {
            prop_assert!(r.generation_calls.len() >= r.log.len());
            if !mirror {
                prop_assert_eq!(r.frames.len(), r.log.len());
            }
        }
    }
    Ok(())
}

fn tokenizer() -> ClipTokenizer {
    match ClipTokenizer::embedded() {
        Ok(t) => t,
        Err(e) => panic!("tokenizer: {e}"),
    }
}

fn check_tokens(t: &ClipTokenizer, s: &str) -> Result<(), TestCaseError> {
    let _ = clean_text(s);
    let chunks = parse_attention(s, Fidelity::Keyshift).unwrap_or_default();
    for family in [ModelFamily::Sd1, ModelFamily::Sd2] {
        let Ok(tokens) = t.prompt_chunks(&chunks, family) else {
            return Err(TestCaseError::fail("tokenizing failed"));
        };
        prop_assert!(!tokens.chunks.is_empty());
        for c in &tokens.chunks {
            prop_assert_eq!(c.ids.len(), CONTEXT_LENGTH);
            prop_assert_eq!(c.weights.len(), CONTEXT_LENGTH);
            prop_assert_eq!(c.ids.first(), Some(&BOS));
            prop_assert!(c.ids.contains(&EOS));
        }
    }
    Ok(())
}

#[test]
fn attention_smoke() {
    fuzz("attention", SMOKE, prompt_strategy(), check_attention);
}

#[test]
fn schedule_smoke() {
    fuzz(
        "schedule",
        SMOKE,
        (prompt_strategy(), 1u32..40),
        check_schedule,
    );
}

#[test]
fn and_smoke() {
    fuzz("and", SMOKE, prompt_strategy(), check_and);
}

#[test]
fn parsed_prompt_smoke() {
    fuzz("parsed_prompt", SMOKE, prompt_strategy(), check_parsed);
}

#[test]
fn shift_ranges_and_segments_smoke() {
    fuzz(
        "shift_text",
        SMOKE,
        (prompt_strategy(), 0.0f64..=1.0),
        check_ranges,
    );
}

#[test]
fn shift_run_smoke() {
    fuzz("shift_run", SMOKE / 3, run_strategy(), check_run);
}

#[test]
fn tokens_smoke() {
    let t = tokenizer();
    fuzz("tokens", SMOKE / 3, prompt_strategy(), |s| {
        check_tokens(&t, &s)
    });
}

#[test]
#[ignore = "1,000,000 inputs: run in release with --ignored"]
fn attention_million() {
    fuzz("attention", MILLION, prompt_strategy(), check_attention);
}

#[test]
#[ignore = "1,000,000 inputs: run in release with --ignored"]
fn schedule_million() {
    fuzz(
        "schedule",
        MILLION,
        (prompt_strategy(), 1u32..40),
        check_schedule,
    );
}

#[test]
#[ignore = "1,000,000 inputs: run in release with --ignored"]
fn and_million() {
    fuzz("and", MILLION, prompt_strategy(), check_and);
}

#[test]
#[ignore = "1,000,000 inputs: run in release with --ignored"]
fn parsed_prompt_million() {
    fuzz("parsed_prompt", MILLION, prompt_strategy(), check_parsed);
}

#[test]
#[ignore = "1,000,000 inputs: run in release with --ignored"]
fn shift_ranges_and_segments_million() {
    fuzz(
        "shift_text",
        MILLION,
        (prompt_strategy(), 0.0f64..=1.0),
        check_ranges,
    );
}

#[test]
#[ignore = "1,000,000 inputs: run in release with --ignored"]
fn shift_run_million() {
    fuzz("shift_run", MILLION, run_strategy(), check_run);
}

#[test]
#[ignore = "1,000,000 inputs: run in release with --ignored"]
fn tokens_million() {
    let t = tokenizer();
    fuzz("tokens", MILLION, prompt_strategy(), |s| {
        check_tokens(&t, &s)
    });
}
