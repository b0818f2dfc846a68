//! `keyshift render shift` and `keyshift ssim` on the tiny fixture model: the frames the original
//! script would render (order, prompts, seeds, variation, CFG), each equal to `keyshift generate`
//! of its settings; reproducible; SSIM gap filling inserting frames where the original loop does;
//! GIF and zip outputs; clear errors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::disallowed_methods,
    reason = "native tests read fixtures and fail by panicking"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use keyshift_core::image::{RgbImage, ssim};
use keyshift_core::parameters::Parameters;
use keyshift_core::pngtext;
use keyshift_core::prompt::{Fidelity, python_repr};
use keyshift_core::shift::run::{RunSettings, run};
use keyshift_core::shift::{GapSettings, ShiftRequest};

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-sd1/diffusers")
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keyshift-render-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const BASE: &[&str] = &["--steps", "3", "--size", "64x64", "--sampler", "Euler a"];

fn keyshift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyshift"))
        .args(args)
        .output()
        .expect("runs")
}

fn render(prompt: &str, extra: &[&str], out: &Path) -> Output {
    let model = tiny();
    let mut args = vec!["render", "shift", "--model", model.to_str().unwrap()];
    args.extend(["--prompt", prompt]);
    args.extend(BASE);
    args.extend(extra);
    args.extend(["--out", out.to_str().unwrap()]);
    keyshift(&args)
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn params(png: &[u8]) -> Parameters {
    let texts = pngtext::read_texts(png).unwrap();
    Parameters::parse(&texts.iter().find(|(k, _)| k == "parameters").unwrap().1)
}

fn rgb(png: &[u8]) -> RgbImage {
    let (width, height, data) = pngtext::decode_rgb(png).unwrap();
    RgbImage {
        width,
        height,
        data,
    }
}

fn frames(dir: &Path) -> Vec<Vec<u8>> {
    (0..)
        .map(|i| dir.join(format!("{i:05}.png")))
        .take_while(|p| p.exists())
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

fn manifest(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("frames.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `keyshift generate` of one frame's settings.
fn generate(prompt: &str, seed: i64, subseed: i64, strength: f64, cfg: f64, out: &Path) -> Vec<u8> {
    let model = tiny();
    let (seed, subseed) = (seed.to_string(), subseed.to_string());
    let (strength, cfg) = (python_repr(strength), python_repr(cfg));
    let mut args = vec![
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        prompt,
    ];
    args.extend(BASE);
    args.extend([
        "--seed",
        &seed,
        "--subseed",
        &subseed,
        "--subseed-strength",
        &strength,
    ]);
    args.extend(["--cfg", &cfg, "--out", out.to_str().unwrap()]);
    ok(&keyshift(&args));
    std::fs::read(out).unwrap()
}

#[test]
fn renders_the_frames_the_original_script_would() {
    let dir = temp("plain");
    let prompt = "a photo of a (cat:1~0) THEN(seed=7,cfg=9) a (dog:0~1)";
    let args = [
        "--shift-steps",
        "2",
        "--seed",
        "42",
        "--cfg",
        "7",
        "--mirror",
    ];
    ok(&render(prompt, &args, &dir.join("a")));
    ok(&render(prompt, &args, &dir.join("b")));
    let (a, b) = (frames(&dir.join("a")), frames(&dir.join("b")));
    assert!(a == b, "the same command twice gives byte-identical frames");

    let request = ShiftRequest {
        prompt: prompt.into(),
        negative_prompt: String::new(),
        steps: 2,
        seed: 42,
        cfg_scale: 7.0,
        remove_zero_strength: false,
    };
    let settings = RunSettings {
        gap: GapSettings::default(),
        mirror: true,
        video_fps: 30.0,
    };
    let expected = run(&request, settings, Fidelity::Keyshift, &mut |_, _| 1.0).unwrap();
    assert_eq!(
        a.len(),
        expected.frames.len(),
        "6 frames, mirrored once: 12"
    );
    assert_eq!(a.len(), 12);
    let records = manifest(&dir.join("a"));
    assert_eq!(records.len(), a.len());
    for (i, (png, frame)) in a.iter().zip(&expected.frames).enumerate() {
        let f = &frame.frame;
        let p = params(png);
        assert_eq!(p.prompt, f.prompt, "frame {i}");
        assert_eq!(
            p.get("Seed"),
            Some(f.seed.to_string().as_str()),
            "frame {i}"
        );
        assert_eq!(
            p.get("CFG scale"),
            Some(format!("{}", f.cfg_scale).as_str())
        );
        if f.subseed_strength > 0.0 {
            assert_eq!(
                p.get("Variation seed"),
                Some(f.subseed.to_string().as_str())
            );
            let strength = python_repr(f.subseed_strength);
            assert_eq!(p.get("Variation seed strength"), Some(strength.as_str()));
        } else {
            assert_eq!(p.get("Variation seed"), None, "frame {i}");
        }
        let r = &records[i];
        assert_eq!(r["file"], format!("{i:05}.png"));
        assert_eq!(r["prompt"], f.prompt.as_str());
        assert_eq!(r["seed"], f.seed);
        assert_eq!(r["subseed"], f.subseed);
        assert_eq!(r["cfg"], f.cfg_scale);
        assert_eq!(r["steps"], 3);
        assert_eq!(r["sampler"], "Euler a");
        assert_eq!(r["generation_index"], frame.generation_index);
    }
    assert_ne!(rgb(&a[0]).data, rgb(&a[2]).data, "distance 0 and 1 differ");
    // Frame 4 is "a (dog:0.5)" in the segment travelling from seed 7 with its CFG held at 9.
    let f = &expected.frames[4].frame;
    assert_eq!((f.seed, f.subseed, f.cfg_scale), (7, 7, 9.0));
    let alone = generate(
        &f.prompt,
        f.seed,
        f.subseed,
        f.subseed_strength,
        f.cfg_scale,
        &dir.join("g.png"),
    );
    assert!(
        rgb(&alone).data == rgb(&a[4]).data,
        "a frame equals generate of its settings"
    );
    // Frame 1 travels seed 42 → 7 at strength 0.5 and CFG 7 → 9.
    let f = &expected.frames[1].frame;
    assert_eq!(
        (f.seed, f.subseed, f.subseed_strength, f.cfg_scale),
        (42, 7, 0.5, 8.0)
    );
    let alone = generate(&f.prompt, f.seed, f.subseed, 0.5, 8.0, &dir.join("g1.png"));
    assert!(
        rgb(&alone).data == rgb(&a[1]).data,
        "same pixels as generate"
    );
    assert_eq!(
        params(&alone).to_text(),
        params(&a[1]).to_text(),
        "and the same parameters"
    );
    let info = std::fs::read_to_string(dir.join("a/shift-attention-info.txt")).unwrap();
    assert!(info.contains("Frames: 12\n"), "{info}");
    assert!(
        info.contains(
            "--- Frame: 00001 Image: 00001 Seed: 42 (7 0.5) CFG: 8.0\n+ a photo of a (cat:0.5)"
        ),
        "{info}"
    );
}

/// The original's gap-filling loop (spec §1.4), written out plainly, with frames made by
/// `keyshift generate`; returns the final distances and the SSIM values it saw.
fn reference_gap_filling(
    dir: &Path,
    threshold: f64,
    min_step: f64,
    pct: f64,
) -> (Vec<f64>, Vec<f64>) {
    let mut count = 0;
    let mut render = |d: f64| {
        count += 1;
        let prompt = format!("a photo of a (cat:{})", python_repr(1.0 + (0.0 - 1.0) * d));
        rgb(&generate(
            &prompt,
            42,
            42,
            d,
            7.0,
            &dir.join(format!("ref{count}.png")),
        ))
    };
    let mut frames = vec![render(0.0), render(1.0)];
    let mut dists = vec![0.0, 1.0];
    let mut seen = Vec::new();
    let mut done = 0;
    let mut check = true;
    while check {
        check = false;
        let start = done;
        for i in start..frames.len() - 1 {
            let d = ssim(&frames[i], &frames[i + 1]).unwrap();
            seen.push(d);
            if d < threshold && dists[i + 1] - dists[i] > min_step {
                check = true;
                let mid = (dists[i] + dists[i + 1]) / 2.0;
                let new = render(mid);
                let d2 = ssim(&frames[i], &new).unwrap();
                if d2 > d || d2 < threshold * pct / 100.0 {
                    frames.insert(i + 1, new);
                    dists.insert(i + 1, mid);
                } else {
                    done = i + 1;
                }
                break;
            }
            done = i;
        }
    }
    (dists, seen)
}

#[test]
fn ssim_gap_filling_inserts_frames_where_the_original_loop_does() {
    let dir = temp("ssim");
    let args = [
        "--shift-steps",
        "1",
        "--seed",
        "42",
        "--cfg",
        "7",
        "--ssim-threshold",
        "0.995",
        "--ssim-min-step",
        "0.2",
        "--ssim-min-pct",
        "75",
    ];
    ok(&render("a photo of a (cat:1~0)", &args, &dir.join("out")));
    let records = manifest(&dir.join("out"));
    let got: Vec<f64> = records
        .iter()
        .map(|r| r["distance"].as_f64().unwrap())
        .collect();
    let (expected, seen) = reference_gap_filling(&dir, 0.995, 0.2, 75.0);
    println!("distances {got:?}, SSIM values seen by the reference loop {seen:?}");
    assert!(
        expected.len() > 2,
        "the threshold makes the loop insert frames: {seen:?}"
    );
    assert_eq!(got, expected, "SSIM values seen: {seen:?}");
    let pngs = frames(&dir.join("out"));
    for (png, d) in pngs.iter().zip(&got) {
        assert_eq!(
            params(png).get("Variation seed strength").is_some(),
            *d > 0.0
        );
    }
    assert!(dir.join("out/ssim_scatter.svg").exists());
}

#[test]
fn gif_and_zip_hold_every_frame() {
    let dir = temp("export");
    let args = [
        "--shift-steps",
        "2",
        "--seed",
        "3",
        "--lead",
        "2",
        "--fps",
        "10",
        "--mirror",
    ];
    let gif_path = dir.join("a.gif");
    ok(&render("(cat:1~0)", &args, &gif_path));
    let bytes = std::fs::read(&gif_path).unwrap();
    assert_eq!(&bytes[..6], b"GIF89a");
    let mut reader = gif::DecodeOptions::new()
        .read_info(bytes.as_slice())
        .unwrap();
    let mut delays = Vec::new();
    while let Some(frame) = reader.read_next_frame().unwrap() {
        delays.push(frame.delay);
    }
    assert_eq!(
        delays.len(),
        3 * 2 + 2 * 2,
        "mirrored frames plus lead in and out"
    );
    assert!(delays.iter().all(|&d| d == 10), "10 fps: {delays:?}");

    let zip_path = dir.join("a.zip");
    ok(&render("(cat:1~0)", &args, &zip_path));
    let zip = std::fs::read(&zip_path).unwrap();
    let end = zip.len() - 22;
    assert_eq!(&zip[end..end + 4], b"PK\x05\x06");
    let entries = u16::from_le_bytes([zip[end + 10], zip[end + 11]]);
    assert_eq!(
        entries,
        6 + 2,
        "6 PNG frames, frames.json and the info file"
    );
    for name in ["00005.png", "frames.json", "shift-attention-info.txt"] {
        assert!(
            zip.windows(name.len()).any(|w| w == name.as_bytes()),
            "{name}"
        );
    }
}

#[test]
fn taesd_decodes_the_frames_and_says_so() {
    let dir = temp("taesd");
    let fixture = |name: &str| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures")
            .join(name);
        path.to_str().unwrap().to_owned()
    };
    let extra = |taesd: &str| {
        vec!["--shift-steps", "1", "--taesd", taesd]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let fitting = extra(&fixture("taesd-tiny-x2"));
    let fitting: Vec<&str> = fitting.iter().map(String::as_str).collect();
    ok(&render("(cat:1~0)", &fitting, &dir.join("fast")));
    ok(&render(
        "(cat:1~0)",
        &["--shift-steps", "1"],
        &dir.join("vae"),
    ));
    let (fast, vae) = (frames(&dir.join("fast")), frames(&dir.join("vae")));
    assert_eq!((fast.len(), vae.len()), (2, 2));
    for (f, v) in fast.iter().zip(&vae) {
        assert_eq!(params(f).get("VAE Decoder"), Some("TAESD"));
        assert_eq!(params(v).get("VAE Decoder"), None);
        let (f, v) = (rgb(f), rgb(v));
        assert_eq!((f.width, f.height), (64, 64));
        assert_ne!(f.data, v.data, "TAESD's frames are its own");
    }
    // The real TAESD's shape scales 8×, the tiny model's VAE 2×: refused, naming both.
    let wrong = extra(&fixture("taesd-tiny"));
    let wrong: Vec<&str> = wrong.iter().map(String::as_str).collect();
    let out = render("(cat:1~0)", &wrong, &dir.join("x"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--taesd") && err.contains("scales 2×"),
        "{err}"
    );
    assert!(!dir.join("x").exists(), "nothing is written");
}

#[test]
fn bad_options_exit_2_naming_the_option() {
    let dir = temp("bad");
    let cases: [(&[&str], &str); 5] = [
        (&["--shift-steps", "0"], "--shift-steps"),
        (&["--shift-steps", "x"], "--shift-steps"),
        (
            &["--shift-steps", "2", "--ssim-threshold", "2"],
            "--ssim-threshold",
        ),
        (&["--shift-steps", "2", "--size", "65x64"], "--size"),
        (&["--shift-steps", "2", "--upscale", "0"], "--upscale"),
    ];
    for (args, option) in cases {
        let out = render("(cat:1~0)", args, &dir.join("x"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(option), "{args:?}: {err}");
    }
    let out = render("(cat:1~~0)", &["--shift-steps", "2"], &dir.join("x"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("--prompt") && err.contains("not a number"),
        "{err}"
    );
    assert!(!dir.join("x").exists(), "nothing is written");
}

#[test]
fn ssim_command_prints_torchmetrics_ssim() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/ssim");
    let a = data.join("gradient-vs-shifted-a.png");
    let b = data.join("gradient-vs-shifted-b.png");
    let out = keyshift(&["ssim", a.to_str().unwrap(), b.to_str().unwrap()]);
    ok(&out);
    let value: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!((value - 0.920_694_17).abs() < 1e-4, "{value}");
    let out = keyshift(&["ssim", a.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_stopped_render_resumes_with_identical_frames() {
    let dir = temp("resume");
    let prompt = "a photo of a (cat:1~0)";
    let args = [
        "--shift-steps",
        "2",
        "--seed",
        "9",
        "--ssim-threshold",
        "0.9999",
        "--ssim-min-step",
        "0.2",
    ];
    ok(&render(prompt, &args, &dir.join("whole")));
    let with = |extra: &[&'static str]| {
        let mut all = args.to_vec();
        all.extend(extra);
        all
    };
    let out = render(prompt, &with(&["--stop-after", "2"]), &dir.join("part"));
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));
    assert!(
        !dir.join("part/00000.png").exists(),
        "no output before the end"
    );
    let kept = std::fs::read_dir(dir.join("part/.in-progress"))
        .unwrap()
        .count();
    assert_eq!(kept, 2, "finished frames are kept the moment they exist");
    let out = render(prompt, &with(&["--resume"]), &dir.join("part"));
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming: 2 frames"));
    let (whole, part) = (frames(&dir.join("whole")), frames(&dir.join("part")));
    assert!(whole.len() > 3, "gap filling ran: {}", whole.len());
    assert!(whole == part, "identical frames, gap filling included");
    assert_eq!(manifest(&dir.join("whole")), manifest(&dir.join("part")));
    assert!(!dir.join("part/.in-progress").exists());

    // Frames made with other settings are not silently mixed in.
    ok(&render(
        prompt,
        &with(&["--stop-after", "1"]),
        &dir.join("mixed"),
    ));
    let mut changed = with(&["--resume"]);
    changed.extend(["--seed", "10"]);
    let out = render(prompt, &changed, &dir.join("mixed"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("other settings"), "{err}");
}

#[test]
fn a_share_link_carries_the_whole_animation() {
    use keyshift_core::share::{Animation, AnimationMode, Project, Seed, ShiftSettings};
    let mut project = Project {
        prompt: "a (cat:1~0)".into(),
        negative_prompt: "blurry".into(),
        animation: Animation {
            mode: AnimationMode::ShiftAttention,
            shift: ShiftSettings {
                shift_steps: 2,
                mirror: true,
                ..ShiftSettings::default()
            },
            ..Animation::default()
        },
        ..Project::default()
    };
    project.settings.seed = Seed::Fixed(77);
    project.settings.cfg_scale = 5.5;
    let link = format!(
        "https://example.org/#{}",
        keyshift_core::share::encode(&project).unwrap()
    );
    let dir = temp("project");
    let model = tiny();
    let out = keyshift(&[
        "render",
        "shift",
        "--project",
        &link,
        "--model",
        model.to_str().unwrap(),
        "--size",
        "64x64",
        "--steps",
        "2",
        "--out",
        dir.join("out").to_str().unwrap(),
    ]);
    ok(&out);
    let pngs = frames(&dir.join("out"));
    assert_eq!(pngs.len(), 6, "3 frames, mirrored");
    let p = params(&pngs[1]);
    assert_eq!(p.prompt, "a (cat:0.5)");
    assert_eq!(p.negative, "blurry");
    assert_eq!(
        (p.get("Seed"), p.get("CFG scale"), p.get("Steps")),
        (Some("77"), Some("5.5"), Some("2"))
    );
    assert_eq!(p.get("Sampler"), Some("Euler a"), "the project's sampler");
}
