//! Attention taps: [`crate::hooks::AttentionHook`]s that read or blend attention while the UNet
//! runs.
//!
//! - [`cross`]: cross-attention maps per token, summed over the chosen layers and steps at a
//!   fixed aggregation resolution (heatmaps over a generation), and VXA's one-layer probe of an
//!   image (seeds.md §3).
//! - [`heatmap`]: a map resized to image size and drawn over an RGB image (pure Rust).
//! - [`blend`]: attention interpolation between consecutive frames (seeds.md §4).
//! - [`slerp`]: spherical interpolation along the last dimension, with a lerp fallback.
//!
//! The caller tells a tap which sampling step runs next with [`StepHook::set_step`] before each
//! UNet call (`sampling.next_step()`); a tap never counts calls itself.

use std::collections::BTreeSet;

use burn::tensor::Tensor;
use std::ops::Range;

use crate::hooks::{AttentionHook, NoHook};

pub mod blend;
pub mod cross;
pub mod heatmap;
pub mod slerp;

pub use blend::{FrameBlend, FrameBlendConfig, ScheduleKind, WeightSchedule};
pub use cross::{
    AttentionMaps, BatchLayout, CrossAttentionTap, Resolution, TapConfig, TapError, Tokens,
    VaeInput,
};
pub use heatmap::{Filter, OverlayMode, TokenMap};

/// A hook that wants to know the sampling step before each UNet call.
pub trait StepHook: AttentionHook {
    /// The index (0-based, in the step plan) of the step the next UNet call belongs to.
    fn set_step(&mut self, step: usize);

    /// Sees (and may replace) the latent after step `step`'s sampler update.
    ///
    /// # Shapes
    /// - `latent`: `[1, channels, h, w]`
    fn stepped(&mut self, step: usize, latent: Tensor<4>) -> Tensor<4> {
        let _ = step;
        latent
    }

    /// Whether the hook neither looks at nor changes anything, so that frames may share a UNet
    /// call ([`crate::generate::step_together`]). No by default.
    fn is_inert(&self) -> bool {
        false
    }
}

impl StepHook for NoHook {
    fn set_step(&mut self, _step: usize) {}

    fn is_inert(&self) -> bool {
        true
    }
}

/// Two hooks, the first then the second, for every call.
pub struct Chain<'a>(pub &'a mut dyn StepHook, pub &'a mut dyn StepHook);

impl AttentionHook for Chain<'_> {
    fn heads(
        &mut self,
        site: &crate::hooks::AttentionSite,
        part: crate::hooks::HeadPart,
        x: Tensor<4>,
    ) -> Tensor<4> {
        let x = self.0.heads(site, part, x);
        self.1.heads(site, part, x)
    }

    fn wants_probabilities(&self, site: &crate::hooks::AttentionSite, keys: usize) -> bool {
        self.0.wants_probabilities(site, keys) || self.1.wants_probabilities(site, keys)
    }

    fn probabilities(&mut self, site: &crate::hooks::AttentionSite, probs: Tensor<4>) -> Tensor<4> {
        let probs = self.0.probabilities(site, probs);
        self.1.probabilities(site, probs)
    }

    fn output(&mut self, site: &crate::hooks::AttentionSite, out: Tensor<3>) -> Tensor<3> {
        let out = self.0.output(site, out);
        self.1.output(site, out)
    }

    fn projected(&mut self, site: &crate::hooks::AttentionSite, out: Tensor<3>) -> Tensor<3> {
        let out = self.0.projected(site, out);
        self.1.projected(site, out)
    }
}

impl StepHook for Chain<'_> {
    fn set_step(&mut self, step: usize) {
        self.0.set_step(step);
        self.1.set_step(step);
    }

    fn stepped(&mut self, step: usize, latent: Tensor<4>) -> Tensor<4> {
        let latent = self.0.stepped(step, latent);
        self.1.stepped(step, latent)
    }

    fn is_inert(&self) -> bool {
        self.0.is_inert() && self.1.is_inert()
    }
}

/// Which attention layers a tap acts on, by transformer name (`down_blocks.1.attentions.0`,
/// `mid_block.attentions.0`, `up_blocks.0.attentions.2`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LayerFilter {
    /// Every layer.
    #[default]
    All,
    /// Layers named by one of these prefixes, matched at a dot: `up_blocks.1` takes
    /// `up_blocks.1.attentions.0` but not `up_blocks.10.attentions.0`; a whole name takes that
    /// layer.
    Prefixes(Vec<String>),
}

impl LayerFilter {
    /// Layers under one prefix.
    pub fn prefix(prefix: &str) -> Self {
        Self::Prefixes(vec![prefix.to_owned()])
    }

    /// Whether `layer` is selected.
    pub fn matches(&self, layer: &str) -> bool {
        match self {
            Self::All => true,
            Self::Prefixes(prefixes) => prefixes.iter().any(|p| under_prefix(layer, p)),
        }
    }
}

/// `layer` is `prefix` or lies under it at a dot (a trailing dot on the prefix is ignored).
fn under_prefix(layer: &str, prefix: &str) -> bool {
    let prefix = prefix.strip_suffix('.').unwrap_or(prefix);
    layer
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Which sampling steps a tap acts on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StepFilter {
    /// Every step.
    #[default]
    All,
    /// Steps in this range.
    Range(Range<usize>),
    /// These steps.
    Set(BTreeSet<usize>),
}

impl StepFilter {
    /// Whether `step` is selected.
    pub fn contains(&self, step: usize) -> bool {
        match self {
            Self::All => true,
            Self::Range(range) => range.contains(&step),
            Self::Set(set) => set.contains(&step),
        }
    }
}
