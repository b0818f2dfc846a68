//! The release build of the static site into `dist/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::tools::hex;
use crate::{Ctx, run};

/// The packages and profile of every wasm32 cargo call. Both packages are named in every call and
/// every call builds the worker's browser test ([`WASM_TEST`]), so that the build and `cargo test`
/// resolve the same features (the app's `web-sys` features, and dev-dependencies such as
/// wasm-bindgen-test that change `syn`'s, reach the whole burn stack): one wasm32 compilation
/// serves both. The two crates' unit tests are not built for wasm32: they run natively (in wasm
/// they were two release builds of the crates, 2 minutes, for no test).
pub const WASM_ARGS: [&str; 8] = [
    "--locked",
    "--release",
    "--target",
    "wasm32-unknown-unknown",
    "-p",
    "keyshift",
    "-p",
    "keyshift-worker",
];

/// The wasm32 test target: the worker's tests in headless Chromium.
pub const WASM_TEST: [&str; 2] = ["--test", "browser"];

/// One wasm-bindgen output: the crate's wasm file, the name its files get, wasm-opt's level.
struct Module {
    wasm: &'static str,
    name: &'static str,
    opt_level: &'static str,
}

const MODULES: [Module; 2] = [
    Module {
        wasm: "keyshift.wasm",
        name: "app",
        opt_level: "-Oz",
    },
    Module {
        wasm: "keyshift_worker.wasm",
        name: "compute",
        opt_level: "-O2",
    },
];

/// Whether the wasm modules go through wasm-opt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmOpt {
    /// As shipped: `cargo xtask build | serve | bench`.
    Run,
    /// `cargo xtask test`: wasm-opt (binaryen compiled to wasm, on one core) took 9 of a clean
    /// CI's minutes; the tests run rustc's release output, which wasm-opt only shrinks.
    /// `KEYSHIFT_WASM_OPT=1` runs it there too.
    Skip,
}

/// Builds the site into `dist/`.
pub fn build(ctx: &Ctx, wasm_opt: WasmOpt) -> Result<(), String> {
    run(Command::new("cargo")
        .current_dir(&ctx.root)
        .args(["build", "--lib"])
        .args(WASM_TEST)
        .args(WASM_ARGS))?;
    let release = ctx
        .target_dir
        .join("wasm32-unknown-unknown")
        .join("release");
    let stage = ctx.target_dir.join("keyshift-site");
    let dist = ctx.dist();
    reset_dir(&stage)?;
    reset_dir(&dist)?;
    // name in templates → file name in dist
    let mut names = BTreeMap::new();
    for m in &MODULES {
        bindgen(&release.join(m.wasm), &stage, m.name)?;
        let wasm = stage.join(format!("{}_bg.wasm", m.name));
        if wasm_opt == WasmOpt::Run {
            optimise(ctx, &wasm, m.opt_level)?;
        } else {
            println!(
                "xtask: {} left as rustc wrote it (no wasm-opt in tests)",
                m.wasm
            );
        }
        names.insert(
            format!("{}_js", m.name),
            place(&stage.join(format!("{}.js", m.name)), &dist)?,
        );
        names.insert(format!("{}_wasm", m.name), place(&wasm, &dist)?);
    }
    copy_dir(&stage.join("snippets"), &dist.join("snippets"))?;
    names.insert(
        "style".into(),
        place(&ctx.root.join("style").join("main.css"), &dist)?,
    );
    names.insert(
        "worker".into(),
        place_template(ctx, "worker.js", &names, &dist)?,
    );
    names.insert(
        "boot".into(),
        place_template(ctx, "boot.js", &names, &dist)?,
    );
    copy_dir(&ctx.root.join("public"), &dist)?;
    let build_id = hex(&Sha256::digest(format!("{names:?}").as_bytes()))[..12].to_owned();
    names.insert("build".into(), build_id.clone());
    let index = fill(&read(&ctx.root.join("index.html"))?, &names)?;
    write(&dist.join("index.html"), index.as_bytes())?;
    write_service_worker(ctx, &dist, &names)?;
    write(&dist.join("_headers"), static_host_headers().as_bytes())?;
    write_build_info(&dist, &build_id)?;
    println!("xtask: built {} (build {build_id})", dist.display());
    Ok(())
}

