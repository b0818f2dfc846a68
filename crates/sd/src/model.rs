//! A whole Stable Diffusion model (text encoder, UNet, VAE) loaded from the layouts users have:
//! the diffusers folder, or a CompVis/A1111 single `.safetensors` file whose architecture is
//! inferred from its key shapes (plus its `.yaml` where one is given).

use burn::tensor::Device;
use keyshift_core::schedule::ScheduleConfig;
pub use keyshift_core::weights::YamlHints;

use crate::clip::ClipTextModel;
use crate::config::{Activation, ClipConfig, UnetConfig, VaeConfig};
use crate::unet::Unet;
use crate::vae::Vae;
use crate::weights::layout::{
    self, CLIP_PREFIX, OPEN_CLIP_PREFIX, OpenClipLayout, UNET_PREFIX, UnetLayout, VAE_PREFIX,
    VaeLayout,
};
use crate::weights::{
    ByteSource, KeyMap, LoadError, Loader, Precision, Prefixed, SafetensorsFile, WeightStore,
    encode_saved, stream::StreamingWriter,
};

/// What the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prediction {
    /// The noise ε (SD 1.x, SD 2.x base).
    Epsilon,
    /// v = α·ε − σ·x₀ (SD 2.x 768-v).
    V,
}

/// Which layout the weights came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `unet/`, `vae/`, `text_encoder/` folders.
    Diffusers,
    /// One CompVis/A1111 checkpoint.
    SingleFile,
}

/// The architecture of a loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Text encoder.
    pub clip: ClipConfig,
    /// UNet.
    pub unet: UnetConfig,
    /// VAE.
    pub vae: VaeConfig,
    /// ε or v prediction.
    pub prediction: Prediction,
    /// The CLIP skip that gives the model's native conditioning (1; 2 for a 24-layer OpenCLIP).
    pub native_clip_skip: usize,
    /// Source layout.
    pub layout: Layout,
    /// How the weights are held.
    pub precision: Precision,
    /// The noise schedule it was trained with (`scheduler/scheduler_config.json`; SD 1.5's, or
    /// SD 2.x-v's for a v-prediction single file).
    pub schedule: ScheduleConfig,
}

impl ModelInfo {
    /// SD 1.5 as diffusers configures it, in f32: the shape that size and buffer plans are
    /// worked out for before a model's own files say otherwise.
    pub fn sd15() -> Self {
        Self {
            clip: ClipConfig::sd1(),
            unet: UnetConfig::sd1(),
            vae: VaeConfig::sd(),
            prediction: Prediction::Epsilon,
            native_clip_skip: 1,
            layout: Layout::Diffusers,
            precision: Precision::F32,
            schedule: ScheduleConfig::sd15(),
        }
    }
}

/// A loaded model.
#[derive(Debug)]
pub struct SdModel {
    /// Text encoder.
    pub clip: ClipTextModel,
    /// UNet.
    pub unet: Unet,
    /// VAE.
    pub vae: Vae,
    /// Architecture.
    pub info: ModelInfo,
}

/// Files of a diffusers folder, by relative path (`unet/config.json`). Natively a directory; in
/// the browser OPFS or fetched files.
pub trait Folder {
    /// The text of a file, or `None` if absent.
    fn read_text(&self, path: &str) -> Option<String>;
    /// A byte source for a file, or `None` if absent.
    fn open(&self, path: &str) -> Option<Box<dyn ByteSource>>;
}

/// A diffusers folder on disk.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone)]
pub struct DirFolder(pub std::path::PathBuf);

#[cfg(not(target_arch = "wasm32"))]
impl Folder for DirFolder {
    #[allow(clippy::disallowed_methods, reason = "native-only folder")]
    fn read_text(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.0.join(path)).ok()
    }

    fn open(&self, path: &str) -> Option<Box<dyn ByteSource>> {
        let source = crate::weights::FileSource::open(&self.0.join(path)).ok()?;
        Some(Box::new(source))
    }
}

