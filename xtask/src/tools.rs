//! Installs what the build and the tests need, when it is missing. Everything comes from the
//! package registries: rustup's target, crates (wasm-bindgen-cli), Debian packages (Chromium,
//! chromedriver) and npm (playwright-core, binaryen). Idempotent and quick when all is there.

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::{Ctx, run};

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver, used by wasm-bindgen-test-runner.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Must equal the `wasm-bindgen` crate version in Cargo.lock.
pub const WASM_BINDGEN_VERSION: &str = "0.2.130";

/// Everything: build tools and test tools.
pub fn setup(ctx: &Ctx) -> Result<(), String> {
    setup_build(ctx)?;
    ensure_chromium()?;
    ensure_vulkan()
}

/// Mesa's lavapipe: a Vulkan driver on the CPU, so the engine's wgpu path is tested on machines
/// without a GPU.
pub const LAVAPIPE_ICD: &str = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json";

fn ensure_vulkan() -> Result<(), String> {
    if Path::new(LAVAPIPE_ICD).exists() || !cfg!(target_arch = "x86_64") {
        return Ok(());
    }
    apt_install(
        &["mesa-vulkan-drivers", "libvulkan1"],
        "a Vulkan driver is needed for the engine's wgpu tests (Mesa's lavapipe runs on the CPU)",
    )
}

/// What `build` needs.
pub fn setup_build(ctx: &Ctx) -> Result<(), String> {
    ensure_wasm_target()?;
    ensure_wasm_bindgen(ctx)?;
    ensure_node()?;
    ensure_npm_tools(ctx)
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_some_and(|u| u.trim() == "0")
}

/// Installs Debian packages as root, or says what to install.
fn apt_install(packages: &[&str], why: &str) -> Result<(), String> {
    if !is_root() {
        return Err(format!(
            "{why}: run `sudo apt-get install {}` and try again",
            packages.join(" ")
        ));
    }
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq"])
        .args(packages))
}

fn ensure_node() -> Result<(), String> {
    let has = |tool: &str| output(Command::new(tool).arg("--version")).is_some();
    if has("node") && has("npm") {
        return Ok(());
    }
    apt_install(
        &["nodejs", "npm"],
        "Node.js and npm are needed (wasm-opt, Playwright)",
    )
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ensure_wasm_target() -> Result<(), String> {
    let installed =
        output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if installed
        .lines()
        .any(|l| l.trim() == "wasm32-unknown-unknown")
    {
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))
}

/// The wasm-bindgen version Cargo.lock resolved.
fn locked_wasm_bindgen(ctx: &Ctx) -> Result<String, String> {
    let lock = std::fs::read_to_string(ctx.root.join("Cargo.lock"))
        .map_err(|e| format!("reading Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\"" {
            let version = lines.next().unwrap_or_default();
            return Ok(version
                .trim_start_matches("version = \"")
                .trim_end_matches('"')
                .to_owned());
        }
    }
    Err("Cargo.lock has no wasm-bindgen".to_owned())
}

fn ensure_wasm_bindgen(ctx: &Ctx) -> Result<(), String> {
    let locked = locked_wasm_bindgen(ctx)?;
    if locked != WASM_BINDGEN_VERSION {
        return Err(format!(
            "Cargo.lock has wasm-bindgen {locked} but xtask pins the CLI at \
             {WASM_BINDGEN_VERSION}; change both together"
        ));
    }
    let have = output(Command::new("wasm-bindgen").arg("--version")).unwrap_or_default();
    if have.trim() == format!("wasm-bindgen {WASM_BINDGEN_VERSION}") {
        return Ok(());
    }
    // No --locked: its lockfile names a crate version the registry no longer serves.
    // No default features: they are TLS (rustls and ring) for the test runner to download a
    // WebDriver, and ours is given (`CHROMEDRIVER`) and spoken to over local HTTP.
    run(Command::new("cargo").args([
        "install",
        "wasm-bindgen-cli",
        "--version",
        WASM_BINDGEN_VERSION,
        "--no-default-features",
    ]))
}

fn ensure_chromium() -> Result<(), String> {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return Ok(());
    }
    apt_install(
        &["chromium", "chromium-driver"],
        "Chromium and chromedriver are needed for the browser tests",
    )
}

/// `npm ci` in tests/e2e when its lockfile changed since the last install.
fn ensure_npm_tools(ctx: &Ctx) -> Result<(), String> {
    npm_ci(&ctx.e2e())
}

/// `npm ci` in `dir` when its lockfile changed since the last install there.
pub fn npm_ci(dir: &Path) -> Result<(), String> {
    let lock = std::fs::read(dir.join("package-lock.json"))
        .map_err(|e| format!("reading {}/package-lock.json: {e}", dir.display()))?;
    let want = hex(&Sha256::digest(&lock));
    let stamp = dir.join("node_modules").join(".keyshift-stamp");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        return Ok(());
    }
    run(Command::new("npm").current_dir(dir).args([
        "ci",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
    ]))?;
    std::fs::write(&stamp, want).map_err(|e| format!("writing {}: {e}", stamp.display()))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
