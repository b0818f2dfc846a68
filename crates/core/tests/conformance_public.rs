//! The public conformance case files (copied from `shared/conformance` and
//! `shared/fixtures/clip` into `tests/data`) must pass with no failure; only documented quirk
//! decisions may deviate from the original.

use keyshift_core::conformance::{Report, Suite, run_suite};

fn run(suite: Suite, json: &str) -> Report {
    match run_suite(suite, json) {
        Ok(report) => report,
        Err(e) => panic!("{suite}: {e}"),
    }
}

fn assert_clean(report: &Report, at_least: usize) {
    eprintln!("{}: {}", report.suite, report.render());
    assert!(report.is_success(), "{}", report.render());
    assert!(
        report.passed >= at_least,
        "{} ran only {}",
        report.suite,
        report.passed
    );
}

#[test]
fn a1111_public_cases_pass() {
    let report = run(
        Suite::A1111,
        include_str!("data/a1111_prompt_cases.public.json"),
    );
    assert_clean(&report, 171);
    // Keyshift deviates only where it fixes a quirk: BREAK inside brackets.
    for d in &report.deviations {
        assert_eq!(d.decision, "a1111-break-in-brackets", "{}", d.id);
    }
}

#[test]
fn shift_attention_public_cases_pass() {
    let report = run(
        Suite::ShiftAttention,
        include_str!("data/shift_attention_cases.public.json"),
    );
    assert_clean(&report, 53);
    assert!(!report.deviations.is_empty(), "the exponent fix must show");
}

#[test]
fn clip_token_vectors_pass() {
    let report = run(
        Suite::ClipTokens,
        include_str!("data/clip/clip_tokens.json"),
    );
    assert_clean(&report, 22);
    assert!(report.deviations.is_empty());
}
