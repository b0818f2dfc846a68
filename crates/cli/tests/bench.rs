//! `keyshift bench unet`: the lines the checks read, and the largest buffer it reports — recorded
//! from the device's allocator on wgpu (lavapipe here) under a device whose buffers are limited.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a panic is how a test fails"
)]

use std::process::Command;

/// Runs `keyshift bench unet …` and returns its standard output.
fn bench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_keyshift"))
        .arg("bench")
        .arg("unet")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The value of the first `name: value` line.
fn value(stdout: &str, name: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {stdout}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn the_cpu_bench_reports_time_and_the_largest_allocation() {
    let out = bench(&[
        "--backend",
        "cpu",
        "--shape",
        "tiny",
        "--sizes",
        "64",
        "--steps",
        "1",
    ]);
    assert!(value(&out, "ms_per_step") > 0.0, "{out}");
    assert!(value(&out, "vae_decode_ms") > 0.0, "{out}");
    // The largest tensor of the tiny model at 64² is at least its decoder's 32 × 64² f32 output
    // level (512 KiB) and far below the weights file.
    let largest = value(&out, "max_buffer_bytes");
    assert!(
        (512.0 * 1024.0..64.0 * 1024.0 * 1024.0).contains(&largest),
        "{out}"
    );
}

/// The tiny model's UNet on the benchmark's fixed inputs (latent 0.1, timestep 900, context
/// 0.01, batch 2): the sum of its output's first 16 values, as diffusers computes it in torch
/// (`UNet2DConditionModel`, the fixture's `unet/`): −4.575187. The browser's "Benchmark this
/// device" and the peers' benchmark report the same sum.
#[test]
fn the_checksum_is_diffusers_on_the_same_inputs() {
    let model = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/tiny-sd1/diffusers"
    );
    let out = bench(&[
        "--backend",
        "cpu",
        "--model",
        model,
        "--sizes",
        "64",
        "--steps",
        "1",
        "--no-vae",
    ]);
    let checksum = value(&out, "checksum");
    assert!((checksum - -4.575_187).abs() < 1e-3, "{out}");
}

#[test]
fn a_bad_shape_or_size_is_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_keyshift"))
        .args(["bench", "unet", "--shape", "sdxl"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"sdxl\""));
    let out = Command::new(env!("CARGO_BIN_EXE_keyshift"))
        .args(["bench", "unet", "--sizes", "500"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"500\""));
}

/// On a wgpu device that allows 8 MiB per buffer (cubecl's own smallest page is 8 MiB) the tiny
/// model at 128² still runs — its self-attention (64 MiB of scores at once) and the VAE's
/// (64 MiB) in query chunks — and every buffer the device's allocator holds is within the limit.
#[test]
#[cfg(feature = "wgpu")]
fn on_wgpu_every_buffer_stays_within_the_device_limit() {
    let limit = 8u64 << 20;
    let out = bench(&[
        "--backend",
        "wgpu",
        "--shape",
        "tiny",
        "--sizes",
        "128",
        "--steps",
        "1",
        "--buffer-limit",
        &limit.to_string(),
    ]);
    let largest = value(&out, "max_buffer_bytes");
    assert!(largest > 0.0 && largest <= limit as f64, "{out}");
}

/// SD 1.5's shape (random weights) at 512²: one UNet step with CFG and a VAE decode on a device
/// limited to WebGPU's default 128 MiB per buffer. Minutes on lavapipe: run with `--ignored`.
#[test]
#[cfg(feature = "wgpu")]
#[ignore = "minutes on lavapipe; cargo test --workspace --test bench -- --ignored"]
fn sd15_at_512_stays_within_webgpu_s_default_buffer_size() {
    let out = bench(&[
        "--backend",
        "wgpu",
        "--shape",
        "sd15",
        "--sizes",
        "512",
        "--steps",
        "1",
    ]);
    let largest = value(&out, "max_buffer_bytes");
    assert!(largest > 0.0 && largest <= (128u64 << 20) as f64, "{out}");
}

/// `keyshift bench shift` on the tiny model: frames per minute with the encoder cache off, on,
/// and with two frames per UNet call — whose frames are those made one at a time, pixel for pixel.
#[test]
fn bench_shift_reports_frames_per_minute_and_batched_frames_equal_single_ones() {
    let model = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/tiny-sd1/diffusers"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_keyshift"))
        .args(["bench", "shift", "--model", model, "--frames", "3"])
        .args(["--steps", "1", "--size", "64x64", "--batch", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    for name in ["before", "after", "batched"] {
        let line = format!("frames_per_minute_{name}: ");
        let fpm: f64 = stdout
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {line} in {stdout}"))
            .parse()
            .unwrap();
        assert!(fpm > 0.0, "{stdout}");
    }
    assert!(stdout.contains("frames_identical: true"), "{stdout}");
    assert!(
        stdout.contains("3 frames in") && stdout.contains("2 per UNet call"),
        "{stdout}"
    );
    assert!(
        stdout.contains("from the frames made one at a time: 0)"),
        "{stdout}"
    );
    let zero = Command::new(env!("CARGO_BIN_EXE_keyshift"))
        .args(["bench", "shift", "--model", model, "--batch", "0"])
        .output()
        .unwrap();
    assert!(!zero.status.success());
    assert!(String::from_utf8_lossy(&zero.stderr).contains("--batch must be at least 1"));
}

/// A build without the `wgpu` feature (as `cargo xtask test` builds it) refuses the backend by
/// name instead of failing somewhere inside.
#[test]
#[cfg(not(feature = "wgpu"))]
fn without_the_wgpu_feature_the_backend_is_refused_by_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_keyshift"))
        .args(["bench", "unet", "--backend", "wgpu", "--shape", "tiny"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("built without the wgpu backend (cargo feature `wgpu`"),
        "{stderr}"
    );
}
