//! The generation workspace as plain types: which models can be loaded, the loaded model, the
//! running job and its progress, previews and results. The UI reads it and sends what its methods
//! return to the worker; all of it is tested natively.

use std::collections::VecDeque;

use crate::text::duration;
use keyshift_core::share::{Project, Seed};
pub use keyshift_web::cache::bytes_text;
use keyshift_web::protocol::{
    ATTACHED, CachedModelInfo, ComputeBackend, FromWorker, GenerateJob, InitSpec, LoadPhase,
    ModelFile, ModelLayout, ModelPrecision, ModelSpec, Stage, ToWorker, TokenCount,
};

/// The id of the tiny test model the local server serves.
pub const TINY_ID: &str = "tiny-sd1";

/// A model the picker offers.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelChoice {
    /// Stable id (cache key).
    pub id: String,
    /// What the picker shows.
    pub label: String,
    /// One sentence about it.
    pub note: &'static str,
    /// Precision loaded unless the user picks another.
    pub precision: ModelPrecision,
    /// Steps, sampler and CFG it is meant to be run with.
    pub recommended: (u32, &'static str, f64),
    /// Base URL of its files.
    pub base: String,
    /// Its files, relative to `base`.
    pub files: Vec<&'static str>,
    /// The TAESD folder its step previews are decoded with.
    pub previewer: Previewer,
    /// Published SHA-256 digests of its files by path (`[]` where the publisher gives none
    /// that this app can read): a download that does not match is discarded.
    pub pins: &'static [(&'static str, &'static str)],
}

/// A TAESD folder to load with a model for step previews.
#[derive(Debug, Clone, PartialEq)]
pub struct Previewer {
    /// Stable id (cache key; one copy serves every model).
    pub id: &'static str,
    /// What the cache list shows.
    pub label: &'static str,
    /// Base URL of its files.
    pub base: String,
}

impl Previewer {
    /// TAESD for SD 1.x/2.x latents (`madebyollin/taesd`, MIT, 9.8 MB).
    pub fn taesd() -> Self {
        Self {
            id: "taesd",
            label: "TAESD previews (madebyollin/taesd)",
            base: hugging_face("madebyollin/taesd"),
        }
    }

    /// The load request: `config.json` and the diffusers weights, in f32.
    pub fn spec(&self) -> ModelSpec {
        ModelSpec {
            id: self.id.to_owned(),
            label: self.label.to_owned(),
            layout: ModelLayout::Diffusers,
            files: ["config.json", "diffusion_pytorch_model.safetensors"]
                .iter()
                .map(|path| ModelFile {
                    path: (*path).to_owned(),
                    url: format!("{}/{path}", self.base),
                    fallback: None,
                })
                .collect(),
            precision: ModelPrecision::F32,
            pins: Vec::new(),
        }
    }
}

impl ModelChoice {
    /// The load request for this model.
    pub fn spec(&self, precision: ModelPrecision) -> ModelSpec {
        ModelSpec {
            id: format!("{}@{}", self.id, precision.name()),
            label: self.label.clone(),
            layout: ModelLayout::Diffusers,
            files: self
                .files
                .iter()
                .map(|path| {
                    let full = |p: &str| format!("{}/{p}", self.base);
                    // Where a folder has no fp16 variant, the full-precision file is used.
                    let fallback = path
                        .contains(".fp16.")
                        .then(|| path.replace(".fp16.", "."))
                        .map(|p| (p.clone(), full(&p)));
                    ModelFile {
                        path: (*path).to_owned(),
                        url: full(path),
                        fallback,
                    }
                })
                .collect(),
            precision,
            pins: self
                .pins
                .iter()
                .map(|(path, digest)| ((*path).to_owned(), (*digest).to_owned()))
                .collect(),
        }
    }

    /// A model the user names: a Hugging Face repository id (`owner/name`) or the URL of a
    /// diffusers folder. `None` with a reason when it is neither.
    pub fn custom(text: &str) -> Result<Self, String> {
        let text = text.trim().trim_end_matches('/');
        let base = if text.starts_with("https://") || text.starts_with("http://") {
            text.to_owned()
        } else {
            let mut parts = text.split('/');
            let valid = |p: &str| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            };
            match (parts.next(), parts.next(), parts.next()) {
                (Some(owner), Some(name), None) if valid(owner) && valid(name) => {
                    hugging_face(text)
                }
                _ => {
                    return Err(format!(
                        "\"{text}\" is neither a Hugging Face repository id (owner/name) nor an \
                         http(s) URL of a diffusers folder"
                    ));
                }
            }
        };
        Ok(Self {
            id: format!("custom:{base}"),
            label: text.to_owned(),
            note: "",
            precision: ModelPrecision::Int8,
            recommended: (20, "Euler a", 7.0),
            base,
            files: DIFFUSERS_FP16.to_vec(),
            previewer: Previewer::taesd(),
            pins: &[],
        })
    }
}

const DIFFUSERS_FP16: [&str; 7] = [
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.fp16.safetensors",
    "unet/config.json",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.fp16.safetensors",
];

/// The tiny test model's files as the local server serves them (`fixtures/tiny-sd1/diffusers`;
/// a test checks these against the files).
pub const TINY_PINS: &[(&str, &str)] = &[
    (
        "scheduler/scheduler_config.json",
        "b79b9a5de52b43ad1617d7da1d1f28c290905e065cccf76d852b6bdc2b44acc8",
    ),
    (
        "text_encoder/config.json",
        "ddf83b8acebdea8f670061dc5f433247a7268242676d40a29ca90a002c12dfe3",
    ),
    (
        "text_encoder/model.safetensors",
        "b4397704d1b809ca3849c2f82f77163bd960ffb10f8208f64de41bda1cbf7151",
    ),
    (
        "unet/config.json",
        "8ecaffb5103f2cb0ca9c4ecfb5d0576a8e556f3e01c742dd408a1beb192b29ca",
    ),
    (
        "unet/diffusion_pytorch_model.safetensors",
        "3d87e583602cb0c4bab106938b1c3885ce30313bcf8e129786b8b2df0aad4ee9",
    ),
    (
        "vae/config.json",
        "c03495fee54ae39ef2e788f2b94afe50adf9c7418539c8fbfd85bb09ce32db38",
    ),
    (
        "vae/diffusion_pytorch_model.safetensors",
        "5d703a3bebd3e62457b7bc67c45aed0f3a8e64ca5a5da34bb9c7567398bcb763",
    ),
];

/// Files of a Hugging Face repository at `revision` (a commit pins the exact bytes).
fn hugging_face_at(repo: &str, revision: &str) -> String {
    format!("https://huggingface.co/{repo}/resolve/{revision}")
}

fn hugging_face(repo: &str) -> String {
    hugging_face_at(repo, "main")
}

