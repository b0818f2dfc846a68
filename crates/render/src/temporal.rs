//! Temporal consistency in any animation mode: [`keyshift_core::temporal::Temporal`] turned into
//! the engine's [`FrameBlend`] (attention and latent interpolation with the previous frames,
//! seeds.md §4) and the histogram matching of every frame to the first.

use keyshift_core::image::{RgbImage, match_colours};
use keyshift_core::temporal::{Block, Interpolation, Scheduler, Temporal};
use keyshift_sd::taps::{FrameBlend, FrameBlendConfig, LayerFilter, ScheduleKind, WeightSchedule};

/// A block's weight schedule over `total_steps` steps.
pub fn weight_schedule(block: &Block, total_steps: usize) -> WeightSchedule {
    WeightSchedule {
        kind: match block.interpolation_scheduler {
            Scheduler::Ema => ScheduleKind::Ema { eta: block.eta },
            Scheduler::Cos => ScheduleKind::Cos,
            Scheduler::Linear => ScheduleKind::Linear,
        },
        start_weight: block.ema,
        total_steps,
        start_step: block.start_step,
        end_step: block.end_step.unwrap_or(total_steps),
        const_steps: block.const_steps,
    }
}

/// The ControlNet's attention blend (`controlnet_config`: its own schedule, tensors and
/// `allow_names`, no latents); `None` when it blends nothing.
pub fn control_blend_config(block: &Block, total_steps: usize) -> Option<FrameBlendConfig> {
    if !block.is_on(true) {
        return None;
    }
    let u = block.use_interpolation;
    Some(FrameBlendConfig {
        schedule: weight_schedule(block, total_steps),
        layers: LayerFilter::Prefixes(
            block
                .allow_names
                .iter()
                .map(|p| p.prefix().to_owned())
                .collect(),
        ),
        blend_probabilities: u.attention_probs,
        blend_output: u.out_linear,
        blend_heads: [u.query, u.key, u.value],
        latents: None,
        attention_res: block.attention_res,
    })
}

/// The engine's blend for `interpolation` in runs of `total_steps` (the UNet's attention and
/// the latents); `None` when neither block is on. The ControlNet's is
/// [`control_blend_config`].
pub fn frame_blend_config(
    interpolation: &Interpolation,
    total_steps: usize,
) -> Option<FrameBlendConfig> {
    let unet = &interpolation.unet_config;
    let pipe = &interpolation.pipe_config;
    let (unet_on, pipe_on) = (unet.is_on(true), pipe.is_on(false));
    if !unet_on && !pipe_on {
        return None;
    }
    let u = unet.use_interpolation;
    Some(FrameBlendConfig {
        schedule: weight_schedule(unet, total_steps),
        layers: LayerFilter::Prefixes(
            unet.allow_names
                .iter()
                .map(|p| p.prefix().to_owned())
                .collect(),
        ),
        blend_probabilities: unet_on && u.attention_probs,
        blend_output: unet_on && u.out_linear,
        blend_heads: [u.query, u.key, u.value].map(|b| unet_on && b),
        latents: pipe_on.then(|| weight_schedule(pipe, total_steps)),
        attention_res: unet.attention_res,
    })
}

/// What a render keeps between frames for its temporal consistency.
#[derive(Debug, Default)]
pub struct TemporalState {
    /// The attention and latent blend (its storage holds the previous frame's tensors).
    pub blend: Option<FrameBlend>,
    /// The ControlNet's attention blend (`controlnet_config`).
    pub control_blend: Option<FrameBlend>,
    colour: Option<keyshift_core::image::ColourSpace>,
    reference: Option<RgbImage>,
}

impl TemporalState {
    /// The state for `temporal` in runs of `total_steps`.
    pub fn new(temporal: &Temporal, total_steps: usize) -> Self {
        Self {
            blend: temporal
                .interpolation
                .as_ref()
                .and_then(|i| frame_blend_config(i, total_steps))
                .map(FrameBlend::new),
            control_blend: temporal
                .interpolation
                .as_ref()
                .and_then(|i| control_blend_config(&i.controlnet_config, total_steps))
                .map(FrameBlend::new),
            colour: temporal.colour,
            reference: None,
        }
    }

    /// A diffused frame ended: what its steps stored becomes the previous frame's.
    pub fn frame_done(&mut self) {
        for blend in [self.blend.as_mut(), self.control_blend.as_mut()]
            .into_iter()
            .flatten()
        {
            blend.next_frame();
        }
    }

    /// The first frame is kept as the colour reference; every later one is matched to it.
    pub fn match_colours(&mut self, image: RgbImage) -> RgbImage {
        let Some(space) = self.colour else {
            return image;
        };
        match &self.reference {
            Some(reference) => match_colours(&image, reference, space),
            None => {
                self.reference = Some(image.clone());
                image
            }
        }
    }

    /// A finished frame read back on resume: the first becomes the colour reference.
    pub fn replayed(&mut self, image: &RgbImage) {
        if self.colour.is_some() && self.reference.is_none() {
            self.reference = Some(image.clone());
        }
    }

    /// Bytes held for the previous frame (f32 tensors on the model's device).
    pub fn stored_bytes(&self) -> usize {
        [&self.blend, &self.control_blend]
            .into_iter()
            .flatten()
            .map(|b| 4 * b.stored_floats())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyshift_core::temporal::UseInterpolation;

    #[test]
    fn the_default_blocks_blend_probabilities_outputs_and_latents() {
        let config = frame_blend_config(&Interpolation::default(), 25).unwrap_or_else(|| {
            panic!("the defaults blend");
        });
        assert!(config.blend_probabilities && config.blend_output);
        assert_eq!(config.blend_heads, [false; 3]);
        assert_eq!(config.schedule.end_step, 25);
        assert_eq!(config.schedule.start_weight, 0.625);
        assert_eq!(config.latents.map(|l| l.start_weight), Some(0.35));
        assert!(config.layers.matches("mid_block.attentions.0"));
    }

    #[test]
    fn blocks_that_are_off_blend_nothing() {
        let mut off = Interpolation::default();
        off.pipe_config.ema = 0.0;
        off.unet_config.use_interpolation = UseInterpolation::default();
        assert!(frame_blend_config(&off, 4).is_none());
        off.unet_config.use_interpolation.value = true;
        let config = frame_blend_config(&off, 4).unwrap_or_else(|| panic!("values blend"));
        assert_eq!(config.blend_heads, [false, false, true]);
        assert!(config.latents.is_none() && !config.blend_probabilities);
    }
}
