//! The CLIP text encoder (Hugging Face `CLIPTextModel`): OpenAI ViT-L/14 for SD 1.x, OpenCLIP
//! ViT-H/14 for SD 2.x. Causal self-attention, no padding mask.

use std::collections::VecDeque;
#[allow(
    clippy::disallowed_types,
    reason = "the cache only ever try_locks (a busy lock skips the cache): it never blocks, and a \
              Mutex keeps the model Send + Sync"
)]
use std::sync::{Arc, Mutex};

use burn::module::Module;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::activation::gelu;
use burn::tensor::{Int, Tensor, TensorData};

use crate::attention;
use crate::config::{Activation, ClipConfig};
use crate::nn::{layer_norm, linear, quick_gelu};
use crate::weights::{LoadError, Loader};

/// One pre-LayerNorm transformer layer.
#[derive(Module, Debug)]
pub struct ClipLayer {
    norm1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
    gelu_exact: bool,
}

impl ClipLayer {
    fn load(l: &mut Loader, name: &str, c: &ClipConfig) -> Result<Self, LoadError> {
        let (d, m, eps) = (c.hidden_size, c.intermediate_size, c.layer_norm_eps);
        let attn = format!("{name}.self_attn");
        Ok(Self {
            norm1: layer_norm(l, &format!("{name}.layer_norm1"), d, eps)?,
            q: linear(l, &format!("{attn}.q_proj"), d, d, true)?,
            k: linear(l, &format!("{attn}.k_proj"), d, d, true)?,
            v: linear(l, &format!("{attn}.v_proj"), d, d, true)?,
            out: linear(l, &format!("{attn}.out_proj"), d, d, true)?,
            norm2: layer_norm(l, &format!("{name}.layer_norm2"), d, eps)?,
            fc1: linear(l, &format!("{name}.mlp.fc1"), d, m, true)?,
            fc2: linear(l, &format!("{name}.mlp.fc2"), m, d, true)?,
            heads: c.num_attention_heads,
            gelu_exact: c.hidden_act == Activation::Gelu,
        })
    }

    /// # Shapes
    /// - `x`: `[b, n, d]`, `causal`: `[1, 1, n, n]` additive mask → `[b, n, d]`
    pub fn forward(&self, x: Tensor<3>, causal: Tensor<4>) -> Tensor<3> {
        let h = self.norm1.forward(x.clone());
        let a = attention::attend(
            self.q.forward(h.clone()),
            self.k.forward(h.clone()),
            self.v.forward(h),
            self.heads,
            Some(causal),
        );
        let x = x + self.out.forward(a);
        let h = self.fc1.forward(self.norm2.forward(x.clone()));
        let h = if self.gelu_exact {
            gelu(h)
        } else {
            quick_gelu(h)
        };
        x + self.fc2.forward(h)
    }
}

/// The text encoder.
#[derive(Module, Debug)]
pub struct ClipTextModel {
    token_embedding: Tensor<2>,
    position_embedding: Tensor<2>,
    layers: Vec<ClipLayer>,
    final_norm: LayerNorm,
    eos_token_id: u32,
    #[module(skip)]
    cache: EncodeCache,
}

/// How many encoded rows [`EncodeCache`] keeps (each `[1, 77, d]`: 236 KB for SD 1.x).
pub const CACHED_ROWS: usize = 32;

/// The most recent encodings of single token rows, by ids and CLIP skip: the frames of an
/// animation share most of their chunks (a shift-attention frame changes only weights, which apply
/// after encoding; the negative prompt never changes), so each distinct row is encoded once.
#[derive(Debug, Clone, Default)]
#[allow(clippy::disallowed_types, reason = "only try_lock: see the import")]
pub struct EncodeCache(Arc<Mutex<CacheInner>>);

#[derive(Debug, Default)]
struct CacheInner {
    rows: VecDeque<((Vec<u32>, usize), Tensor<3>)>,
    capacity: Option<usize>,
    hits: usize,
    misses: usize,
}

impl EncodeCache {
    /// The cached encoding of `key`, or `encode()`'s, kept for later (least recently used first
    /// out). A lock that is busy or poisoned only skips the cache.
    fn get_or(&self, key: (Vec<u32>, usize), encode: impl FnOnce() -> Tensor<3>) -> Tensor<3> {
        let Ok(mut inner) = self.0.try_lock() else {
            return encode();
        };
        if let Some(i) = inner.rows.iter().position(|(k, _)| *k == key) {
            inner.hits += 1;
            if let Some(entry) = inner.rows.remove(i) {
                let value = entry.1.clone();
                inner.rows.push_back(entry);
                return value;
            }
        }
        inner.misses += 1;
        let value = encode();
        let capacity = inner.capacity.unwrap_or(CACHED_ROWS);
        if capacity > 0 {
            while inner.rows.len() >= capacity {
                inner.rows.pop_front();
            }
            inner.rows.push_back((key, value.clone()));
        }
        value
    }

    /// `(hits, misses)` since the model was loaded.
    pub fn counts(&self) -> (usize, usize) {
        self.0
            .try_lock()
            .map_or((0, 0), |inner| (inner.hits, inner.misses))
    }

    /// Keeps at most `rows` encodings (0: none, every row is encoded each time).
    pub fn set_capacity(&self, rows: usize) {
        if let Ok(mut inner) = self.0.try_lock() {
            inner.capacity = Some(rows);
            while inner.rows.len() > rows {
                inner.rows.pop_front();
            }
        }
    }
}

