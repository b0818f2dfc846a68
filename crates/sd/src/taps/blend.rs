//! Attention interpolation between consecutive frames (TheDenk/Attention-Interpolation, seeds.md
//! §4): in the chosen self-attention layers, the queries, keys and values (after the head split),
//! the attention probabilities (`attention_probs`) and the output after the output projection
//! (`out_linear`) of each step are slerped towards the values stored for that layer and step by
//! the previous frame, with weight `w(step)` towards the previous frame; the result is stored for
//! the next frame, so the stored value is an exponential average over every past frame. The
//! latent after each sampler step can be blended the same way (§4's `pipe_config`).
//!
//! Per layer and step, §4's processor: `blend(x) = slerp(w, x, stored)` where a value is stored,
//! else `x`; then `stored = blend(x)`. Active only where `start_step < step < end_step`; the
//! probabilities only where the keys number at most `attention_res²`; only self-attention. The
//! whole CFG batch is blended, as in §4. The weight follows [`WeightSchedule`].

use std::collections::HashMap;

use burn::tensor::Tensor;

use super::slerp::slerp;
use super::{LayerFilter, StepHook};
use crate::hooks::{AttentionHook, AttentionKind, AttentionSite, HeadPart};

/// How the weight decays over the steps (§4 `interpolation_scheduler`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScheduleKind {
    /// `start · eta^index`.
    Ema {
        /// Decay per step (§4 `eta`).
        eta: f64,
    },
    /// `(cos(π·v/total) + 1) · start / 2` with `v = linspace(0, total, total)[index]`.
    Cos,
    /// `linspace(start, 0, total)[index]`.
    Linear,
}

/// The blending weight towards the previous frame at each step (§4 `ema`, `eta`, `start_step`,
/// `end_step`, `const_steps`, `total_steps`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightSchedule {
    /// Decay shape.
    pub kind: ScheduleKind,
    /// The weight at the start (§4 `ema`).
    pub start_weight: f64,
    /// Steps in a frame's run.
    pub total_steps: usize,
    /// Blending runs only after this step (strict).
    pub start_step: usize,
    /// Blending runs only before this step (strict).
    pub end_step: usize,
    /// Steps the weight holds before it starts to decay.
    pub const_steps: usize,
}

impl WeightSchedule {
    /// Whether blending runs at `step`: `start_step < step < end_step`.
    pub fn active(&self, step: usize) -> bool {
        self.start_step < step && step < self.end_step
    }

    /// The weight towards the previous frame used at `step`: 0 where inactive. §4 updates the
    /// weight after each use (`ema = scheduler(index = step − const − start)` once
    /// `start + const < step`), so step `s` uses the value computed after step `s − 1`.
    pub fn weight(&self, step: usize) -> f64 {
        if !self.active(step) {
            return 0.0;
        }
        let offset = self.start_step + self.const_steps;
        match step.checked_sub(1) {
            Some(previous) if previous > offset => {
                let total = self.total_steps.saturating_sub(offset);
                self.value(previous - offset, total)
            }
            _ => self.start_weight,
        }
    }

    /// The scheduler's value at `index` of `total` (§4's `ema`, `linear`, `cos`). Unlike §4, a
    /// start weight of 0 gives 0 rather than dividing by zero, and indices past the end give the
    /// last value.
    pub fn value(&self, index: usize, total: usize) -> f64 {
        let start = self.start_weight;
        let last = total.saturating_sub(1);
        let fraction = if last == 0 {
            0.0
        } else {
            index.min(last) as f64 / last as f64
        };
        match self.kind {
            ScheduleKind::Ema { eta } => start * eta.powi(i32::try_from(index).unwrap_or(i32::MAX)),
            ScheduleKind::Linear => start * (1.0 - fraction),
            ScheduleKind::Cos => ((std::f64::consts::PI * fraction).cos() + 1.0) * start / 2.0,
        }
    }
}

/// Which layers and tensors a [`FrameBlend`] blends, and how strongly.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameBlendConfig {
    /// The weight per step.
    pub schedule: WeightSchedule,
    /// Layers blended (§4 `allow_names`; self-attention only).
    pub layers: LayerFilter,
    /// Blend the attention probabilities (§4 `attention_probs`).
    pub blend_probabilities: bool,
    /// Blend the output after the output projection (§4 `out_linear`).
    pub blend_output: bool,
    /// Blend the queries, keys and values after the head split (§4 `query`, `key`, `value`).
    pub blend_heads: [bool; 3],
    /// Blend the latent after each sampler step with this schedule (§4 `pipe_config`).
    pub latents: Option<WeightSchedule>,
    /// Probabilities are blended only where the keys number at most `attention_res²` (§4; 32
    /// leaves out SD 1.x's 64×64 layers at 512²).
    pub attention_res: usize,
}

