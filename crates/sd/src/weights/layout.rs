//! The CompVis / A1111 single-file key layout, mapped from the diffusers names the blocks use.
//!
//! The mapping mirrors the layout of the original `ldm` code (`openaimodel.UNetModel`,
//! `autoencoder.AutoencoderKL`, `FrozenCLIPEmbedder` / `FrozenOpenCLIPEmbedder`) that every A1111
//! checkpoint is saved from; it is the inverse of diffusers' `convert_from_ckpt` renames.

use super::{KeyMap, Stored};

/// Prefix of the UNet in a single-file checkpoint.
pub const UNET_PREFIX: &str = "model.diffusion_model.";
/// Prefix of the VAE.
pub const VAE_PREFIX: &str = "first_stage_model.";
/// Prefix of the SD 1.x text encoder (a Hugging Face CLIPTextModel inside).
pub const CLIP_PREFIX: &str = "cond_stage_model.transformer.";
/// Prefix of the SD 2.x text encoder (an OpenCLIP model).
pub const OPEN_CLIP_PREFIX: &str = "cond_stage_model.model.";

/// UNet names → `model.diffusion_model.*`.
#[derive(Debug, Clone)]
pub struct UnetLayout {
    /// Resnets per down block (`layers_per_block`).
    pub layers_per_block: usize,
    /// For each down block (outermost first), whether it has cross-attention.
    pub has_attention: Vec<bool>,
}

impl KeyMap for UnetLayout {
    fn map(&self, name: &str) -> Stored {
        Stored::key(format!("{UNET_PREFIX}{}", self.rename(name)))
    }
}

impl UnetLayout {
    /// The name in the original layout, without the prefix.
    pub(crate) fn rename(&self, name: &str) -> String {
        let per = self.layers_per_block + 1;
        let parts = Parts::of(name);
        let (num, rest) = (|i| parts.num(i), |i| parts.rest(i));
        match parts.0.as_slice() {
            ["time_embedding", "linear_1", ..] => format!("time_embed.0.{}", rest(2)),
            ["time_embedding", "linear_2", ..] => format!("time_embed.2.{}", rest(2)),
            ["conv_in", ..] => format!("input_blocks.0.0.{}", rest(1)),
            ["conv_norm_out", ..] => format!("out.0.{}", rest(1)),
            ["conv_out", ..] => format!("out.2.{}", rest(1)),
            ["down_blocks", _, "resnets", ..] => {
                format!(
                    "input_blocks.{}.0.{}",
                    1 + num(1) * per + num(3),
                    resnet(&rest(4))
                )
            }
            ["down_blocks", _, "attentions", ..] => {
                format!("input_blocks.{}.1.{}", 1 + num(1) * per + num(3), rest(4))
            }
            ["down_blocks", _, "downsamplers", _, "conv", ..] => {
                format!("input_blocks.{}.0.op.{}", (num(1) + 1) * per, rest(5))
            }
            ["mid_block", "resnets", ..] => {
                format!("middle_block.{}.{}", 2 * num(2), resnet(&rest(3)))
            }
            ["mid_block", "attentions", ..] => format!("middle_block.1.{}", rest(3)),
            ["up_blocks", _, "resnets", ..] => {
                format!(
                    "output_blocks.{}.0.{}",
                    num(1) * per + num(3),
                    resnet(&rest(4))
                )
            }
            ["up_blocks", _, "attentions", ..] => {
                format!("output_blocks.{}.1.{}", num(1) * per + num(3), rest(4))
            }
            ["up_blocks", _, "upsamplers", _, "conv", ..] => {
                let level = self.has_attention.len().saturating_sub(1 + num(1));
                let slot = if self.has_attention.get(level).copied().unwrap_or(false) {
                    2
                } else {
                    1
                };
                format!(
                    "output_blocks.{}.{slot}.conv.{}",
                    num(1) * per + self.layers_per_block,
                    rest(5)
                )
            }
            _ => name.to_owned(),
        }
    }
}

/// ControlNet names → the original single file's (`control_model.input_blocks…`, the hint
/// encoder `input_hint_block.N`, `zero_convs.N.0`, `middle_block_out.0`), under `prefix`
/// (`control_model.`, or nothing for files saved without it).
#[derive(Debug, Clone)]
pub struct ControlLayout {
    /// Before every key.
    pub prefix: String,
    unet: UnetLayout,
    hint_blocks: usize,
}

