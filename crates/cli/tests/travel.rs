//! `keyshift render travel` on the tiny fixture model: frame counts and α for every genesis and
//! 2-, 3- and 4-stage prompts with comma step lists, as `frames.json` reports them; slices and
//! padding; clear errors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "native tests read fixtures and fail by panicking"
)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-sd1/diffusers")
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keyshift-travel-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn travel(name: &str, prompt: &str, steps: &str, extra: &[&str]) -> (Output, PathBuf) {
    let out = temp(name);
    let model = tiny();
    let mut args = vec!["render", "travel", "--model", model.to_str().unwrap()];
    args.extend(["--prompt", prompt, "--travel-steps", steps]);
    args.extend(["--steps", "2", "--size", "64x64", "--seed", "42"]);
    args.extend(extra);
    args.extend(["--out", out.to_str().unwrap()]);
    let output = Command::new(env!("CARGO_BIN_EXE_keyshift"))
        .args(&args)
        .output()
        .expect("runs");
    (output, out)
}

/// `(from, to, alpha)` of each frame of `frames.json`, checking the files are in video order.
fn frames(prompt: &str, steps: &str, extra: &[&str]) -> Vec<(u64, u64, f64)> {
    let name = format!(
        "{}-{}",
        steps.replace(',', "_"),
        extra.join("_").replace(['-', '.', ':'], "")
    );
    let (output, dir) = travel(&name, prompt, steps, extra);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(dir.join("frames.json")).unwrap();
    let json: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    for (i, f) in json.iter().enumerate() {
        assert_eq!(f["file"], format!("{i:05}.png"));
        assert!(dir.join(f["file"].as_str().unwrap()).exists());
        assert!(f["seed"].is_u64() && f["cfg"].is_f64());
    }
    std::fs::remove_dir_all(&dir).unwrap();
    json.iter()
        .map(|f| {
            (
                f["from"].as_u64().unwrap(),
                f["to"].as_u64().unwrap(),
                f["alpha"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn alphas(frames: &[(u64, u64, f64)]) -> Vec<f64> {
    frames.iter().map(|f| f.2).collect()
}

const TWO: &str = "a cat\na dog";
const THREE: &str = "a cat\na dog\na bird";
const FOUR: &str = "a cat\na dog\na bird\na fish";

#[test]
fn fixed_genesis_renders_one_plus_the_sum_of_steps() {
    assert_eq!(
        alphas(&frames(TWO, "3", &[])),
        [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]
    );
    let got = frames(THREE, "2", &["--interp", "slerp"]);
    assert_eq!(
        got,
        [
            (0, 1, 0.0),
            (0, 1, 0.5),
            (0, 1, 1.0),
            (1, 2, 0.5),
            (1, 2, 1.0)
        ]
    );
    let got = frames(FOUR, "1,2,3", &[]);
    assert_eq!(got.len(), 1 + 1 + 2 + 3);
    assert_eq!(
        got,
        [
            (0, 1, 0.0),
            (0, 1, 1.0),
            (1, 2, 0.5),
            (1, 2, 1.0),
            (2, 3, 1.0 / 3.0),
            (2, 3, 2.0 / 3.0),
            (2, 3, 1.0)
        ]
    );
}

#[test]
fn successive_and_replace_follow_the_original_counts() {
    let got = frames(
        THREE,
        "2,1",
        &["--genesis", "successive", "--denoise", "0.5"],
    );
    assert_eq!(got, [(0, 1, 0.0), (0, 1, 0.5), (0, 1, 1.0), (1, 2, 1.0)]);
    // Replace: steps intermediates at k/(steps + 1), then the target.
    let got = frames(TWO, "3", &["--mode", "replace", "--replace-dim", "channel"]);
    assert_eq!(alphas(&got), [0.0, 0.25, 0.5, 0.75, 1.0]);
    let got = frames(
        FOUR,
        "1,1,2",
        &["--mode", "replace", "--replace-order", "different"],
    );
    assert_eq!(got.len(), 1 + 2 + 2 + 3);
}

#[test]
fn embryo_renders_steps_plus_three_frames() {
    let got = frames(TWO, "4", &["--genesis", "embryo", "--embryo-step", "0.5"]);
    assert_eq!(
        alphas(&got),
        [0.0, 1.0 / 6.0, 2.0 / 6.0, 0.5, 4.0 / 6.0, 5.0 / 6.0, 1.0]
    );
    let eased = frames(
        TWO,
        "4",
        &[
            "--genesis",
            "embryo",
            "--embryo-step",
            "1",
            "--easing",
            "ease-in-out",
        ],
    );
    let a = alphas(&eased);
    assert_eq!((a[0], a[3], a[6]), (0.0, 0.5, 1.0));
    assert!(a[1] < 1.0 / 6.0 && a[5] > 5.0 / 6.0, "{a:?}");
}

#[test]
fn slice_then_pad() {
    // 7 frames, every second one: the folder holds those 4 …
    let got = frames(FOUR, "2", &["--slice", "::2", "--pad", "1"]);
    assert_eq!(got, [(0, 1, 0.0), (0, 1, 1.0), (1, 2, 1.0), (2, 3, 1.0)]);
    // … and the video adds a copy of the first and the last at each end.
    let gif_path = temp("pad").with_extension("gif");
    let model = tiny();
    let args = [
        "render",
        "travel",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        FOUR,
        "--travel-steps",
        "2",
        "--steps",
        "2",
        "--size",
        "64x64",
        "--slice",
        "::2",
        "--pad",
        "1",
        "--out",
        gif_path.to_str().unwrap(),
    ];
    let output = Command::new(env!("CARGO_BIN_EXE_keyshift"))
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success());
    let bytes = std::fs::read(&gif_path).unwrap();
    let mut reader = gif::DecodeOptions::new()
        .read_info(bytes.as_slice())
        .unwrap();
    let mut count = 0;
    while reader.read_next_frame().unwrap().is_some() {
        count += 1;
    }
    assert_eq!(count, 4 + 2);
    std::fs::remove_file(&gif_path).unwrap();
}

#[test]
fn bad_travel_options_exit_2_with_a_clear_message() {
    for (prompt, steps, extra, message) in [
        (
            FOUR,
            "1,2",
            &[][..],
            "4 stages need one number or 3 numbers",
        ),
        ("a cat", "3", &[][..], "at least two stages"),
        (
            THREE,
            "3",
            &["--genesis", "embryo"][..],
            "exactly two stages",
        ),
        (
            TWO,
            "3",
            &["--mode", "warp"][..],
            "--mode: \"warp\" is not one of linear, replace",
        ),
        (TWO, "3", &["--easing", "2,0,1,1"][..], "easing"),
        (
            TWO,
            "3",
            &["--genesis", "embryo", "--embryo-step", "5"][..],
            "embryo step",
        ),
        (TWO, "3", &["--slice", "::0"][..], "slice"),
        (
            TWO,
            "3",
            &["--ssim-threshold", "0.9", "--genesis", "successive"][..],
            "SSIM gap filling works with linear travel and fixed genesis only",
        ),
        (
            TWO,
            "3",
            &["--ssim-blur", "30"][..],
            "--ssim-blur: 30 is outside 0 to 20",
        ),
        ("a THEN(seed=x)\nb", "3", &[][..], "stage 1: seed"),
    ] {
        let (output, _) = travel("bad", prompt, steps, extra);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(message), "{message:?} not in {stderr}");
    }
}

#[test]
fn grad_mode_logs_every_steps_losses() {
    let (output, dir) = travel(
        "grad",
        THREE,
        "2",
        &[
            "--grad-iter",
            "2",
            "--grad-alpha",
            "0.02",
            "--grad-method",
            "sign",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("frames.json")).unwrap()).unwrap();
    // Counted as linear fixed: 1 + Σ steps.
    assert_eq!(json.len(), 5);
    let walked: Vec<usize> = json
        .iter()
        .map(|f| f["losses"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(walked, [0, 2, 0, 2, 0]);
    let log = std::fs::read_to_string(dir.join("prompt-travel-grad.txt")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], "frame\tfrom\tto\tstep\tloss_latent\tloss_cond");
    assert_eq!(lines.len(), 1 + 2 * 2);
    std::fs::remove_dir_all(&dir).unwrap();
    // The old token-ID replace, ordered by the gradient of grad mode's loss per token.
    let got = frames(
        TWO,
        "2",
        &["--mode", "replace-ids", "--replace-order", "grad-max"],
    );
    assert_eq!(alphas(&got), [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]);
    // One stage wanders (grad mode only).
    let (output, dir) = travel("wander", "a cat", "2", &["--mode", "grad"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.join("00002.png").exists() && !dir.join("00003.png").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_random_variation_seed_per_frame_lets_one_stage_wander() {
    let (output, dir) = travel("vary", "a cat", "3", &["--subseed-strength", "0.4"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("frames.json")).unwrap()).unwrap();
    assert_eq!(json.len(), 1 + 3);
    let subseeds: std::collections::BTreeSet<u64> = json
        .iter()
        .map(|f| f["subseed"].as_u64().unwrap())
        .collect();
    assert_eq!(subseeds.len(), 4, "a new variation seed every frame");
    assert!(
        json.iter()
            .all(|f| f["subseed_strength"] == 0.4 && f["seed"] == 42)
    );
    std::fs::remove_dir_all(&dir).unwrap();
    // Without a variation strength, one stage is still too few.
    let (output, _) = travel("still", "a cat", "3", &[]);
    assert_eq!(output.status.code(), Some(2));
}
