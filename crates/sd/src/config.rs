//! Model configurations as data. Each constructor cites the upstream `config.json` it mirrors; the
//! same types are read from a diffusers folder's `config.json` files (unknown fields ignored).

use serde::Deserialize;

use crate::weights::LoadError;

/// CLIP text encoder (`CLIPTextModel`'s `config.json`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ClipConfig {
    /// Vocabulary size (49408 for every SD text encoder).
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Number of transformer layers stored.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Sequence length (77).
    pub max_position_embeddings: usize,
    /// `quick_gelu` (SD 1.x, OpenAI CLIP) or `gelu` (SD 2.x, OpenCLIP).
    pub hidden_act: Activation,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// End-of-text token; the pooled output is taken at its first position (2: legacy configs, the highest id).
    #[serde(default = "default_eos")]
    pub eos_token_id: u32,
}

fn default_eps() -> f64 {
    1e-5
}

fn default_eos() -> u32 {
    49407
}

/// The MLP activation of the text encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x * sigmoid(1.702 x)`.
    QuickGelu,
    /// The exact (erf) GELU.
    Gelu,
}

impl ClipConfig {
    /// SD 1.x: `openai/clip-vit-large-patch14` text model
    /// (`runwayml/stable-diffusion-v1-5/text_encoder/config.json`).
    pub fn sd1() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            max_position_embeddings: 77,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
            eos_token_id: 49407,
        }
    }

    /// SD 2.x: OpenCLIP ViT-H/14 text model as diffusers stores it, with the last of its 24 layers
    /// dropped (`stabilityai/stable-diffusion-2-1/text_encoder/config.json`: 23 layers).
    pub fn sd2() -> Self {
        Self {
            hidden_size: 1024,
            intermediate_size: 4096,
            num_hidden_layers: 23,
            num_attention_heads: 16,
            hidden_act: Activation::Gelu,
            ..Self::sd1()
        }
    }

    /// Parses a `config.json`; `file` names it in errors.
    pub fn from_json(file: &str, text: &str) -> Result<Self, LoadError> {
        let config: Self = parse(file, text)?;
        config.validate(file)?;
        Ok(config)
    }

    /// Refuses sizes over the engine's limits (read from a file or inferred from weights),
    /// before anything is allocated; `file` names the source in the error.
    pub fn validate(&self, file: &str) -> Result<(), LoadError> {
        within_limits(
            file,
            &[
                ("vocab_size", self.vocab_size, MAX_VOCAB),
                ("hidden_size", self.hidden_size, MAX_WIDTH),
                ("intermediate_size", self.intermediate_size, MAX_WIDTH),
                ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
                ("num_attention_heads", self.num_attention_heads, MAX_HEADS),
                (
                    "max_position_embeddings",
                    self.max_position_embeddings,
                    MAX_POSITIONS,
                ),
            ],
        )
    }
}

/// The largest width (channels, hidden or MLP size) a config may give: 32768, over 6× SD XL's
/// largest (5120). Checked before anything is allocated, so that a hostile or broken config is
/// refused with this limit named instead of asking for terabytes.
pub const MAX_WIDTH: usize = 32_768;
/// The most layers a config may give.
pub const MAX_LAYERS: usize = 256;
/// The most resolution levels a UNet or VAE config may give (SD's have 4).
pub const MAX_LEVELS: usize = 16;
/// The most attention heads a config may give.
pub const MAX_HEADS: usize = 1024;
/// The largest vocabulary a text encoder config may give (SD's is 49408).
pub const MAX_VOCAB: usize = 1 << 20;
/// The longest token sequence a text encoder config may give (SD's is 77).
pub const MAX_POSITIONS: usize = 8192;

/// The limits shared by the UNet's and the VAE's configs: levels, their channels, channels in
/// and out, and resnets per block.
fn level_limits(
    channels: &[usize],
    (in_channels, out_channels): (usize, usize),
    layers_per_block: usize,
) -> Vec<(&'static str, usize, usize)> {
    let mut limits = vec![
        ("levels (block_out_channels)", channels.len(), MAX_LEVELS),
        ("in_channels", in_channels, MAX_WIDTH),
        ("out_channels", out_channels, MAX_WIDTH),
        ("layers_per_block", layers_per_block, MAX_LAYERS),
    ];
    limits.extend(
        channels
            .iter()
            .map(|&c| ("block_out_channels", c, MAX_WIDTH)),
    );
    limits
}