/// The models the picker offers: SD-Turbo first (the default), SD 1.5, an LCM model; and, when the site
/// is served from this machine (`local`), the tiny test model from `origin`.
pub fn model_choices(local: bool, origin: &str) -> Vec<ModelChoice> {
    let mut choices = vec![
        ModelChoice {
            id: "sd-turbo".into(),
            label: "SD-Turbo (stabilityai/sd-turbo)".into(),
            note: "One step, no guidance: the fastest. 2.6 GB to download (fp16). \
                   Stability AI Community License.",
            precision: ModelPrecision::Int8,
            recommended: (1, "Euler", 0.0),
            base: hugging_face_at(
                "stabilityai/sd-turbo",
                "b261bac6fd2cf515557d5d0707481eafa0485ec2",
            ),
            files: DIFFUSERS_FP16.to_vec(),
            previewer: Previewer::taesd(),
            pins: &[],
        },
        ModelChoice {
            id: "sd15".into(),
            label: "Stable Diffusion 1.5 (stable-diffusion-v1-5/stable-diffusion-v1-5)".into(),
            note: "The classic; 20–30 steps. 2.1 GB to download (fp16). CreativeML OpenRAIL-M.",
            precision: ModelPrecision::Int8,
            recommended: (20, "Euler a", 7.0),
            base: hugging_face_at(
                "stable-diffusion-v1-5/stable-diffusion-v1-5",
                "451f4fe16113bff5a5d2269ed5ad43b0592e9a14",
            ),
            files: DIFFUSERS_FP16.to_vec(),
            previewer: Previewer::taesd(),
            pins: &[],
        },
        ModelChoice {
            id: "lcm-dreamshaper-v7".into(),
            label: "LCM Dreamshaper v7 (SimianLuo/LCM_Dreamshaper_v7)".into(),
            note: "Latent consistency: 4 steps with the LCM sampler; the guidance scale is an \
                   input of the model (no negative pass). 4.3 GB to download (f32 files only). \
                   MIT licence.",
            precision: ModelPrecision::Int8,
            recommended: (4, "LCM", 8.0),
            base: hugging_face("SimianLuo/LCM_Dreamshaper_v7"),
            files: DIFFUSERS_FP16.to_vec(),
            previewer: Previewer::taesd(),
            pins: &[],
        },
    ];
    if local {
        choices.push(ModelChoice {
            id: TINY_ID.into(),
            label: "tiny test model (random weights)".into(),
            note: "Served by the local server for trying the flow offline; it draws noise.",
            precision: ModelPrecision::F32,
            recommended: (4, "Euler", 7.0),
            base: format!(
                "{}/fixtures/tiny-sd1/diffusers",
                origin.trim_end_matches('/')
            ),
            files: DIFFUSERS_FP16.to_vec(),
            previewer: Previewer {
                // 2× like the tiny model's VAE: previews at the image's size, and it may
                // decode an animation's frames.
                id: "taesd-tiny-x2",
                label: "tiny TAESD (random weights)",
                base: format!("{}/fixtures/taesd-tiny-x2", origin.trim_end_matches('/')),
            },
            pins: TINY_PINS,
        });
    }
    choices
}

/// Whether a dropped or picked file is one for [`Studio::load_local`] (which refuses pickled
/// checkpoints with a reason).
pub fn is_model_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".safetensors", ".yaml", ".json"]
        .iter()
        .any(|ext| lower.ends_with(ext))
        || is_pickled(name)
}

fn is_pickled(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".ckpt", ".pt", ".pth", ".bin"]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

/// Whether `host` is this machine (the tiny model is only offered there).
pub fn is_local_host(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1")
}

/// Where the model is.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ModelStatus {
    /// Nothing loaded.
    #[default]
    None,
    /// Fetching or preparing.
    Loading {
        /// The model's label.
        label: String,
        /// The current file.
        file: String,
        /// Fetching or preparing.
        phase: LoadPhase,
        /// File index and count.
        index: u32,
        /// Files in all.
        count: u32,
        /// Bytes of the current file so far.
        done: u64,
        /// Bytes of the current file, when known.
        total: Option<u64>,
        /// Bytes of the current file an interrupted download had stored before.
        resumed: u64,
        /// Milliseconds since the current file started.
        elapsed_ms: f64,
    },
    /// Ready.
    Ready {
        /// The loaded spec's id.
        id: String,
        /// The model's label.
        label: String,
        /// One line about it.
        summary: String,
        /// Sides must be multiples of this.
        size_multiple: u32,
        /// Load time.
        load_ms: f64,
        /// Whether it came from the offline cache.
        from_cache: bool,
        /// Growth of the worker's memory while loading, the largest tensor, and the worker's
        /// memory after loading, in bytes.
        memory: (u64, u64, u64),
    },
    /// Loading failed.
    Failed {
        /// The model's label.
        label: String,
        /// Why.
        message: String,
    },
}

/// The job being run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningJob {
    /// Its id.
    pub id: u64,
    /// Its seed.
    pub seed: u64,
    /// Steps done.
    pub step: u32,
    /// Steps in all.
    pub steps: u32,
    /// Milliseconds since it started, as of the last progress message.
    pub elapsed_ms: f64,
    /// Position in the batch (0-based) and the batch size.
    pub batch: (u32, u32),
}

/// A finished image.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The job it came from.
    pub job: u64,
    /// PNG with A1111 parameters.
    pub png: Vec<u8>,
    /// Its seed.
    pub seed: u64,
    /// Time to make it.
    pub elapsed_ms: f64,
    /// Mean time per step.
    pub step_ms: f64,
    /// The chosen tokens' attention over its generation, when asked for.
    pub heatmap: Option<HeatmapView>,
}

/// A result's heatmap: the map, its values and the tokens summed (see core's `HeatmapData`:
/// `layer_png` for the page, `over_png` for the saved PNG).
pub type HeatmapView = keyshift_core::image::heatmap::HeatmapData;

/// The offline model cache, as the worker reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheView {
    /// Cached models.
    pub models: Vec<CachedModelInfo>,
    /// Bytes used by the site.
    pub usage: u64,
    /// Bytes it may use.
    pub quota: u64,
}

/// The generation workspace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Studio {
    /// The model.
    pub model: ModelStatus,
    /// The job running now.
    pub job: Option<RunningJob>,
    /// The rest of the batch, sent one at a time.
    pub pending: VecDeque<GenerateJob>,
    /// The newest preview (PNG) of the running job.
    pub preview: Option<Vec<u8>>,
    /// Finished images, newest first.
    pub outputs: Vec<Output>,
    /// The newest failure of a load or a job.
    pub error: Option<String>,
    /// The seed of the newest finished image ("reuse last").
    pub last_seed: Option<u64>,
    /// The offline cache, as last reported.
    pub cache: Option<CacheView>,
    /// The token counts of the prompt and the negative prompt, as last reported.
    pub tokens: Option<(TokenCount, TokenCount)>,
    /// img2img: the init image picked for Generate.
    pub init: Option<InitPick>,
    /// The prompt's context positions, as last reported (the token picker's chips).
    pub chips: Vec<keyshift_core::tokens::TokenChip>,
    /// Context positions chosen in the token picker: each image then comes with their
    /// heatmap.
    pub heatmap_tokens: std::collections::BTreeSet<usize>,
    /// The loaded model's cross-attention layers (name, and the latent's size over theirs).
    pub layers: Vec<(String, usize)>,
    /// The attention probe's image and its latest result.
    pub probe: ProbeView,
    /// The ControlNet panel.
    pub control: crate::control::ControlPanel,
    /// Benchmark this device (the System page).
    pub bench: crate::bench::BenchView,
    /// Whether the loaded model's TAESD fits its latents (Animate may decode frames with it).
    pub taesd_frames: bool,
    next_id: u64,
    batch_size: u32,
}

/// Visualize Cross-Attention in the studio.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProbeView {
    /// The image probed (decoded by the browser).
    pub image: Option<InitPick>,
    /// The probe waiting for its result.
    pub running: Option<u64>,
    /// The latest result: the drawn PNG and the layer as the original names it.
    pub result: Option<(Vec<u8>, String)>,
}