impl ControlLayout {
    /// The layout of a ControlNet of config `c` under `prefix`.
    pub fn new(prefix: &str, c: &crate::controlnet::ControlNetConfig) -> Self {
        Self {
            prefix: prefix.to_owned(),
            unet: UnetLayout {
                layers_per_block: c.unet.layers_per_block,
                has_attention: c.unet.cross_attention.clone(),
            },
            hint_blocks: 2 * c.hint_channels.len().saturating_sub(1),
        }
    }

    /// The prefix of the original ControlNet layout in `store`, if it holds one.
    pub fn prefix_in(store: &super::WeightStore) -> Option<String> {
        ["control_model.", ""]
            .into_iter()
            .find(|p| store.contains(&format!("{p}zero_convs.0.0.weight")))
            .map(str::to_owned)
    }

    fn rename(&self, name: &str) -> String {
        let parts = Parts::of(name);
        let (num, rest) = (|i| parts.num(i), |i| parts.rest(i));
        match parts.0.as_slice() {
            ["controlnet_cond_embedding", "conv_in", ..] => {
                format!("input_hint_block.0.{}", rest(2))
            }
            ["controlnet_cond_embedding", "blocks", ..] => {
                format!("input_hint_block.{}.{}", 2 * (num(2) + 1), rest(3))
            }
            ["controlnet_cond_embedding", "conv_out", ..] => {
                format!(
                    "input_hint_block.{}.{}",
                    2 * (self.hint_blocks + 1),
                    rest(2)
                )
            }
            ["controlnet_down_blocks", ..] => format!("zero_convs.{}.0.{}", num(1), rest(2)),
            ["controlnet_mid_block", ..] => format!("middle_block_out.0.{}", rest(1)),
            _ => self.unet.rename(name),
        }
    }
}

impl KeyMap for ControlLayout {
    fn map(&self, name: &str) -> Stored {
        Stored::key(format!("{}{}", self.prefix, self.rename(name)))
    }
}

/// A dotted model name split at its dots, read by position.
struct Parts<'a>(Vec<&'a str>);

impl<'a> Parts<'a> {
    fn of(name: &'a str) -> Self {
        Self(name.split('.').collect())
    }

    /// The number at position `i` (0 where there is none).
    fn num(&self, i: usize) -> usize {
        self.0.get(i).and_then(|p| p.parse().ok()).unwrap_or(0)
    }

    /// The parts from position `i` on, joined again.
    fn rest(&self, i: usize) -> String {
        self.0.get(i..).map(|p| p.join(".")).unwrap_or_default()
    }
}

fn resnet(rest: &str) -> String {
    let (head, tail) = rest.split_once('.').unwrap_or((rest, ""));
    let renamed = match head {
        "norm1" => "in_layers.0",
        "conv1" => "in_layers.2",
        "time_emb_proj" => "emb_layers.1",
        "norm2" => "out_layers.0",
        "conv2" => "out_layers.3",
        "conv_shortcut" => "skip_connection",
        other => other,
    };
    format!("{renamed}.{tail}")
}

/// VAE names → `first_stage_model.*`.
#[derive(Debug, Clone)]
pub struct VaeLayout {
    /// Number of resolution levels (`len(block_out_channels)`).
    pub levels: usize,
}

impl KeyMap for VaeLayout {
    fn map(&self, name: &str) -> Stored {
        Stored::key(format!("{VAE_PREFIX}{}", self.rename(name)))
    }
}

