//! The public conformance case files (copied from `shared/conformance` and
//! `shared/fixtures/clip` into `tests/data`) must pass with no failure; only documented quirk
//! decisions may deviate from the original.

use keyshift_core::conformance::{Report, Suite, run_suite, run_suite_original};

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

/// With `Fidelity::Original` every case, quirks included, matches the original exactly: the
/// deviations above are the documented fixes and nothing else.
#[test]
fn original_fidelity_reproduces_every_case() {
    for (suite, json) in [
        (
            Suite::A1111,
            include_str!("data/a1111_prompt_cases.public.json"),
        ),
        (
            Suite::ShiftAttention,
            include_str!("data/shift_attention_cases.public.json"),
        ),
    ] {
        let report = match run_suite_original(suite, json) {
            Ok(report) => report,
            Err(e) => panic!("{suite}: {e}"),
        };
        assert!(report.is_success(), "{suite}:\n{}", report.render());
        assert!(report.deviations.is_empty());
    }
}

#[test]
fn a_wrong_expectation_is_reported_as_a_failure() {
    let json = include_str!("data/a1111_prompt_cases.public.json").replacen(
        "\"house\",\n     1.5730000000000004",
        "\"house\",\n     1.6",
        1,
    );
    let report = run(Suite::A1111, &json);
    assert_eq!(report.failures.len(), 1, "{}", report.render());
    let failure = &report.failures[0];
    assert_eq!(failure.id, "doctest-attention-06");
    assert_eq!(failure.field, "parse_prompt_attention");
    assert!(report.render().ends_with("170 passed, 1 failed"));
}
