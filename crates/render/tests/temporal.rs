//! Temporal consistency on the tiny model (CPU backend): on a shift-attention run whose segments
//! change seed (frames that differ), attention and latent interpolation with the previous frames
//! raise the SSIM between consecutive frames; histogram matching makes every frame's colours the
//! first frame's; the storage for the previous frame is reported.
#![allow(clippy::unwrap_used, reason = "tests fail by panicking")]

mod common;

use common::{Rig, settings};
use keyshift_core::image::{ColourSpace, RgbImage, match_colours, ssim};
use keyshift_core::schedule::Sampler;
use keyshift_core::shift::{GapSettings, ShiftRequest};
use keyshift_core::temporal::{Interpolation, Temporal};
use keyshift_render::{RenderSettings, ShiftOptions, ShiftSource};

fn shift_source(settings: &RenderSettings) -> ShiftSource {
    let options = ShiftOptions {
        request: ShiftRequest {
            prompt: "a photo of a cat THEN(seed=4) a photo of a cat".into(),
            negative_prompt: String::new(),
            steps: 4,
            seed: 3,
            cfg_scale: 7.0,
            remove_zero_strength: false,
        },
        gap: GapSettings::default(),
        mirror: false,
        fps: 0.0,
        lead: 0,
    };
    ShiftSource::new(options, settings).unwrap()
}

fn ddim(temporal: Temporal) -> RenderSettings {
    RenderSettings {
        sampler: Sampler::Ddim { eta: 0.0 },
        temporal,
        ..settings(6)
    }
}

fn mean_consecutive_ssim(frames: &[RgbImage]) -> f64 {
    let pairs: Vec<f64> = frames
        .windows(2)
        .map(|w| ssim(&w[0], &w[1]).unwrap())
        .collect();
    pairs.iter().sum::<f64>() / pairs.len() as f64
}

#[test]
fn interpolation_raises_the_ssim_between_consecutive_frames() {
    let rig = Rig::new();
    let plain = ddim(Temporal::default());
    let off = rig.render_with(plain.clone(), shift_source(&plain));
    let interpolated = ddim(Temporal {
        interpolation: Some(Interpolation::default()),
        colour: None,
    });
    let on = rig.render_with(interpolated.clone(), shift_source(&interpolated));
    assert_eq!(off.len(), on.len());
    assert_eq!(off[0], on[0], "the first frame only records");
    let (before, after) = (mean_consecutive_ssim(&off), mean_consecutive_ssim(&on));
    assert!(after > before + 0.005, "SSIM {before} → {after}");
}

#[test]
fn histogram_matching_gives_every_frame_the_first_frames_colours() {
    let rig = Rig::new();
    let plain = ddim(Temporal::default());
    let off = rig.render_with(plain.clone(), shift_source(&plain));
    let matched = ddim(Temporal {
        interpolation: None,
        colour: Some(ColourSpace::Rgb),
    });
    let on = rig.render_with(matched.clone(), shift_source(&matched));
    assert_eq!(on[0], off[0]);
    for (k, (got, raw)) in on.iter().zip(&off).enumerate().skip(1) {
        assert_eq!(
            *got,
            match_colours(raw, &off[0], ColourSpace::Rgb),
            "frame {k}"
        );
    }
}
