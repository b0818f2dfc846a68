//! `keyshift`: the native command line on the same engine as the web app.
//!
//! Commands:
//! - `keyshift conformance <suite> <cases.json> [--fixes FILE]`: runs a conformance case file
//!   (suites `a1111`, `shift-attention`, `clip-tokens`, `parseq-lang`, `parseq-render`), prints
//!   one line per failing case and per documented deviation and `N passed, N failed`, and exits 1
//!   on any failure. Documented fixes are held to the outputs recorded for them (built in, or
//!   `--fixes FILE` in the same format).
//!   `keyshift conformance sd-golden <fixture-dir> [--backend cpu|wgpu]` checks the engine against
//!   diffusers reference tensors in the `fixtures/tiny-sd1` format.
//! - `keyshift generate --model PATH --prompt TEXT … --out out.png`: one image, with A1111's
//!   `parameters` text in the PNG.
//! - `keyshift render shift …`: a shift-attention animation on the render layer.
//! - `keyshift render travel …`: prompt travel between stages (one per prompt line).
//! - `keyshift render parseq DOC.json …`: a Parseq document with Deforum's 2D motion.
//! - `keyshift render video --frames-dir IN/ …`: video input as img2img per frame, with
//!   temporal consistency.
//! - `keyshift heatmap --model PATH --image IN.png --prompt TEXT …`: Visualize
//!   Cross-Attention's probe; `--list-layers` lists the layers.
//! - `keyshift warp IN.png --zoom Z --angle DEG --tx X --ty Y --out OUT.png`: Deforum's 2D
//!   motion on one image.
//! - `keyshift ssim A.png B.png`: prints the SSIM of two images.
//! - `keyshift quantize --model PATH --out PATH`: saves the model as int8 and reports its size
//!   against f16.
//! - `keyshift selftest`: runs the engine's matmul and conv2d self-test on the CPU backend and
//!   compares them with exact references (the same check the web app's System page runs on WebGPU).
#![allow(clippy::print_stdout, reason = "a command line prints its results")]

mod alloc;
mod args;
mod backend;
mod bench;
mod bench_render;
mod bench_shift;
mod bench_taps;
mod control;
mod engine;
mod generate;
#[cfg(feature = "wgpu")]
mod gpu;
mod heatmap;
mod load;
mod parseq;
mod quantize;
mod render;
mod temporal;
mod travel;
mod video;
mod warp;

use std::process::ExitCode;

use keyshift_sd::Device;

#[global_allocator]
static ALLOCATOR: alloc::Tracking = alloc::Tracking;

const USAGE: &str = "usage: keyshift <command>