const WEIGHT_NAMES: [&str; 2] = ["diffusion_pytorch_model", "model"];
const VARIANTS: [&str; 4] = [
    "int8.safetensors",
    "safetensors",
    "fp16.safetensors",
    "bf16.safetensors",
];

/// The weights of component `dir` of a diffusers folder (`""`: a folder that is one component,
/// as a ControlNet's), the int8 variant first.
pub(crate) fn open_component(folder: &dyn Folder, dir: &str) -> Result<SafetensorsFile, LoadError> {
    let in_dir = |file: &str| {
        if dir.is_empty() {
            file.to_owned()
        } else {
            format!("{dir}/{file}")
        }
    };
    for name in WEIGHT_NAMES {
        for ext in VARIANTS {
            let path = in_dir(&format!("{name}.{ext}"));
            if let Some(source) = folder.open(&path) {
                return SafetensorsFile::open(&path, source);
            }
        }
    }
    Err(LoadError::Io {
        file: in_dir("diffusion_pytorch_model.safetensors"),
        message: "not found".into(),
    })
}

fn read_config(folder: &dyn Folder, path: &str) -> Result<String, LoadError> {
    folder.read_text(path).ok_or_else(|| LoadError::Config {
        file: path.to_owned(),
        problem: "not found".into(),
    })
}

/// SD 1.5's schedule, or SD 2.x-v's for v-prediction.
fn default_schedule(prediction: Prediction) -> ScheduleConfig {
    match prediction {
        Prediction::Epsilon => ScheduleConfig::sd15(),
        Prediction::V => ScheduleConfig::sd21_v(),
    }
}

fn ignorable(key: &str) -> bool {
    key.ends_with("position_ids")
        || key.ends_with("logit_scale")
        || key.ends_with("text_projection")
        || key.ends_with("attn_mask")
}

/// The configuration files of a diffusers folder, copied beside quantized weights.
const CONFIG_FILES: [&str; 10] = [
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "unet/config.json",
    "vae/config.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "feature_extractor/preprocessor_config.json",
];

/// Where a diffusers component's weights are written when saved.
/// Where [`SdModel::load_diffusers_preparing`]'s files go in the folder, per component.
pub const PREPARED_WEIGHTS: [&str; 3] = [
    "text_encoder/model.int8.safetensors",
    "unet/diffusion_pytorch_model.int8.safetensors",
    "vae/diffusion_pytorch_model.int8.safetensors",
];

const SAVED_WEIGHTS: [(&str, &str); 3] = [
    ("text_encoder", "text_encoder/model.safetensors"),
    ("unet", "unet/diffusion_pytorch_model.safetensors"),
    ("vae", "vae/diffusion_pytorch_model.safetensors"),
];

/// A file to write: its path relative to the model, and its bytes.
pub type NamedFile = (String, Vec<u8>);

/// A model loaded at [`Precision::Int8`] and the files that hold it as loaded: loading those
/// files again gives the same model, bit for bit.
#[derive(Debug)]
pub struct Int8Model {
    /// The model.
    pub model: SdModel,
    /// `(relative path, bytes)`: for a diffusers folder its weights and configuration files; for
    /// a single file one entry with an empty path.
    pub files: Vec<NamedFile>,
}

impl SdModel {
    /// Loads a diffusers folder (`text_encoder/`, `unet/`, `vae/`, `scheduler/`) in f32.
    pub fn load_diffusers(folder: &dyn Folder, device: &Device) -> Result<Self, LoadError> {
        Self::load_diffusers_at(folder, Precision::F32, device)
    }

    /// Loads a diffusers folder at `precision` (a folder saved quantized loads as int8 anyway).
    pub fn load_diffusers_at(
        folder: &dyn Folder,
        precision: Precision,
        device: &Device,
    ) -> Result<Self, LoadError> {
        Self::diffusers(folder, precision, false, Vec::new(), device).map(|(model, _, _)| model)
    }

