//! The conformance suites on wasm32 (Node through wasm-bindgen-test-runner):
//! `cargo test -p keyshift-core --target wasm32-unknown-unknown --test wasm`.
#![cfg(target_arch = "wasm32")]

use keyshift_core::conformance::{Suite, run_suite};
use wasm_bindgen_test::wasm_bindgen_test;

fn assert_suite(suite: Suite, json: &str) {
    match run_suite(suite, json) {
        Ok(report) => assert!(report.is_success(), "{}", report.render()),
        Err(e) => panic!("{suite}: {e}"),
    }
}

#[wasm_bindgen_test]
fn clip_tokens_on_wasm() {
    assert_suite(
        Suite::ClipTokens,
        include_str!("data/clip/clip_tokens.json"),
    );
}

#[wasm_bindgen_test]
fn a1111_on_wasm() {
    assert_suite(
        Suite::A1111,
        include_str!("data/a1111_prompt_cases.public.json"),
    );
}

#[wasm_bindgen_test]
fn shift_attention_on_wasm() {
    assert_suite(
        Suite::ShiftAttention,
        include_str!("data/shift_attention_cases.public.json"),
    );
}
