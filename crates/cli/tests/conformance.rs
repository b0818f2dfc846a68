//! `keyshift conformance` on the public case files: 0 failed, and the closing line CI reads.
#![allow(
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a native test writes its case files and fails by panicking"
)]

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
        ("parseq-lang", "parseq_lang_cases.public.json"),
        ("parseq-render", "parseq_render_cases.public.json"),
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

fn run_with(suite: &str, cases: &std::path::Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyshift"))
        .args(["conformance", suite])
        .arg(cases)
        .args(extra)
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The two leniencies a review found, injected through the command line: a hash-seed case's
/// wrong `multicond`, and a fixed quirk whose fixed output differs from the record.
#[test]
fn injected_wrong_multicond_and_wrong_fixed_output_fail() {
    let dir = std::env::temp_dir().join(format!("keyshift-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let data = format!("{}/../core/tests/data", env!("CARGO_MANIFEST_DIR"));
    let a1111 =
        std::fs::read_to_string(format!("{data}/a1111_prompt_cases.public.json")).expect("cases");
    let wrong = a1111.replacen(
        "\"text\": \" [b:c:5]\",\n     \"weight\": 0.7",
        "\"text\": \" [b:c:5]\",\n     \"weight\": 0.8",
        1,
    );
    assert_ne!(wrong, a1111);
    let cases = dir.join("a1111.json");
    std::fs::write(&cases, wrong).expect("write");
    let (code, stdout) = run_with("a1111", &cases, &[]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("FAIL gen-hand-128 multicond"), "{stdout}");

    let fixes = keyshift_core::conformance::FIXED_OUTPUTS.replacen(
        "[\"BREAK\",-1.0]",
        "[\"BREAK\",-0.5]",
        1,
    );
    let fixes_file = dir.join("fixes.json");
    std::fs::write(&fixes_file, fixes).expect("write");
    let original = std::path::PathBuf::from(format!("{data}/a1111_prompt_cases.public.json"));
    let fixes_arg = fixes_file.to_string_lossy().into_owned();
    let (code, stdout) = run_with("a1111", &original, &["--fixes", &fixes_arg]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL gen-hand-069 fixed parse_prompt_attention"),
        "{stdout}"
    );
    let (code, stdout) = run_with("a1111", &original, &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("fixed output as recorded"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
