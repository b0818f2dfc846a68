//! `cargo xtask bench peers --out FILE.json [--runs N] [--web-runs N]`: Keyshift against its peers on the same
//! tiny UNet (batch 2, as with CFG), medians in one run on this machine. Natively on the CPU:
//! `keyshift bench unet --model` (release build) against onnxruntime and torch
//! (`scripts/bench/peers_native.py`, which exports the ONNX model with torch; PyPI, dev-only).
//!
//! In the browser, in one headless Chromium: ONNX Runtime Web (npm, dev-only) runs the same ONNX
//! export on its WebGPU and wasm providers, on a cross-origin isolated page so that wasm may use
//! threads; then Keyshift's built site (served as `cargo xtask serve` serves it) loads the tiny
//! model on WebGPU and on the CPU (burn's CPU backend in wasm) and runs the System page's
//! "Benchmark this device" on each (`scripts/bench/web/peers_web.mjs`). Every peer runs the same
//! step on the same fixed inputs; the JSON carries each one's checksum of the output.

use std::path::Path;
use std::process::Command;

use crate::{Ctx, run};

/// Runs `bench peers`.
pub fn bench(ctx: &Ctx, args: &[String]) -> Result<(), String> {
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if args.first().map(String::as_str) != Some("peers") {
        return Err(
            "usage: cargo xtask bench peers --out FILE.json [--runs N] [--web-runs N]".into(),
        );
    }
    let out = flag("--out").ok_or("bench peers needs --out FILE.json")?;
    let runs: usize = flag("--runs")
        .map_or(Ok(20), |r| r.parse())
        .map_err(|e| format!("--runs: {e}"))?;
    let fixture = ctx.root.join("fixtures").join("tiny-sd1").join("diffusers");
    let peers = python_peers(ctx, &fixture, runs)?;
    // SwiftShader takes seconds per UNet forward: the browser half runs fewer times.
    let web_runs: usize = flag("--web-runs")
        .map_or(Ok(3), |r| r.parse())
        .map_err(|e| format!("--web-runs: {e}"))?;
    crate::tools::setup_build(ctx)?;
    crate::build::build(ctx, crate::build::WasmOpt::Run)?;
    let site = crate::serve::spawn(&ctx.site(), 0)?;
    let app = format!("http://127.0.0.1:{}/", site.port);
    let web = web_peers(ctx, &peers, web_runs, &app)?;
    let keyshift = keyshift_native(ctx, &fixture, runs)?;
    let number = |key: &str| peers.get(key).and_then(serde_json::Value::as_f64);
    let onnxruntime = number("onnxruntime_native_cpu_unet_ms").ok_or("no onnxruntime time")?;
    let torch = number("torch_native_cpu_unet_ms").ok_or("no torch time")?;
    let web_number = |key: &str| web.get(key).and_then(serde_json::Value::as_f64);
    let ratio = |ours: &str, theirs: &str| Some(web_number(ours)? / web_number(theirs)?);
    let report = serde_json::json!({
        "model": "tiny-sd1 UNet, batch 2 (CFG), 32×32 latent",
        "runs": runs,
        "web_runs": web_runs,
        "keyshift_native_cpu_unet_ms": keyshift.ms,
        "onnxruntime_native_cpu_unet_ms": onnxruntime,
        "torch_native_cpu_unet_ms": torch,
        "native_cpu_unet_ratio": keyshift.ms / onnxruntime,
        "native_cpu_unet_ratio_torch": keyshift.ms / torch,
        "onnx_max_abs_diff": peers.get("onnx_max_abs_diff"),
        "onnxruntime_version": peers.get("onnxruntime_version"),
        "torch_version": peers.get("torch_version"),
        "keyshift_webgpu_unet_ms": web.get("keyshift_webgpu_unet_ms"),
        "ortweb_webgpu_unet_ms": web.get("ortweb_webgpu_unet_ms"),
        "webgpu_unet_ratio": ratio("keyshift_webgpu_unet_ms", "ortweb_webgpu_unet_ms"),
        "keyshift_wasm_unet_ms": web.get("keyshift_wasm_unet_ms"),
        "ortweb_wasm_unet_ms": web.get("ortweb_wasm_unet_ms"),
        "wasm_unet_ratio": ratio("keyshift_wasm_unet_ms", "ortweb_wasm_unet_ms"),
        "ortweb_version": web.get("ortweb_version"),
        "ortweb_wasm_threads": web.get("wasm_threads"),
        "keyshift_wasm_threads": 1,
        "checksums": {
            "torch": peers.get("onnx_checksum"),
            "ortweb_webgpu": web.get("ortweb_webgpu_checksum"),
            "ortweb_wasm": web.get("ortweb_wasm_checksum"),
            "keyshift_webgpu": web.get("keyshift_webgpu_checksum"),
            "keyshift_wasm": web.get("keyshift_wasm_checksum"),
            "keyshift_native_cpu": keyshift.checksum,
        },
        "keyshift_browser_results": [web.get("keyshift_webgpu_result"), web.get("keyshift_wasm_result")],
    });
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&out, format!("{text}\n")).map_err(|e| format!("{out}: {e}"))?;
    print_table(&report);
    println!("written to {out}");
    Ok(())
}

