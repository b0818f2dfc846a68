//! `keyshift conformance` on the public case files: 0 failed, and the closing line CI reads.
#![allow(clippy::expect_used, reason = "a test fails by panicking")]

use std::process::Command;

fn run(suite: &str, file: &str) -> (bool, String) {
    let path = format!("{}/../core/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_keyshift"))
        .args(["conformance", suite, &path])
        .output()
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn public_files_pass_with_zero_failures() {
    for (suite, file) in [
        ("a1111", "a1111_prompt_cases.public.json"),
        ("shift-attention", "shift_attention_cases.public.json"),
        ("clip-tokens", "clip/clip_tokens.json"),
    ] {
        let (ok, stdout) = run(suite, file);
        let last = stdout.lines().last().unwrap_or_default().to_owned();
        assert!(ok, "{suite}: {stdout}");
        assert!(last.ends_with(" passed, 0 failed"), "{suite}: {last}");
    }
}

#[test]
fn a_bad_suite_or_file_is_a_usage_error() {
    let (ok, _) = run("nope", "a1111_prompt_cases.public.json");
    assert!(!ok);
    let (ok, _) = run("a1111", "missing.json");
    assert!(!ok);
}
