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
use keyshift_sd::model::DirFolder;

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
fn tiny_sd1_matches_diffusers_on_wgpu() {
    let instance = wgpu::Instance::default();
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()));
    assert!(
        adapter.is_ok(),
        "no wgpu adapter: install a Vulkan driver (Debian: mesa-vulkan-drivers; `cargo xtask setup` does)"
    );
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