/// Refuses the first `(field, value, limit)` whose value is over its limit (or zero).
fn within_limits(file: &str, values: &[(&str, usize, usize)]) -> Result<(), LoadError> {
    match values.iter().find(|(_, v, limit)| *v == 0 || v > limit) {
        Some((field, value, limit)) => Err(LoadError::Config {
            file: file.to_owned(),
            problem: format!("{field} is {value}; Keyshift accepts 1 to {limit}"),
        }),
        None => Ok(()),
    }
}

/// UNet2DConditionModel (`unet/config.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct UnetConfig {
    /// Latent channels in.
    pub in_channels: usize,
    /// Latent channels out.
    pub out_channels: usize,
    /// Channels per resolution level, outermost first.
    pub block_out_channels: Vec<usize>,
    /// Resnets per down block (up blocks have one more).
    pub layers_per_block: usize,
    /// Per level: whether the block has cross-attention transformers.
    pub cross_attention: Vec<bool>,
    /// Attention heads per level (diffusers' `attention_head_dim`, which for SD means heads).
    pub attention_heads: Vec<usize>,
    /// Text embedding width.
    pub cross_attention_dim: usize,
    /// Transformer `proj_in`/`proj_out` are linear layers (SD 2.x) instead of 1×1 convs.
    pub use_linear_projection: bool,
    /// Attention in f32 even for half-precision weights (SD 2.1).
    pub upcast_attention: bool,
    /// GroupNorm groups.
    pub norm_num_groups: usize,
    /// GroupNorm epsilon of resnets.
    pub norm_eps: f64,
    /// Sinusoidal timestep embedding: cosine half first.
    pub flip_sin_to_cos: bool,
    /// Sinusoidal timestep embedding: frequency shift.
    pub freq_shift: f64,
    /// Width of the guidance-scale embedding an LCM-distilled UNet takes
    /// (`time_cond_proj_dim`, 256 for `SimianLuo/LCM_Dreamshaper_v7`); `None` for ordinary models.
    pub time_cond_proj_dim: Option<usize>,
}

impl UnetConfig {
    /// SD 1.5 (`runwayml/stable-diffusion-v1-5/unet/config.json`).
    pub fn sd1() -> Self {
        Self {
            in_channels: 4,
            out_channels: 4,
            block_out_channels: vec![320, 640, 1280, 1280],
            layers_per_block: 2,
            cross_attention: vec![true, true, true, false],
            attention_heads: vec![8, 8, 8, 8],
            cross_attention_dim: 768,
            use_linear_projection: false,
            upcast_attention: false,
            norm_num_groups: 32,
            norm_eps: 1e-5,
            flip_sin_to_cos: true,
            freq_shift: 0.0,
            time_cond_proj_dim: None,
        }
    }

    /// SD 2.1 (`stabilityai/stable-diffusion-2-1/unet/config.json`): heads of 64 channels.
    pub fn sd2() -> Self {
        Self {
            attention_heads: vec![5, 10, 20, 20],
            cross_attention_dim: 1024,
            use_linear_projection: true,
            upcast_attention: true,
            ..Self::sd1()
        }
    }

    /// Number of resolution levels.
    pub fn levels(&self) -> usize {
        self.block_out_channels.len()
    }

    /// Time embedding width (4 × the first level's channels).
    pub fn time_embed_dim(&self) -> usize {
        self.block_out_channels.first().copied().unwrap_or(0) * 4
    }

    /// Parses a diffusers `config.json`; `file` names it in errors.
    pub fn from_json(file: &str, text: &str) -> Result<Self, LoadError> {
        let raw: RawUnet = parse(file, text)?;
        raw.into_config(file)
    }

