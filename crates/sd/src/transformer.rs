//! `Transformer2DModel` with one `BasicTransformerBlock` (diffusers `transformer_2d.py`,
//! `attention.py`): self-attention, cross-attention on the text, and a GEGLU feed-forward, between
//! a GroupNorm + projection in and a projection out.

use burn::module::Module;
use burn::nn::{GroupNorm, LayerNorm, Linear};
use burn::tensor::Tensor;
use burn::tensor::activation::gelu;

use crate::attention;
use crate::hooks::{AttentionHook, AttentionKind, AttentionSite, HeadPart};
use crate::nn::{group_norm, layer_norm, linear};
use crate::weights::{LoadError, Loader};

/// Sizes of one spatial transformer.
#[derive(Debug, Clone, Copy)]
pub struct TransformerSpec {
    /// Channels in and out (= heads × head width).
    pub channels: usize,
    /// Attention heads.
    pub heads: usize,
    /// Width of the text embeddings.
    pub context_dim: usize,
    /// GroupNorm groups.
    pub groups: usize,
}

/// Query, key, value and output projections of one attention layer.
#[derive(Module, Debug)]
pub struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
}

impl Attention {
    fn load(
        l: &mut Loader,
        name: &str,
        dim: usize,
        kv_dim: usize,
        heads: usize,
    ) -> Result<Self, LoadError> {
        Ok(Self {
            to_q: linear(l, &format!("{name}.to_q"), dim, dim, false)?,
            to_k: linear(l, &format!("{name}.to_k"), kv_dim, dim, false)?,
            to_v: linear(l, &format!("{name}.to_v"), kv_dim, dim, false)?,
            to_out: linear(l, &format!("{name}.to_out.0"), dim, dim, true)?,
            heads,
        })
    }

    /// # Shapes
    /// - `x`: `[b, n, dim]`, `context`: `[b, m, kv_dim]` → `[b, n, dim]`
    fn forward(
        &self,
        x: Tensor<3>,
        context: Tensor<3>,
        site: &AttentionSite,
        hook: &mut dyn AttentionHook,
    ) -> Tensor<3> {
        let mut split = |part, x| hook.heads(site, part, attention::split_heads(x, self.heads));
        let q = split(HeadPart::Query, self.to_q.forward(x));
        let k = split(HeadPart::Key, self.to_k.forward(context.clone()));
        let v = split(HeadPart::Value, self.to_v.forward(context));
        let keys = k.dims()[2];
        let out = if hook.wants_probabilities(site, keys) {
            hook.probabilities(site, attention::head_probabilities(q, k, None))
                .matmul(v)
        } else {
            let limit = attention::score_limit(&q.device());
            attention::chunked(q, k, v, None, limit)
        };
        let out = hook.output(site, attention::join_heads(out));
        hook.projected(site, self.to_out.forward(out))
    }
}

/// The spatial transformer.
#[derive(Module, Debug)]
pub struct SpatialTransformer {
    norm: GroupNorm,
    proj_in: Linear,
    norm1: LayerNorm,
    attn1: Attention,
    norm2: LayerNorm,
    attn2: Attention,
    norm3: LayerNorm,
    ff_in: Linear,
    ff_out: Linear,
    proj_out: Linear,
    channels: usize,
}

impl SpatialTransformer {
    /// Loads `{name}.norm`, `.proj_in` (1×1 conv or linear: both load as linear), the block
    /// `.transformer_blocks.0.*` and `.proj_out`.
    pub fn load(l: &mut Loader, name: &str, s: TransformerSpec) -> Result<Self, LoadError> {
        let c = s.channels;
        let block = format!("{name}.transformer_blocks.0");
        let ff = 4 * c;
        Ok(Self {
            norm: group_norm(l, &format!("{name}.norm"), s.groups, c, 1e-6)?,
            proj_in: linear(l, &format!("{name}.proj_in"), c, c, true)?,
            norm1: layer_norm(l, &format!("{block}.norm1"), c, 1e-5)?,
            attn1: Attention::load(l, &format!("{block}.attn1"), c, c, s.heads)?,
            norm2: layer_norm(l, &format!("{block}.norm2"), c, 1e-5)?,
            attn2: Attention::load(l, &format!("{block}.attn2"), c, s.context_dim, s.heads)?,
            norm3: layer_norm(l, &format!("{block}.norm3"), c, 1e-5)?,
            ff_in: linear(l, &format!("{block}.ff.net.0.proj"), c, 2 * ff, true)?,
            ff_out: linear(l, &format!("{block}.ff.net.2"), ff, c, true)?,
            proj_out: linear(l, &format!("{name}.proj_out"), c, c, true)?,
            channels: c,
        })
    }

    /// Channels in and out.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Attention heads.
    pub fn heads(&self) -> usize {
        self.attn1.heads
    }

    /// # Shapes
    /// - `x`: `[b, c, h, w]`, `context`: `[b, m, context_dim]` → `[b, c, h, w]`
    pub fn forward(
        &self,
        x: Tensor<4>,
        context: &Tensor<3>,
        name: &str,
        hook: &mut dyn AttentionHook,
    ) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let tokens = self
            .norm
            .forward(x.clone())
            .reshape([b, c, h * w])
            .swap_dims(1, 2);
        let t = self.proj_in.forward(tokens);
        let site = |kind| AttentionSite {
            layer: name.to_owned(),
            kind,
            height: h,
            width: w,
        };
        let n = self.norm1.forward(t.clone());
        let t = t + self
            .attn1
            .forward(n.clone(), n, &site(AttentionKind::SelfAttention), hook);
        let n = self.norm2.forward(t.clone());
        let t = t + self.attn2.forward(
            n,
            context.clone(),
            &site(AttentionKind::CrossAttention),
            hook,
        );
        let t = t.clone() + self.feed_forward(self.norm3.forward(t));
        let out = self
            .proj_out
            .forward(t)
            .swap_dims(1, 2)
            .reshape([b, c, h, w]);
        out + x
    }

    /// GEGLU: `(a * gelu(g)) W` where `[a, g]` are the two halves of the first projection, in
    /// chunks of tokens whose projection fits the buffer limit (SD 2.1's 96² latents would need
    /// 189 MB at once).
    fn feed_forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, n, _] = x.dims();
        let two_ff = self.ff_in.weight.dims()[1];
        let per_token = (b * two_ff) as u64 * 4;
        let rows = (crate::limits::buffer_limit() / per_token.max(1)).max(1) as usize;
        if rows >= n {
            return self.geglu(x);
        }
        let chunks: Vec<Tensor<3>> = (0..n)
            .step_by(rows)
            .map(|start| self.geglu(x.clone().narrow(1, start, rows.min(n - start))))
            .collect();
        Tensor::cat(chunks, 1)
    }

    fn geglu(&self, x: Tensor<3>) -> Tensor<3> {
        let projected = self.ff_in.forward(x);
        let [b, n, two_ff] = projected.dims();
        let ff = two_ff / 2;
        let a = projected.clone().slice([0..b, 0..n, 0..ff]);
        let g = projected.slice([0..b, 0..n, ff..two_ff]);
        self.ff_out.forward(a * gelu(g))
    }
}