impl FrameBlendConfig {
    /// §4's `unet_config` from `default.yaml` for runs of `total_steps`: `ema` schedule from 0.625
    /// with eta 0.875, steps `0 < step < total_steps`, no constant steps, the down, mid and up
    /// blocks, probabilities and projected outputs, `attention_res` 32.
    pub fn unet_defaults(total_steps: usize) -> Self {
        Self {
            schedule: WeightSchedule {
                kind: ScheduleKind::Ema { eta: 0.875 },
                start_weight: 0.625,
                total_steps,
                start_step: 0,
                end_step: total_steps,
                const_steps: 0,
            },
            layers: LayerFilter::Prefixes(
                ["down_blocks", "mid_block", "up_blocks"]
                    .map(str::to_owned)
                    .to_vec(),
            ),
            blend_probabilities: true,
            blend_output: true,
            blend_heads: [false; 3],
            latents: None,
            attention_res: 32,
        }
    }

    /// With §4's `pipe_config` from `default.yaml`: the latents blended from weight 0.35 with
    /// eta 0.75 (`ema`), steps `0 < step < total_steps`.
    pub fn with_default_latents(self) -> Self {
        let total_steps = self.schedule.total_steps;
        Self {
            latents: Some(WeightSchedule {
                kind: ScheduleKind::Ema { eta: 0.75 },
                start_weight: 0.35,
                total_steps,
                start_step: 0,
                end_step: total_steps,
                const_steps: 0,
            }),
            ..self
        }
    }
}

/// The floats a [`FrameBlend`] of `config` keeps for one frame of a UNet with `layers` (as
/// [`crate::unet::Unet::attention_layers`] lists them) at a `latent_h × latent_w` latent, a batch
/// of `batch` rows (2 with CFG) and `steps` sampling steps: per blended step, each chosen
/// self-attention layer's probabilities (where its keys are few enough), projected output and
/// heads, and the latent.
pub fn storage_floats(
    config: &FrameBlendConfig,
    layers: &[crate::unet::AttentionLayer],
    (latent_h, latent_w): (usize, usize),
    batch: usize,
    steps: usize,
) -> usize {
    let blended = |s: &WeightSchedule| (0..steps).filter(|&k| s.active(k)).count();
    let res = config.attention_res.saturating_mul(config.attention_res);
    let per_step: usize = layers
        .iter()
        .filter(|l| config.layers.matches(&l.name))
        .map(|l| {
            let n = (latent_h / l.downscale.max(1)) * (latent_w / l.downscale.max(1));
            let rows = batch * n * l.channels;
            let probs = if config.blend_probabilities && n <= res {
                batch * l.heads * n * n
            } else {
                0
            };
            let heads = config.blend_heads.iter().filter(|b| **b).count() * rows;
            probs + heads + usize::from(config.blend_output) * rows
        })
        .sum();
    let latents = config
        .latents
        .as_ref()
        .map_or(0, |s| blended(s) * 4 * latent_h * latent_w);
    per_step * blended(&config.schedule) + latents
}

/// Which projection [`HeadPart`] is, as an index of [`FrameBlendConfig::blend_heads`].
fn head_index(part: HeadPart) -> usize {
    match part {
        HeadPart::Query => 0,
        HeadPart::Key => 1,
        HeadPart::Value => 2,
    }
}

type Key = (String, usize);

/// Values stored per (layer, step).
#[derive(Debug, Default)]
struct Store {
    probabilities: HashMap<Key, Tensor<4>>,
    outputs: HashMap<Key, Tensor<3>>,
    heads: HashMap<(Key, usize), Tensor<4>>,
    latents: HashMap<usize, Tensor<4>>,
}

fn floats<K, const D: usize>(map: &HashMap<K, Tensor<D>>) -> usize {
    map.values()
        .map(|t| t.dims().iter().product::<usize>())
        .sum()
}

impl Store {
    fn floats(&self) -> usize {
        floats(&self.probabilities)
            + floats(&self.outputs)
            + floats(&self.heads)
            + floats(&self.latents)
    }

    fn tensors(&self) -> usize {
        self.probabilities.len() + self.outputs.len() + self.heads.len() + self.latents.len()
    }

    fn absorb(&mut self, newer: Store) {
        self.probabilities.extend(newer.probabilities);
        self.outputs.extend(newer.outputs);
        self.heads.extend(newer.heads);
        self.latents.extend(newer.latents);
    }
}

/// Blends self-attention with the previous frame's, step by step.
#[derive(Debug)]
pub struct FrameBlend {
    config: FrameBlendConfig,
    step: usize,
    frame: usize,
    previous: Store,
    current: Store,
    blended_calls: usize,
}