impl Studio {
    /// The probe of the picked image (`tokens`: the token picker's choice, blank = all after
    /// the first), or why it cannot run.
    pub fn probe(
        &mut self,
        prompt: &str,
        layer: &str,
        time: &str,
        grey: bool,
        unit_input: bool,
    ) -> Result<ToWorker, String> {
        if !self.is_ready() {
            return Err("Load a model first.".into());
        }
        let Some(image) = self.probe.image.as_ref() else {
            return Err("Pick an image to probe.".into());
        };
        let time: f64 = time
            .trim()
            .parse()
            .ok()
            .filter(|t| (0.0..=999.0).contains(t))
            .ok_or_else(|| format!("time \"{time}\" is not a number from 0 to 999"))?;
        self.next_id += 1;
        let job = keyshift_web::protocol::ProbeJob {
            job: self.next_id,
            width: image.width,
            height: image.height,
            prompt: prompt.to_owned(),
            tokens: self.heatmap_tokens.iter().copied().collect(),
            time,
            layer: layer.to_owned(),
            grey,
            unit_input,
            image: None,
        };
        self.probe.running = Some(job.job);
        self.error = None;
        Ok(ToWorker::Probe { job: Box::new(job) })
    }

    /// Benchmark this device: `runs` timed UNet steps with CFG of the loaded model at the
    /// project's size, or why it cannot start.
    pub fn benchmark(&mut self, project: &Project, runs: &str) -> Result<ToWorker, String> {
        let ModelStatus::Ready { label, summary, .. } = &self.model else {
            return Err("Load a model first (on the Project page).".into());
        };
        if self.is_busy() {
            return Err("Wait for the image being made.".into());
        }
        let summary = summary.split(';').next().unwrap_or_default();
        let model = format!("{label}: {summary}");
        let size = (project.settings.width_px, project.settings.height_px);
        let sent = self.bench.start(self.next_id + 1, &model, size, runs)?;
        self.next_id += 1;
        Ok(sent)
    }

    /// Pixels per side must be a multiple of this for the loaded model (8 before one is).
    pub fn size_multiple(&self) -> u32 {
        match &self.model {
            ModelStatus::Ready { size_multiple, .. } => (*size_multiple).max(1),
            _ => 8,
        }
    }

    /// A layer's label: its name and its map's size for an image `side` pixels wide.
    pub fn layer_label(&self, (name, downscale): &(String, usize), side: u32) -> String {
        let cells = side as usize / (8 * downscale.max(&1));
        format!("{name} ({cells}×{cells} at {side} px)")
    }
}

/// An img2img init image, decoded by the browser.
#[derive(Debug, Clone, PartialEq)]
pub struct InitPick {
    /// The file's name.
    pub name: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// RGB bytes.
    pub rgb: Vec<u8>,
    /// Denoising strength (0 keeps the image, 1 ignores it); A1111's default 0.75.
    pub strength: f64,
}

impl InitPick {
    /// A picked image, at A1111's default strength.
    pub fn new(name: &str, width: u32, height: u32, rgb: Vec<u8>) -> Result<Self, String> {
        if rgb.len() != width as usize * height as usize * 3 || width == 0 {
            return Err(format!(
                "{name}: the decoded image is not {width}x{height} RGB"
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            width,
            height,
            rgb,
            strength: 0.75,
        })
    }

    /// Sets the strength from the text typed.
    pub fn set_strength(&mut self, text: &str) -> Result<(), String> {
        match text.trim().parse::<f64>() {
            Ok(v) if v > 0.0 && v <= 1.0 => {
                self.strength = v;
                Ok(())
            }
            _ => Err(format!(
                "denoising strength must be above 0 and at most 1, got \"{text}\""
            )),
        }
    }
}

/// The settings a preset model works best with, as project edits and a note (none for the
/// tiny test model and custom models).
pub fn recommended_settings(choice: &ModelChoice) -> Option<(u32, &'static str, f64, String)> {
    if choice.id == TINY_ID || choice.id.starts_with("custom:") {
        return None;
    }
    let (steps, sampler, cfg) = choice.recommended;
    Some((
        steps,
        sampler,
        cfg,
        format!(
            "{} works best at {steps} step{}, {sampler}, CFG {cfg}: applied to the project.",
            choice.label,
            if steps == 1 { "" } else { "s" }
        ),
    ))
}

impl Studio {
    /// Starts loading `choice` at `precision` on `backend`.
    pub fn load(
        &mut self,
        choice: &ModelChoice,
        precision: ModelPrecision,
        backend: ComputeBackend,
    ) -> ToWorker {
        self.taesd_frames = false;
        self.model = ModelStatus::Loading {
            label: choice.label.clone(),
            file: String::new(),
            phase: LoadPhase::Download,
            index: 0,
            count: u32::try_from(choice.files.len()).unwrap_or(0),
            done: 0,
            total: None,
            resumed: 0,
            elapsed_ms: 0.0,
        };
        self.error = None;
        ToWorker::LoadModel {
            model: choice.spec(precision),
            backend,
            previewer: Some(choice.previewer.spec()),
        }
    }

    /// Starts loading local files (picked or dropped): one A1111 `.safetensors` checkpoint,
    /// optionally its inference `.yaml` and a text encoder `config.json`. Returns the message and
    /// the order in which the files (by index in `names`) must be attached to it; or why the
    /// files cannot be loaded, leaving the loaded model as it is.
    pub fn load_local(
        &mut self,
        names: &[String],
        precision: ModelPrecision,
        backend: ComputeBackend,
    ) -> Result<(ToWorker, Vec<usize>), String> {
        let pick = |ext: &str| -> Result<Option<usize>, String> {
            let found: Vec<usize> = (0..names.len())
                .filter(|&i| names[i].to_ascii_lowercase().ends_with(ext))
                .collect();
            match found.as_slice() {
                [] => Ok(None),
                [one] => Ok(Some(*one)),
                _ => Err(format!("Pick one {ext} file at a time.")),
            }
        };
        if let Some(pickled) = names.iter().find(|n| is_pickled(n)) {
            return Err(format!(
                "{pickled}: only .safetensors checkpoints can be loaded (pickled files can run \
                 code); convert it to .safetensors first."
            ));
        }
        if let Some(other) = names.iter().find(|n| !is_model_file(n)) {
            return Err(format!(
                "{other}: not a model file (a .safetensors checkpoint, its .yaml, or a text \
                 encoder config.json)."
            ));
        }
        let weights = pick(".safetensors")?.ok_or_else(|| {
            "Pick an A1111 .safetensors checkpoint (its .yaml may come with it).".to_owned()
        })?;
        let order: Vec<usize> = [Some(weights), pick(".yaml")?, pick(".json")?]
            .into_iter()
            .flatten()
            .collect();
        let label = names[weights].clone();
        let files = order
            .iter()
            .enumerate()
            .map(|(slot, &i)| ModelFile {
                path: names[i].clone(),
                url: format!("{ATTACHED}{slot}"),
                fallback: None,
            })
            .collect();
        self.taesd_frames = false;
        self.model = ModelStatus::Loading {
            label: label.clone(),
            file: String::new(),
            phase: LoadPhase::Prepare,
            index: 0,
            count: 1,
            done: 0,
            total: None,
            resumed: 0,
            elapsed_ms: 0.0,
        };
        self.error = None;
        let message = ToWorker::LoadModel {
            model: ModelSpec {
                id: format!("local:{label}@{}", precision.name()),
                label,
                layout: ModelLayout::SingleFile,
                files,
                precision,
                pins: Vec::new(),
            },
            backend,
            previewer: Some(Previewer::taesd().spec()),
        };
        Ok((message, order))
    }

