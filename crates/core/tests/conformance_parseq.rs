//! The public Parseq conformance cases (copied from `shared/conformance` into `tests/data`) pass
//! with no failure.

use keyshift_core::conformance::{Report, Suite, run_suite};

fn run(suite: Suite, json: &str) -> Report {
    match run_suite(suite, json) {
        Ok(report) => report,
        Err(e) => panic!("{suite}: {e}"),
    }
}

#[test]
fn parseq_lang_public_cases_pass() {
    let report = run(
        Suite::ParseqLang,
        include_str!("data/parseq_lang_cases.public.json"),
    );
    eprintln!("{}", report.render());
    assert!(report.is_success(), "{}", report.render());
    assert_eq!(report.passed, 352);
    assert!(report.deviations.is_empty());
}

#[test]
fn parseq_render_public_cases_pass() {
    let report = run(
        Suite::ParseqRender,
        include_str!("data/parseq_render_cases.public.json"),
    );
    eprintln!("{}", report.render());
    assert!(report.is_success(), "{}", report.render());
    assert_eq!(report.passed, 37);
}

#[test]
fn a_wrong_expectation_is_reported_as_a_failure() {
    let lang = include_str!("data/parseq_lang_cases.public.json").replacen(
        "\"expected\": [\n    11.6,\n    10.8,",
        "\"expected\": [\n    11.6,\n    10.9,",
        1,
    );
    let report = run(Suite::ParseqLang, &lang);
    assert_eq!(report.failures.len(), 1, "{}", report.render());
    assert_eq!(report.failures[0].id, "jest-001");
    assert!(report.render().ends_with("351 passed, 1 failed"));

    let render = include_str!("data/parseq_render_cases.public.json").replacen(
        "\"rendered_frames_total\": 11,",
        "\"rendered_frames_total\": 12,",
        1,
    );
    let report = run(Suite::ParseqRender, &render);
    assert_eq!(report.failures.len(), 1, "{}", report.render());
    assert_eq!(report.failures[0].field, "rendered_frames_total");
}
