//! The public conformance case files (copied from `shared/conformance` and
//! `shared/fixtures/clip` into `tests/data`) must pass with no failure; only documented quirk
//! decisions may deviate from the original.

use keyshift_core::conformance::{
    Report, Suite, record_fixes, run_suite, run_suite_original, run_suite_with_fixes,
};

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

/// Prints the fixed outputs of the public files in `conformance_fixed.json`'s format (run by
/// hand after a deliberate change to a fix, read, and committed):
/// `cargo test -p keyshift-core --test conformance_public print_fixed_outputs -- --ignored --nocapture`.
#[test]
#[ignore = "prints the record; not a check"]
fn print_fixed_outputs() {
    let mut all = serde_json::Map::new();
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
        match record_fixes(suite, json) {
            Ok(record) => all.insert(suite.name().to_owned(), record),
            Err(e) => panic!("{suite}: {e}"),
        };
    }
    match serde_json::to_string_pretty(&all) {
        Ok(text) => println!("{text}"),
        Err(e) => panic!("{e}"),
    }
}

const A1111: &str = include_str!("data/a1111_prompt_cases.public.json");

#[test]
fn every_documented_fix_is_checked_against_its_recorded_output() {
    for (suite, json) in [
        (Suite::A1111, A1111),
        (
            Suite::ShiftAttention,
            include_str!("data/shift_attention_cases.public.json"),
        ),
    ] {
        let report = run(suite, json);
        assert!(!report.deviations.is_empty(), "{suite}");
        assert_eq!(report.unchecked(), 0, "{suite}:\n{}", report.render());
    }
}

/// A hash-seed-dependent case still has its `multicond` compared.
#[test]
fn a_hash_seed_case_with_a_wrong_multicond_fails() {
    let json = A1111.replacen(
        "\"text\": \" [b:c:5]\",\n     \"weight\": 0.7",
        "\"text\": \" [b:c:5]\",\n     \"weight\": 0.8",
        1,
    );
    assert_ne!(json, A1111);
    let report = run(Suite::A1111, &json);
    assert_eq!(report.failures.len(), 1, "{}", report.render());
    assert_eq!(report.failures[0].id, "gen-hand-128");
    assert_eq!(report.failures[0].field, "multicond");
}

/// A fixed quirk's output is held to the value recorded for the fix, not only to the original.
#[test]
fn a_fixed_quirk_with_a_wrong_fixed_output_fails() {
    let fixes = keyshift_core::conformance::FIXED_OUTPUTS;
    let wrong = fixes.replacen("[\"BREAK\",-1.0]", "[\"BREAK\",-0.5]", 1);
    assert_ne!(wrong, fixes);
    let report = match run_suite_with_fixes(Suite::A1111, A1111, &wrong) {
        Ok(report) => report,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(report.failures.len(), 1, "{}", report.render());
    assert_eq!(report.failures[0].id, "gen-hand-069");
    assert_eq!(report.failures[0].field, "fixed parse_prompt_attention");
    // Without a record, the same fix is a deviation the report calls unchecked.
    let report = match run_suite_with_fixes(Suite::A1111, A1111, "{}") {
        Ok(report) => report,
        Err(e) => panic!("{e}"),
    };
    assert!(report.is_success());
    assert_eq!(report.unchecked(), report.deviations.len());
    assert!(
        report
            .render()
            .contains("fixed output not recorded, unchecked")
    );
}

/// `-0` where the original wrote `0` is a difference.
#[test]
fn a_negative_zero_the_original_did_not_have_fails() {
    let json = include_str!("data/parseq_lang_cases.public.json");
    let wrong = json.replacen("\"8\": \"-0\",\n    \"9\": \"-0\"", "\"8\": \"-0\"", 1);
    assert_ne!(wrong, json);
    let report = run(Suite::ParseqLang, &wrong);
    assert_eq!(report.failures.len(), 1, "{}", report.render());
    assert!(!keyshift_core::conformance::json_close(
        &serde_json::json!(-0.0),
        &serde_json::json!(0)
    ));
}

/// A malformed case fails by itself, named; the suite goes on.
#[test]
fn a_malformed_case_is_a_failure_and_the_rest_still_run() {
    let json = include_str!("data/shift_attention_cases.public.json");
    let wrong = json.replacen("\"cfg_scale\": 7.0,", "\"cfg_scale\": \"7\",", 1);
    let report = run(Suite::ShiftAttention, &wrong);
    assert_eq!(report.failures.len(), 1, "{}", report.render());
    assert_eq!(report.failures[0].id, "sa-002");
    assert_eq!(report.failures[0].field, "case");
    assert!(report.failures[0].got.contains("cfg_scale"));
    assert_eq!(report.passed + 1, run(Suite::ShiftAttention, json).passed);
    let clip = r#"{"vectors": [{"id": "v1", "prompt": "a cat"}]}"#;
    let report = run(Suite::ClipTokens, clip);
    assert_eq!(report.failures.len(), 1, "{}", report.render());
    assert!(report.failures[0].got.contains("neither"));
}

/// A hash-seed-dependent case passes only with one of the readings it records: Keyshift's
/// reading removed from them is a failure, not a deviation.
#[test]
fn a_hash_seed_case_whose_readings_exclude_keyshifts_fails() {
    let mut file: serde_json::Value = serde_json::from_str(A1111).expect("json");
    let cases = file["cases"].as_array_mut().expect("cases");
    let case = cases
        .iter_mut()
        .find(|c| c["id"] == "gen-hand-128")
        .expect("case");
    let readings = case["nondeterministic_schedules"]
        .as_array()
        .expect("readings")
        .clone();
    // Keep only the reading(s) that differ from Keyshift's (the case's `schedules`).
    let others: Vec<serde_json::Value> = readings
        .into_iter()
        .filter(|r| r["schedules"] != case["schedules"])
        .collect();
    assert_eq!(others.len(), 1);
    case["schedules"] = others[0]["schedules"].clone();
    case["nondeterministic_schedules"] = serde_json::Value::Array(others);
    let report = run(Suite::A1111, &file.to_string());
    assert_eq!(report.failures.len(), 1, "{}", report.render());
    assert_eq!(report.failures[0].id, "gen-hand-128");
    assert_eq!(report.failures[0].field, "schedules");
}

/// A record of fixed outputs that is not usable is named as such, not as the case file.
#[test]
fn an_unusable_record_of_fixes_is_named() {
    for fixes in ["{nope", r#"{"a1111": [1]}"#] {
        match run_suite_with_fixes(Suite::A1111, A1111, fixes) {
            Err(e) => assert!(
                e.to_string().starts_with("the record of fixed outputs"),
                "{e}"
            ),
            Ok(report) => panic!("accepted: {}", report.render()),
        }
    }
}