    /// One line about the model: what is loading (with speed and time left), ready, or failed.
    pub fn model_text(&self) -> String {
        match &self.model {
            ModelStatus::None => "No model loaded.".to_owned(),
            ModelStatus::Loading {
                label,
                file,
                phase: LoadPhase::Download,
                index,
                count,
                done,
                total,
                resumed,
                elapsed_ms,
            } => {
                if file.is_empty() {
                    return format!("Loading {label}…");
                }
                let mut text = format!(
                    "Downloading {file} ({}/{count}): {}",
                    index + 1,
                    bytes_text(*done)
                );
                if let Some(total) = total {
                    text.push_str(&format!(" of {}", bytes_text(*total)));
                }
                let fetched = done.saturating_sub(*resumed);
                if *elapsed_ms > 0.0 && fetched > 0 {
                    let per_ms = fetched as f64 / elapsed_ms;
                    text.push_str(&format!(" · {}/s", bytes_text((per_ms * 1000.0) as u64)));
                    if let Some(total) = total {
                        let left = total.saturating_sub(*done) as f64 / per_ms;
                        text.push_str(&format!(" · {} left", duration(left / 1000.0)));
                    }
                }
                if *resumed > 0 {
                    text.push_str(&format!(" · resumed at {}", bytes_text(*resumed)));
                }
                text
            }
            ModelStatus::Loading { label, .. } => format!("Preparing {label} on the device…"),
            ModelStatus::Ready {
                label,
                summary,
                load_ms,
                from_cache,
                ..
            } => {
                let source = if *from_cache {
                    ", from the offline cache"
                } else {
                    ""
                };
                format!(
                    "Ready: {label} — {summary} (loaded in {:.1} s{source})",
                    load_ms / 1000.0
                )
            }
            ModelStatus::Failed { label, message } => {
                format!("Could not load {label}: {message}")
            }
        }
    }

    /// How loading used memory: `Loading needed at most 10 MB of worker memory at once (largest
    /// tensor 6.0 MB; wasm memory 50 MB).`; empty unless a model is ready.
    pub fn memory_text(&self) -> String {
        match &self.model {
            ModelStatus::Ready {
                memory: (growth, largest, total),
                ..
            } => format!(
                "Loading needed at most {} of worker memory at once (largest tensor {}; wasm \
                 memory {}).",
                bytes_text(*growth),
                bytes_text(*largest),
                bytes_text(*total)
            ),
            _ => String::new(),
        }
    }

    /// Whether a model is loaded.
    pub fn is_ready(&self) -> bool {
        matches!(self.model, ModelStatus::Ready { .. })
    }

    /// Whether a job is running.
    pub fn is_busy(&self) -> bool {
        self.job.is_some()
    }

    /// Starts `batch` images of `project` (seeds `s, s+1, …`; a random seed draws `s` from
    /// `random`). Returns the first job's message; the others follow as each finishes.
    pub fn generate(
        &mut self,
        project: &Project,
        batch: u32,
        random: u32,
    ) -> Result<ToWorker, String> {
        let ModelStatus::Ready { size_multiple, .. } = &self.model else {
            return Err("Load a model first.".into());
        };
        if self.is_busy() {
            return Err("An image is already being made.".into());
        }
        let s = &project.settings;
        let multiple = (*size_multiple).max(1);
        if !s.width_px.is_multiple_of(multiple) || !s.height_px.is_multiple_of(multiple) {
            return Err(format!(
                "This model needs width and height in multiples of {multiple}."
            ));
        }
        let first = match s.seed {
            Seed::Fixed(seed) => u64::from(seed),
            Seed::Random => u64::from(random),
        };
        let control = self.control.image_job();
        if control.as_ref().is_some_and(|c| c.image.is_none()) && self.init.is_none() {
            return Err(
                "Pick a control image for the ControlNet (or an init image to take it from)."
                    .into(),
            );
        }
        let batch = batch.clamp(1, 100);
        self.pending.clear();
        for i in 0..batch {
            self.next_id += 1;
            self.pending.push_back(GenerateJob {
                job: self.next_id,
                prompt: project.prompt.clone(),
                negative: project.negative_prompt.clone(),
                width: s.width_px,
                height: s.height_px,
                steps: s.steps,
                sampler: s.sampler,
                cfg: s.cfg_scale,
                seed: first + u64::from(i),
                preview_every: 1,
                init: self.init.as_ref().map(|i| InitSpec {
                    width: i.width,
                    height: i.height,
                    strength: i.strength,
                }),
                init_image: None,
                heatmap: self.heatmap_request(),
                control: control.clone(),
            });
        }
        self.batch_size = batch;
        self.error = None;
        self.start_next()
            .ok_or_else(|| "Nothing to make.".to_owned())
    }

    /// The heatmap a job asks for: the token picker's choice, when tokens are chosen.
    pub fn heatmap_request(&self) -> Option<Vec<usize>> {
        (!self.heatmap_tokens.is_empty()).then(|| self.heatmap_tokens.iter().copied().collect())
    }

    fn start_next(&mut self) -> Option<ToWorker> {
        let job = self.pending.pop_front()?;
        let position = self.batch_size - u32::try_from(self.pending.len()).unwrap_or(0) - 1;
        self.job = Some(RunningJob {
            id: job.job,
            seed: job.seed,
            step: 0,
            steps: job.steps,
            elapsed_ms: 0.0,
            batch: (position, self.batch_size),
        });
        self.preview = None;
        Some(ToWorker::Generate { job })
    }

    /// Stops the running job and drops the rest of the batch.
    pub fn cancel(&mut self) -> Option<ToWorker> {
        self.pending.clear();
        self.job.as_ref().map(|j| ToWorker::Cancel { job: j.id })
    }

