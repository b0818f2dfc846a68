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
