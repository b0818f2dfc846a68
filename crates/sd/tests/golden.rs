//! The engine against diffusers' reference tensors for the tiny SD 1.x fixture, on the CPU backend,
//! from both the diffusers folder and the A1111 single file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::disallowed_methods,
    reason = "native tests read fixtures and fail by panicking"
)]

use std::path::PathBuf;

use keyshift_sd::Device;
use keyshift_sd::golden;
use keyshift_sd::model::{DirFolder, Folder};

fn fixture() -> DirFolder {
    DirFolder(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-sd1"))
}

#[test]
fn tiny_sd1_matches_diffusers_on_the_cpu_backend() {
    let report = golden::run(&fixture(), &Device::flex()).expect("fixture readable");
    println!("{}", report.render());
    for c in &report.checks {
        println!("{}: {}", c.name, c.detail);
    }
    assert!(report.is_success(), "{}", report.render());
    // Both layouts ran every module check.
    for label in ["diffusers", "single-file"] {
        let n = report
            .checks
            .iter()
            .filter(|c| c.name.starts_with(label))
            .count();
        assert!(n >= 14, "{label}: only {n} checks");
    }
}

#[test]
fn both_checkpoint_layouts_give_identical_outputs() {
    use keyshift_sd::golden::{Golden, load_layout};
    use keyshift_sd::hooks::NoHook;
    let folder = fixture();
    let golden = Golden::open(&folder).unwrap();
    let device = Device::flex();
    let a = load_layout(&folder, &golden, "diffusers", "diffusers", &device).unwrap();
    let b = load_layout(
        &folder,
        &golden,
        "single-file",
        "tiny_sd1_fp16.safetensors",
        &device,
    )
    .unwrap();
    assert_eq!(a.info.unet, b.info.unet);
    assert_eq!(a.info.vae, b.info.vae);
    assert_eq!(a.info.clip, b.info.clip);
    let ids = vec![vec![49406, 320, 1125, 49407, 49407, 49407]];
    let ta: Vec<f32> = a.clip.forward(&ids, 1).into_data().try_to_vec().unwrap();
    let tb: Vec<f32> = b.clip.forward(&ids, 1).into_data().try_to_vec().unwrap();
    assert_eq!(ta, tb);
    let x = keyshift_sd::pipeline::latent(
        (0..2 * 4 * 8 * 8)
            .map(|i| (i as f32 * 0.37).sin())
            .collect(),
        [2, 4, 8, 8],
        &device,
    );
    let ctx = burn_tensor(&device);
    let ua: Vec<f32> = a
        .unet
        .forward(x.clone(), 321.0, &ctx, &mut NoHook)
        .into_data()
        .try_to_vec()
        .unwrap();
    let ub: Vec<f32> = b
        .unet
        .forward(x.clone(), 321.0, &ctx, &mut NoHook)
        .into_data()
        .try_to_vec()
        .unwrap();
    assert_eq!(ua, ub);
    let da: Vec<f32> = a.vae.decode(x.clone()).into_data().try_to_vec().unwrap();
    let db: Vec<f32> = b.vae.decode(x).into_data().try_to_vec().unwrap();
    assert_eq!(da, db);
}

fn burn_tensor(device: &Device) -> keyshift_sd::pipeline::Context {
    keyshift_sd::pipeline::context(
        (0..2 * 5 * 32).map(|i| (i as f32 * 0.11).cos()).collect(),
        [2, 5, 32],
        device,
    )
}

/// The GPU path (burn on wgpu: the WGSL kernels the browser runs; Mesa's lavapipe in CI) gives
/// the same numbers. `cargo xtask setup` installs lavapipe where no GPU driver is present.
#[test]
#[cfg(feature = "wgpu")]
fn tiny_sd1_matches_diffusers_on_wgpu() {
    let instance = keyshift_sd::wgpu::Instance::default();
    if let Err(e) = keyshift_sd::wgpu_adapter(&instance) {
        panic!("{e}");
    }
    let report = golden::run(&fixture(), &keyshift_sd::wgpu_device()).expect("fixture readable");
    println!("{}", report.render());
    assert!(report.is_success(), "{}", report.render());
}

/// An SD 2.x-style model (OpenCLIP text encoder with GELU and an extra unused layer in the single
/// file, linear projections, per-level head counts, v-prediction), made by
/// `scripts/reference/make_tiny_sd2.py`: loads and passes without any SD 2-specific switch.
#[test]
fn tiny_sd2_v_matches_diffusers_on_the_cpu_backend() {
    let dir =
        DirFolder(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-sd2-v"));
    let report = golden::run(&dir, &Device::flex()).expect("fixture readable");
    for c in &report.checks {
        println!("{}: {}", c.name, c.detail);
    }
    assert!(report.is_success(), "{}", report.render());
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.name == "single-file/pipe.euler_a.image")
    );
}

/// The tiny SD 1.x fixture with another `golden.json` and extra reference tensors.
struct Edited {
    json: String,
    tensors: Vec<u8>,
}