impl VaeLayout {
    fn rename(&self, name: &str) -> String {
        let parts = Parts::of(name);
        let (num, rest) = (|i| parts.num(i), |i| parts.rest(i));
        match parts.0.as_slice() {
            [coder, "down_blocks", _, "resnets", ..] => {
                format!(
                    "{coder}.down.{}.block.{}.{}",
                    num(2),
                    num(4),
                    vae_resnet(&rest(5))
                )
            }
            [coder, "down_blocks", _, "downsamplers", ..] => {
                format!("{coder}.down.{}.downsample.{}", num(2), rest(5))
            }
            [coder, "up_blocks", _, "resnets", ..] => {
                let level = self.levels.saturating_sub(1 + num(2));
                format!(
                    "{coder}.up.{level}.block.{}.{}",
                    num(4),
                    vae_resnet(&rest(5))
                )
            }
            [coder, "up_blocks", _, "upsamplers", ..] => {
                let level = self.levels.saturating_sub(1 + num(2));
                format!("{coder}.up.{level}.upsample.{}", rest(5))
            }
            [coder, "mid_block", "resnets", ..] => {
                format!("{coder}.mid.block_{}.{}", num(3) + 1, vae_resnet(&rest(4)))
            }
            [coder, "mid_block", "attentions", _, layer, ..] => {
                let renamed = match *layer {
                    "group_norm" => "norm".to_owned(),
                    "to_q" => "q".to_owned(),
                    "to_k" => "k".to_owned(),
                    "to_v" => "v".to_owned(),
                    "to_out" => return format!("{coder}.mid.attn_1.proj_out.{}", rest(6)),
                    other => other.to_owned(),
                };
                format!("{coder}.mid.attn_1.{renamed}.{}", rest(5))
            }
            [coder, "conv_norm_out", ..] => format!("{coder}.norm_out.{}", rest(2)),
            _ => name.to_owned(),
        }
    }
}

fn vae_resnet(rest: &str) -> String {
    match rest.split_once('.') {
        Some(("conv_shortcut", tail)) => format!("nin_shortcut.{tail}"),
        _ => rest.to_owned(),
    }
}

/// SD 1.x text encoder: the Hugging Face names behind `cond_stage_model.transformer.`.
pub fn clip_layout() -> super::Prefixed {
    super::Prefixed(CLIP_PREFIX.to_owned())
}

/// SD 2.x text encoder: Hugging Face CLIP names → OpenCLIP keys under `cond_stage_model.model.`.
#[derive(Debug, Clone)]
pub struct OpenClipLayout {
    /// Model width; q, k and v are rows `0..w`, `w..2w`, `2w..3w` of `in_proj_*`.
    pub hidden_size: usize,
}