    /// Folds a worker message in; returns what to send next (the batch's next job).
    pub fn apply(&mut self, message: &FromWorker) -> Option<ToWorker> {
        self.control.apply(message);
        // A benchmark's failure is the System page's to show.
        let benching = self.bench.running.is_some();
        self.bench.apply(message);
        match message {
            FromWorker::LoadProgress {
                file,
                phase,
                index,
                count,
                done_bytes,
                total_bytes,
                resumed_bytes,
                elapsed_ms,
            } => {
                if let ModelStatus::Loading { label, .. } = &self.model {
                    self.model = ModelStatus::Loading {
                        label: label.clone(),
                        file: file.clone(),
                        phase: *phase,
                        index: *index,
                        count: *count,
                        done: *done_bytes,
                        total: *total_bytes,
                        resumed: *resumed_bytes,
                        elapsed_ms: *elapsed_ms,
                    };
                }
                None
            }
            FromWorker::Cache {
                models,
                usage_bytes,
                quota_bytes,
            } => {
                self.cache = Some(CacheView {
                    models: models.clone(),
                    usage: *usage_bytes,
                    quota: *quota_bytes,
                });
                None
            }
            FromWorker::ModelReady {
                id,
                summary,
                size_multiple,
                load_ms,
                from_cache,
                previews,
                taesd_frames,
                memory_growth_bytes,
                largest_tensor_bytes,
                memory_bytes,
                layers,
                ..
            } => {
                self.layers.clone_from(layers);
                self.taesd_frames = *taesd_frames;
                let summary = if previews.is_empty() {
                    summary.clone()
                } else {
                    format!("{summary}; {previews}")
                };
                let label = match &self.model {
                    ModelStatus::Loading { label, .. } => label.clone(),
                    _ => id.clone(),
                };
                self.model = ModelStatus::Ready {
                    id: id.clone(),
                    label,
                    summary,
                    size_multiple: *size_multiple,
                    load_ms: *load_ms,
                    from_cache: *from_cache,
                    memory: (*memory_growth_bytes, *largest_tensor_bytes, *memory_bytes),
                };
                // The cache list changed (or its first report is due).
                Some(ToWorker::ListCache)
            }
            FromWorker::Progress {
                job,
                step,
                steps,
                elapsed_ms,
            } => {
                if let Some(running) = self.job.as_mut().filter(|j| j.id == *job) {
                    running.step = *step;
                    running.steps = *steps;
                    running.elapsed_ms = *elapsed_ms;
                }
                None
            }
            FromWorker::Preview { job, png, .. } => {
                if self.job.as_ref().is_some_and(|j| j.id == *job) {
                    self.preview = Some(png.clone());
                }
                None
            }
            FromWorker::Image {
                job,
                png,
                seed,
                elapsed_ms,
                step_ms,
            } => {
                self.outputs.insert(
                    0,
                    Output {
                        job: *job,
                        png: png.clone(),
                        seed: *seed,
                        elapsed_ms: *elapsed_ms,
                        step_ms: *step_ms,
                        heatmap: None,
                    },
                );
                self.last_seed = Some(*seed);
                self.finish_job(*job)
            }
            FromWorker::Cancelled { job } => {
                self.pending.clear();
                self.finish_job(*job)
            }
            FromWorker::Failed { stage, message } => {
                match stage {
                    Stage::Model => {
                        let label = match &self.model {
                            ModelStatus::Loading { label, .. } => label.clone(),
                            _ => String::new(),
                        };
                        self.model = ModelStatus::Failed {
                            label,
                            message: message.clone(),
                        };
                    }
                    Stage::Generate => {
                        if !benching || self.job.is_some() || self.probe.running.is_some() {
                            self.error = Some(message.clone());
                        }
                        self.pending.clear();
                        self.job = None;
                        self.preview = None;
                        self.probe.running = None;
                    }
                    Stage::Crashed => {
                        let label = match &self.model {
                            ModelStatus::Loading { label, .. }
                            | ModelStatus::Ready { label, .. } => label.clone(),
                            ModelStatus::Failed { label, .. } => label.clone(),
                            ModelStatus::None => String::new(),
                        };
                        let text = format!(
                            "the compute worker stopped ({message}); a fresh one was started: \
                             load the model again"
                        );
                        if self.job.is_some() {
                            self.error = Some(format!("Generation stopped: {text}."));
                        }
                        self.model = ModelStatus::Failed {
                            label,
                            message: text,
                        };
                        self.pending.clear();
                        self.job = None;
                        self.preview = None;
                    }
                    Stage::Device if matches!(self.model, ModelStatus::Loading { .. }) => {
                        self.model = ModelStatus::Failed {
                            label: String::new(),
                            message: format!("no GPU device: {message}"),
                        };
                    }
                    _ => {}
                }
                None
            }
            FromWorker::Tokens {
                prompt,
                negative,
                chips,
            } => {
                self.tokens = Some((prompt.clone(), negative.clone()));
                self.set_chips(chips.clone());
                None
            }
            FromWorker::Probed {
                job, png, layer, ..
            } => {
                if self.probe.running == Some(*job) {
                    self.probe.running = None;
                }
                self.probe.result = Some((png.clone(), layer.clone()));
                None
            }
            FromWorker::Heatmap {
                job,
                width,
                height,
                values,
                tokens,
            } => {
                if let Some(out) = self.outputs.iter_mut().find(|o| o.job == *job) {
                    out.heatmap = Some(HeatmapView {
                        width: *width,
                        height: *height,
                        values: values.clone(),
                        tokens: tokens.clone(),
                    });
                }
                None
            }
            // A ControlNet is cached like a model: the Offline models card lists it.
            FromWorker::ControlNetReady { .. } => Some(ToWorker::ListCache),
            FromWorker::Started
            | FromWorker::DeviceReady { .. }
            | FromWorker::Benchmarked { .. }
            | FromWorker::ControlNetUnloaded
            | FromWorker::SelfTest { .. }
            | FromWorker::AudioAnalysed { .. }
            | FromWorker::Frame { .. }
            | FromWorker::FrameHeatmap { .. }
            | FromWorker::RenderProgress { .. }
            | FromWorker::RenderDone { .. }
            | FromWorker::RenderOpened { .. }
            | FromWorker::Renders { .. }
            | FromWorker::ExportProgress { .. }
            | FromWorker::Exported { .. } => None,
        }
    }

    /// New chips: chosen positions that no longer hold a word or the end token are dropped.
    fn set_chips(&mut self, chips: Vec<keyshift_core::tokens::TokenChip>) {
        use keyshift_core::tokens::TokenKind;
        let pickable = |i: &usize| {
            chips
                .iter()
                .any(|c| c.index == *i && matches!(c.kind, TokenKind::Word | TokenKind::End))
        };
        self.heatmap_tokens.retain(pickable);
        self.chips = chips;
    }

    /// Chooses or drops a context position for the heatmap.
    pub fn toggle_token(&mut self, index: usize) {
        if !self.heatmap_tokens.remove(&index) {
            self.heatmap_tokens.insert(index);
        }
    }

    /// A1111's counter for the prompt (`negative` false) or the negative prompt: `12/75`;
    /// empty until the worker has counted.
    pub fn token_text(&self, negative: bool) -> String {
        self.tokens
            .as_ref()
            .map(|(p, n)| if negative { n.text() } else { p.text() })
            .unwrap_or_default()
    }

    fn finish_job(&mut self, job: u64) -> Option<ToWorker> {
        if self.job.as_ref().is_none_or(|j| j.id != job) {
            return None;
        }
        self.job = None;
        self.preview = None;
        self.start_next()
    }

    /// Fraction of the running job done, 0..=1.
    pub fn fraction(&self) -> Option<f64> {
        let job = self.job.as_ref()?;
        Some(f64::from(job.step) / f64::from(job.steps.max(1)))
    }

    /// Estimated milliseconds left in the running job (from the mean step time so far).
    pub fn eta_ms(&self) -> Option<f64> {
        let job = self.job.as_ref()?;
        if job.step == 0 {
            return None;
        }
        let per_step = job.elapsed_ms / f64::from(job.step);
        Some(per_step * f64::from(job.steps.saturating_sub(job.step)))
    }

    /// One line for the progress bar: `Image 1/2 · step 3/20 · 4 s left`.
    pub fn progress_text(&self) -> String {
        let Some(job) = &self.job else {
            return String::new();
        };
        let mut text = format!("step {}/{}", job.step, job.steps);
        if job.batch.1 > 1 {
            text = format!("image {}/{} · {text}", job.batch.0 + 1, job.batch.1);
        }
        if let Some(eta) = self.eta_ms() {
            text.push_str(&format!(" · {} left", duration(eta / 1000.0)));
        }
        text
    }

    /// The tab title: progress first while a job runs, as A1111 does.
    pub fn title(&self, base: &str) -> String {
        match (&self.job, self.fraction()) {
            (Some(_), Some(f)) => format!("[{:.0}%] {base}", f * 100.0),
            _ => base.to_owned(),
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    #![allow(
        clippy::expect_used,
        clippy::panic,
        clippy::unwrap_used,
        reason = "tests fail by panicking"
    )]
    use super::*;
    use keyshift_core::share::Sampler;
    use keyshift_core::tokens::TokenChip;