    /// Loads a diffusers folder at [`Precision::Int8`] and returns the files that hold it.
    pub fn quantize_diffusers(
        folder: &dyn Folder,
        device: &Device,
    ) -> Result<Int8Model, LoadError> {
        let (model, mut files, _) =
            Self::diffusers(folder, Precision::Int8, true, Vec::new(), device)?;
        for path in CONFIG_FILES {
            if let Some(text) = folder.read_text(path) {
                files.push((path.to_owned(), text.into_bytes()));
            }
        }
        Ok(Int8Model { model, files })
    }

    /// Loads a diffusers folder at [`Precision::Int8`], writing the int8 model to `writers` as
    /// it loads, one tensor at a time: one writer per component, in the order of
    /// [`PREPARED_WEIGHTS`] (make each with [`StreamingWriter::reserve_for`] its source file, see
    /// [`SdModel::component_file`]). Returns the writers to finish; the files they complete
    /// load as this model ([`SdModel::load_diffusers_at`] reads the `int8` variant first).
    pub fn load_diffusers_preparing(
        folder: &dyn Folder,
        writers: Vec<StreamingWriter>,
        device: &Device,
    ) -> Result<(Self, Vec<StreamingWriter>), LoadError> {
        if writers.len() != SAVED_WEIGHTS.len() {
            return Err(LoadError::Unrecognised(format!(
                "{} writers for {} components",
                writers.len(),
                SAVED_WEIGHTS.len()
            )));
        }
        Self::diffusers(folder, Precision::Int8, false, writers, device)
            .map(|(model, _, writers)| (model, writers))
    }

    /// The weights file of component `dir` (`text_encoder`, `unet`, `vae`) in a diffusers
    /// folder, as the loader would pick it.
    pub fn component_file(folder: &dyn Folder, dir: &str) -> Result<SafetensorsFile, LoadError> {
        open_component(folder, dir)
    }

    fn diffusers(
        folder: &dyn Folder,
        precision: Precision,
        record: bool,
        writers: Vec<StreamingWriter>,
        device: &Device,
    ) -> Result<(Self, Vec<NamedFile>, Vec<StreamingWriter>), LoadError> {
        let clip_cfg = ClipConfig::from_json(
            "text_encoder/config.json",
            &read_config(folder, "text_encoder/config.json")?,
        )?;
        let unet_cfg = UnetConfig::from_json(
            "unet/config.json",
            &read_config(folder, "unet/config.json")?,
        )?;
        let vae_cfg =
            VaeConfig::from_json("vae/config.json", &read_config(folder, "vae/config.json")?)?;
        let scheduler = folder.read_text("scheduler/scheduler_config.json");
        let prediction = scheduler
            .as_deref()
            .filter(|t| t.contains("\"v_prediction\""))
            .map_or(Prediction::Epsilon, |_| Prediction::V);
        let schedule = match scheduler {
            Some(text) => ScheduleConfig::from_json(&text).map_err(|e| LoadError::Config {
                file: "scheduler/scheduler_config.json".into(),
                problem: e.to_string(),
            })?,
            None => default_schedule(prediction),
        };
        let root = Prefixed::default();
        let mut stores = Vec::new();
        for (dir, _) in SAVED_WEIGHTS {
            let mut store = WeightStore::new(vec![open_component(folder, dir)?]);
            if record {
                store.record();
            }
            stores.push(store);
        }
        let streaming = !writers.is_empty();
        for (store, writer) in stores.iter_mut().zip(writers) {
            store.stream_to(writer);
        }
        let already_int8 = stores.iter().any(WeightStore::is_quantized);
        if streaming && already_int8 {
            return Err(LoadError::Unrecognised(
                "the folder is int8 already; there is nothing to prepare".into(),
            ));
        }
        let precision = if already_int8 {
            Precision::Int8
        } else {
            precision
        };
        let [te, us, vs] = stores.as_mut_slice() else {
            return Err(LoadError::Unrecognised("diffusers folder".into()));
        };
        let clip = ClipTextModel::load(
            &mut Loader::new(te, &root, device).with_precision(precision),
            &clip_cfg,
        )?;
        te.check_all_used("", ignorable)?;
        let unet = Unet::load(
            &mut Loader::new(us, &root, device).with_precision(precision),
            &unet_cfg,
        )?;
        us.check_all_used("", ignorable)?;
        let vae = Vae::load(
            &mut Loader::new(vs, &root, device).with_precision(precision),
            &vae_cfg,
            true,
        )?;
        vs.check_all_used("", ignorable)?;
        let files = if record {
            SAVED_WEIGHTS
                .iter()
                .zip(stores.iter_mut())
                .map(|((_, path), store)| ((*path).to_owned(), encode_saved(&store.saved())))
                .collect()
        } else {
            Vec::new()
        };
        let info = ModelInfo {
            clip: clip_cfg,
            unet: unet_cfg,
            vae: vae_cfg,
            prediction,
            native_clip_skip: 1,
            layout: Layout::Diffusers,
            precision,
            schedule,
        };
        let model = Self {
            clip,
            unet,
            vae,
            info,
        };
        let writers = stores
            .iter_mut()
            .filter_map(WeightStore::take_stream)
            .collect();
        Ok((model, files, writers))
    }