fn bindgen(wasm: &Path, out: &Path, name: &str) -> Result<(), String> {
    run(Command::new("wasm-bindgen")
        .arg("--target")
        .arg("web")
        .arg("--no-typescript")
        .arg("--out-name")
        .arg(name)
        .arg("--out-dir")
        .arg(out)
        .arg(wasm))
}

/// wasm-opt (binaryen 132 from npm; Debian's binaryen 108 breaks these modules). Results are
/// cached by input hash in the target directory, so unchanged modules cost nothing.
///
/// `KEYSHIFT_SKIP_WASM_OPT=1` skips it, for quick local iterations only (bigger, slower modules).
fn optimise(ctx: &Ctx, wasm: &Path, level: &str) -> Result<(), String> {
    if std::env::var_os("KEYSHIFT_SKIP_WASM_OPT").is_some_and(|v| v == "1") {
        println!(
            "xtask: KEYSHIFT_SKIP_WASM_OPT=1: {} left unoptimised",
            wasm.display()
        );
        return Ok(());
    }
    let input = std::fs::read(wasm).map_err(|e| format!("reading {}: {e}", wasm.display()))?;
    let mut hasher = Sha256::new();
    hasher.update(&input);
    hasher.update(level.as_bytes());
    let key = hex(&hasher.finalize());
    let cache_dir = ctx.target_dir.join("keyshift-wasm-opt");
    let cached = cache_dir.join(format!("{key}.wasm"));
    if !cached.exists() {
        std::fs::create_dir_all(&cache_dir).map_err(|e| format!("creating cache: {e}"))?;
        let tool = ctx.e2e().join("node_modules").join(".bin").join("wasm-opt");
        let partial = cache_dir.join(format!("{key}.partial"));
        run(Command::new(tool)
            .arg(level)
            .arg("--enable-bulk-memory")
            .arg("--enable-nontrapping-float-to-int")
            .arg("--enable-sign-ext")
            .arg("--enable-mutable-globals")
            .arg("--enable-reference-types")
            .arg("--enable-multivalue")
            .arg(wasm)
            .arg("-o")
            .arg(&partial))?;
        std::fs::rename(&partial, &cached).map_err(|e| format!("caching wasm-opt output: {e}"))?;
    }
    std::fs::copy(&cached, wasm).map_err(|e| format!("copying optimised wasm: {e}"))?;
    Ok(())
}

/// Copies `file` into `dist` under a content-hashed name (`stem-<hash>.ext`); returns that name.
fn place(file: &Path, dist: &Path) -> Result<String, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let name = hashed_name(file, &bytes)?;
    write(&dist.join(&name), &bytes)?;
    Ok(name)
}

fn hashed_name(file: &Path, bytes: &[u8]) -> Result<String, String> {
    let file_name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("bad file name {}", file.display()))?;
    let (stem, ext) = file_name.split_once('.').unwrap_or((file_name, ""));
    let hash = &hex(&Sha256::digest(bytes))[..12];
    Ok(format!("{stem}-{hash}.{ext}"))
}

/// Fills a template from `js/` and places it under a hashed name.
fn place_template(
    ctx: &Ctx,
    template: &str,
    names: &BTreeMap<String, String>,
    dist: &Path,
) -> Result<String, String> {
    let text = fill(&read(&ctx.root.join("js").join(template))?, names)?;
    let name = hashed_name(Path::new(template), text.as_bytes())?;
    write(&dist.join(&name), text.as_bytes())?;
    Ok(name)
}

/// Replaces every `{{key}}` in `text`; an unknown key is an error.
pub fn fill(text: &str, names: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "unclosed {{ in a template".to_owned())?;
        let key = after[..end].trim();
        let value = names
            .get(key)
            .ok_or_else(|| format!("template names unknown key {{{{{key}}}}}"))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `sw.js` (unhashed: its URL must stay stable) precaching every file of the build.
