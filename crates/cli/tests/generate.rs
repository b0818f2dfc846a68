//! `keyshift generate` on the tiny fixture model: a PNG with A1111 parameters, deterministic per
//! seed, and clear errors for bad input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::disallowed_methods,
    reason = "native tests read fixtures and fail by panicking"
)]

use std::path::PathBuf;
use std::process::Command;

use keyshift_core::parameters::Parameters;
use keyshift_core::pngtext;

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-sd1/diffusers")
}

fn generate(out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyshift"));
    cmd.args(["generate", "--model"]).arg(tiny());
    cmd.args([
        "--prompt",
        "a photo of a (cat:1.2)",
        "--steps",
        "3",
        "--seed",
        "42",
        "--size",
        "64x64",
    ]);
    cmd.args(extra).arg("--out").arg(out);
    cmd.output().expect("runs")
}

#[test]
fn writes_a_png_with_a1111_parameters_deterministically() {
    let dir = std::env::temp_dir().join(format!("keyshift-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b, c) = (dir.join("a.png"), dir.join("b.png"), dir.join("c.png"));
    for (path, seed) in [(&a, "42"), (&b, "42"), (&c, "43")] {
        let out = generate(
            path,
            &[
                "--seed",
                seed,
                "--sampler",
                "Euler a",
                "--negative",
                "blurry",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (pa, pb, pc) = (
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        std::fs::read(&c).unwrap(),
    );
    assert_eq!(pa, pb, "same seed, same file");
    let (w, h, rgb_a) = pngtext::decode_rgb(&pa).unwrap();
    assert_eq!((w, h), (64, 64));
    let (_, _, rgb_c) = pngtext::decode_rgb(&pc).unwrap();
    assert_ne!(rgb_a, rgb_c, "another seed, another image");
    let texts = pngtext::read_texts(&pa).unwrap();
    let params = Parameters::parse(&texts.iter().find(|(k, _)| k == "parameters").unwrap().1);
    assert_eq!(params.prompt, "a photo of a (cat:1.2)");
    assert_eq!(params.negative, "blurry");
    assert_eq!(params.get("Steps"), Some("3"));
    assert_eq!(params.get("Sampler"), Some("Euler a"));
    assert_eq!(params.get("Seed"), Some("42"));
    assert_eq!(params.get("Size"), Some("64x64"));
    // img2img from the first image at strength 0.5 stays closer to it than a fresh seed does.
    let d = dir.join("d.png");
    let out = generate(
        &d,
        &[
            "--seed",
            "43",
            "--init",
            a.to_str().unwrap(),
            "--strength",
            "0.5",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, _, rgb_d) = pngtext::decode_rgb(&std::fs::read(&d).unwrap()).unwrap();
    let dist = |x: &[u8], y: &[u8]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| (i32::from(*p) - i32::from(*q)).abs())
            .sum::<i32>()
    };
    assert!(
        dist(&rgb_d, &rgb_a) < dist(&rgb_c, &rgb_a),
        "img2img keeps the init image"
    );
}

#[test]
fn bad_input_gives_a_message_not_a_panic() {
    let out_path = std::env::temp_dir().join("keyshift-never-written.png");
    let cases: [(&[&str], &str); 4] = [
        (&["--size", "65x64"], "multiple of"),
        (&["--sampler", "Heun++"], "unknown sampler"),
        (&["--steps", "many"], "--steps"),
        (&["--prompt", "a [unclosed:0.5"], ""),
    ];
    for (extra, needle) in cases {
        let out = generate(&out_path, extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if needle.is_empty() {
            // A1111 reads an unclosed bracket as text: it must still make an image.
            assert!(out.status.success(), "{stderr}");
        } else {
            assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
            assert!(stderr.contains(needle), "{extra:?}: {stderr}");
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_keyshift"))
        .args([
            "generate",
            "--model",
            "/nonexistent/model.safetensors",
            "--prompt",
            "x",
            "--out",
        ])
        .arg(&out_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("model.safetensors"));
}

/// `keyshift quantize` saves the folder as int8 at well under the f16 size, and `generate` from
/// the saved folder draws the same pixels as `generate --quant int8` from the original.
#[test]
fn quantize_saves_an_int8_folder_that_generates_what_quant_int8_does() {
    let dir = std::env::temp_dir().join(format!("keyshift-quant-{}", std::process::id()));
    let saved = dir.join("tiny-int8");
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_keyshift"))
        .args(["quantize", "--model"])
        .arg(tiny())
        .arg("--out")
        .arg(&saved)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ratio: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("size_ratio_vs_fp16: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(ratio > 0.5 && ratio < 0.6, "{stdout}");
    assert!(saved.join("unet/config.json").exists());

    let (direct, reloaded, float) = (dir.join("d.png"), dir.join("r.png"), dir.join("f.png"));
    // No emphasis here: on this random model A1111's mean restoration divides by a mean near
    // zero, which turns the text encoder's int8 error into a large one (see docs/compat.md).
    let prompt = ["--prompt", "a photo of a cat"];
    let int8 = [&prompt[..], &["--quant", "int8"]].concat();
    assert!(generate(&direct, &int8).status.success());
    assert!(generate(&float, &prompt).status.success());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyshift"));
    cmd.args(["generate", "--model"]).arg(&saved);
    cmd.args(prompt).args(["--steps", "3", "--seed", "42"]);
    cmd.args(["--size", "64x64", "--out"]).arg(&reloaded);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pixels = |p: &PathBuf| pngtext::decode_rgb(&std::fs::read(p).unwrap()).unwrap().2;
    assert_eq!(pixels(&direct), pixels(&reloaded));
    let db = pngtext::psnr(&pixels(&direct), &pixels(&float)).unwrap();
    assert!(db.is_finite() && db > 40.0, "{db}");

    let bad = generate(&direct, &["--quant", "q3"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--quant: expected int8 or f32"));
    std::fs::remove_dir_all(&dir).ok();
}

/// A PNG whose header claims 60000×60000 (74 bytes on disk) is refused from its header, naming
/// the limit, before any pixel buffer: as `--init` and for `keyshift ssim`, under a 4 GiB address
/// space limit (a browser tab's), where allocating the claimed 10.8 GB would abort.
#[test]
fn an_image_claiming_60000_by_60000_is_refused_from_its_header() {
    let png = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/claims-60000x60000.png");
    let bin = env!("CARGO_BIN_EXE_keyshift");
    let out = std::env::temp_dir().join(format!("keyshift-huge-{}.png", std::process::id()));
    let limited = |args: &[&std::ffi::OsStr]| {
        Command::new("sh")
            .arg("-c")
            .arg("ulimit -v 4194304 && exec \"$@\"")
            .arg("sh")
            .arg(bin)
            .args(args)
            .output()
            .expect("runs")
    };
    let init = limited(&[
        "generate".as_ref(),
        "--model".as_ref(),
        tiny().as_os_str(),
        "--prompt".as_ref(),
        "x".as_ref(),
        "--steps".as_ref(),
        "1".as_ref(),
        "--size".as_ref(),
        "64x64".as_ref(),
        "--init".as_ref(),
        png.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    let ssim = limited(&["ssim".as_ref(), png.as_os_str(), png.as_os_str()]);
    for output in [init, ssim] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("60000×60000"), "{stderr}");
        assert!(stderr.contains("up to 64 megapixels"), "{stderr}");
    }
    assert!(!out.exists());
}

/// A model whose config claims absurd sizes is refused before anything is allocated, naming the
/// limit (under the same 4 GiB address space limit).
#[test]
fn a_model_config_with_absurd_sizes_is_refused_naming_the_limit() {
    let dir = std::env::temp_dir().join(format!("keyshift-absurd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["scheduler", "text_encoder", "tokenizer", "unet", "vae"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for entry in std::fs::read_dir(tiny().join(sub)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(sub).join(entry.file_name())).unwrap();
        }
    }
    std::fs::copy(
        tiny().join("model_index.json"),
        dir.join("model_index.json"),
    )
    .unwrap();
    let config = std::fs::read_to_string(dir.join("unet/config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&config).unwrap();
    config["block_out_channels"] = serde_json::json!([3_000_000_000u64, 64]);
    std::fs::write(dir.join("unet/config.json"), config.to_string()).unwrap();
    let out = dir.join("out.png");
    let output = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 4194304 && exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_keyshift"))
        .args(["generate", "--model"])
        .arg(&dir)
        .args(["--prompt", "x", "--steps", "1", "--size", "64x64", "--out"])
        .arg(&out)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("block_out_channels is 3000000000; Keyshift accepts 1 to 32768"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
