//! Times the Parseq sequencer: a full render of the 10,000-frame, 20-field benchmark document
//! and the re-render after editing one keyframe.
//!
//! `cargo run --release -p keyshift-core --example parseq_bench`
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stdout,
    clippy::unwrap_used,
    reason = "a native benchmark: wall clock, output, and failing loudly are the point"
)]

use std::time::Instant;

use keyshift_core::parseq::bench::{bench_document, render_bench};
use keyshift_core::parseq::render::Sequencer;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let doc = bench_document().unwrap();
    let first = render_bench(&doc).unwrap();
    println!("summary: {first:?}");
    let mut full = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        let s = render_bench(&doc).unwrap();
        full.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(s, first);
    }
    println!(
        "sequencer_render_ms: {:.2} (median of 15, min {:.2})",
        median(full.clone()),
        full.iter().copied().fold(f64::INFINITY, f64::min)
    );

    for (field, what) in [
        ("scale", "local formulas"),
        ("zoom", "a C formula, whole field"),
    ] {
        let mut seq = Sequencer::new(doc.clone()).unwrap();
        seq.render_all().unwrap();
        let mut edit = Vec::new();
        let mut frames = 0..0;
        for i in 0..15 {
            let t = Instant::now();
            let touched = seq
                .set_value(5000, field, Some(1.0 + f64::from(i) / 10.0))
                .unwrap();
            edit.push(t.elapsed().as_secs_f64() * 1e3);
            frames = touched[0].1.clone();
        }
        println!(
            "single_keyframe_rerender_ms ({field}, {what}, frames {frames:?}): {:.3} (median of 15)",
            median(edit)
        );
    }
}
