//! A Parseq document on the render layer with the tiny fixture model (CPU backend): frame 0 is
//! txt2img, and every later frame is img2img of frame k − 1 moved by frame k's deltas,
//! colour-matched to the first moved image, with its contrast and noise, at denoise
//! `1 − strength`.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "tests read fixtures and fail by panicking"
)]

mod common;

use std::path::PathBuf;

use common::{Rig, settings};
use keyshift_core::image::{
    Border, RgbImage, add_noise, contrast, match_colours_lab, warp_perspective,
};
use keyshift_core::parseq::document::Document;
use keyshift_render::{FrameRecord, FrameSource, FrameSpec, ParseqOptions, ParseqSource};

fn options() -> ParseqOptions {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/parseq/motion.json");
    let doc = Document::from_json_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    ParseqOptions::for_document(&doc).unwrap()
}

/// Every spec the source hands out, fed the rendered `images` in turn.
fn specs(rig: &Rig, images: &[RgbImage]) -> Vec<FrameSpec> {
    let mut source = ParseqSource::new(options(), &settings(3)).unwrap();
    let mut specs = Vec::new();
    for image in images {
        let spec = source.next_frame().unwrap().unwrap();
        let session = keyshift_render::RenderSession::new(
            &rig.model,
            &rig.tokenizer,
            &rig.device,
            settings(3),
            keyshift_render::SingleFrame::new(spec.clone()),
        );
        let record = FrameRecord::new(&spec, &session.request(&spec), 64, 64);
        source.frame_done(&record, image).unwrap();
        specs.push(spec);
    }
    assert!(source.next_frame().unwrap().is_none());
    specs
}

#[test]
fn each_frame_is_img2img_of_the_previous_one_moved() {
    let rig = Rig::new();
    let images = rig.render(3, ParseqSource::new(options(), &settings(3)).unwrap());
    assert_eq!(images.len(), 5);
    let specs = specs(&rig, &images);
    let frames = options().frames;
    assert!(specs[0].init.is_none(), "frame 0 is txt2img");
    let reference = warp_perspective(
        &images[0],
        &frames[1].motion.matrix(64, 64),
        Border::Replicate,
    );
    for k in 1..5 {
        let f = &frames[k];
        let moved = warp_perspective(&images[k - 1], &f.motion.matrix(64, 64), Border::Replicate);
        let matched = if k == 1 {
            moved
        } else {
            match_colours_lab(&moved, &reference)
        };
        let noise_seed = specs[k - 1].seed;
        let want = add_noise(&contrast(&matched, f.contrast), f.noise, noise_seed);
        let init = specs[k].init.as_ref().unwrap();
        assert_eq!(init.image, want, "frame {k}'s init image");
        assert!((init.strength - (1.0 - f.strength)).abs() < 1e-12);
        assert_eq!(specs[k].cfg, f.scale);
        // The spec alone renders frame k; from another previous image it is another frame.
        assert_eq!(rig.single(3, specs[k].clone()).data, images[k].data);
    }
    let mut other = specs[3].clone();
    other.init.as_mut().unwrap().image = images[0].clone();
    assert_ne!(rig.single(3, other).data, images[3].data);
}
