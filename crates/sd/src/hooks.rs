//! Attention taps: hooks called inside every UNet attention layer, to read cross-attention maps
//! (heatmap overlays) or to blend self-attention with a previous frame (attention interpolation).

use burn::tensor::Tensor;

/// Which attention of a transformer block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttentionKind {
    /// `attn1`: the image attends to itself.
    SelfAttention,
    /// `attn2`: the image attends to the text tokens.
    CrossAttention,
}

/// Where an attention layer sits: its transformer's diffusers name
/// (e.g. `down_blocks.1.attentions.0`), which attention, and the latent resolution it runs at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttentionSite {
    /// The transformer's name.
    pub layer: String,
    /// Self- or cross-attention.
    pub kind: AttentionKind,
    /// Latent rows at this layer.
    pub height: usize,
    /// Latent columns at this layer.
    pub width: usize,
}

/// Which head-split projection [`AttentionHook::heads`] sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeadPart {
    /// The queries (`to_q`).
    Query,
    /// The keys (`to_k`).
    Key,
    /// The values (`to_v`).
    Value,
}

/// Called by every attention layer of the UNet. The default methods change nothing.
pub trait AttentionHook {
    /// Sees (and may replace) a projection split into heads, before the probabilities.
    ///
    /// # Shapes
    /// - `x`: `[b, heads, n, head width]` (n = keys for keys and values)
    fn heads(&mut self, site: &AttentionSite, part: HeadPart, x: Tensor<4>) -> Tensor<4> {
        let _ = (site, part);
        x
    }

    /// Whether [`Self::probabilities`] wants this layer's probabilities (`keys` per query). Where no
    /// hook does, the layer computes attention in query chunks and never holds the whole
    /// `[b, heads, n, keys]` matrix, which for self-attention at 512² is larger than a WebGPU
    /// buffer may be. Asking for them by default keeps a hook that does not say correct.
    fn wants_probabilities(&self, site: &AttentionSite, keys: usize) -> bool {
        let _ = (site, keys);
        true
    }

    /// Sees (and may replace) the attention probabilities.
    ///
    /// # Shapes
    /// - `probs`: `[b, heads, height·width, keys]` (keys = tokens for cross-attention)
    fn probabilities(&mut self, site: &AttentionSite, probs: Tensor<4>) -> Tensor<4> {
        let _ = site;
        probs
    }

    /// Sees (and may replace) the attention output before the output projection.
    ///
    /// # Shapes
    /// - `out`: `[b, height·width, channels]`
    fn output(&mut self, site: &AttentionSite, out: Tensor<3>) -> Tensor<3> {
        let _ = site;
        out
    }

    /// Sees (and may replace) the attention output after the output projection (`to_out.0`),
    /// before the residual: Attention-Interpolation's `out_linear`.
    ///
    /// # Shapes
    /// - `out`: `[b, height·width, channels]`
    fn projected(&mut self, site: &AttentionSite, out: Tensor<3>) -> Tensor<3> {
        let _ = site;
        out
    }
}

/// A hook that does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHook;

impl AttentionHook for NoHook {
    fn wants_probabilities(&self, _: &AttentionSite, _: usize) -> bool {
        false
    }
}