impl ClipTextModel {
    /// Loads the model from Hugging Face names (`text_model.…`), mapped by the loader.
    pub fn load(l: &mut Loader, c: &ClipConfig) -> Result<Self, LoadError> {
        let d = c.hidden_size;
        let token_embedding = l.dequantized(
            "text_model.embeddings.token_embedding.weight",
            [c.vocab_size, d],
        )?;
        let position_embedding = l.tensor(
            "text_model.embeddings.position_embedding.weight",
            [c.max_position_embeddings, d],
        )?;
        let layers = (0..c.num_hidden_layers)
            .map(|i| ClipLayer::load(l, &format!("text_model.encoder.layers.{i}"), c))
            .collect::<Result<Vec<_>, _>>()?;
        let final_norm = layer_norm(l, "text_model.final_layer_norm", d, c.layer_norm_eps)?;
        Ok(Self {
            token_embedding,
            position_embedding,
            layers,
            final_norm,
            eos_token_id: c.eos_token_id,
            cache: EncodeCache::default(),
        })
    }

    /// The encodings this model keeps for animations.
    pub fn cache(&self) -> &EncodeCache {
        &self.cache
    }

    /// [`Self::forward`] of one row of ids, from the cache when that row was encoded recently.
    ///
    /// # Shapes
    /// - `ids`: `n` ids → `[1, n, d]`
    pub fn forward_row(&self, ids: &[u32], clip_skip: usize) -> Tensor<3> {
        self.cache.get_or((ids.to_vec(), clip_skip), || {
            self.forward(&[ids.to_vec()], clip_skip)
        })
    }

    /// Number of transformer layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Token plus position embeddings (`hidden_states[0]`).
    ///
    /// # Shapes
    /// - `ids`: `b` rows of `n` ≤ 77 token ids → `[b, n, d]`
    pub fn embed(&self, ids: &[Vec<u32>]) -> Tensor<3> {
        let device = self.token_embedding.device();
        let b = ids.len();
        let n = ids.first().map_or(0, Vec::len);
        let flat: Vec<i64> = ids
            .iter()
            .flat_map(|row| row.iter().map(|&t| i64::from(t)))
            .collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(flat, [b * n]), &device);
        let [_, d] = self.token_embedding.dims();
        let tokens = self
            .token_embedding
            .clone()
            .select(0, index)
            .reshape([b, n, d]);
        let positions = self
            .position_embedding
            .clone()
            .slice([0..n, 0..d])
            .unsqueeze_dim::<3>(0);
        tokens + positions
    }

    /// `hidden_states[0..=layers]`: the embeddings, then the output of each of the first `layers`
    /// layers (no final LayerNorm).
    ///
    /// # Shapes
    /// - `ids`: `b` rows of `n` ids → each `[b, n, d]`
    pub fn hidden_states(&self, ids: &[Vec<u32>], layers: usize) -> Vec<Tensor<3>> {
        let mut x = self.embed(ids);
        let causal = causal_mask(x.dims()[1], &x.device());
        let mut states = vec![x.clone()];
        for layer in self.layers.iter().take(layers) {
            x = layer.forward(x, causal.clone());
            states.push(x.clone());
        }
        states
    }

    /// The conditioning SD uses: the output of layer `num_layers + 1 - clip_skip`, through the final
    /// LayerNorm. `clip_skip` 1 is `last_hidden_state`; 2 is A1111's "CLIP skip 2" (SD 2.x's
    /// penultimate layer when all 24 OpenCLIP layers are loaded).
    ///
    /// # Shapes
    /// - `ids`: `b` rows of `n` ids → `[b, n, d]`
    pub fn forward(&self, ids: &[Vec<u32>], clip_skip: usize) -> Tensor<3> {
        let layers = self.layers.len().saturating_sub(clip_skip.max(1) - 1);
        let states = self.hidden_states(ids, layers);
        let last = states
            .into_iter()
            .next_back()
            .unwrap_or_else(|| self.embed(ids));
        self.final_norm.forward(last)
    }

    /// Applies the final LayerNorm.
    ///
    /// # Shapes
    /// - `x`: `[b, n, d]` → `[b, n, d]`
    pub fn final_norm(&self, x: Tensor<3>) -> Tensor<3> {
        self.final_norm.forward(x)
    }

    /// The pooled output: each row's hidden state at its first end-of-text token.
    ///
    /// # Shapes
    /// - `hidden`: `[b, n, d]`, `ids`: `b` rows of `n` → `[b, d]`
    pub fn pooled(&self, hidden: Tensor<3>, ids: &[Vec<u32>]) -> Tensor<2> {
        let [_, n, d] = hidden.dims();
        let rows: Vec<Tensor<2>> = ids
            .iter()
            .enumerate()
            .map(|(b, row)| {
                let pos = eos_position(row, self.eos_token_id).unwrap_or(n.saturating_sub(1));
                hidden
                    .clone()
                    .slice([b..b + 1, pos..pos + 1, 0..d])
                    .reshape([1, d])
            })
            .collect();
        Tensor::cat(rows, 0)
    }
}

/// Where the pooled output is read: the first `eos` token; or, for configs with the legacy
/// `eos_token_id` 2 (OpenAI's original CLIP configs, SD 1.5 and 2.x repositories), the first
/// highest id — end-of-text has the highest id in CLIP's vocabulary — as transformers does.
fn eos_position(row: &[u32], eos: u32) -> Option<usize> {
    if eos == 2 {
        let max = row.iter().copied().max()?;
        return row.iter().position(|&t| t == max);
    }
    row.iter().position(|&t| t == eos)
}

/// Additive causal mask: 0 on and below the diagonal, a large negative above.
///
/// # Shapes
/// - returns `[1, 1, n, n]`
fn causal_mask(n: usize, device: &burn::tensor::Device) -> Tensor<4> {
    let values: Vec<f32> = (0..n * n)
        .map(|i| if i % n > i / n { -1e30 } else { 0.0 })
        .collect();
    Tensor::<4>::from_data(TensorData::new(values, [1, 1, n, n]), device)
}