    /// Refuses sizes over the engine's limits (read from a file or inferred from weights).
    pub fn validate(&self, file: &str) -> Result<(), LoadError> {
        let mut limits = level_limits(
            &self.block_out_channels,
            (self.in_channels, self.out_channels),
            self.layers_per_block,
        );
        limits.push(("cross_attention_dim", self.cross_attention_dim, MAX_WIDTH));
        let heads = self.attention_heads.iter();
        limits.extend(heads.map(|&h| ("attention heads", h, MAX_HEADS)));
        within_limits(file, &limits)
    }
}

#[derive(Deserialize)]
struct RawUnet {
    in_channels: usize,
    /// Absent from ControlNet configs.
    #[serde(default = "four")]
    out_channels: usize,
    block_out_channels: Vec<usize>,
    layers_per_block: usize,
    down_block_types: Vec<String>,
    attention_head_dim: OneOrMany,
    #[serde(default)]
    num_attention_heads: Option<OneOrMany>,
    cross_attention_dim: usize,
    #[serde(default)]
    use_linear_projection: bool,
    #[serde(default)]
    upcast_attention: bool,
    #[serde(default = "default_groups")]
    norm_num_groups: usize,
    #[serde(default = "default_eps")]
    norm_eps: f64,
    #[serde(default = "yes")]
    flip_sin_to_cos: bool,
    #[serde(default)]
    freq_shift: f64,
    #[serde(default = "one")]
    transformer_layers_per_block: OneOrMany,
    #[serde(default)]
    time_cond_proj_dim: Option<usize>,
}

fn default_groups() -> usize {
    32
}
fn four() -> usize {
    4
}
fn yes() -> bool {
    true
}
fn one() -> OneOrMany {
    OneOrMany::One(1)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(usize),
    Many(Vec<usize>),
}

impl OneOrMany {
    fn per_level(&self, levels: usize) -> Vec<usize> {
        match self {
            Self::One(n) => vec![*n; levels],
            Self::Many(v) => v.clone(),
        }
    }
}

impl RawUnet {
    fn into_config(self, file: &str) -> Result<UnetConfig, LoadError> {
        let levels = self.block_out_channels.len();
        let bad = |problem: String| LoadError::Config {
            file: file.to_owned(),
            problem,
        };
        // diffusers: `num_attention_heads = num_attention_heads or attention_head_dim` (the SD
        // configs name the head count `attention_head_dim`).
        let heads = self
            .num_attention_heads
            .as_ref()
            .unwrap_or(&self.attention_head_dim)
            .per_level(levels);
        let cross_attention: Vec<bool> = self
            .down_block_types
            .iter()
            .map(|t| t.starts_with("CrossAttn"))
            .collect();
        if heads.len() != levels || cross_attention.len() != levels {
            return Err(bad(format!(
                "{levels} levels but {} head counts and {} down blocks",
                heads.len(),
                cross_attention.len()
            )));
        }
        if self
            .transformer_layers_per_block
            .per_level(levels)
            .iter()
            .any(|&n| n != 1)
        {
            return Err(bad(
                "only one transformer layer per block is supported (SD 1.x/2.x)".into(),
            ));
        }
        let config = UnetConfig {
            in_channels: self.in_channels,
            out_channels: self.out_channels,
            block_out_channels: self.block_out_channels,
            layers_per_block: self.layers_per_block,
            cross_attention,
            attention_heads: heads,
            cross_attention_dim: self.cross_attention_dim,
            use_linear_projection: self.use_linear_projection,
            upcast_attention: self.upcast_attention,
            norm_num_groups: self.norm_num_groups,
            norm_eps: self.norm_eps,
            flip_sin_to_cos: self.flip_sin_to_cos,
            freq_shift: self.freq_shift,
            time_cond_proj_dim: self.time_cond_proj_dim,
        };
        config.validate(file)?;
        Ok(config)
    }
}

/// AutoencoderKL (`vae/config.json`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VaeConfig {
    /// Image channels in.
    #[serde(default = "three")]
    pub in_channels: usize,
    /// Image channels out.
    #[serde(default = "three")]
    pub out_channels: usize,
    /// Channels per level, outermost first.
    pub block_out_channels: Vec<usize>,
    /// Resnets per encoder block (decoder blocks have one more).
    pub layers_per_block: usize,
    /// Latent channels.
    pub latent_channels: usize,
    /// GroupNorm groups.
    #[serde(default = "default_groups")]
    pub norm_num_groups: usize,
    /// Latents are multiplied by this after encoding and divided before decoding.
    #[serde(default = "sd_scale")]
    pub scaling_factor: f64,
}