fn write_service_worker(
    ctx: &Ctx,
    dist: &Path,
    names: &BTreeMap<String, String>,
) -> Result<(), String> {
    let mut files = Vec::new();
    list_files(dist, dist, &mut files)?;
    files.retain(|f| f != "sw.js" && f != "build-info.json");
    files.sort();
    let urls: Vec<String> = files.iter().map(|f| format!("/{f}")).collect();
    let precache = serde_json::to_string(&urls).map_err(|e| e.to_string())?;
    let mut values = names.clone();
    values.insert("precache".into(), precache);
    let text = fill(&read(&ctx.root.join("js").join("sw.js"))?, &values)?;
    write(&dist.join("sw.js"), text.as_bytes())
}

/// The headers file of static hosts that read one (Netlify, Cloudflare Pages): the app's
/// Content-Security-Policy for every path. The page also carries the policy in a meta tag, but a
/// worker takes its policy only from its script's response headers (`cargo xtask serve` sends
/// them too). Written after the service worker, which does not precache it.
fn static_host_headers() -> String {
    format!(
        "# Sent by static hosts that read this file. Workers take their Content-Security-Policy\n\
         # only from a response header; the page also has it in a meta tag.\n\
         /*\n  Content-Security-Policy: {}\n  X-Content-Type-Options: nosniff\n",
        crate::serve::CSP
    )
}

fn write_build_info(dist: &Path, build_id: &str) -> Result<(), String> {
    let mut files = Vec::new();
    list_files(dist, dist, &mut files)?;
    files.sort();
    let mut sizes = serde_json::Map::new();
    for f in files {
        let len = std::fs::metadata(dist.join(&f))
            .map(|m| m.len())
            .unwrap_or(0);
        sizes.insert(f, len.into());
    }
    let info = serde_json::json!({ "build": build_id, "bytes": sizes });
    let text = serde_json::to_string_pretty(&info).map_err(|e| e.to_string())?;
    write(&dist.join("build-info.json"), text.as_bytes())
}

fn list_files(base: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("listing {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            list_files(base, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(base) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// Replaces `to` with a copy of the folder `from`.
pub fn fresh_copy(from: &Path, to: &Path) -> Result<(), String> {
    reset_dir(&to.to_path_buf())?;
    copy_dir(from, to)
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    if !from.is_dir() {
        return Ok(());
    }
    let mut files = Vec::new();
    list_files(from, from, &mut files)?;
    for f in files {
        let bytes = std::fs::read(from.join(&f)).map_err(|e| format!("reading {f}: {e}"))?;
        write(&to.join(&f), &bytes)?;
    }
    Ok(())
}

fn reset_dir(dir: &PathBuf) -> Result<(), String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("clearing {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_s_meta_policy_is_the_served_one_and_the_static_host_header() {
        let index =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../index.html"))
                .unwrap_or_default();
        let meta = index
            .split("http-equiv=\"Content-Security-Policy\" content=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default();
        assert_eq!(meta, crate::serve::CSP);
        let headers = static_host_headers();
        assert!(
            headers.contains(&format!("/*\n  Content-Security-Policy: {meta}\n")),
            "{headers}"
        );
        assert!(meta.contains("require-trusted-types-for 'script'"));
        assert!(!meta.contains("unsafe-inline") && !meta.contains("'unsafe-eval'"));
    }

    #[test]
    fn templates_fill_known_keys_and_refuse_unknown_ones() {
        let names = BTreeMap::from([("a".to_owned(), "x-1.js".to_owned())]);
        assert_eq!(
            fill("import './{{a}}'; {{ a }}", &names),
            Ok("import './x-1.js'; x-1.js".into())
        );
        assert!(fill("{{b}}", &names).is_err());
        assert!(fill("{{a", &names).is_err());
    }

    #[test]
    fn hashed_names_keep_the_stem_and_extension() {
        let name = hashed_name(Path::new("dir/app_bg.wasm"), b"abc").expect("name");
        assert_eq!(name, "app_bg-ba7816bf8f01.wasm");
    }
}