/// The table of medians and ratios.
fn print_table(report: &serde_json::Value) {
    let get = |key: &str| report.get(key).and_then(serde_json::Value::as_f64);
    let cell =
        |v: Option<f64>, digits: usize| v.map_or("—".to_owned(), |v| format!("{v:.digits$}"));
    println!("work: one UNet step with CFG (batch 2), tiny-sd1, 32×32 latent; medians in ms");
    println!(
        "{:<30}{:>12}{:>12}{:>10}",
        "where", "Keyshift", "peer", "ratio"
    );
    for (name, ours, theirs, ratio) in [
        (
            "browser WebGPU (ORT-web)",
            "keyshift_webgpu_unet_ms",
            "ortweb_webgpu_unet_ms",
            "webgpu_unet_ratio",
        ),
        (
            "browser wasm CPU (ORT-web)",
            "keyshift_wasm_unet_ms",
            "ortweb_wasm_unet_ms",
            "wasm_unet_ratio",
        ),
        (
            "native CPU (onnxruntime)",
            "keyshift_native_cpu_unet_ms",
            "onnxruntime_native_cpu_unet_ms",
            "native_cpu_unet_ratio",
        ),
        (
            "native CPU (torch)",
            "keyshift_native_cpu_unet_ms",
            "torch_native_cpu_unet_ms",
            "native_cpu_unet_ratio_torch",
        ),
    ] {
        println!(
            "{name:<30}{:>12}{:>12}{:>10}",
            cell(get(ours), 1),
            cell(get(theirs), 1),
            cell(get(ratio), 2)
        );
    }
}

/// onnxruntime's and torch's medians from the Python script.
fn python_peers(ctx: &Ctx, fixture: &Path, runs: usize) -> Result<serde_json::Value, String> {
    let script = ctx
        .root
        .join("scripts")
        .join("bench")
        .join("peers_native.py");
    let work = ctx.target_dir.join("peers");
    let out = Command::new("python3")
        .arg(&script)
        .arg(fixture)
        .arg(&work)
        .args(["--runs", &runs.to_string()])
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed (it needs torch, diffusers, onnx, onnxscript and onnxruntime from PyPI):\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("the peers' report: {e}"))
}

/// ONNX Runtime Web's medians in headless Chromium, on the ONNX export the Python script made.
fn web_peers(
    ctx: &Ctx,
    peers: &serde_json::Value,
    runs: usize,
    app: &str,
) -> Result<serde_json::Value, String> {
    let dir = ctx.root.join("scripts").join("bench").join("web");
    crate::tools::npm_ci(&dir)?;
    let path = |key: &str| {
        peers
            .get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or(format!("the peers' report has no {key}"))
    };
    let out = Command::new("node")
        .arg(dir.join("peers_web.mjs"))
        .arg(path("onnx_model")?)
        .arg(path("onnx_inputs")?)
        .args([
            "--runs",
            &runs.to_string(),
            "--chromium",
            crate::tools::CHROMIUM,
            "--app",
            app,
        ])
        .output()
        .map_err(|e| format!("node: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "peers_web.mjs failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("the browser peers' report: {e}"))
}

/// Keyshift's median on the CPU backend and its output's checksum.
struct Native {
    ms: f64,
    checksum: Option<f64>,
}

/// Keyshift's median on the CPU backend, from a release build of the CLI.
fn keyshift_native(ctx: &Ctx, fixture: &Path, runs: usize) -> Result<Native, String> {
    run(Command::new("cargo").current_dir(&ctx.root).args([
        "build",
        "--release",
        "--locked",
        "-p",
        "keyshift-cli",
    ]))?;
    let binary = ctx.target_dir.join("release").join("keyshift");
    let out = Command::new(&binary)
        .args([
            "bench",
            "unet",
            "--backend",
            "cpu",
            "--sizes",
            "64",
            "--no-vae",
        ])
        .arg("--model")
        .arg(fixture)
        .args(["--steps", &runs.to_string()])
        .output()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    let ms = value("ms_per_step: ").ok_or_else(|| {
        format!(
            "keyshift bench unet gave no ms_per_step:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok(Native {
        ms,
        checksum: value("checksum: "),
    })
}
