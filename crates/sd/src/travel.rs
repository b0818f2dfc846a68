//! Prompt travel's conditioning (seeds.md §2.3): each sampling step's encoded conditioning of a
//! frame is the mix of two stages' — lerp, slerp (per token row), or replace mode's element mask
//! — so stages that use prompt editing or alternation travel step by step.
//!
//! Stages with different token counts (77 vs 154) are padded on the token axis with the empty
//! prompt's chunk, as A1111 pads a prompt against its negative. The original zero-pads (and its
//! padding misses the token axis of 3-D conds); zero rows would also make slerp undefined.

use burn::tensor::{Tensor, TensorData};
use keyshift_core::travel::ReplaceDim;

use crate::conditioning::{PromptConditioning, pad_to_same_length};
use crate::taps::slerp::slerp_signed;

/// How a frame mixes the two stages.
#[derive(Debug, Clone)]
pub enum Mix {
    /// `(1 − α)·A + α·B`.
    Lerp,
    /// Spherical per token row (lerp where `cos θ > 0.9995`).
    Slerp,
    /// Units where `mask` is set take B's values, the rest A's (replace mode).
    Replace {
        /// One flag per unit: token row, channel or element of the padded `[tokens, dim]`.
        mask: Vec<bool>,
        /// What a unit is.
        unit: ReplaceDim,
    },
    /// Grad mode: this conditioning (`[1, tokens, dim]`, walked from the prompt's) at every step;
    /// the negative is the prompt's own.
    Walked(Box<Tensor<3>>),
}

/// The stage a frame travels towards, and how far.
#[derive(Debug, Clone)]
pub struct Travel {
    /// The target stage's prompt (the request's prompt is the stage it leaves).
    pub prompt: String,
    /// The target stage's negative prompt.
    pub negative: String,
    /// Weight of the target in the prompt's conditioning.
    pub alpha: f64,
    /// Weight of the target in the negative's conditioning (1: the target's alone).
    pub uncond_alpha: f64,
    /// Lerp, slerp or replace.
    pub mix: Mix,
}

/// A travel with the target stage encoded.
#[derive(Debug, Clone)]
pub(crate) struct EncodedTravel {
    pub to: PromptConditioning,
    pub to_uncond: PromptConditioning,
    pub travel: Travel,
}

/// A step's mixed prompt parts (embeddings and weights) and negative.
pub(crate) type MixedStep = (Vec<(Tensor<3>, f64)>, Option<Tensor<3>>);

/// Why two stages cannot be mixed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MixError {
    /// The stages have different numbers of `AND` parts.
    #[error("the stages have {0} and {1} AND parts; travel needs the same number in each")]
    Parts(usize, usize),
    /// A replace mask does not fit the conditioning.
    #[error(
        "the replace mask has {mask} units but the conditioning has {units} (the stages changed \
         length during sampling)"
    )]
    Mask {
        /// Units in the mask.
        mask: usize,
        /// Units in the conditioning.
        units: usize,
    },
}

impl EncodedTravel {
    /// The prompt parts and the negative at `step`, each mixed with the target's.
    pub fn at_step(
        &self,
        cond: &PromptConditioning,
        uncond: &PromptConditioning,
        empty: &Tensor<3>,
        step: usize,
    ) -> Result<MixedStep, MixError> {
        let t = &self.travel;
        if let Mix::Walked(c) = &t.mix {
            let negative = uncond.at_step(step).into_iter().next().map(|(n, _)| n);
            return Ok((vec![((**c).clone(), 1.0)], negative));
        }
        let (a, b) = (cond.at_step(step), self.to.at_step(step));
        if a.len() != b.len() {
            return Err(MixError::Parts(a.len(), b.len()));
        }
        let mut parts = Vec::with_capacity(a.len());
        for ((ta, wa), (tb, wb)) in a.into_iter().zip(b) {
            let mixed = mix(ta, tb, t.alpha, &t.mix, empty)?;
            parts.push((mixed, wa * (1.0 - t.alpha) + wb * t.alpha));
        }
        let first = |p: &PromptConditioning| p.at_step(step).into_iter().next().map(|(t, _)| t);
        let negative = match (first(uncond), first(&self.to_uncond)) {
            (Some(na), Some(nb)) => Some(mix(na, nb, t.uncond_alpha, &uncond_mix(&t.mix), empty)?),
            (_, nb) => nb,
        };
        Ok((parts, negative))
    }
}

/// The negative prompt is never replaced element-wise: it interpolates (its α is 1 in replace
/// mode, where it jumps to the target's).
fn uncond_mix(mix: &Mix) -> Mix {
    match mix {
        Mix::Replace { .. } => Mix::Lerp,
        other => other.clone(),
    }
}

/// Pads `a` and `b` to the same token count (empty chunks), then mixes them.
///
/// # Shapes
/// - `a`: `[1, 77·i, dim]`, `b`: `[1, 77·j, dim]`, `empty`: `[1, 77, dim]` → `[1, 77·max(i, j), dim]`
pub fn mix(
    a: Tensor<3>,
    b: Tensor<3>,
    alpha: f64,
    how: &Mix,
    empty: &Tensor<3>,
) -> Result<Tensor<3>, MixError> {
    let mut padded = pad_to_same_length(vec![a, b], empty).into_iter();
    let (Some(a), Some(b)) = (padded.next(), padded.next()) else {
        return Err(MixError::Parts(0, 0));
    };
    Ok(match how {
        Mix::Lerp => a * (1.0 - alpha) + b * alpha,
        Mix::Slerp => slerp_signed(alpha, a, b),
        Mix::Replace { mask, unit } => {
            let m = element_mask(mask, *unit, a.dims(), &a.device())?;
            a * (m.clone().neg() + 1.0) + b * m
        }
        Mix::Walked(c) => (**c).clone(),
    })
}

/// A per-unit mask spread over `[b, tokens, dim]` as 0/1 values.
fn element_mask(
    mask: &[bool],
    unit: ReplaceDim,
    [batch, tokens, dim]: [usize; 3],
    device: &burn::tensor::Device,
) -> Result<Tensor<3>, MixError> {
    let units = match unit {
        ReplaceDim::Token => tokens,
        ReplaceDim::Channel => dim,
        ReplaceDim::Random => tokens * dim,
    };
    if mask.len() != units {
        return Err(MixError::Mask {
            mask: mask.len(),
            units,
        });
    }
    let mut values = Vec::with_capacity(batch * tokens * dim);
    for _ in 0..batch {
        for t in 0..tokens {
            for c in 0..dim {
                let on = match unit {
                    ReplaceDim::Token => mask[t],
                    ReplaceDim::Channel => mask[c],
                    ReplaceDim::Random => mask[t * dim + c],
                };
                values.push(if on { 1.0f32 } else { 0.0 });
            }
        }
    }
    Ok(Tensor::<3>::from_data(
        TensorData::new(values, [batch, tokens, dim]),
        device,
    ))
}
