//! `keyshift heatmap` (Visualize Cross-Attention) and `generate --heatmap-tokens` (attention
//! summed over a generation) on the tiny fixture model, against the torch reference maps of
//! `scripts/reference/make_attention.py`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "native tests read fixtures and fail by panicking"
)]

use std::path::PathBuf;
use std::process::{Command, Output};

use keyshift_core::pngtext::{decode_rgb, encode_rgb};
use keyshift_sd::weights::{FileSource, SafetensorsFile};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model() -> String {
    root()
        .join("fixtures/tiny-sd1/diffusers")
        .display()
        .to_string()
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keyshift-heatmap-{name}-{}", std::process::id()));
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

fn tensor(file: &str, name: &str) -> Vec<f32> {
    let path = root().join("fixtures/tiny-sd1").join(file);
    let mut st = SafetensorsFile::open(file, Box::new(FileSource::open(&path).unwrap())).unwrap();
    st.read_f32(name).unwrap()
}

/// Extras' 64×64 test image (the reference's input) as a PNG in `dir`.
fn test_png(dir: &std::path::Path) -> PathBuf {
    let values = tensor("extras.safetensors", "img2img.image");
    let plane = 64 * 64;
    let mut rgb = vec![0u8; 3 * plane];
    for (i, px) in rgb.chunks_exact_mut(3).enumerate() {
        for (c, v) in px.iter_mut().enumerate() {
            *v = ((values[c * plane + i] + 1.0) * 127.5).round() as u8;
        }
    }
    let path = dir.join("test.png");
    std::fs::write(&path, encode_rgb(64, 64, &rgb, &[]).unwrap()).unwrap();
    path
}

#[test]
fn list_layers_prints_one_name_per_line() {
    let out = keyshift(&["heatmap", "--list-layers", "--model", &model()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[2], "mid_block.attentions.0");
}

#[test]
fn the_grey_probe_is_the_reference_map_upsampled_by_nearest_neighbour() {
    let dir = temp("grey");
    let image = test_png(&dir);
    for (layer, name, tokens, vae) in [
        // VXA's own layer name, its default time and the blank token field.
        (
            "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2",
            "vxa.signed.t1.mid_block.attentions.0.blank",
            "",
            "signed",
        ),
        (
            "down_blocks.1.attentions.1",
            "vxa.signed.t1.down_blocks.1.attentions.1.photo_cat",
            "2, 5",
            "signed",
        ),
        (
            "mid_block.attentions.0",
            "vxa.unit.t1.mid_block.attentions.0.blank",
            "",
            "unit",
        ),
    ] {
        let out_png = dir.join("grey.png");
        let out = keyshift(&[
            "heatmap",
            "--model",
            &model(),
            "--image",
            image.to_str().unwrap(),
            "--prompt",
            "a photo of a cat",
            "--tokens",
            tokens,
            "--layer",
            layer,
            "--mode",
            "grey",
            "--vae-input",
            vae,
            "--out",
            out_png.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (w, h, rgb) = decode_rgb(&std::fs::read(&out_png).unwrap()).unwrap();
        assert_eq!((w, h), (64, 64));
        let want = tensor("attention.safetensors", name);
        for y in 0..64 {
            for x in 0..64 {
                // grey: every channel is map × 255, cast to 8 bits; cell (x / 4, y / 4).
                let v = want[(y / 4) * 16 + x / 4] * 255.0;
                let got = f32::from(rgb[(y * 64 + x) * 3]);
                assert!(
                    (got - v.floor()).abs() <= 1.0,
                    "{name} ({x}, {y}): {got} vs {v}"
                );
            }
        }
    }
}

#[test]
fn generate_draws_the_tokens_attention_over_the_generation_and_refuses_half_options() {
    let dir = temp("generate");
    let (image, map) = (dir.join("image.png"), dir.join("map.png"));
    let base = [
        "generate",
        "--model",
        &model(),
        "--prompt",
        "a photo of a cat",
        "--size",
        "64x64",
        "--steps",
        "3",
        "--sampler",
        "Euler",
        "--seed",
        "5",
        "--out",
    ]
    .map(str::to_owned)
    .to_vec();
    let run = |extra: &[&str]| {
        let mut args = base.clone();
        args.push(image.display().to_string());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        keyshift(&refs)
    };
    let plain = run(&[]);
    assert!(plain.status.success());
    let plain_png = std::fs::read(&image).unwrap();
    let out = run(&[
        "--heatmap-tokens",
        "5",
        "--heatmap-out",
        map.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("18 attention calls summed"));
    // The tap reads and changes nothing: the image is the same.
    assert_eq!(std::fs::read(&image).unwrap(), plain_png);
    let (w, h, drawn) = decode_rgb(&std::fs::read(&map).unwrap()).unwrap();
    let (_, _, rgb) = decode_rgb(&plain_png).unwrap();
    assert_eq!((w, h), (64, 64));
    let changed = drawn.iter().zip(&rgb).filter(|(a, b)| a != b).count();
    assert!(changed > drawn.len() / 2, "the colour map covers the image");
    // Steps 1..3 and one layer: 2 calls.
    let out = run(&[
        "--heatmap-tokens",
        "5",
        "--heatmap-out",
        map.to_str().unwrap(),
        "--heatmap-steps",
        "1..3",
        "--heatmap-layers",
        "mid_block",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 attention calls summed"));
    let half = run(&["--heatmap-out", map.to_str().unwrap()]);
    assert!(!half.status.success());
    assert!(String::from_utf8_lossy(&half.stderr).contains("--heatmap-out needs --heatmap-tokens"));
    let far = run(&[
        "--heatmap-tokens",
        "80",
        "--heatmap-out",
        map.to_str().unwrap(),
    ]);
    assert!(!far.status.success());
    assert!(String::from_utf8_lossy(&far.stderr).contains("80"));
}
