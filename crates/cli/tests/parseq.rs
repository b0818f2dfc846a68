//! `keyshift render parseq` and `keyshift warp` on the tiny fixture model: `frames.json` holds
//! the sequencer's values for every frame, a rerun and a resumed run give the same bytes, the
//! cadence frames say they were not diffused, a frame kept whole (strength 1) is the previous
//! one moved by its deltas, and `keyshift warp` is OpenCV's `warpPerspective`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "native tests read fixtures and fail by panicking"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use keyshift_core::image::{Border, Motion2d, RgbImage, warp_perspective};
use keyshift_core::parseq::document::Document;
use keyshift_core::parseq::render::render;
use keyshift_core::pngtext::decode_rgb;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn motion_doc() -> PathBuf {
    root().join("fixtures/parseq/motion.json")
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keyshift-parseq-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn keyshift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyshift"))
        .args(args)
        .output()
        .expect("runs")
}

/// Renders `doc` to `out` with the tiny model at 64×64, 2 steps.
fn render_doc(doc: &Path, out: &Path, extra: &[&str]) -> Output {
    let model = root().join("fixtures/tiny-sd1/diffusers");
    let mut args = vec!["render", "parseq", doc.to_str().unwrap()];
    args.extend(["--model", model.to_str().unwrap(), "--size", "64x64"]);
    args.extend(["--steps", "2"]);
    args.extend(extra);
    args.extend(["--out", out.to_str().unwrap()]);
    let output = keyshift(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn manifest(dir: &Path) -> Vec<Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("frames.json")).unwrap()).unwrap()
}

fn image(path: &Path) -> RgbImage {
    let (width, height, data) = decode_rgb(&std::fs::read(path).unwrap()).unwrap();
    RgbImage {
        width,
        height,
        data,
    }
}

/// Every frame's PNG bytes.
fn pngs(dir: &Path, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| std::fs::read(dir.join(format!("{i:05}.png"))).unwrap())
        .collect()
}

/// Equal to within a unit in the last place (serde_json reads floats back that closely).
fn close(got: &Value, want: f64, frame: usize) {
    let got = got.as_f64().unwrap_or(f64::NAN);
    assert!(
        (got - want).abs() <= want.abs() * 4.0 * f64::EPSILON,
        "frame {frame}: {got} ≠ {want}"
    );
}