    /// Loads a CompVis/A1111 single-file checkpoint in f32. `yaml` is its inference config if
    /// there is one (heads, `parameterization: "v"`, `scale_factor`); `clip_hint` supplies the
    /// text encoder's head count and activation, which the weights cannot tell.
    pub fn load_single_file(
        file: SafetensorsFile,
        yaml: Option<&str>,
        clip_hint: Option<&ClipConfig>,
        device: &Device,
    ) -> Result<Self, LoadError> {
        Self::load_single_file_at(file, yaml, clip_hint, Precision::F32, device)
    }

    /// [`SdModel::load_single_file`] at `precision` (a file saved quantized loads as int8 anyway).
    pub fn load_single_file_at(
        file: SafetensorsFile,
        yaml: Option<&str>,
        clip_hint: Option<&ClipConfig>,
        precision: Precision,
        device: &Device,
    ) -> Result<Self, LoadError> {
        let mut store = WeightStore::new(vec![file]);
        Self::single_file(&mut store, yaml, clip_hint, precision, device)
    }

    /// Loads a single-file checkpoint at [`Precision::Int8`] and returns the file that holds it.
    pub fn quantize_single_file(
        file: SafetensorsFile,
        yaml: Option<&str>,
        clip_hint: Option<&ClipConfig>,
        device: &Device,
    ) -> Result<Int8Model, LoadError> {
        let mut store = WeightStore::new(vec![file]);
        store.record();
        let model = Self::single_file(&mut store, yaml, clip_hint, Precision::Int8, device)?;
        let files = vec![(String::new(), encode_saved(&store.saved()))];
        Ok(Int8Model { model, files })
    }

