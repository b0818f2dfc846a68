//! Layer 1, the native tests, two test binaries at a time: `cargo test` runs its binaries one
//! after another, and most of them spend long stretches on one core (one slow test, or a GPU
//! test on lavapipe), so the other core idled for much of the twenty minutes the layer took.
//! Each binary still runs its own tests in parallel, in its package's folder, as `cargo test`
//! runs it; a binary's output is printed whole when it ends, and any failure fails the layer.
//! The slowest binaries start first: their times from the previous run are kept in the target
//! directory (a clean run starts from the ones known to be slow).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Instant;

use crate::Ctx;

/// One test binary: where it is, the folder it runs in, and its name for the log.
#[derive(Debug, Clone, PartialEq)]
struct Binary {
    exe: PathBuf,
    dir: PathBuf,
    name: String,
}

/// Binaries known to take minutes, slowest first (used when no earlier run's times are kept).
const KNOWN_SLOW: [&str; 8] = [
    "keyshift-sd/golden",
    "keyshift-cli/bench",
    "keyshift-sd/taps",
    "keyshift-render/temporal",
    "keyshift-render/session",
    "keyshift-cli/travel",
    "keyshift-cli/render",
    "keyshift-sd/quant",
];

/// How many binaries run at once.
const LANES: usize = 2;

/// Builds every test binary of the workspace, then runs them, two at a time; doc tests last.
pub fn run(ctx: &Ctx, test: impl Fn() -> Command) -> Result<(), String> {
    let listed =
        crate::capture(test().args(["--no-run", "--message-format=json-render-diagnostics"]))?;
    let mut binaries = binaries(&listed);
    let times_file = ctx.target_dir.join("xtask-native-test-times.json");
    let known = std::fs::read_to_string(&times_file).unwrap_or_default();
    order(&mut binaries, &previous_times(&known));
    let times = Mutex::new(BTreeMap::new());
    let failures = Mutex::new(Vec::new());
    let queue = Mutex::new(binaries.into_iter());
    std::thread::scope(|scope| {
        for _ in 0..LANES {
            scope.spawn(|| lane(&queue, &times, &failures));
        }
    });
    let times = times.into_inner().unwrap_or_default();
    let _ = std::fs::write(&times_file, serde_json::json!(times).to_string());
    let failures = failures.into_inner().unwrap_or_default();
    if !failures.is_empty() {
        return Err(format!("native tests failed: {}", failures.join("; ")));
    }
    crate::run(test().arg("--doc"))
}

/// One lane: takes the next binary until none is left, noting its time and any failure.
fn lane(
    queue: &Mutex<std::vec::IntoIter<Binary>>,
    times: &Mutex<BTreeMap<String, f64>>,
    failures: &Mutex<Vec<String>>,
) {
    while let Some(binary) = queue.lock().ok().and_then(|mut q| q.next()) {
        let start = Instant::now();
        let result = run_binary(&binary);
        if let Ok(mut t) = times.lock() {
            t.insert(binary.name.clone(), start.elapsed().as_secs_f64());
        }
        if let (Err(e), Ok(mut f)) = (result, failures.lock()) {
            f.push(e);
        }
    }
}

/// The test executables in `cargo test --no-run --message-format=json` output.
fn binaries(json_lines: &str) -> Vec<Binary> {
    json_lines
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["profile"]["test"] == true)
        .filter_map(|m| {
            let exe = PathBuf::from(m["executable"].as_str()?);
            let dir = Path::new(m["manifest_path"].as_str()?)
                .parent()?
                .to_path_buf();
            let package = m["package_id"]
                .as_str()
                .map(package_name)
                .unwrap_or_default();
            let target = m["target"]["name"].as_str().unwrap_or_default();
            let kind = m["target"]["kind"][0].as_str().unwrap_or_default();
            let name = match kind {
                "test" => format!("{package}/{target}"),
                _ => format!("{package}/{kind}:{target}"),
            };
            Some(Binary { exe, dir, name })
        })
        .collect()
}

/// A package's name from its id (`path+file:///…/crates/sd#keyshift-sd@0.1.0`, or
/// `path+file:///…/xtask#0.1.0` where the folder is the name).
fn package_name(id: &str) -> String {
    let (path, rest) = id.rsplit_once('#').unwrap_or((id, ""));
    match rest.split_once('@') {
        Some((name, _)) => name.to_owned(),
        None => path.rsplit('/').next().unwrap_or(path).to_owned(),
    }
}

/// Times by binary name from the previous run's file.
fn previous_times(json: &str) -> BTreeMap<String, f64> {
    serde_json::from_str(json).unwrap_or_default()
}

/// Slowest first: by the previous run's times, else the known slow ones in their order.
fn order(binaries: &mut [Binary], times: &BTreeMap<String, f64>) {
    let weight = |b: &Binary| match times.get(&b.name) {
        Some(t) => *t,
        None => KNOWN_SLOW
            .iter()
            .position(|k| *k == b.name)
            .map_or(0.0, |i| 1000.0 - i as f64),
    };
    binaries.sort_by(|a, b| weight(b).total_cmp(&weight(a)));
}

/// Runs one binary in its package's folder, printing its output when it ends.
fn run_binary(binary: &Binary) -> Result<(), String> {
    let start = Instant::now();
    let output = Command::new(&binary.exe)
        .current_dir(&binary.dir)
        .output()
        .map_err(|e| format!("{}: could not start: {e}", binary.name))?;
    report(binary, &output, start.elapsed().as_secs_f64());
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{} ({})", binary.name, output.status))
    }
}

fn report(binary: &Binary, output: &Output, secs: f64) {
    println!(
        "xtask: test binary {} ({}) took {secs:.1} s",
        binary.name,
        binary.exe.display()
    );
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_binaries_are_read_from_cargo_s_messages_and_ordered_slowest_first() {
        let lines = [
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/crates/sd#keyshift-sd@0.1.0","manifest_path":"/w/crates/sd/Cargo.toml","target":{"kind":["test"],"name":"golden"},"profile":{"test":true},"executable":"/t/debug/deps/golden-1"}"#,
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/crates/core#keyshift-core@0.1.0","manifest_path":"/w/crates/core/Cargo.toml","target":{"kind":["lib"],"name":"keyshift_core"},"profile":{"test":true},"executable":"/t/debug/deps/keyshift_core-2"}"#,
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/crates/core#keyshift-core@0.1.0","manifest_path":"/w/crates/core/Cargo.toml","target":{"kind":["lib"],"name":"keyshift_core"},"profile":{"test":false},"executable":null}"#,
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/xtask#0.1.0","manifest_path":"/w/xtask/Cargo.toml","target":{"kind":["bin"],"name":"xtask"},"profile":{"test":true},"executable":"/t/debug/deps/xtask-3"}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        let mut found = binaries(&lines);
        let names: Vec<&str> = found.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "keyshift-sd/golden",
                "keyshift-core/lib:keyshift_core",
                "xtask/bin:xtask"
            ]
        );
        assert_eq!(found[0].dir, PathBuf::from("/w/crates/sd"));
        order(&mut found, &BTreeMap::new());
        assert_eq!(found[0].name, "keyshift-sd/golden", "known slow first");
        let times = previous_times(r#"{"xtask/bin:xtask": 400.0, "keyshift-sd/golden": 300.0}"#);
        order(&mut found, &times);
        let names: Vec<&str> = found.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "xtask/bin:xtask",
                "keyshift-sd/golden",
                "keyshift-core/lib:keyshift_core"
            ]
        );
    }
}