commands:
  conformance <suite> <cases.json> [--fixes FILE]
                                     run a conformance file (a1111, shift-attention, clip-tokens,
                                     parseq-lang, parseq-render); --fixes: the outputs recorded
                                     for Keyshift's documented fixes (built in by default)
  conformance sd-golden <fixture-dir> [--backend cpu|wgpu]
                                     check the engine against diffusers reference tensors
  generate --model PATH --prompt TEXT [--negative TEXT] [--steps N] [--sampler NAME] [--cfg X]
           [--seed N] [--subseed N --subseed-strength X] [--size WxH] [--init IMAGE.png --strength X]
           [--clip-skip N] [--quant int8|f32] [--backend cpu|wgpu] --out OUT.png
           [--heatmap-tokens 1,3 --heatmap-out MAP.png [--heatmap-opacity X]
            [--heatmap-layers PREFIX,…] [--heatmap-steps A..B]]
                                     make one image (PNG with A1111 parameters); with
                                     --heatmap-tokens, also the tokens' cross-attention summed
                                     over every layer and step, drawn over the image
  heatmap --model PATH --image IN.png --prompt TEXT [--tokens 1,3] [--time T] [--layer NAME]
           [--mode masked|grey] [--vae-input signed|unit] --out OUT.png
                                     Visualize Cross-Attention: one layer's map of the tokens
                                     for an image (blank --tokens: every token after the first)
  heatmap --list-layers --model PATH one cross-attention layer name per line
  render shift --model PATH --prompt TEXT [--negative TEXT] --shift-steps N [--seed S] [--cfg C]
           [--steps K] [--sampler NAME] [--size WxH] [--ssim-threshold T] [--ssim-min-step X]
           [--ssim-min-pct P] [--lead N] [--mirror] [--fps F] [--remove-zero] [--upscale RATIO]
           [--project LINK|FILE] [--stop-after N] [--resume] --out DIR | FILE.gif | FILE.zip
                                     a shift-attention animation: PNGs in video order with
                                     frames.json and shift-attention-info.txt, a GIF, or a zip;
                                     --resume continues an interrupted or stopped render;
                                     --project takes every setting from a share link
  render travel --model PATH --prompt TEXT [--negative TEXT] --travel-steps N|N,N,…
           [--mode linear|replace|replace-ids|grad] [--interp lerp|slerp] [--easing NAME|x1,y1,x2,y2]
           [--replace-dim token|channel|random] [--replace-order random|similar|different]
           (replace-ids: [--replace-order random|most-similar|most-different|grad-min|grad-max])
           [--genesis fixed|successive|embryo] [--denoise X] [--embryo-step N|RATIO]
           [--grad-iter N --grad-alpha A --grad-method clip|sign|tanh --grad-w-latent W
            --grad-w-cond W] [--seed S] [--cfg C] [--steps K] [--sampler NAME] [--size WxH] [--pad N]
           [--slice SPEC] [--fps F] [--ssim-threshold T] [--ssim-min-step X] [--ssim-min-pct P]
           [--ssim-blur R] [--ssim-crop PCT] [--subseed N|-1 --subseed-strength X]
           [--stop-after N] [--resume]
           --out DIR | FILE.gif | FILE.zip
                                     prompt travel, one stage per line of --prompt (a line may
                                     end with THEN(seed=S, cfg=C)); frames.json gives each
                                     frame's stages (from, to) and alpha; grad mode writes
                                     prompt-travel-grad.txt (the losses of every step)
  warp IN.png [--zoom Z] [--angle DEG] [--tx X] [--ty Y] [--border replicate|wrap] --out OUT.png
                                     one step of Deforum's 2D motion (OpenCV's warpPerspective
                                     of R·T, bilinear)
  render parseq DOC.json --model PATH [--size WxH] [--steps K] [--sampler NAME] [--frames A..B]
           [--seed S] [--border replicate|wrap] [--color-coherence lab|none] [--prompt TEXT]
           [--negative TEXT] [--stop-after N] [--resume] --out DIR | FILE.gif | FILE.zip
                                     a Parseq document rendered as Deforum's 2D animation:
                                     frame 0 txt2img, then img2img of the previous frame moved
                                     by the zoom/angle/translation deltas; cadence frames
                                     cross-faded; frames.json gives each frame's values
  render video --model PATH --frames-dir IN/ --prompt TEXT [--negative TEXT] [--denoise X]
           [--seed S] [--steps K] [--cfg C] [--sampler NAME] [--size WxH] [--fps F] [--range A..B]
           [--stride N] [--interp-config FILE.yaml|default|none] [--hist lab|hsv|rgb|none]
           [--stop-after N] [--resume] --out DIR | FILE.gif | FILE.zip
                                     video input: each PNG/JPEG frame of the folder (name order)
                                     as img2img at --denoise (0.5), the same seed (17) for every
                                     frame, output at the source's size; attention interpolation
                                     (Attention-Interpolation's YAML; its defaults unless none)
                                     and colours matched to the first frame (lab unless none)
                                     render shift, travel and parseq take --interp-config and
                                     --hist too (off unless given)
                                     every render mode takes --taesd DIR: TAESD (the diffusers
                                     folder or taesd_decoder.safetensors) decodes the frames
                                     instead of the VAE, faster and approximate (parameters:
                                     VAE Decoder: TAESD)
                                     every render mode takes --batch N|auto: up to N frames that
                                     need nothing from each other (shift-attention's evenly
                                     spaced frames) share one UNet call per step; auto (the
                                     default): up to 4 on a GPU while their latents hold 64×64
                                     pixels together, 1 (frame by frame) on the CPU
  ssim A.png B.png                   the SSIM of two images (torchmetrics' definition)
  quantize --model PATH --out PATH   save the model as int8 (folder or single file) and
                                     report its size against f16
  bench unet [--backend cpu|wgpu] [--shape sd15|sd21|turbo|tiny] [--sizes 256,512] [--steps N]
             [--quant int8|f32] [--buffer-limit BYTES] [--no-vae] [--model PATH]
                                     median time per UNet step (batch 2), a VAE decode, and
                                     the largest buffer allocated (random weights of the
                                     shape, or the model's own)
  bench shift --model PATH [--frames 16] [--steps K] [--size WxH] [--batch N] [--taesd DIR]
                                     frames per minute of a shift-attention animation with the
                                     text encoder's cache off and on; whether frames are identical;
                                     then with N frames (4 unless given) per UNet call, and the
                                     largest pixel difference that makes; with --taesd, also with
                                     TAESD frames (and their PSNR)
  bench render --model PATH [--frames N] [--steps K] [--size WxH]
                                     the render layer's time per frame against a bare loop
  bench taps [--backend cpu|wgpu] [--steps N] [--rounds N]
                                     the heatmap tap's and attention interpolation's time per
                                     tiny UNet step against none, and interpolation's memory
                                     for the previous frame (tiny measured, SD 1.5 512² estimated)
  bench sequencer [--runs N] [--document OUT.json]
                                     render the 10k-frame, 20-field Parseq benchmark document
                                     (or write it, for the browser's keystroke benchmark)
  selftest   run the engine self-test (matmul, conv2d) on the CPU backend";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("selftest") => selftest(),
        Some("bench") => match bench::run(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("keyshift bench: {e}");
                ExitCode::from(2)
            }
        },
        Some("generate") => match generate::run(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("keyshift generate: {e}");
                ExitCode::from(2)
            }
        },
        Some("render") => match render::run(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("keyshift render: {e}");
                ExitCode::from(2)
            }
        },
        Some("ssim") => match render::ssim_command(&args[1..]) {
            Ok(value) => {
                println!("{value}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("keyshift ssim: {e}");
                ExitCode::from(2)
            }
        },
        Some("heatmap") => match heatmap::run(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("keyshift heatmap: {e}");
                ExitCode::from(2)
            }
        },
        Some("warp") => match warp::run(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("keyshift warp: {e}");
                ExitCode::FAILURE
            }
        },
        Some("quantize") => match quantize::run(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("keyshift quantize: {e}");
                ExitCode::from(2)
            }
        },
        Some("conformance") => match (args.get(1).map(String::as_str), args.get(2)) {
            (Some("sd-golden"), Some(dir)) => sd_golden(dir, &args[3..]),
            (Some(suite), Some(path)) => conformance(suite, path, &args[3..]),
            _ => {
                eprintln!("{USAGE}");
                ExitCode::from(2)
            }
        },
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("keyshift: unknown command \"{other}\"\n\n{USAGE}");
            ExitCode::from(2)
        }
        None => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn selftest() -> ExitCode {
    let device = Device::flex();
    let report = match pollster::block_on(keyshift_sd::selftest::run(&device)) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("keyshift: self-test could not run: {e}");
            return ExitCode::FAILURE;
        }
    };
    for check in [&report.matmul, &report.conv2d] {
        println!(
            "{:<32} sum {:>12.4} (expected {:>12.4})  max error {:.2e}  {:>7.2} ms  {}",
            check.name,
            check.sum,
            check.expected_sum,
            check.max_abs_error,
            check.elapsed_ms,
            if check.passed { "pass" } else { "FAIL" }
        );
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the native CLI reads the case file it is given"
)]
fn conformance(suite: &str, path: &str, rest: &[String]) -> ExitCode {
    use keyshift_core::conformance::{FIXED_OUTPUTS, Suite, run_suite_with_fixes};
    let usage_error = |message: String| {
        eprintln!("keyshift: {message}");
        ExitCode::from(2)
    };
    let suite: Suite = match suite.parse() {
        Ok(s) => s,
        Err(e) => return usage_error(e.to_string()),
    };
    let fixes = match rest {
        [] => FIXED_OUTPUTS.to_owned(),
        [flag, file] if flag == "--fixes" => match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => return usage_error(format!("cannot read {file}: {e}")),
        },
        _ => return usage_error(format!("unexpected arguments {rest:?}\n\n{USAGE}")),
    };
    let json = match std::fs::read_to_string(path) {
        Ok(j) => j,
        Err(e) => return usage_error(format!("cannot read {path}: {e}")),
    };
    match run_suite_with_fixes(suite, &json, &fixes) {
        Ok(report) => finish(&report.render(), report.is_success()),
        Err(e) => {
            eprintln!("keyshift: {path}: {e}");
            ExitCode::from(2)
        }
    }
}

/// Prints a conformance report; exit 1 on any failure.
fn finish(rendered: &str, success: bool) -> ExitCode {
    println!("{rendered}");
    if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn sd_golden(dir: &str, rest: &[String]) -> ExitCode {
    let parsed = args::Args::parse(rest, &[]).and_then(|a| match a.unknown(&["backend"]) {
        Some(e) => Err(e),
        None => Ok(a),
    });
    let device =
        parsed.and_then(|a| backend::Backend::parse(a.get("backend").unwrap_or("cpu"))?.device());
    let device = match device {
        Ok(d) => d,
        Err(e) => {
            eprintln!("keyshift: {e}");
            return ExitCode::from(2);
        }
    };
    let folder = keyshift_sd::model::DirFolder(std::path::PathBuf::from(dir));
    match keyshift_sd::golden::run(&folder, &device) {
        Ok(report) => finish(&report.render(), report.is_success()),
        Err(e) => {
            eprintln!("keyshift: {dir}: {e}");
            ExitCode::from(2)
        }
    }
}