    fn single_file(
        store: &mut WeightStore,
        yaml: Option<&str>,
        clip_hint: Option<&ClipConfig>,
        precision: Precision,
        device: &Device,
    ) -> Result<Self, LoadError> {
        let precision = if store.is_quantized() {
            Precision::Int8
        } else {
            precision
        };
        let hints = YamlHints::parse(yaml.unwrap_or(""));
        let (clip_cfg, open_clip) = infer_clip(store, clip_hint)?;
        let unet_cfg = infer_unet(store, &hints)?;
        let vae_cfg = infer_vae(store, &hints)?;
        let inferred = "the checkpoint (sizes read from its tensors)";
        clip_cfg.validate(inferred)?;
        unet_cfg.validate(inferred)?;
        vae_cfg.validate(inferred)?;
        let clip_map: Box<dyn KeyMap> = if open_clip {
            Box::new(OpenClipLayout {
                hidden_size: clip_cfg.hidden_size,
            })
        } else {
            Box::new(layout::clip_layout())
        };
        let clip = ClipTextModel::load(
            &mut Loader::new(store, clip_map.as_ref(), device).with_precision(precision),
            &clip_cfg,
        )?;
        let unet_map = UnetLayout {
            layers_per_block: unet_cfg.layers_per_block,
            has_attention: unet_cfg.cross_attention.clone(),
        };
        let unet = Unet::load(
            &mut Loader::new(store, &unet_map, device).with_precision(precision),
            &unet_cfg,
        )?;
        let vae_map = VaeLayout {
            levels: vae_cfg.block_out_channels.len(),
        };
        let vae = Vae::load(
            &mut Loader::new(store, &vae_map, device).with_precision(precision),
            &vae_cfg,
            true,
        )?;
        for prefix in [UNET_PREFIX, VAE_PREFIX, CLIP_PREFIX, OPEN_CLIP_PREFIX] {
            store.check_all_used(prefix, |k| {
                ignorable(k) || k.starts_with("cond_stage_model.model.visual")
            })?;
        }
        let prediction = if hints.v_prediction {
            Prediction::V
        } else {
            Prediction::Epsilon
        };
        let native_clip_skip = if open_clip { 2 } else { 1 };
        let info = ModelInfo {
            clip: clip_cfg,
            unet: unet_cfg,
            vae: vae_cfg,
            prediction,
            native_clip_skip,
            layout: Layout::SingleFile,
            precision,
            schedule: default_schedule(prediction),
        };
        Ok(Self {
            clip,
            unet,
            vae,
            info,
        })
    }
}

fn dim(store: &WeightStore, key: &str, axis: usize) -> Result<usize, LoadError> {
    store
        .shape(key)
        .and_then(|s| s.get(axis).copied())
        .ok_or_else(|| LoadError::Unrecognised(format!("no tensor `{key}`")))
}

fn count(store: &WeightStore, prefix: &str, suffix: &str) -> usize {
    (0..)
        .take_while(|i| store.contains(&format!("{prefix}{i}{suffix}")))
        .count()
}

fn infer_clip(
    store: &WeightStore,
    hint: Option<&ClipConfig>,
) -> Result<(ClipConfig, bool), LoadError> {
    let hf = format!("{CLIP_PREFIX}text_model.");
    let (open_clip, embed_key) =
        if store.contains(&format!("{hf}embeddings.token_embedding.weight")) {
            (false, format!("{hf}embeddings.token_embedding.weight"))
        } else if store.contains(&format!("{OPEN_CLIP_PREFIX}token_embedding.weight")) {
            (true, format!("{OPEN_CLIP_PREFIX}token_embedding.weight"))
        } else {
            return Err(LoadError::Unrecognised(
                "no SD 1.x or SD 2.x text encoder in the checkpoint".into(),
            ));
        };
    let hidden_size = dim(store, &embed_key, 1)?;
    let (layers, intermediate_size) = if open_clip {
        let p = format!("{OPEN_CLIP_PREFIX}transformer.resblocks.");
        (
            count(store, &p, ".ln_1.weight"),
            dim(store, &format!("{p}0.mlp.c_fc.weight"), 0)?,
        )
    } else {
        let p = format!("{hf}encoder.layers.");
        (
            count(store, &p, ".layer_norm1.weight"),
            dim(store, &format!("{p}0.mlp.fc1.weight"), 0)?,
        )
    };
    let heads = match hint {
        Some(h) => h.num_attention_heads,
        None if hidden_size % 64 == 0 => hidden_size / 64,
        None => {
            return Err(LoadError::Unrecognised(format!(
                "cannot tell the heads of a {hidden_size}-wide text encoder; give its config"
            )));
        }
    };
    let act = hint.map_or(
        if open_clip {
            Activation::Gelu
        } else {
            Activation::QuickGelu
        },
        |h| h.hidden_act,
    );
    let cfg = ClipConfig {
        vocab_size: dim(store, &embed_key, 0)?,
        hidden_size,
        intermediate_size,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        hidden_act: act,
        ..ClipConfig::sd1()
    };
    Ok((cfg, open_clip))
}

