//! Criterion benchmarks of the Parseq sequencer on the benchmark document (10,000 frames, 20
//! managed fields, formulas mixing `L`, `C`, `S`, `bez`, `sin` and `rand`; see
//! `keyshift_core::parseq::bench`):
//!
//! - `render_10k_20_fields`: a full render, [`render_bench`] (what `keyshift bench sequencer`
//!   times; the target is at most 50 ms in release).
//! - `edit_keyframe/value_local`: one keyframe value of `angle`, whose formulas are local, so only
//!   the frames between the neighbouring keyframe formulas are re-rendered.
//! - `edit_keyframe/value_whole_field`: one keyframe value of `zoom`, which has a `C` formula (it
//!   reads every keyframe), so the whole field is re-rendered.
//! - `edit_keyframe/formula`: one keyframe formula of `angle`, which re-renders that field only.
//!
//! Each edit alternates between two values so that every iteration changes the document. Before
//! measuring, each benchmark checks its result once (frame and field counts, the range
//! re-rendered, the edited frame's value, and that an incremental edit equals a full render).
//!
//! `cargo bench -p keyshift-core --features bench --bench sequencer`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark: a panic is how a broken setup fails"
)]

use std::hint::black_box;
use std::ops::Range;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use keyshift_core::parseq::bench::{BENCH_FIELDS, BENCH_FRAMES, bench_document, render_bench};
use keyshift_core::parseq::document::Document;
use keyshift_core::parseq::render::Sequencer;

/// The keyframe edited (the benchmark document has a keyframe every 100 frames).
const EDIT_FRAME: i64 = 5000;

fn sequencer(doc: &Document) -> Sequencer {
    let mut seq = Sequencer::new(doc.clone()).unwrap();
    seq.render_all().unwrap();
    seq
}

fn value_at(seq: &Sequencer, field: &str, frame: i64) -> f64 {
    let r = seq.rendered();
    let i = usize::try_from(frame - r.first_frame).unwrap();
    r.field(field).expect("a managed field").values[i]
}

fn render_full(c: &mut Criterion) {
    let doc = bench_document().unwrap();
    let summary = render_bench(&doc).unwrap();
    assert_eq!(summary.frames, usize::try_from(BENCH_FRAMES).unwrap());
    assert_eq!(summary.fields, BENCH_FIELDS.len());
    assert!(summary.value_sum.is_finite() && summary.value_sum != 0.0);
    assert!(summary.prompt_bytes > 0);
    let mut group = c.benchmark_group("sequencer");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("render_10k_20_fields", |b| {
        b.iter(|| render_bench(black_box(&doc)).unwrap());
    });
    group.finish();
}

/// Edits `field`'s value at [`EDIT_FRAME`] once and checks what was re-rendered against
/// `expected` and against a full render of the edited document.
fn check_value_edit(doc: &Document, field: &str, expected: Range<i64>) {
    let mut seq = sequencer(doc);
    let touched = seq.set_value(EDIT_FRAME, field, Some(9.5)).unwrap();
    assert_eq!(touched, vec![(field.to_owned(), expected)]);
    assert_eq!(value_at(&seq, field, EDIT_FRAME), 9.5);
    assert_eq!(seq.rendered(), sequencer(seq.document()).rendered());
}

fn edit_keyframe(c: &mut Criterion) {
    let doc = bench_document().unwrap();
    // `angle` has local formulas only (`bez` at this keyframe): the frames from the formula in
    // force before the edit to the next keyframe formula.
    check_value_edit(&doc, "angle", 4000..6000);
    // `zoom` has a `C` formula: every frame of that field, still one field of twenty.
    check_value_edit(&doc, "zoom", 0..BENCH_FRAMES);
    let mut group = c.benchmark_group("edit_keyframe");
    for (name, field) in [("value_local", "angle"), ("value_whole_field", "zoom")] {
        let mut seq = sequencer(&doc);
        let mut i = 0u32;
        group.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                let value = 1.0 + f64::from(i % 2);
                seq.set_value(EDIT_FRAME, field, Some(value)).unwrap()
            });
        });
    }

    // A formula edit re-plans and re-renders the whole field, but no other.
    let mut seq = sequencer(&doc);
    let touched = seq.set_formula(EDIT_FRAME, "angle", Some("42")).unwrap();
    assert_eq!(touched, vec![("angle".to_owned(), 0..BENCH_FRAMES)]);
    assert_eq!(value_at(&seq, "angle", EDIT_FRAME), 42.0);
    assert_eq!(seq.rendered(), sequencer(seq.document()).rendered());
    let mut i = 0u32;
    group.bench_function("formula", |b| {
        b.iter(|| {
            i += 1;
            let formula = if i.is_multiple_of(2) { "42" } else { "L * 2" };
            seq.set_formula(EDIT_FRAME, "angle", Some(formula)).unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, render_full, edit_keyframe);
criterion_main!(benches);
