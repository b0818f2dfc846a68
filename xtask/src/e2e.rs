//! Layer 3, the end-to-end tests, in lanes: `KEYSHIFT_E2E_LANES` (default 2) Node processes run
//! `tests/e2e/run.mjs`, each on its own share of the tests (`KEYSHIFT_E2E_SHARD=k/n`), against its
//! own server (request counts, `/__tamper` and `/__drop` are a server's state) and its own copy
//! of the site (one test publishes a "new build" by rewriting `sw.js`). Every test already runs
//! in its own browser profile, so lanes share nothing else.
//!
//! Most of a test's time is spent waiting on one thread (a page load, SwiftShader compiling a
//! kernel, the CLI drawing the reference frames), so two lanes keep both cores busy. Shares are
//! balanced by the times of the previous run, kept in the target directory (a clean run starts
//! from `tests/e2e/times.json`, a run's times committed for it); each line a lane prints is
//! prefixed with its number.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::{Ctx, serve, tools};

/// How many lanes run when `KEYSHIFT_E2E_LANES` does not say.
const DEFAULT_LANES: usize = 2;

/// Runs every selected e2e test in lanes; fails if any lane fails.
pub fn run(ctx: &Ctx) -> Result<(), String> {
    let lanes = lanes(std::env::var("KEYSHIFT_E2E_LANES").ok().as_deref())?;
    let times = ctx.target_dir.join("xtask-e2e-times.json");
    if !times.exists() {
        // A clean target directory: the committed times, so that the first run is balanced too.
        let _ = std::fs::copy(ctx.e2e().join("times.json"), &times);
    }
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for k in 0..lanes {
            let (times, failures) = (&times, &failures);
            scope.spawn(move || {
                if let Err(e) = lane(ctx, k, lanes, times)
                    && let Ok(mut f) = failures.lock()
                {
                    f.push(format!("lane {k}: {e}"));
                }
            });
        }
    });
    merge_times(&times, lanes);
    let failures = failures.into_inner().unwrap_or_default();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("end-to-end tests failed: {}", failures.join("; ")))
    }
}

/// The number of lanes from `KEYSHIFT_E2E_LANES`.
fn lanes(value: Option<&str>) -> Result<usize, String> {
    match value {
        None | Some("") => Ok(DEFAULT_LANES),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=8).contains(&n) => Ok(n),
            _ => Err(format!("KEYSHIFT_E2E_LANES={v}: give a number from 1 to 8")),
        },
    }
}

/// One lane: its site copy, its server, its Node process.
fn lane(ctx: &Ctx, k: usize, lanes: usize, times: &Path) -> Result<(), String> {
    let dist = if lanes == 1 {
        ctx.dist()
    } else {
        let copy = ctx.target_dir.join(format!("keyshift-e2e-lane{k}"));
        crate::build::fresh_copy(&ctx.dist(), &copy)?;
        copy
    };
    let server = serve::spawn(&ctx.site_at(dist.clone()), 0)?;
    let mut cmd = Command::new("node");
    cmd.current_dir(ctx.e2e())
        .env(
            "KEYSHIFT_BASE_URL",
            format!("http://127.0.0.1:{}", server.port),
        )
        .env("KEYSHIFT_DIST", &dist)
        .env("KEYSHIFT_CHROMIUM", tools::CHROMIUM)
        .env(
            "KEYSHIFT_CLI",
            ctx.target_dir.join("debug").join("keyshift"),
        )
        .env(
            "KEYSHIFT_TINY_MODEL",
            ctx.root.join("fixtures").join("tiny-sd1").join("diffusers"),
        )
        .env("KEYSHIFT_E2E_SHARD", format!("{k}/{lanes}"))
        .env("KEYSHIFT_E2E_TIMES", times)
        .env("KEYSHIFT_E2E_TIMES_OUT", lane_times(times, k))
        .arg("run.mjs");
    run_prefixed(&mut cmd, &format!("e2e[{k}] "))
}

/// Where lane `k` writes its tests' times.
fn lane_times(times: &Path, k: usize) -> PathBuf {
    times.with_extension(format!("lane{k}.json"))
}

/// Runs `cmd`, printing each line of its output (both streams) with `prefix` as it comes.
fn run_prefixed(cmd: &mut Command, prefix: &str) -> Result<(), String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting node: {e}"))?;
    let out = child.stdout.take();
    let err = child.stderr.take();
    std::thread::scope(|scope| {
        if let Some(err) = err {
            scope.spawn(|| echo(err, prefix));
        }
        if let Some(out) = out {
            echo(out, prefix);
        }
    });
    let status = child.wait().map_err(|e| format!("waiting for node: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("node run.mjs: {status}"))
    }
}

fn echo(stream: impl Read, prefix: &str) {
    for line in BufReader::new(stream).lines().map_while(Result::ok) {
        println!("{prefix}{line}");
    }
}

/// Merges the lanes' times into `times` (kept from run to run, so that a test that did not run
/// keeps its earlier time).
fn merge_times(times: &Path, lanes: usize) {
    let read = |p: &Path| -> serde_json::Map<String, serde_json::Value> {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default()
    };
    let mut all = read(times);
    for k in 0..lanes {
        let file = lane_times(times, k);
        all.extend(read(&file));
        let _ = std::fs::remove_file(file);
    }
    let _ = std::fs::write(times, serde_json::Value::Object(all).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_default_to_two_and_refuse_nonsense() {
        assert_eq!(lanes(None), Ok(2));
        assert_eq!(lanes(Some("")), Ok(2));
        assert_eq!(lanes(Some("1")), Ok(1));
        assert!(lanes(Some("0")).is_err());
        assert!(lanes(Some("two")).is_err());
        assert!(lanes(Some("9")).is_err());
    }

    #[test]
    fn lane_times_are_merged_into_the_kept_times() {
        let dir = std::env::temp_dir().join(format!("xtask-e2e-times-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let times = dir.join("times.json");
        std::fs::write(&times, r#"{"a": 1000, "b": 2000}"#).unwrap_or_default();
        std::fs::write(lane_times(&times, 0), r#"{"b": 2500}"#).unwrap_or_default();
        std::fs::write(lane_times(&times, 1), r#"{"c": 300}"#).unwrap_or_default();
        merge_times(&times, 2);
        let merged: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&times).unwrap_or_default())
                .unwrap_or_default();
        assert_eq!(merged, serde_json::json!({"a": 1000, "b": 2500, "c": 300}));
        assert!(!lane_times(&times, 0).exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
