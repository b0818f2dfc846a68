//! `cargo xtask build | serve | test | setup | bench`: builds the static site, serves it, and runs every
//! test layer, installing the missing tools first (from the package registries only).
//!
//! - `setup`: the wasm32 target, wasm-bindgen-cli (pinned), Chromium and chromedriver (Debian),
//!   playwright-core and binaryen (npm, `tests/e2e/package-lock.json`).
//! - `build`: release wasm for the app and the compute worker → wasm-bindgen → wasm-opt → `dist/`
//!   with content-hashed names, a service worker precaching them, and `build-info.json`.
//! - `serve [--port N]`: `build`, then serves `dist/` on 127.0.0.1 (default port 8080).
//! - `test`: native `cargo test`, wasm-bindgen tests in headless Chromium, then the end-to-end tests
//!   (Playwright) against the served build.
//! - `bench peers --out FILE.json [--runs N] [--web-runs N]`: Keyshift's UNet step against
//!   onnxruntime and torch on the same tiny model natively on the CPU, and ONNX Runtime Web's in
//!   headless Chromium (`bench.rs`).
#![allow(
    clippy::print_stdout,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

mod bench;
mod build;
mod e2e;
mod native;
mod serve;
mod tools;

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

/// Where things are.
pub struct Ctx {
    /// The workspace root.
    pub root: PathBuf,
    /// Cargo's target directory (honours `CARGO_TARGET_DIR`).
    pub target_dir: PathBuf,
}

impl Ctx {
    fn new() -> Result<Self, String> {
        // At run time, not compile time: with a shared CARGO_TARGET_DIR, an xtask binary built in
        // one clone may be run from another, and must work on the clone that runs it.
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
        let root = manifest_dir
            .parent()
            .ok_or("xtask is not inside the workspace")?
            .to_path_buf();
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        Ok(Self { root, target_dir })
    }

    /// The site's output folder.
    pub fn dist(&self) -> PathBuf {
        self.root.join("dist")
    }

    /// What `serve` serves: the site and the tiny test model.
    pub fn site(&self) -> serve::Site {
        self.site_at(self.dist())
    }

    /// The same, with the site built into `dist` (an e2e lane's copy).
    pub fn site_at(&self, dist: PathBuf) -> serve::Site {
        serve::Site::new(dist, self.root.join("fixtures"))
    }

    /// The e2e folder, which also holds the npm tools (playwright-core, binaryen).
    pub fn e2e(&self) -> PathBuf {
        self.root.join("tests").join("e2e")
    }
}

/// Runs a command in the workspace root, failing with its description.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    println!("xtask: $ {}", describe(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("could not start {}: {e}", describe(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status})", describe(cmd)))
    }
}

/// Runs a command, returning what it printed on stdout (stderr goes to the log as it comes).
pub fn capture(cmd: &mut Command) -> Result<String, String> {
    println!("xtask: $ {}", describe(cmd));
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not start {}: {e}", describe(cmd)))?;
    if !out.status.success() {
        return Err(format!("{} failed ({})", describe(cmd), out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = Ctx::new().and_then(|ctx| dispatch(&ctx, &args));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(ctx: &Ctx, args: &[String]) -> Result<(), String> {
    let flag_value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    match args.first().map(String::as_str) {
        Some("setup") => tools::setup(ctx),
        Some("build") => {
            tools::setup_build(ctx)?;
            build::build(ctx, build::WasmOpt::Run)
        }
        Some("serve") => {
            let port: u16 = flag_value("--port")
                .map_or(Ok(8080), |p| p.parse())
                .map_err(|e| format!("--port: {e}"))?;
            tools::setup_build(ctx)?;
            build::build(ctx, build::WasmOpt::Run)?;
            serve::serve_forever(&ctx.site(), port)
        }
        Some("test") => test(ctx),
        Some("bench") => bench::bench(ctx, &args[1..]),
        _ => Err(
            "usage: cargo xtask setup | build | serve [--port N] | test | bench peers --out FILE.json"
                .to_owned(),
        ),
    }
}

/// Every test layer, cheapest first. Each step's wall time is printed as it ends and again in a
/// summary, so a CI log shows where the time goes (compiling or running, and which layer).
fn test(ctx: &Ctx) -> Result<(), String> {
    let mut clock = Clock::default();
    clock.step("tool setup", || tools::setup(ctx))?;
    println!("xtask: layer 1/3: native tests");
    // Without the CLI's default `wgpu` feature: the native cubecl/wgpu stack was 41 % of a clean
    // native compile, and the browser layers test the same WGSL kernels on WebGPU.
    // `KEYSHIFT_NATIVE_WGPU=1` keeps it (the lavapipe tests run too), as `cargo test --workspace`.
    let native_wgpu = std::env::var_os("KEYSHIFT_NATIVE_WGPU").is_some_and(|v| v == "1");
    let native_test = || {
        let mut cmd = cargo_test(ctx);
        cmd.args(["--workspace", "--locked"]);
        if !native_wgpu {
            cmd.arg("--no-default-features");
        }
        cmd
    };
    clock.step("native: compile", || run(native_test().arg("--no-run")))?;
    clock.step("native: run", || native::run(ctx, native_test))?;
    println!("xtask: layer 2/3: wasm-bindgen tests in headless Chromium (WebGPU)");
    let wasm = || {
        let mut cmd = cargo_test(ctx);
        cmd.env("CHROMEDRIVER", tools::CHROMEDRIVER)
            .env("WASM_BINDGEN_TEST_TIMEOUT", "600")
            .args(build::WASM_ARGS)
            .args(build::WASM_TEST);
        cmd
    };
    clock.step("wasm: compile", || run(wasm().arg("--no-run")))?;
    clock.step("wasm: run in Chromium", || run(&mut wasm()))?;
    println!("xtask: layer 3/3: end-to-end tests against the served build");
    let wasm_opt = if std::env::var_os("KEYSHIFT_WASM_OPT").is_some_and(|v| v == "1") {
        build::WasmOpt::Run
    } else {
        build::WasmOpt::Skip
    };
    clock.step("site build", || build::build(ctx, wasm_opt))?;
    clock.step("end-to-end", || e2e::run(ctx))?;
    clock.summary();
    Ok(())
}

/// `cargo test` in the workspace root; `KEYSHIFT_TIMINGS=1` adds `--timings` (an HTML report of
/// every crate's compile time under the target directory's `cargo-timings/`).
fn cargo_test(ctx: &Ctx) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&ctx.root).arg("test");
    if std::env::var_os("KEYSHIFT_TIMINGS").is_some() {
        cmd.arg("--timings");
    }
    cmd
}

/// Wall time per step of `test`.
#[derive(Default)]
struct Clock {
    steps: Vec<(&'static str, u64)>,
}

impl Clock {
    fn step<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce() -> Result<T, String>,
    ) -> Result<T, String> {
        let start = std::time::Instant::now();
        let result = f();
        let secs = start.elapsed().as_secs();
        println!("xtask: step `{name}` took {secs} s");
        self.steps.push((name, secs));
        if result.is_err() {
            self.summary();
        }
        result
    }

    fn summary(&self) {
        println!("xtask: time per step:");
        for (name, secs) in &self.steps {
            println!("xtask:   {name:<24} {secs:>6} s");
        }
    }
}