impl keyshift_sd::model::Folder for Edited {
    fn read_text(&self, path: &str) -> Option<String> {
        match path {
            "golden.json" => Some(self.json.clone()),
            _ => fixture().read_text(path),
        }
    }
    fn open(&self, path: &str) -> Option<Box<dyn keyshift_sd::weights::ByteSource>> {
        match path {
            "golden.safetensors" => Some(Box::new(keyshift_sd::weights::MemorySource::new(
                self.tensors.clone(),
            ))),
            _ => fixture().open(path),
        }
    }
}

/// `golden.safetensors` with `extra` f32 tensors added.
fn tensors_with(extra: &[(&str, Vec<usize>)]) -> Vec<u8> {
    use keyshift_sd::weights::{Dtype, SafetensorsFile, safetensors::encode};
    let mut file =
        SafetensorsFile::open("golden", fixture().open("golden.safetensors").unwrap()).unwrap();
    let names: Vec<String> = file.entries().keys().cloned().collect();
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = names
        .iter()
        .map(|n| {
            let (entry, bytes) = file.read_bytes(n).unwrap();
            (n.clone(), entry.dtype, entry.shape.clone(), bytes)
        })
        .collect();
    for (name, shape) in extra {
        let n: usize = shape.iter().product();
        let bytes = (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect();
        owned.push(((*name).to_owned(), Dtype::F32, shape.clone(), bytes));
    }
    let refs: Vec<(&str, Dtype, &[usize], &[u8])> = owned
        .iter()
        .map(|(n, d, s, b)| (n.as_str(), *d, s.as_slice(), b.as_slice()))
        .collect();
    encode(&refs)
}

/// What the runner does not recognise fails; what it knows but cannot check (a sampler Keyshift
/// lacks, an optional case) is counted as skipped; an engine panic fails that case only; the
/// closing line counts the skipped entries.
#[test]
fn sd_golden_fails_the_unrecognised_skips_the_optional_and_survives_a_panic() {
    let mut json: serde_json::Value =
        serde_json::from_str(&fixture().read_text("golden.json").unwrap()).unwrap();
    // One layout, no pipeline: this test is about the runner, not the engine's numbers.
    json["files"].as_object_mut().unwrap().remove("single_file");
    json.as_object_mut().unwrap().remove("pipeline");
    json["schedulers"]["steps"]["4"]["heun_linspace"] = serde_json::json!({"timesteps": [1.0]});
    json["schedulers"]["steps"]["4"]["euler_linspace"]["sigmas_v2"] = serde_json::json!([1.0]);
    let cases = json["unet"]["cases"].as_object_mut().unwrap();
    cases.insert(
        "unet.out_optional".into(),
        serde_json::json!({"sample": "unet.sample", "timestep": 10, "context": "unet.context", "optional": true}),
    );
    cases.insert(
        "unet.out_missing".into(),
        serde_json::json!({"sample": "unet.sample", "timestep": 10, "context": "unet.context"}),
    );
    // A sample with 3 channels where the UNet takes 4: the engine panics on this case alone.
    cases.insert(
        "unet.out_bad_channels".into(),
        serde_json::json!({"sample": "bad.sample", "timestep": 10, "context": "unet.context"}),
    );
    let folder = Edited {
        json: json.to_string(),
        tensors: tensors_with(&[
            ("bad.sample", vec![2, 3, 8, 8]),
            ("unet.out_bad_channels", vec![2, 4, 8, 8]),
            ("mystery.tensor", vec![2]),
        ]),
    };
    let report = golden::run(&folder, &Device::flex()).expect("fixture readable");
    let text = report.render();
    println!("{text}");
    assert!(!report.is_success());
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .collect();
    // With the pipeline section gone, its reference tensors are unrecognised too.
    assert!(failed.contains(&"pipe.init_noise"), "{text}");
    let n_failed = failed.len();
    let failed: Vec<&str> = failed
        .into_iter()
        .filter(|n| !n.starts_with("pipe."))
        .collect();
    assert_eq!(
        failed,
        [
            "schedule/4/euler_linspace.sigmas_v2",
            "schedule/4/heun_linspace",
            "diffusers/unet.out_bad_channels/panic",
            "diffusers/unet.out_missing",
            "mystery.tensor",
        ],
        "{text}"
    );
    // The other cases still ran and passed.
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.name == "diffusers/unet.out_t500" && c.passed)
    );
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.name == "diffusers/vae.decode_out" && c.passed)
    );
    let skipped: Vec<&str> = report.skipped.iter().map(|(n, _)| n.as_str()).collect();
    assert!(skipped.contains(&"diffusers/unet.out_optional"), "{text}");
    assert!(skipped.contains(&"schedule/4/pndm_plms_leading"), "{text}");
    assert!(
        text.lines().last().unwrap().ends_with(&format!(
            "{n_failed} failed, {} skipped",
            report.skipped.len()
        )),
        "{text}"
    );
}
