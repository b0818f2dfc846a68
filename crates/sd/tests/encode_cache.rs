//! The text encoder's cache: frames of an animation that share token rows encode them once, and
//! the conditioning is the same as encoding afresh.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is how a test fails"
)]

mod common;
use common::values;

use keyshift_core::tokens::ClipTokenizer;
use keyshift_sd::Device;

#[test]
fn a_shift_attention_frame_reuses_the_rows_it_shares_and_gives_the_same_conditioning() {
    let device = Device::flex();
    let model = common::tiny_model(&device);
    let tokenizer = ClipTokenizer::embedded().unwrap();
    let cache = model.clip.cache();
    let start = cache.counts();
    let first = common::sd1_context(&model, &tokenizer, "a photo of a (cat:0.8)", 1);
    let after_first = cache.counts();
    assert_eq!(after_first.1, start.1 + 1, "one new row encoded");
    // The next frame changes only the weight: the same ids, no new encoding, and the weight is
    // still applied (after encoding).
    let second = common::sd1_context(&model, &tokenizer, "a photo of a (cat:0.6)", 1);
    let after_second = cache.counts();
    assert_eq!(after_second.1, after_first.1, "no new encoding");
    assert_eq!(after_second.0, after_first.0 + 1, "one hit");
    assert_ne!(values(first.clone()), values(second));
    // Without the cache: the same values.
    cache.set_capacity(0);
    let fresh = common::sd1_context(&model, &tokenizer, "a photo of a (cat:0.8)", 1);
    assert_eq!(cache.counts().1, after_second.1 + 1, "encoded again");
    assert_eq!(values(first), values(fresh));
}