impl FrameBlend {
    /// Nothing stored; the first frame only records.
    pub fn new(config: FrameBlendConfig) -> Self {
        Self {
            config,
            step: 0,
            frame: 0,
            previous: Store::default(),
            current: Store::default(),
            blended_calls: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FrameBlendConfig {
        &self.config
    }

    /// Ends a frame: what it stored becomes the previous frame's values (values of layers and
    /// steps it did not reach stay from earlier frames, as in §4's single storage).
    pub fn next_frame(&mut self) {
        let current = std::mem::take(&mut self.current);
        self.previous.absorb(current);
        self.frame += 1;
        self.step = 0;
    }

    /// Frames ended so far.
    pub fn frame(&self) -> usize {
        self.frame
    }

    /// Attention calls that mixed in a previous frame's value.
    pub fn blended_calls(&self) -> usize {
        self.blended_calls
    }

    /// Tensors stored (previous and current frame together; each layer and step once).
    pub fn stored_tensors(&self) -> usize {
        self.previous.tensors() + self.current.tensors()
    }

    /// The probabilities and the projected output stored for `layer` at `step` (this frame's if it
    /// reached them, else the last frame's that did): what the next frame blends with.
    pub fn stored(&self, layer: &str, step: usize) -> (Option<Tensor<4>>, Option<Tensor<3>>) {
        let key = (layer.to_owned(), step);
        let pick = |s: &Store| {
            (
                s.probabilities.get(&key).cloned(),
                s.outputs.get(&key).cloned(),
            )
        };
        let (p, o) = pick(&self.current);
        let (pp, po) = pick(&self.previous);
        (p.or(pp), o.or(po))
    }

    /// Floats stored.
    pub fn stored_floats(&self) -> usize {
        self.previous.floats() + self.current.floats()
    }

    /// Forgets every stored value.
    pub fn reset(&mut self) {
        *self = Self::new(self.config.clone());
    }

    fn wants(&self, site: &AttentionSite) -> bool {
        site.kind == AttentionKind::SelfAttention
            && self.config.schedule.active(self.step)
            && self.config.layers.matches(&site.layer)
    }

    fn blends_probabilities(&self, site: &AttentionSite, keys: usize) -> bool {
        let res = self.config.attention_res;
        self.config.blend_probabilities && keys <= res.saturating_mul(res) && self.wants(site)
    }
}

/// §4's `blend`: mixes `x` with the value stored for `key` by an earlier frame (if its shape
/// matches and the weight is positive), records the result for the next frame, and returns it.
fn blend<K: std::hash::Hash + Eq, const D: usize>(
    previous: &mut HashMap<K, Tensor<D>>,
    current: &mut HashMap<K, Tensor<D>>,
    key: K,
    x: Tensor<D>,
    weight: f64,
) -> (Tensor<D>, bool) {
    let (out, blended) = match previous.remove(&key) {
        Some(stored) if stored.dims() == x.dims() && weight > 0.0 => {
            (slerp(weight, x, stored), true)
        }
        _ => (x, false),
    };
    current.insert(key, out.clone());
    (out, blended)
}

impl AttentionHook for FrameBlend {
    fn wants_probabilities(&self, site: &AttentionSite, keys: usize) -> bool {
        self.blends_probabilities(site, keys)
    }

    fn heads(&mut self, site: &AttentionSite, part: HeadPart, x: Tensor<4>) -> Tensor<4> {
        let index = head_index(part);
        if !(self.config.blend_heads[index] && self.wants(site)) {
            return x;
        }
        let key = ((site.layer.clone(), self.step), index);
        let weight = self.config.schedule.weight(self.step);
        let (previous, current) = (&mut self.previous.heads, &mut self.current.heads);
        let (out, blended) = blend(previous, current, key, x, weight);
        self.blended_calls += usize::from(blended);
        out
    }

    fn probabilities(&mut self, site: &AttentionSite, probs: Tensor<4>) -> Tensor<4> {
        let [_, _, _, keys] = probs.dims();
        if !self.blends_probabilities(site, keys) {
            return probs;
        }
        let key = (site.layer.clone(), self.step);
        let weight = self.config.schedule.weight(self.step);
        let (previous, current) = (
            &mut self.previous.probabilities,
            &mut self.current.probabilities,
        );
        let (out, blended) = blend(previous, current, key, probs, weight);
        self.blended_calls += usize::from(blended);
        out
    }

    fn projected(&mut self, site: &AttentionSite, out: Tensor<3>) -> Tensor<3> {
        if !(self.config.blend_output && self.wants(site)) {
            return out;
        }
        let key = (site.layer.clone(), self.step);
        let weight = self.config.schedule.weight(self.step);
        let (previous, current) = (&mut self.previous.outputs, &mut self.current.outputs);
        let (out, blended) = blend(previous, current, key, out, weight);
        self.blended_calls += usize::from(blended);
        out
    }
}

impl StepHook for FrameBlend {
    fn set_step(&mut self, step: usize) {
        self.step = step;
    }

    fn stepped(&mut self, step: usize, latent: Tensor<4>) -> Tensor<4> {
        let Some(schedule) = self.config.latents.filter(|s| s.active(step)) else {
            return latent;
        };
        let weight = schedule.weight(step);
        let (previous, current) = (&mut self.previous.latents, &mut self.current.latents);
        blend(previous, current, step, latent, weight).0
    }
}
