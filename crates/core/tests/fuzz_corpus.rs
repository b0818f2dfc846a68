//! The fuzz campaign's inputs as regression tests, on the stable toolchain: every input kept in
//! `fuzz/corpus/<target>/` (the minimised corpus) and `fuzz/regressions/<target>/` (inputs that
//! once found a bug) runs through its target, then a fixed number of deterministic mutations of
//! them do — a brief fuzz run of every target in each CI run. Single allocations over the fuzz
//! limit abort, as in the libFuzzer builds.
#![cfg(not(target_arch = "wasm32"))]

#[allow(
    unsafe_code,
    reason = "a global allocator forwarding to the system one"
)]
#[path = "../../../fuzz/capped.rs"]
mod capped;

#[global_allocator]
static ALLOC: capped::Capped = capped::Capped;

use std::path::{Path, PathBuf};

use keyshift_core::fuzz::TARGETS;

/// Mutated inputs run per target.
const MUTATIONS: usize = 300;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

#[allow(clippy::disallowed_methods, reason = "the test reads the kept corpus")]
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(dir) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((path, bytes));
        }
    }
    out
}

/// Runs `input`; a panic is returned as its message.
fn outcome(run: fn(&[u8]), input: &[u8]) -> Result<(), String> {
    std::panic::catch_unwind(|| run(input)).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    })
}

/// xorshift64*: the same mutations in every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

/// One libFuzzer-like mutation: flip a bit, set an interesting byte, insert, delete, or splice
/// in part of another input.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(5) {
            0 if at < v.len() => v[at] ^= 1 << rng.below(8),
            1 if at < v.len() => {
                v[at] = [0, 0xFF, b'(', b')', b'[', b':', b'|', b'~', b'"'][rng.below(9)]
            }
            2 => v.insert(at, u8::try_from(rng.below(256)).unwrap_or(0)),
            3 if at < v.len() => {
                v.remove(at);
            }
            _ if !other.is_empty() => {
                let from = rng.below(other.len());
                let len = rng.below(other.len() - from) + 1;
                v.splice(at..at, other[from..from + len].iter().copied());
            }
            _ => {}
        }
    }
    v
}

/// Stack for each target's thread: the 1 MiB a wasm module gets (the page and the worker run
/// these readers there), even though unoptimised frames are several times larger, so a reader
/// whose recursion is not bounded (JSON, YAML and Parseq nest) fails here first.
const STACK_BYTES: usize = 1 << 20;

/// Every kept input of `name` and its mutations; the findings, and how many inputs were kept.
fn run_target(name: &'static str, run: fn(&[u8])) -> (Vec<String>, usize) {
    let mut failures = Vec::new();
    let kept = inputs(name);
    for (path, bytes) in &kept {
        if let Err(e) = outcome(run, bytes) {
            failures.push(format!("{name}: {}: {e}", path.display()));
        }
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
    for _ in 0..MUTATIONS.min(kept.len() * 50) {
        let a = &kept[rng.below(kept.len())].1;
        let b = &kept[rng.below(kept.len())].1;
        let input = mutate(&mut rng, a, b);
        if let Err(e) = outcome(run, &input) {
            failures.push(format!("{name}: mutated input {input:?}: {e}"));
        }
    }
    (failures, kept.len())
}

#[test]
fn every_kept_input_and_its_mutations_run_without_a_finding() {
    let mut failures = Vec::new();
    for &(name, run) in TARGETS {
        let worker = std::thread::Builder::new()
            .name(format!("fuzz-{name}"))
            .stack_size(STACK_BYTES)
            .spawn(move || run_target(name, run));
        let Ok(Ok((found, kept))) = worker.map(std::thread::JoinHandle::join) else {
            panic!("target {name}: its thread did not finish");
        };
        assert!(kept > 0, "no kept inputs for target {name}");
        failures.extend(found);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_travel_regression_is_refused_by_the_frame_limit() {
    let Some(run) = keyshift_core::fuzz::target("travel") else {
        panic!("no travel target");
    };
    let input = inputs("travel")
        .into_iter()
        .find(|(p, _)| p.ends_with("travel-steps-13333377-40M-frames"))
        .map(|(_, bytes)| bytes)
        .unwrap_or_default();
    assert!(!input.is_empty(), "the kept reproducer is missing");
    assert_eq!(outcome(run, &input), Ok(()));
    assert!(keyshift_core::travel::parse_steps("13333377", 4).is_err());
}