    fn ready() -> Studio {
        let mut studio = Studio::default();
        let tiny = model_choices(true, "http://127.0.0.1:8080")
            .into_iter()
            .find(|c| c.id == TINY_ID)
            .expect("offered locally");
        let load = studio.load(&tiny, ModelPrecision::F32, ComputeBackend::Webgpu);
        let ToWorker::LoadModel {
            model, previewer, ..
        } = load
        else {
            panic!("{load:?}");
        };
        assert_eq!(model.id, "tiny-sd1@f32");
        let previewer = previewer.expect("TAESD comes with every model");
        assert_eq!(previewer.id, "taesd-tiny-x2");
        assert_eq!(
            previewer.files[1].url,
            "http://127.0.0.1:8080/fixtures/taesd-tiny-x2/diffusion_pytorch_model.safetensors"
        );
        assert_eq!(
            model.files[2].url,
            "http://127.0.0.1:8080/fixtures/tiny-sd1/diffusers/text_encoder/model.fp16.safetensors"
        );
        assert_eq!(
            model.files[2].fallback,
            Some((
                "text_encoder/model.safetensors".into(),
                "http://127.0.0.1:8080/fixtures/tiny-sd1/diffusers/text_encoder/model.safetensors"
                    .into()
            ))
        );
        studio.apply(&FromWorker::ModelReady {
            id: model.id,
            summary: "SD 1.x".into(),
            size_multiple: 16,
            fetched_bytes: 1,
            from_cache: false,
            load_ms: 5.0,
            previews: String::new(),
            taesd_frames: false,
            memory_growth_bytes: 0,
            largest_tensor_bytes: 0,
            memory_bytes: 0,
            layers: vec![("mid_block.attentions.0".into(), 8)],
        });
        studio
    }

