//! `keyshift render video` on the tiny fixture model: the frames of a folder rendered as img2img
//! at the source's size, `frames.json` naming each source frame, the original's interpolation
//! defaults on unless `--interp-config none`, its YAML read with the same keys.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "native tests read fixtures and fail by panicking"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use keyshift_core::image::{RgbImage, lanczos_resize};
use keyshift_core::pngtext::{decode_rgb, encode_rgb};
use serde_json::Value;

fn model() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/tiny-sd1/diffusers")
        .display()
        .to_string()
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keyshift-video-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn keyshift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyshift"))
        .args(args)
        .output()
        .expect("runs")
}

fn read_png(path: &Path) -> RgbImage {
    let (width, height, data) = decode_rgb(&std::fs::read(path).unwrap()).unwrap();
    RgbImage {
        width,
        height,
        data,
    }
}

/// Three 72×40 frames (tiny-model images of three seeds, resized) in `dir/in`.
fn frames(dir: &Path) -> PathBuf {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    for seed in 1..=3 {
        let png = dir.join(format!("seed{seed}.png"));
        let out = keyshift(&[
            "generate",
            "--model",
            &model(),
            "--prompt",
            "a red square",
            "--size",
            "64x64",
            "--steps",
            "2",
            "--sampler",
            "Euler",
            "--seed",
            &seed.to_string(),
            "--out",
            png.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let small = lanczos_resize(&read_png(&png), 72, 40);
        let bytes = encode_rgb(72, 40, &small.data, &[]).unwrap();
        std::fs::write(input.join(format!("frame{seed:03}.png")), bytes).unwrap();
    }
    input
}

/// Renders `input` to `out` with `extra` options; the frames in video order.
fn render(input: &Path, out: &Path, extra: &[&str]) -> (Vec<Value>, Vec<RgbImage>) {
    let model = model();
    let mut args = vec![
        "render",
        "video",
        "--model",
        &model,
        "--frames-dir",
        input.to_str().unwrap(),
        "--prompt",
        "a photo of a cat",
        "--steps",
        "4",
        "--denoise",
        "0.75",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    let output = keyshift(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let manifest: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("frames.json")).unwrap()).unwrap();
    let images = manifest
        .iter()
        .map(|f| read_png(&out.join(f["file"].as_str().unwrap())))
        .collect();
    (manifest, images)
}

#[test]
fn frames_render_at_the_source_size_with_interpolation_by_default() {
    let dir = temp("default");
    let input = frames(&dir);
    let (manifest, on) = render(&input, &dir.join("on"), &[]);
    assert_eq!(manifest.len(), 3);
    for (k, f) in manifest.iter().enumerate() {
        assert_eq!(f["source"], format!("frame{:03}.png", k + 1));
        assert_eq!(
            (f["width"].as_u64(), f["height"].as_u64()),
            (Some(72), Some(40))
        );
        assert_eq!(
            f["seed"], 17,
            "the same seed for every frame, as the original"
        );
        assert_eq!(f["denoise"], 0.75);
        assert_eq!(f["sampler"], "DDIM");
    }
    let (_, off) = render(
        &input,
        &dir.join("off"),
        &["--interp-config", "none", "--hist", "none"],
    );
    assert_ne!(
        on[1], off[1],
        "interpolation and colour matching changed frame 1"
    );
    assert_eq!(
        on[0], off[0],
        "the first frame only records and is the colour reference"
    );
    // A JPEG frame among the PNGs (name order puts it last).
    let jpeg =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/video/gradient-72x40.jpg");
    std::fs::copy(&jpeg, input.join("frame999.jpg")).unwrap();
    let (manifest, images) = render(
        &input,
        &dir.join("jpeg"),
        &["--range", "2..", "--fps", "24"],
    );
    assert_eq!(manifest.len(), 2);
    assert_eq!(manifest[1]["source"], "frame999.jpg");
    assert_eq!((images[1].width, images[1].height), (72, 40));
}

#[test]
fn the_originals_yaml_is_read_and_a_file_turning_everything_off_renders_plain_frames() {
    let dir = temp("yaml");
    let input = frames(&dir);
    let config = dir.join("off.yaml");
    std::fs::write(
        &config,
        "pipeline: StableDiffusion\ncommon:\n  seed: 17\npipe_config:\n  ema: 0\nunet_config:\n  \
         ema: 0.0\n  use_interpolation:\n    attention_probs: true\n",
    )
    .unwrap();
    let (_, from_file) = render(
        &input,
        &dir.join("file"),
        &[
            "--interp-config",
            config.to_str().unwrap(),
            "--hist",
            "none",
        ],
    );
    let (_, none) = render(
        &input,
        &dir.join("none"),
        &["--interp-config", "none", "--hist", "none"],
    );
    assert_eq!(from_file, none);
    std::fs::write(&config, "unet_config:\n  ema: 3\n").unwrap();
    let out = keyshift(&[
        "render",
        "video",
        "--model",
        &model(),
        "--frames-dir",
        input.to_str().unwrap(),
        "--prompt",
        "a cat",
        "--interp-config",
        config.to_str().unwrap(),
        "--out",
        dir.join("bad").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unet_config.ema: 3"));
    let out = keyshift(&[
        "render",
        "video",
        "--model",
        &model(),
        "--frames-dir",
        dir.to_str().unwrap(),
        "--prompt",
        "a cat",
        "--hist",
        "xyz",
        "--out",
        dir.join("bad").to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--hist: \"xyz\""));
}

fn controlnet_dir() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/tiny-controlnet")
        .display()
        .to_string()
}

/// The text chunk `key` of a PNG.
fn png_text(path: &Path, key: &str) -> String {
    let texts = keyshift_core::pngtext::read_texts(&std::fs::read(path).unwrap()).unwrap();
    texts
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

#[test]
fn controlnet_guides_frames_from_canny_edges_or_a_folder_of_hints_in_either_layout() {
    let dir = temp("controlnet");
    let input = frames(&dir);
    let plain = ["--interp-config", "none", "--hist", "none"];
    let (_, none) = render(&input, &dir.join("none"), &plain);
    let folder = format!("{}/diffusers", controlnet_dir());
    let with = |net: &str, hint: &str, out: &str| {
        let mut extra = plain.to_vec();
        extra.extend([
            "--controlnet",
            net,
            "--hint",
            hint,
            "--control-scale",
            "0.8",
        ]);
        render(&input, &dir.join(out), &extra)
    };
    let (manifest, canny) = with(&folder, "canny", "canny");
    assert_ne!(canny[1], none[1], "the ControlNet changed the frames");
    let control = &manifest[1]["controlnet"];
    assert_eq!(control["hint"], "canny");
    assert_eq!(control["scale"], 0.8);
    assert_eq!(
        (control["start"].as_f64(), control["end"].as_f64()),
        (Some(0.0), Some(1.0))
    );
    let parameters = png_text(
        &dir.join("canny")
            .join(manifest[1]["file"].as_str().unwrap()),
        "parameters",
    );
    assert!(
        parameters.contains("ControlNet 0: \"Module: canny, Model: diffusers, Weight: 0.8,"),
        "{parameters}"
    );
    // `controlnet_config` blends the ControlNet's own attention with the previous frame's.
    let yaml = dir.join("controlnet.yaml");
    std::fs::write(
        &yaml,
        "pipe_config:\n  ema: 0\nunet_config:\n  ema: 0\ncontrolnet_config:\n  \
         use_interpolation:\n    attention_probs: true\n    out_linear: true\n",
    )
    .unwrap();
    let mut extra = vec!["--interp-config", yaml.to_str().unwrap(), "--hist", "none"];
    extra.extend([
        "--controlnet",
        &folder,
        "--hint",
        "canny",
        "--control-scale",
        "0.8",
    ]);
    let (_, blended) = render(&input, &dir.join("blended"), &extra);
    assert_eq!(blended[0], canny[0], "the first frame only records");
    assert_ne!(
        blended[1], canny[1],
        "the ControlNet's attention was blended"
    );
    // The original single file holds the same weights: the same frames.
    let single = format!("{}/tiny_controlnet.safetensors", controlnet_dir());
    let (_, from_file) = with(&single, "canny", "single");
    assert_eq!(from_file, canny);
    // A folder of hints (here each frame's canny edges, made beforehand) guides as `canny` does.
    let hints = dir.join("hints");
    std::fs::create_dir_all(&hints).unwrap();
    for k in 1..=3 {
        let frame = read_png(&input.join(format!("frame{k:03}.png")));
        let edges = keyshift_core::image::canny_hint(&frame, 50.0, 200.0);
        let png = encode_rgb(edges.width, edges.height, &edges.data, &[]).unwrap();
        std::fs::write(hints.join(format!("hint{k:03}.png")), png).unwrap();
    }
    let (manifest, from_hints) = with(&folder, hints.to_str().unwrap(), "from-hints");
    assert_eq!(from_hints, canny);
    assert_eq!(manifest[2]["controlnet"]["hint"], "hint003.png");
    // One hint per input frame, or a clear refusal.
    std::fs::remove_file(hints.join("hint003.png")).unwrap();
    let out = keyshift(&[
        "render",
        "video",
        "--model",
        &model(),
        "--frames-dir",
        input.to_str().unwrap(),
        "--prompt",
        "a cat",
        "--controlnet",
        &folder,
        "--hint",
        hints.to_str().unwrap(),
        "--out",
        dir.join("bad").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("holds 2 images for 3 input frames"),
        "{stderr}"
    );
}

#[test]
fn a_single_image_takes_a_controlnet_and_bad_controlnet_options_are_named() {
    let dir = temp("controlnet-generate");
    let input = frames(&dir);
    let folder = format!("{}/diffusers", controlnet_dir());
    let control_image = input.join("frame001.png");
    let model = model();
    let generate = |extra: &[&str], out: &str| {
        let out = dir.join(out);
        let mut args = vec![
            "generate",
            "--model",
            &model,
            "--prompt",
            "a cat",
            "--size",
            "64x64",
            "--steps",
            "2",
            "--sampler",
            "Euler",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        (keyshift(&args), out)
    };
    let (plain, plain_png) = generate(&[], "plain.png");
    assert!(plain.status.success());
    let image = control_image.to_str().unwrap();
    let (guided, guided_png) = generate(
        &[
            "--controlnet",
            &folder,
            "--hint",
            "canny",
            "--control-image",
            image,
            "--guess-mode",
        ],
        "guided.png",
    );
    assert!(
        guided.status.success(),
        "{}",
        String::from_utf8_lossy(&guided.stderr)
    );
    assert_ne!(read_png(&plain_png), read_png(&guided_png));
    let parameters = png_text(&guided_png, "parameters");
    assert!(
        parameters.contains("Control Mode: ControlNet is more important"),
        "{parameters}"
    );
    let refused = |extra: &[&str], message: &str| {
        let (out, _) = generate(extra, "bad.png");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(message),
            "{stderr}"
        );
    };
    refused(&["--hint", "canny"], "--hint needs --controlnet");
    refused(&["--controlnet", &folder], "--controlnet needs --hint");
    refused(
        &["--controlnet", &folder, "--hint", "canny"],
        "--hint canny needs --control-image",
    );
    refused(
        &[
            "--controlnet",
            &folder,
            "--hint",
            "canny",
            "--control-image",
            image,
            "--control-start",
            "0.7",
            "--control-end",
            "0.2",
        ],
        "start 0.7 and end 0.2",
    );
    let sd15 = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/tiny-sd1/tiny_sd1_fp16.safetensors");
    refused(
        &[
            "--controlnet",
            sd15.to_str().unwrap(),
            "--hint",
            "canny",
            "--control-image",
            image,
        ],
        "not a ControlNet",
    );
}