impl KeyMap for OpenClipLayout {
    fn map(&self, name: &str) -> Stored {
        let w = self.hidden_size;
        let name = name.strip_prefix("text_model.").unwrap_or(name);
        let parts = Parts::of(name);
        let rest = |i| parts.rest(i);
        let key = |k: String| Stored::key(format!("{OPEN_CLIP_PREFIX}{k}"));
        match parts.0.as_slice() {
            ["embeddings", "token_embedding", ..] => key(format!("token_embedding.{}", rest(2))),
            ["embeddings", "position_embedding", ..] => key("positional_embedding".to_owned()),
            ["final_layer_norm", ..] => key(format!("ln_final.{}", rest(1))),
            ["encoder", "layers", layer, "self_attn", proj, kind] => {
                let base = format!("{OPEN_CLIP_PREFIX}transformer.resblocks.{layer}.attn.");
                let rows = |i: usize| Some((i * w, (i + 1) * w));
                match *proj {
                    "q_proj" => Stored {
                        key: format!("{base}in_proj_{kind}"),
                        rows: rows(0),
                    },
                    "k_proj" => Stored {
                        key: format!("{base}in_proj_{kind}"),
                        rows: rows(1),
                    },
                    "v_proj" => Stored {
                        key: format!("{base}in_proj_{kind}"),
                        rows: rows(2),
                    },
                    _ => Stored::key(format!("{base}out_proj.{kind}")),
                }
            }
            ["encoder", "layers", layer, module, ..] => {
                let renamed = match *module {
                    "layer_norm1" => "ln_1".to_owned(),
                    "layer_norm2" => "ln_2".to_owned(),
                    "mlp" => match parts.0.get(4).copied() {
                        Some("fc1") => "mlp.c_fc".to_owned(),
                        _ => "mlp.c_proj".to_owned(),
                    },
                    other => other.to_owned(),
                };
                let tail = if *module == "mlp" { rest(5) } else { rest(4) };
                key(format!("transformer.resblocks.{layer}.{renamed}.{tail}"))
            }
            _ => key(name.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unet() -> UnetLayout {
        // SD 1.x: 4 levels, attention in the first three.
        UnetLayout {
            layers_per_block: 2,
            has_attention: vec![true, true, true, false],
        }
    }

    fn key(map: &dyn KeyMap, name: &str) -> String {
        map.map(name).key
    }

    #[test]
    fn sd1_unet_keys_follow_the_ldm_layout() {
        let u = unet();
        let cases = [
            ("time_embedding.linear_2.weight", "time_embed.2.weight"),
            ("conv_in.bias", "input_blocks.0.0.bias"),
            (
                "down_blocks.0.resnets.1.conv1.weight",
                "input_blocks.2.0.in_layers.2.weight",
            ),
            (
                "down_blocks.1.attentions.0.proj_in.weight",
                "input_blocks.4.1.proj_in.weight",
            ),
            (
                "down_blocks.2.downsamplers.0.conv.weight",
                "input_blocks.9.0.op.weight",
            ),
            (
                "down_blocks.3.resnets.1.time_emb_proj.bias",
                "input_blocks.11.0.emb_layers.1.bias",
            ),
            (
                "mid_block.resnets.1.norm2.weight",
                "middle_block.2.out_layers.0.weight",
            ),
            (
                "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                "middle_block.1.transformer_blocks.0.attn2.to_k.weight",
            ),
            (
                "up_blocks.0.resnets.2.conv_shortcut.weight",
                "output_blocks.2.0.skip_connection.weight",
            ),
            (
                "up_blocks.0.upsamplers.0.conv.weight",
                "output_blocks.2.1.conv.weight",
            ),
            (
                "up_blocks.1.upsamplers.0.conv.bias",
                "output_blocks.5.2.conv.bias",
            ),
            (
                "up_blocks.3.attentions.2.norm.weight",
                "output_blocks.11.1.norm.weight",
            ),
            ("conv_out.weight", "out.2.weight"),
        ];
        for (name, stored) in cases {
            assert_eq!(
                key(&u, name),
                format!("model.diffusion_model.{stored}"),
                "{name}"
            );
        }
    }

    #[test]
    fn vae_keys_follow_the_ldm_layout() {
        let v = VaeLayout { levels: 4 };
        let cases = [
            (
                "encoder.down_blocks.1.resnets.0.conv_shortcut.weight",
                "encoder.down.1.block.0.nin_shortcut.weight",
            ),
            (
                "encoder.down_blocks.0.downsamplers.0.conv.bias",
                "encoder.down.0.downsample.conv.bias",
            ),
            (
                "encoder.mid_block.attentions.0.to_out.0.weight",
                "encoder.mid.attn_1.proj_out.weight",
            ),
            (
                "decoder.mid_block.attentions.0.group_norm.bias",
                "decoder.mid.attn_1.norm.bias",
            ),
            (
                "decoder.mid_block.resnets.1.conv2.weight",
                "decoder.mid.block_2.conv2.weight",
            ),
            (
                "decoder.up_blocks.0.resnets.2.norm1.weight",
                "decoder.up.3.block.2.norm1.weight",
            ),
            (
                "decoder.up_blocks.2.upsamplers.0.conv.weight",
                "decoder.up.1.upsample.conv.weight",
            ),
            ("decoder.conv_norm_out.weight", "decoder.norm_out.weight"),
            ("post_quant_conv.bias", "post_quant_conv.bias"),
        ];
        for (name, stored) in cases {
            assert_eq!(
                key(&v, name),
                format!("first_stage_model.{stored}"),
                "{name}"
            );
        }
    }

    #[test]
    fn open_clip_splits_in_proj_into_q_k_v_rows() {
        let m = OpenClipLayout { hidden_size: 1024 };
        let k = m.map("text_model.encoder.layers.3.self_attn.k_proj.weight");
        assert_eq!(
            k.key,
            "cond_stage_model.model.transformer.resblocks.3.attn.in_proj_weight"
        );
        assert_eq!(k.rows, Some((1024, 2048)));
        let cases = [
            (
                "text_model.encoder.layers.0.self_attn.out_proj.bias",
                "transformer.resblocks.0.attn.out_proj.bias",
            ),
            (
                "text_model.encoder.layers.0.mlp.fc2.weight",
                "transformer.resblocks.0.mlp.c_proj.weight",
            ),
            (
                "text_model.encoder.layers.22.layer_norm2.bias",
                "transformer.resblocks.22.ln_2.bias",
            ),
            (
                "text_model.embeddings.position_embedding.weight",
                "positional_embedding",
            ),
            ("text_model.final_layer_norm.weight", "ln_final.weight"),
        ];
        for (name, stored) in cases {
            assert_eq!(
                key(&m, name),
                format!("cond_stage_model.model.{stored}"),
                "{name}"
            );
        }
    }
}