    #[test]
    #[allow(
        clippy::disallowed_methods,
        reason = "the test reads the served fixture"
    )]
    fn the_tiny_models_pins_are_the_served_files_digests_and_reach_the_load_request() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tiny-sd1/diffusers");
        assert!(
            TINY_PINS
                .iter()
                .all(|(_, pin)| keyshift_web::cache::is_sha256(pin))
        );
        for (path, pin) in TINY_PINS {
            let bytes = std::fs::read(format!("{root}/{path}")).expect("fixture file");
            let mut digest = keyshift_web::cache::Sha256Digest::default();
            digest.update(&bytes);
            assert_eq!(digest.finish(), *pin, "{path} changed: update TINY_PINS");
        }
        let tiny = model_choices(true, "http://127.0.0.1:8080")
            .into_iter()
            .find(|c| c.id == TINY_ID)
            .expect("tiny model offered");
        let spec = tiny.spec(ModelPrecision::F32);
        assert_eq!(spec.pins.len(), 7);
        // The fp16 paths it asks for first have no pin; their full-precision fallbacks do.
        assert_eq!(
            spec.pin("unet/diffusion_pytorch_model.fp16.safetensors"),
            None
        );
        assert_eq!(
            spec.pin("unet/diffusion_pytorch_model.safetensors"),
            Some(TINY_PINS[4].1)
        );
    }

    #[test]
    fn local_files_load_as_a_single_file_with_their_yaml_and_config() {
        let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let mut studio = ready();
        let (message, order) = studio
            .load_local(
                &names(&["v1.yaml", "config.json", "model.safetensors"]),
                ModelPrecision::Int8,
                ComputeBackend::Webgpu,
            )
            .unwrap();
        assert_eq!(order, vec![2, 0, 1]);
        let ToWorker::LoadModel { model, .. } = message else {
            panic!("{message:?}");
        };
        assert_eq!(model.layout, ModelLayout::SingleFile);
        assert_eq!(model.id, "local:model.safetensors@int8");
        let files: Vec<(&str, Option<usize>)> = model
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.attached()))
            .collect();
        assert_eq!(
            files,
            vec![
                ("model.safetensors", Some(0)),
                ("v1.yaml", Some(1)),
                ("config.json", Some(2))
            ]
        );
        assert_eq!(
            studio.model_text(),
            "Preparing model.safetensors on the device…"
        );
        // Refusals name the file and leave the loaded model alone.
        let mut studio = ready();
        let before = studio.model.clone();
        for (picked, says) in [
            (&["m.ckpt"][..], "m.ckpt: only .safetensors checkpoints"),
            (&["cat.png"][..], "cat.png: not a model file"),
            (&["v1.yaml"][..], "Pick an A1111 .safetensors checkpoint"),
            (
                &["a.safetensors", "b.safetensors"][..],
                "Pick one .safetensors file at a time.",
            ),
        ] {
            let err = studio
                .load_local(&names(picked), ModelPrecision::F32, ComputeBackend::Cpu)
                .unwrap_err();
            assert!(err.starts_with(says), "{err}");
            assert_eq!(studio.model, before);
        }
        assert!(is_model_file("X.SafeTensors"));
        assert!(!is_model_file("x.png"));
    }

    #[test]
    fn a_crashed_worker_fails_the_model_and_the_job_and_keeps_the_rest() {
        let mut studio = ready();
        let project = project(Seed::Fixed(7));
        studio.generate(&project, 3, 0).unwrap();
        studio.outputs.push(Output {
            job: 0,
            png: b"kept".to_vec(),
            seed: 1,
            elapsed_ms: 1.0,
            step_ms: 1.0,
            heatmap: None,
        });
        let next = studio.apply(&FromWorker::Failed {
            stage: Stage::Crashed,
            message: "panicked at alloc: out of memory".into(),
        });
        assert_eq!(next, None);
        assert!(!studio.is_busy() && !studio.is_ready());
        assert!(studio.pending.is_empty());
        assert_eq!(
            studio.model_text(),
            "Could not load tiny test model (random weights): the compute worker stopped \
             (panicked at alloc: out of memory); a fresh one was started: load the model again"
        );
        assert!(
            studio
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("Generation stopped"))
        );
        assert_eq!(studio.outputs.len(), 1, "finished images stay");
    }

    fn chip(index: usize, text: &str, kind: keyshift_core::tokens::TokenKind) -> TokenChip {
        TokenChip {
            index,
            text: text.into(),
            weight: 1.0,
            kind,
            chunk: 0,
        }
    }

    #[test]
    fn chosen_tokens_ask_for_a_heatmap_that_comes_with_the_image() {
        use keyshift_core::tokens::TokenKind::{End, Start, Word};
        let mut studio = ready();
        let count = TokenCount {
            tokens: 2,
            limit: 75,
            chunks: vec![2],
        };
        let chips = vec![
            chip(0, "", Start),
            chip(1, "a", Word),
            chip(2, "cat", Word),
            chip(3, "", End),
        ];
        studio.apply(&FromWorker::Tokens {
            prompt: count.clone(),
            negative: count.clone(),
            chips: chips.clone(),
        });
        studio.toggle_token(2);
        studio.toggle_token(1);
        studio.toggle_token(1);
        let Ok(ToWorker::Generate { job }) = studio.generate(&project(Seed::Fixed(7)), 1, 0) else {
            panic!("a job");
        };
        assert_eq!(job.heatmap, Some(vec![2]));
        // A tiny red PNG as the image; the map arrives after it.
        let png = keyshift_core::pngtext::encode_rgb(4, 4, &[200, 0, 0].repeat(16), &[]).unwrap();
        studio.apply(&FromWorker::Image {
            job: job.job,
            png: png.clone(),
            seed: 7,
            elapsed_ms: 1.0,
            step_ms: 1.0,
        });
        studio.apply(&FromWorker::Heatmap {
            job: job.job,
            width: 2,
            height: 2,
            values: vec![0.0, 1.0, 0.5, 0.25],
            tokens: vec![2],
        });
        let Some(map) = studio.outputs[0].heatmap.clone() else {
            panic!("the map is kept with its image");
        };
        let (w, h, layer) = keyshift_core::pngtext::decode_rgb(&map.layer_png().unwrap()).unwrap();
        assert_eq!(
            (w, h, &layer[3..6]),
            (2, 2, &[128u8, 0, 0][..]),
            "1 is dark red"
        );
        let over = map.over_png(&png, 0.5).unwrap();
        let (w, h, drawn) = keyshift_core::pngtext::decode_rgb(&over).unwrap();
        assert_eq!((w, h), (4, 4));
        assert_ne!(&drawn[..3], &[200, 0, 0]);
        // A new prompt without that word drops the choice.
        studio.apply(&FromWorker::Tokens {
            prompt: count.clone(),
            negative: count,
            chips: chips[..2].to_vec(),
        });
        assert!(studio.heatmap_tokens.is_empty());
    }

    #[test]
    fn the_probe_sends_the_picked_image_and_tokens_and_keeps_its_result() {
        let mut studio = ready();
        assert_eq!(
            studio.probe("a cat", "mid_block.attentions.0", "1", false, false),
            Err("Pick an image to probe.".into())
        );
        studio.probe.image = Some(InitPick::new("in.png", 2, 1, vec![0; 6]).unwrap());
        assert!(
            studio
                .probe("a cat", "mid_block.attentions.0", "1000", false, false)
                .is_err()
        );
        studio.toggle_token(2);
        let Ok(ToWorker::Probe { job }) =
            studio.probe("a cat", "mid_block.attentions.0", "1", true, true)
        else {
            panic!("a probe");
        };
        assert_eq!((job.width, job.height, job.tokens.clone()), (2, 1, vec![2]));
        assert!(job.grey && job.unit_input && job.time == 1.0);
        studio.apply(&FromWorker::Probed {
            job: job.job,
            png: b"png".to_vec(),
            layer: "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2".into(),
            width: 8,
            height: 8,
        });
        assert_eq!(studio.probe.running, None);
        assert_eq!(
            studio.probe.result.as_ref().map(|r| r.0.clone()),
            Some(b"png".to_vec())
        );
        assert_eq!(
            studio.layer_label(&("mid_block.attentions.0".into(), 8), 512),
            "mid_block.attentions.0 (8×8 at 512 px)"
        );
    }

    #[test]
    fn token_counts_show_as_a1111_shows_them() {
        let mut studio = Studio::default();
        assert_eq!(studio.token_text(false), "");
        let next = studio.apply(&FromWorker::Tokens {
            prompt: TokenCount {
                tokens: 80,
                limit: 150,
                chunks: vec![75, 5],
            },
            negative: TokenCount {
                tokens: 3,
                limit: 75,
                chunks: vec![3],
            },
            chips: Vec::new(),
        });
        assert_eq!(next, None);
        assert_eq!(studio.token_text(false), "80/150 (75 + 5)");
        assert_eq!(studio.token_text(true), "3/75");
    }

    #[test]
    fn the_model_line_tells_progress_speed_and_time_left() {
        let mut studio = Studio::default();
        let tiny = model_choices(true, "")
            .into_iter()
            .find(|c| c.id == TINY_ID)
            .unwrap();
        studio.load(&tiny, ModelPrecision::F32, ComputeBackend::Webgpu);
        assert_eq!(
            studio.model_text(),
            "Loading tiny test model (random weights)…"
        );
        studio.apply(&FromWorker::LoadProgress {
            file: "unet/w.safetensors".into(),
            phase: LoadPhase::Download,
            index: 2,
            count: 7,
            done_bytes: 2_000_000,
            total_bytes: Some(10_000_000),
            resumed_bytes: 0,
            elapsed_ms: 1000.0,
        });
        assert_eq!(
            studio.model_text(),
            "Downloading unet/w.safetensors (3/7): 2.0 MB of 10 MB · 2.0 MB/s · 4 s left"
        );
        // A resumed download counts only this session's bytes for speed and time left.
        studio.apply(&FromWorker::LoadProgress {
            file: "unet/w.safetensors".into(),
            phase: LoadPhase::Download,
            index: 2,
            count: 7,
            done_bytes: 6_000_000,
            total_bytes: Some(10_000_000),
            resumed_bytes: 5_000_000,
            elapsed_ms: 1000.0,
        });
        assert_eq!(
            studio.model_text(),
            "Downloading unet/w.safetensors (3/7): 6.0 MB of 10 MB · 1.0 MB/s · 4 s left · \
             resumed at 5.0 MB"
        );
        let next = studio.apply(&FromWorker::ModelReady {
            id: "tiny-sd1@f32".into(),
            summary: "SD 1.x".into(),
            size_multiple: 4,
            fetched_bytes: 0,
            from_cache: true,
            load_ms: 1500.0,
            previews: "TAESD previews".into(),
            taesd_frames: true,
            memory_growth_bytes: 10_000_000,
            largest_tensor_bytes: 6_000_000,
            memory_bytes: 50_000_000,
            layers: Vec::new(),
        });
        assert_eq!(next, Some(ToWorker::ListCache));
        assert_eq!(
            studio.model_text(),
            "Ready: tiny test model (random weights) — SD 1.x; TAESD previews (loaded in 1.5 s, \
             from the offline cache)"
        );
        assert_eq!(
            studio.memory_text(),
            "Loading needed at most 10 MB of worker memory at once (largest tensor 6.0 MB; wasm \
             memory 50 MB)."
        );
        studio.apply(&FromWorker::Cache {
            models: vec![],
            usage_bytes: 5,
            quota_bytes: 10,
        });
        assert_eq!(studio.cache.as_ref().map(|c| c.quota), Some(10));
    }

    fn project(seed: Seed) -> Project {
        let mut p = Project {
            prompt: "a cat".into(),
            ..Project::default()
        };
        p.settings.width_px = 64;
        p.settings.height_px = 64;
        p.settings.steps = 4;
        p.settings.seed = seed;
        p.settings.sampler = Sampler::Euler;
        p
    }

    #[test]
    fn the_benchmark_runs_on_the_loaded_model_at_the_project_size_and_keeps_its_failures() {
        let p = project(Seed::Fixed(1));
        let mut none = Studio::default();
        assert!(
            none.benchmark(&p, "3")
                .unwrap_err()
                .starts_with("Load a model first")
        );
        let mut studio = ready();
        let Ok(ToWorker::Benchmark { job }) = studio.benchmark(&p, "3") else {
            panic!("no benchmark");
        };
        assert_eq!((job.width, job.height, job.runs), (64, 64, 3));
        studio.apply(&FromWorker::Failed {
            stage: Stage::Generate,
            message: "no model is loaded".into(),
        });
        // The System page shows it; the Project page's generation line stays clear.
        assert_eq!(studio.bench.error.as_deref(), Some("no model is loaded"));
        assert_eq!(studio.error, None);
        let Ok(ToWorker::Benchmark { job }) = studio.benchmark(&p, "2") else {
            panic!("no benchmark");
        };
        studio.apply(&FromWorker::Benchmarked {
            job: job.job,
            report: keyshift_web::protocol::BenchReport {
                width: 64,
                height: 64,
                runs: 2,
                median_ms: 10.0,
                min_ms: 9.0,
                warmup_ms: 50.0,
                checksum: 1.0,
            },
        });
        let text = studio.bench.result_text().unwrap_or_default();
        assert!(
            text.ends_with("— tiny test model (random weights): SD 1.x"),
            "{text}"
        );
        // While an image is being made, the timings would be shared: refused.
        studio.generate(&p, 1, 0).expect("starts");
        assert_eq!(
            studio.benchmark(&p, "2"),
            Err("Wait for the image being made.".into())
        );
    }

    #[test]
    fn the_tiny_model_is_offered_only_on_this_machine() {
        assert!(
            model_choices(false, "https://example.org")
                .iter()
                .all(|c| c.id != TINY_ID)
        );
        assert_eq!(model_choices(false, "x")[0].id, "sd-turbo");
        let ids: Vec<String> = model_choices(false, "x")
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["sd-turbo", "sd15", "lcm-dreamshaper-v7"]);
        let lcm = &model_choices(false, "x")[2];
        assert_eq!(lcm.recommended, (4, "LCM", 8.0));
        assert!(keyshift_core::parameters::parse_sampler(lcm.recommended.1, None).is_some());
        // Its folder has f32 files only: each fp16 name falls back to the f32 one.
        let spec = lcm.spec(ModelPrecision::Int8);
        assert_eq!(
            spec.files[4].fallback,
            Some((
                "unet/diffusion_pytorch_model.safetensors".into(),
                "https://huggingface.co/SimianLuo/LCM_Dreamshaper_v7/resolve/main/unet/\
                 diffusion_pytorch_model.safetensors"
                    .into()
            ))
        );
        assert!(is_local_host("127.0.0.1") && is_local_host("localhost"));
        assert!(!is_local_host("example.org"));
    }

    #[test]
    fn an_init_image_makes_every_batch_job_img2img() {
        let mut studio = ready();
        let Ok(mut pick) = InitPick::new("cat.png", 2, 1, vec![0; 6]) else {
            panic!("a 2x1 image");
        };
        assert!(pick.set_strength("1.5").is_err());
        assert_eq!(pick.set_strength("0.4"), Ok(()));
        studio.init = Some(pick);
        let first = studio.generate(&project(Seed::Fixed(1)), 2, 0);
        let Ok(ToWorker::Generate { job }) = first else {
            panic!("generates: {first:?}");
        };
        let want = Some(InitSpec {
            width: 2,
            height: 1,
            strength: 0.4,
        });
        assert_eq!(job.init, want);
        assert_eq!(studio.pending[0].init, want);
        assert!(InitPick::new("x.png", 2, 2, vec![0; 6]).is_err());
    }

    #[test]
    fn presets_recommend_their_settings_but_the_test_model_does_not() {
        let choices = model_choices(true, "http://x");
        let Some((steps, sampler, cfg, note)) = recommended_settings(&choices[0]) else {
            panic!("SD-Turbo has settings");
        };
        assert_eq!((steps, sampler, cfg), (1, "Euler", 0.0));
        assert!(note.contains("1 step, Euler, CFG 0"), "{note}");
        let tiny = choices.iter().find(|c| c.id == TINY_ID);
        assert!(tiny.is_some_and(|t| recommended_settings(t).is_none()));
    }

    #[test]
    fn a_batch_runs_one_job_at_a_time_with_consecutive_seeds() {
        let mut studio = ready();
        let first = studio
            .generate(&project(Seed::Fixed(42)), 2, 7)
            .expect("starts");
        let ToWorker::Generate { job } = first else {
            panic!("{first:?}");
        };
        assert_eq!((job.seed, job.steps, job.sampler.name()), (42, 4, "Euler"));
        assert!(studio.generate(&project(Seed::Fixed(1)), 1, 7).is_err());
        studio.apply(&FromWorker::Progress {
            job: job.job,
            step: 2,
            steps: 4,
            elapsed_ms: 1000.0,
        });
        assert_eq!(studio.eta_ms(), Some(1000.0));
        assert_eq!(studio.progress_text(), "image 1/2 · step 2/4 · 1 s left");
        assert_eq!(studio.title("Keyshift"), "[50%] Keyshift");
        let next = studio.apply(&FromWorker::Image {
            job: job.job,
            png: b"png".to_vec(),
            seed: 42,
            elapsed_ms: 2000.0,
            step_ms: 500.0,
        });
        let Some(ToWorker::Generate { job: second }) = next else {
            panic!("{next:?}");
        };
        assert_eq!(second.seed, 43);
        assert_eq!(studio.last_seed, Some(42));
        assert_eq!(studio.outputs.len(), 1);
        assert_eq!(
            studio.apply(&FromWorker::Image {
                job: second.job,
                png: b"png2".to_vec(),
                seed: 43,
                elapsed_ms: 1.0,
                step_ms: 1.0,
            }),
            None
        );
        assert!(!studio.is_busy());
        assert_eq!(studio.outputs[0].seed, 43);
        assert_eq!(studio.title("Keyshift"), "Keyshift");
    }

    #[test]
    fn a_random_seed_is_drawn_once_per_batch_and_cancel_drops_the_rest() {
        let mut studio = ready();
        let Ok(ToWorker::Generate { job }) = studio.generate(&project(Seed::Random), 3, 1234)
        else {
            panic!("starts");
        };
        assert_eq!(job.seed, 1234);
        assert_eq!(studio.cancel(), Some(ToWorker::Cancel { job: job.job }));
        assert_eq!(studio.apply(&FromWorker::Cancelled { job: job.job }), None);
        assert!(!studio.is_busy() && studio.pending.is_empty());
    }

    #[test]
    fn failures_land_where_they_belong_and_nothing_else_breaks() {
        let mut studio = ready();
        assert!(studio.generate(&project(Seed::Fixed(1)), 1, 0).is_ok());
        studio.apply(&FromWorker::Failed {
            stage: Stage::Generate,
            message: "out of memory".into(),
        });
        assert_eq!(studio.error.as_deref(), Some("out of memory"));
        assert!(studio.is_ready() && !studio.is_busy());
        // A size the model cannot take is refused before anything is sent.
        let mut odd = project(Seed::Fixed(1));
        odd.settings.width_px = 72;
        assert!(
            studio
                .generate(&odd, 1, 0)
                .unwrap_err()
                .contains("multiples of 16")
        );
        // A failed load says why.
        let choices = model_choices(true, "");
        let tiny = choices.iter().find(|c| c.id == TINY_ID).unwrap();
        studio.load(tiny, ModelPrecision::F32, ComputeBackend::Cpu);
        studio.apply(&FromWorker::Failed {
            stage: Stage::Model,
            message: "unet: truncated".into(),
        });
        assert!(
            matches!(&studio.model, ModelStatus::Failed { message, .. } if message == "unet: truncated")
        );
        assert!(studio.generate(&project(Seed::Fixed(1)), 1, 0).is_err());
    }

    #[test]
    fn custom_models_are_repository_ids_or_folder_urls() {
        let repo = ModelChoice::custom(" SimianLuo/LCM_Dreamshaper_v7 ").unwrap();
        assert_eq!(
            repo.base,
            "https://huggingface.co/SimianLuo/LCM_Dreamshaper_v7/resolve/main"
        );
        let url = ModelChoice::custom("http://127.0.0.1:1/m/").unwrap();
        assert_eq!(url.base, "http://127.0.0.1:1/m");
        assert_eq!(url.spec(ModelPrecision::F32).files.len(), 7);
        for bad in ["", "just-a-name", "a/b/c", "a b/c", "ftp://x"] {
            assert!(ModelChoice::custom(bad).is_err(), "{bad}");
        }
    }
}