fn has_prefix(store: &WeightStore, prefix: &str) -> bool {
    store.keys().any(|k| k.starts_with(prefix))
}

fn infer_unet(store: &WeightStore, hints: &YamlHints) -> Result<UnetConfig, LoadError> {
    infer_unet_at(store, UNET_PREFIX, hints)
}

/// A UNet's (or a ControlNet's down path's) configuration from the shapes of its original-layout
/// weights under `p`.
pub(crate) fn infer_unet_at(
    store: &WeightStore,
    p: &str,
    hints: &YamlHints,
) -> Result<UnetConfig, LoadError> {
    let conv_in = format!("{p}input_blocks.0.0.weight");
    let in_channels = dim(store, &conv_in, 1)?;
    let blocks = (0..)
        .take_while(|i| has_prefix(store, &format!("{p}input_blocks.{i}.")))
        .count();
    let per = (1..blocks)
        .find(|i| store.contains(&format!("{p}input_blocks.{i}.0.op.weight")))
        .unwrap_or(blocks);
    if per < 2 || blocks % per != 0 {
        return Err(LoadError::Unrecognised(format!(
            "a UNet with {blocks} input blocks"
        )));
    }
    let levels = blocks / per;
    let mut channels = Vec::new();
    let mut cross = Vec::new();
    for i in 0..levels {
        let b = 1 + i * per;
        channels.push(dim(
            store,
            &format!("{p}input_blocks.{b}.0.out_layers.3.weight"),
            0,
        )?);
        cross.push(store.contains(&format!("{p}input_blocks.{b}.1.proj_in.weight")));
    }
    let (context, linear) = match (0..levels).find(|&i| cross[i]) {
        Some(i) => {
            let t = format!("{p}input_blocks.{}.1.", 1 + i * per);
            let context = dim(
                store,
                &format!("{t}transformer_blocks.0.attn2.to_k.weight"),
                1,
            )?;
            let rank = store
                .shape(&format!("{t}proj_in.weight"))
                .map_or(4, <[usize]>::len);
            (context, rank == 2)
        }
        None => (768, false),
    };
    let heads = channels
        .iter()
        .map(|&c| match (hints.num_head_channels, hints.num_heads) {
            (Some(hc), _) => (c / hc).max(1),
            (None, Some(n)) => n,
            (None, None) if context == 768 => 8,
            (None, None) => (c / 64).max(1),
        })
        .collect();
    Ok(UnetConfig {
        in_channels,
        out_channels: dim(store, &format!("{p}out.2.weight"), 0).unwrap_or(in_channels),
        block_out_channels: channels,
        layers_per_block: per - 1,
        cross_attention: cross,
        attention_heads: heads,
        cross_attention_dim: context,
        use_linear_projection: linear,
        upcast_attention: false,
        ..UnetConfig::sd1()
    })
}

fn infer_vae(store: &WeightStore, hints: &YamlHints) -> Result<VaeConfig, LoadError> {
    let p = format!("{VAE_PREFIX}encoder.down.");
    let levels = count(store, &p, ".block.0.conv1.weight");
    let channels = (0..levels)
        .map(|i| dim(store, &format!("{p}{i}.block.0.conv2.weight"), 0))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(VaeConfig {
        in_channels: dim(store, &format!("{VAE_PREFIX}encoder.conv_in.weight"), 1)?,
        out_channels: dim(store, &format!("{VAE_PREFIX}decoder.conv_out.weight"), 0)?,
        block_out_channels: channels,
        layers_per_block: count(store, &format!("{p}0.block."), ".conv1.weight"),
        latent_channels: dim(store, &format!("{VAE_PREFIX}post_quant_conv.weight"), 0)?,
        norm_num_groups: 32,
        scaling_factor: hints.scale_factor.unwrap_or(0.18215),
    })
}