#[test]
fn frames_json_holds_the_sequencers_values() {
    let out = temp("values");
    render_doc(&motion_doc(), &out, &[]);
    let frames = manifest(&out);
    let doc = Document::from_json_str(&std::fs::read_to_string(motion_doc()).unwrap()).unwrap();
    let (_, rendered) = render(&doc).unwrap();
    let want = rendered.frames_json();
    assert_eq!(frames.len(), want.len());
    for (k, (got, want)) in frames.iter().zip(&want).enumerate() {
        assert_eq!(got["file"], format!("{k:05}.png"));
        for key in ["frame", "seed", "subseed"] {
            assert_eq!(got[key], want[key], "frame {k}, {key}");
        }
        for key in [
            "subseed_strength",
            "strength",
            "zoom",
            "angle",
            "translation_x",
            "translation_y",
            "noise",
        ] {
            close(&got[key], want[key].as_f64().unwrap(), k);
        }
        close(&got["cfg"], want["scale"].as_f64().unwrap(), k);
        assert_eq!(got["prompt"], want["deforum_prompt"], "frame {k}");
        let strength = want["strength"].as_f64().unwrap();
        match k {
            0 => assert!(got["denoise"].is_null(), "frame 0 is txt2img"),
            _ => close(&got["denoise"], 1.0 - strength, k),
        }
        assert_eq!(got["diffused"], true);
    }
    // Fractional seeds travel: seed 7.25 is seed 7, variation seed 8 at 0.25.
    assert_eq!(frames[1]["engine_seed"], 7);
    assert_eq!(frames[1]["engine_subseed"], 8);
    assert_eq!(
        frames[1]["prompt"],
        "a red fox in snow detailed --neg blurry"
    );
    assert_eq!(frames[1]["engine_prompt"], "a red fox in snow detailed");
    assert_eq!(frames[1]["negative"], "blurry");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_rerun_and_a_resumed_run_give_the_same_frames() {
    let (a, b) = (temp("rerun-a"), temp("rerun-b"));
    render_doc(&motion_doc(), &a, &[]);
    render_doc(&motion_doc(), &b, &["--stop-after", "2"]);
    assert!(!b.join("frames.json").exists(), "stopped before the end");
    let resumed = render_doc(&motion_doc(), &b, &["--resume"]);
    assert!(String::from_utf8_lossy(&resumed.stderr).contains("2 frames were rendered before"));
    assert!(pngs(&a, 5) == pngs(&b, 5), "the resumed frames differ");
    assert_eq!(manifest(&a), manifest(&b));
    let c = temp("rerun-c");
    render_doc(&motion_doc(), &c, &[]);
    assert!(pngs(&a, 5) == pngs(&c, 5), "the rerun's frames differ");
    for dir in [a, b, c] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// The motion document with changes to its options and every keyframe.
fn variant(name: &str, options: &[(&str, Value)], keyframe: &[(&str, Value)]) -> PathBuf {
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(motion_doc()).unwrap()).unwrap();
    for (k, v) in options {
        doc["options"][*k] = v.clone();
    }
    for kf in doc["keyframes"].as_array_mut().unwrap() {
        for (k, v) in keyframe {
            kf[*k] = v.clone();
        }
    }
    let path = std::env::temp_dir().join(format!("keyshift-{name}-{}.json", std::process::id()));
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

#[test]
fn cadence_frames_are_not_diffused() {
    let doc = variant("cadence", &[("cadence", 2.into())], &[]);
    let out = temp("cadence");
    render_doc(&doc, &out, &[]);
    let frames = manifest(&out);
    let diffused: Vec<bool> = frames.iter().map(|f| f["diffused"] == true).collect();
    assert_eq!(diffused, [true, false, true, false, true]);
    let numbers: Vec<i64> = frames
        .iter()
        .map(|f| f["frame"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [0, 1, 2, 3, 4]);
    assert!(frames[1]["denoise"].is_null() && frames[3]["denoise"].is_null());
    assert_eq!(frames[2]["denoise"].as_f64(), Some(1.0 - 0.6));
    // Frame 1 (no older diffused image yet) is frame 0 moved by frame 1's motion.
    let zero = image(&out.join("00000.png"));
    let motion = Motion2d {
        zoom: frames[1]["zoom_delta"].as_f64().unwrap(),
        angle: frames[1]["angle_delta"].as_f64().unwrap(),
        translation_x: frames[1]["translation_x_delta"].as_f64().unwrap(),
        translation_y: frames[1]["translation_y_delta"].as_f64().unwrap(),
    };
    let moved = warp_perspective(&zero, &motion.matrix(64, 64), Border::Replicate);
    assert_eq!(image(&out.join("00001.png")), moved);
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_file(doc).unwrap();
}

#[test]
fn a_frame_kept_whole_is_the_previous_one_moved_by_its_deltas() {
    // Strength 1 with DDIM runs no step: the frame is its init image, which without noise,
    // contrast or colour matching is the previous frame moved.
    let doc = variant(
        "whole",
        &[],
        &[
            ("strength", 1.into()),
            ("noise", 0.into()),
            ("contrast", 1.into()),
        ],
    );
    let out = temp("whole");
    render_doc(
        &doc,
        &out,
        &[
            "--sampler",
            "DDIM",
            "--color-coherence",
            "none",
            "--border",
            "wrap",
        ],
    );
    let frames = manifest(&out);
    for (k, f) in frames.iter().enumerate().skip(1) {
        let motion = Motion2d {
            zoom: f["zoom_delta"].as_f64().unwrap(),
            angle: f["angle_delta"].as_f64().unwrap(),
            translation_x: f["translation_x_delta"].as_f64().unwrap(),
            translation_y: f["translation_y_delta"].as_f64().unwrap(),
        };
        assert!(!motion.is_identity());
        let previous = image(&out.join(format!("{:05}.png", k - 1)));
        let want = warp_perspective(&previous, &motion.matrix(64, 64), Border::Wrap);
        assert_eq!(image(&out.join(format!("{k:05}.png"))), want, "frame {k}");
    }
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_file(doc).unwrap();
}

#[test]
fn frames_option_renders_a_range_starting_with_txt2img() {
    let out = temp("range");
    render_doc(&motion_doc(), &out, &["--frames", "2..4"]);
    let frames = manifest(&out);
    let numbers: Vec<i64> = frames
        .iter()
        .map(|f| f["frame"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 3]);
    assert!(frames[0]["denoise"].is_null());
    std::fs::remove_dir_all(&out).unwrap();
    let bad = keyshift(&[
        "render",
        "parseq",
        motion_doc().to_str().unwrap(),
        "--model",
        "unused",
        "--frames",
        "3..9",
        "--out",
        "unused",
    ]);
    assert!(!bad.status.success());
    let message = String::from_utf8_lossy(&bad.stderr);
    assert!(message.contains("--frames: 3..9"), "{message}");
}

#[test]
fn warp_is_opencvs() {
    let data = root().join("crates/core/tests/data/warp");
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("cases.json")).unwrap()).unwrap();
    let out = temp("warp");
    std::fs::create_dir_all(&out).unwrap();
    for case in cases["warp"].as_array().unwrap() {
        let target = out.join(case["file"].as_str().unwrap());
        let number = |k: &str| case[k].as_f64().unwrap().to_string();
        let output = keyshift(&[
            "warp",
            data.join("source.png").to_str().unwrap(),
            "--zoom",
            &number("zoom"),
            "--angle",
            &number("angle"),
            "--tx",
            &number("tx"),
            "--ty",
            &number("ty"),
            "--border",
            case["border"].as_str().unwrap(),
            "--out",
            target.to_str().unwrap(),
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let (got, want) = (
            image(&target),
            image(&data.join(case["file"].as_str().unwrap())),
        );
        let max = got
            .data
            .iter()
            .zip(&want.data)
            .map(|(a, b)| a.abs_diff(*b))
            .max();
        assert!(max <= Some(1), "{case}: {max:?}");
    }
    let bad = keyshift(&["warp", "in.png", "--border", "mirror", "--out", "x.png"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--border: \"mirror\""));
    std::fs::remove_dir_all(&out).unwrap();
}