fn three() -> usize {
    3
}
fn sd_scale() -> f64 {
    0.18215
}

impl VaeConfig {
    /// SD 1.x/2.x VAE (`runwayml/stable-diffusion-v1-5/vae/config.json`).
    pub fn sd() -> Self {
        Self {
            in_channels: 3,
            out_channels: 3,
            block_out_channels: vec![128, 256, 512, 512],
            layers_per_block: 2,
            latent_channels: 4,
            norm_num_groups: 32,
            scaling_factor: 0.18215,
        }
    }

    /// Image pixels per latent pixel.
    pub fn downscale(&self) -> usize {
        1 << self.block_out_channels.len().saturating_sub(1)
    }

    /// Parses a diffusers `config.json`; `file` names it in errors.
    pub fn from_json(file: &str, text: &str) -> Result<Self, LoadError> {
        let config: Self = parse(file, text)?;
        config.validate(file)?;
        Ok(config)
    }

    /// Refuses sizes over the engine's limits (read from a file or inferred from weights).
    pub fn validate(&self, file: &str) -> Result<(), LoadError> {
        let mut limits = level_limits(
            &self.block_out_channels,
            (self.in_channels, self.out_channels),
            self.layers_per_block,
        );
        limits.push(("latent_channels", self.latent_channels, MAX_WIDTH));
        limits.push(("norm_num_groups", self.norm_num_groups, MAX_WIDTH));
        within_limits(file, &limits)
    }
}

fn parse<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, LoadError> {
    serde_json::from_str(text).map_err(|e| LoadError::Config {
        file: file.to_owned(),
        problem: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sd2_style_config_reads_heads_per_level() {
        let text = r#"{"in_channels":4,"out_channels":4,"block_out_channels":[320,640,1280,1280],
            "layers_per_block":2,"down_block_types":["CrossAttnDownBlock2D","CrossAttnDownBlock2D","CrossAttnDownBlock2D","DownBlock2D"],
            "attention_head_dim":[5,10,20,20],"cross_attention_dim":1024,"use_linear_projection":true,"upcast_attention":true}"#;
        assert_eq!(UnetConfig::from_json("c", text).unwrap(), UnetConfig::sd2());
    }

    #[test]
    fn absurd_sizes_are_refused_naming_the_limit() {
        let unet = r#"{"in_channels":4,"out_channels":4,"block_out_channels":[3000000000,64],
            "layers_per_block":2,"down_block_types":["DownBlock2D","CrossAttnDownBlock2D"],
            "attention_head_dim":8,"cross_attention_dim":32}"#;
        let err = UnetConfig::from_json("unet/config.json", unet).unwrap_err();
        assert!(
            err.to_string()
                .contains("block_out_channels is 3000000000; Keyshift accepts 1 to 32768"),
            "{err}"
        );
        let clip = r#"{"vocab_size":49408,"hidden_size":32,"intermediate_size":37,
            "num_hidden_layers":100000,"num_attention_heads":4,"max_position_embeddings":77,
            "hidden_act":"quick_gelu"}"#;
        let err = ClipConfig::from_json("text_encoder/config.json", clip).unwrap_err();
        assert!(
            err.to_string().contains("num_hidden_layers is 100000"),
            "{err}"
        );
        let vae = r#"{"block_out_channels":[32,64],"layers_per_block":1,"latent_channels":0}"#;
        let err = VaeConfig::from_json("vae/config.json", vae).unwrap_err();
        assert!(err.to_string().contains("latent_channels is 0"), "{err}");
    }

    #[test]
    fn a_config_with_mismatched_lists_is_refused_by_name() {
        let text = r#"{"in_channels":4,"out_channels":4,"block_out_channels":[32,64],"layers_per_block":2,
            "down_block_types":["DownBlock2D"],"attention_head_dim":8,"cross_attention_dim":32}"#;
        let err = UnetConfig::from_json("unet/config.json", text).unwrap_err();
        assert!(err.to_string().contains("unet/config.json"), "{err}");
    }
}
