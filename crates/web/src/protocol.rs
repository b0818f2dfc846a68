//! Messages between the UI thread and the compute worker. They travel as JSON text through
//! `postMessage`, so both sides agree on one serde schema that is tested natively.

pub use keyshift_core::audio::{AudioAnalysis, OnsetOptions};
use keyshift_core::selftest::SelfTestReport;
pub use keyshift_core::share::{ParseqSettings, Sampler, ShiftSettings, TravelSettings};
pub use keyshift_core::tokens::TokenCount;
use serde::{Deserialize, Serialize};

/// One file of a model, fetched from `url` and known to the engine by `path` (`unet/config.json`
/// in a diffusers folder; the file name for a single file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFile {
    /// Relative path inside the model.
    pub path: String,
    /// Where to fetch it (absolute, or relative to the site), or `attached:N` for the N-th
    /// Blob sent with the message (a local file; see [`ATTACHED`]).
    pub url: String,
    /// Another `(path, url)` to try when `url` is not found (the f32 file where the fp16
    /// variant is missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<(String, String)>,
}

/// The URL scheme of a file sent with the message itself (`attached:0`).
pub const ATTACHED: &str = "attached:";

impl ModelFile {
    /// The index of the attached Blob this file is, if it is one.
    pub fn attached(&self) -> Option<usize> {
        self.url.strip_prefix(ATTACHED)?.parse().ok()
    }
}

/// How a model's files are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelLayout {
    /// `text_encoder/`, `unet/`, `vae/`, `scheduler/` folders.
    Diffusers,
    /// One CompVis/A1111 `.safetensors` (its first file).
    SingleFile,
}

/// Which burn backend the worker computes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ComputeBackend {
    /// WebGPU.
    #[default]
    Webgpu,
    /// burn's CPU backend inside the worker: slow, for machines without WebGPU.
    Cpu,
}

/// A model to load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Stable identifier (the cache key).
    pub id: String,
    /// What the user sees.
    pub label: String,
    /// Layout of `files`.
    pub layout: ModelLayout,
    /// The files.
    pub files: Vec<ModelFile>,
    /// The precision the model is loaded at.
    pub precision: ModelPrecision,
    /// Published SHA-256 digests (lowercase hex) by file path: a downloaded file with a pin
    /// must match it, or it is discarded and the load fails naming it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pins: Vec<(String, String)>,
}

impl ModelSpec {
    /// The pinned SHA-256 of the file at `path`, if its publisher gives one.
    pub fn pin(&self, path: &str) -> Option<&str> {
        self.pins
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, digest)| digest.as_str())
    }
}

/// The precision a model is loaded at (`"int8"` or `"f32"` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelPrecision {
    /// Weights as 8-bit integers with per-block scales (smaller downloads and cache).
    #[default]
    Int8,
    /// 32-bit floats.
    F32,
}

impl ModelPrecision {
    /// Both, as a picker lists them.
    pub const ALL: [Self; 2] = [Self::Int8, Self::F32];

    /// `int8` or `f32`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Int8 => "int8",
            Self::F32 => "f32",
        }
    }

    /// The precision called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// One image to make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateJob {
    /// Chosen by the UI; every message about the job carries it.
    pub job: u64,
    /// Prompt, A1111 syntax.
    pub prompt: String,
    /// Negative prompt.
    pub negative: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Sampling steps.
    pub steps: u32,
    /// The sampler (A1111's name on the wire: `Euler a`, `DPM++ 2M Karras`…).
    pub sampler: Sampler,
    /// Guidance scale.
    pub cfg: f64,
    /// The seed (already resolved: never "random").
    pub seed: u64,
    /// Send a preview image every this many steps (0: none).
    pub preview_every: u32,
    /// img2img: the init image's size and denoising strength; its RGB bytes travel beside the
    /// message as a Blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<InitSpec>,
    /// The init image, filled in by the worker from the attached Blob (not on the wire).
    #[serde(skip)]
    pub init_image: Option<Box<keyshift_core::image::RgbImage>>,
    /// Sum these context positions' cross-attention over the whole generation (every layer
    /// and step) and send the map with the image; empty: every position after the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heatmap: Option<Vec<usize>>,
    /// Guide the image with the loaded ControlNet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<Box<ControlJob>>,
}

/// How the loaded ControlNet guides a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlJob {
    /// Strength, guess mode, steps.
    pub settings: keyshift_core::control::ControlSettings,
    /// The hint is the canny edges (50, 200) of the control image, or of each video frame;
    /// otherwise the control image, or each frame of a hint video, is the hint itself.
    pub canny: bool,
    /// A single image's control image (its RGB bytes are the last attached Blob); for a video
    /// render without `canny`, the size of the hint video's frames (one per video frame, one
    /// after another, in the last attached Blob).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSize>,
    /// The control image, filled in by the worker from the attached Blob (not on the wire).
    #[serde(skip)]
    pub image_data: Option<Box<keyshift_core::image::RgbImage>>,
    /// A video render's hint frames, filled in by the worker (not on the wire).
    #[serde(skip)]
    pub frames: Vec<keyshift_core::image::RgbImage>,
}

/// An image's size (its RGB bytes travel as an attached Blob).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSize {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// An img2img init image as sent: its size (the RGB bytes are the attached Blob) and how much
/// to change it (0 keeps it, 1 ignores it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InitSpec {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Denoising strength, above 0 and at most 1.
    pub strength: f64,
}

/// An animation to render: the settings every frame shares (`frame`: its `job` id, prompts, size,
/// sampling, seed and previews) and the mode's options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderJob {
    /// The shared settings; the prompts carry shift-attention's ranges and `THEN` segments.
    pub frame: GenerateJob,
    /// shift-attention's options.
    pub shift: ShiftSettings,
    /// Prompt travel's options: when set, the render is a prompt travel between the prompt's
    /// lines (otherwise shift-attention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub travel: Option<Box<TravelSettings>>,
    /// The Parseq mode: when set, the render is this document rendered as Deforum's 2D
    /// animation (the prompts are the document's, or the job's when it does not manage them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parseq: Option<Box<ParseqSettings>>,
    /// The frame store's id for this render (its OPFS folder).
    pub render: String,
    /// Continue a render whose frames are in the store (they are not rendered again).
    #[serde(default)]
    pub resume: bool,
    /// Temporal consistency: attention interpolation with the previous frames, colours matched
    /// to the first.
    #[serde(default)]
    pub temporal: Box<keyshift_core::temporal::Temporal>,
    /// Video input: when set, the render is these frames as img2img (their RGB bytes, one frame
    /// after another, are the attached Blob).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<Box<VideoJob>>,
    /// Video input guided by the loaded ControlNet (the hints are the frames' canny edges).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<Box<ControlJob>>,
    /// Decode the frames with the TAESD loaded with the model instead of its VAE (faster,
    /// softer; the frames' parameters say `VAE Decoder: TAESD`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub taesd_frames: bool,
}

/// A video's frames as sent for video input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoJob {
    /// Each frame's width (the video's).
    pub width: u32,
    /// Each frame's height.
    pub height: u32,
    /// Each frame's name (`frame 12 (0.40 s)`), in order.
    pub names: Vec<String>,
    /// The output's frame rate.
    pub fps: f64,
    /// img2img denoising strength.
    pub denoise: f64,
    /// The frames, filled in by the worker from the attached Blob (not on the wire).
    #[serde(skip)]
    pub frames: Vec<keyshift_core::image::RgbImage>,
}

/// Visualize Cross-Attention (seeds.md §3) on the loaded model: one UNet forward on an image's
/// clean latent, one layer's map of the chosen tokens, drawn over the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeJob {
    /// Chosen by the UI (the reply carries it).
    pub job: u64,
    /// The image's width (its RGB bytes are attached).
    pub width: u32,
    /// The image's height.
    pub height: u32,
    /// The prompt (its first `AND` part is encoded, with A1111 weights).
    pub prompt: String,
    /// Context positions summed; empty: every one after the first (VXA's blank field).
    pub tokens: Vec<usize>,
    /// The UNet timestep, 0 to 999 (VXA's default 1).
    pub time: f64,
    /// The layer's diffusers name (`mid_block.attentions.0`).
    pub layer: String,
    /// `masked` (the image times the map) or `grey` (the map).
    pub grey: bool,
    /// Feed the VAE the image in [0, 1] as the original does (otherwise [−1, 1]).
    pub unit_input: bool,
    /// The image, filled in by the worker from the attached Blob (not on the wire).
    #[serde(skip)]
    pub image: Option<Box<keyshift_core::image::RgbImage>>,
}

/// Benchmark this device: one UNet step with CFG (batch 2) of the loaded model, timed after a
/// warm-up step. The inputs are fixed (latent 0.1, context 0.01, timestep 900), as in
/// `keyshift bench unet` and the peers' benchmark, so the output's checksum is comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BenchJob {
    /// Chosen by the UI (the reply carries it; cancel with it).
    pub job: u64,
    /// The image's width in pixels (the latent is this over the VAE's scale).
    pub width: u32,
    /// The image's height in pixels.
    pub height: u32,
    /// Timed steps after the warm-up.
    pub runs: u32,
}

/// What a [`BenchJob`] measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// The image's width in pixels.
    pub width: u32,
    /// The image's height in pixels.
    pub height: u32,
    /// Timed steps.
    pub runs: u32,
    /// The median of the timed steps, in milliseconds (each ends by reading the output back).
    pub median_ms: f64,
    /// The fastest timed step.
    pub min_ms: f64,
    /// The warm-up step (shader compilation and memory pools included).
    pub warmup_ms: f64,
    /// The sum of the output's first 16 values: equal wherever the model computes correctly.
    pub checksum: f64,
}

/// One stored frame of a render to make again with the loaded model (its own prompts, seeds and
/// CFG; the render's size, steps and sampler), replacing it in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RerenderJob {
    /// Chosen by the UI (cancel with it).
    pub job: u64,
    /// The render's id.
    pub render: String,
    /// The frame's generation index.
    pub index: usize,
}

/// A file an animation is exported to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// WebM video (VP9 or VP8 through WebCodecs, muxed in Rust).
    Webm,
    /// Animated GIF.
    Gif,
    /// A zip of the PNG frames, the manifest and the mode's files.
    Zip,
    /// A zip of the frames with their token heatmaps drawn over them (jet, half opacity).
    Heatmaps,
}

impl ExportFormat {
    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Webm => "webm",
            Self::Gif => "gif",
            Self::Zip | Self::Heatmaps => "zip",
        }
    }

    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Webm => "video/webm",
            Self::Gif => "image/gif",
            Self::Zip | Self::Heatmaps => "application/zip",
        }
    }
}

/// One finished frame of an animation, as the UI shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameInfo {
    /// Its index in the order of generation (the store's file number).
    pub index: usize,
    /// The prompt, ranges resolved.
    pub prompt: String,
    /// The negative prompt, ranges resolved.
    pub negative: String,
    /// The seed.
    pub seed: u64,
    /// The variation seed.
    pub subseed: u64,
    /// The variation strength.
    pub subseed_strength: f64,
    /// The CFG scale.
    pub cfg: f64,
    /// A1111's `parameters` text of the frame.
    pub parameters: String,
    /// Prompt travel: the stages the frame lies between and its α.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<FrameStages>,
    /// Grad mode: each PGD step's latent and conditioning losses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub losses: Vec<[f64; 2]>,
}

/// Where a prompt-travel frame lies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrameStages {
    /// The stage it leaves (0-based).
    pub from: usize,
    /// The stage it travels to.
    pub to: usize,
    /// The interpolation weight used.
    pub alpha: f64,
}

/// A render in the frame store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderInfo {
    /// Its id.
    pub id: String,
    /// The job it was started with.
    pub job: RenderJob,
    /// Frames stored.
    pub frames: usize,
    /// Bytes stored.
    pub bytes: u64,
    /// Whether it finished (otherwise it can be resumed).
    pub complete: bool,
}

/// UI thread → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorker {
    /// Run the GPU self-test again.
    RunSelfTest,
    /// Fetch (or read from the cache) and load a model, replacing the loaded one.
    LoadModel {
        /// The model.
        model: ModelSpec,
        /// Where to compute.
        backend: ComputeBackend,
        /// A TAESD folder for step previews, loaded with the model (previews are approximate
        /// without it, or when it fails to load).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previewer: Option<ModelSpec>,
    },
    /// Make an image with the loaded model.
    Generate {
        /// The image.
        job: GenerateJob,
    },
    /// Render an animation with the loaded model, each frame stored the moment it is finished.
    Render {
        /// The animation.
        job: RenderJob,
    },
    /// Render one stored frame again (a `Frame` replaces it, or `Failed`/`Cancelled`).
    RerenderFrame {
        /// The frame.
        job: RerenderJob,
    },
    /// Report the renders in the frame store.
    ListRenders,
    /// Send a stored render's frames (`Frame` messages, then `RenderOpened`).
    OpenRender {
        /// The render's id.
        render: String,
    },
    /// Delete a stored render, then report the store.
    DeleteRender {
        /// The render's id.
        render: String,
    },
    /// Export a finished render.
    Export {
        /// The render's id.
        render: String,
        /// To what.
        format: ExportFormat,
    },
    /// Stop `job` before its next step.
    Cancel {
        /// The job.
        job: u64,
    },
    /// Time one UNet step with CFG of the loaded model.
    Benchmark {
        /// The benchmark.
        job: BenchJob,
    },
    /// Visualize Cross-Attention's probe of an image (its RGB bytes are the attached Blob).
    Probe {
        /// The probe.
        job: Box<ProbeJob>,
    },
    /// Analyse an audio reference: its mono samples (little-endian f32) are the attached Blob.
    AnalyseAudio {
        /// Chosen by the UI (the reply carries it).
        id: u64,
        /// Samples per second.
        rate: f64,
        /// Onset detection options.
        options: OnsetOptions,
        /// Waveform columns to draw.
        columns: usize,
    },
    /// Count the tokens of the prompt boxes as A1111's counter does.
    CountTokens {
        /// The prompt.
        prompt: String,
        /// The negative prompt.
        negative: String,
        /// Sampling steps (prompt editing depends on them).
        steps: u32,
    },
    /// Fetch (or read from the cache) and load a ControlNet for the loaded model, replacing
    /// the loaded ControlNet.
    LoadControlNet {
        /// The ControlNet (a diffusers folder: `config.json` and its weights; or one original
        /// file).
        controlnet: ModelSpec,
    },
    /// Free the loaded ControlNet.
    UnloadControlNet,
    /// Report the cached models and the storage estimate.
    ListCache,
    /// Delete a cached model, then report the cache.
    DeleteCached {
        /// The model's id.
        id: String,
    },
}

/// A model in the offline cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedModelInfo {
    /// Its id.
    pub id: String,
    /// What the user sees.
    pub label: String,
    /// Bytes stored.
    pub bytes: u64,
    /// False for a download that did not finish.
    pub complete: bool,
}

/// What loading is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadPhase {
    /// Fetching a file.
    Download,
    /// Reading weights onto the device.
    Prepare,
}

/// Where in its life the worker failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Loading the worker's script and module.
    Load,
    /// Acquiring the WebGPU device.
    Device,
    /// Running the self-test.
    SelfTest,
    /// Fetching or loading a model.
    Model,
    /// Fetching or loading a ControlNet.
    ControlNet,
    /// Making an image.
    Generate,
    /// Rendering an animation, or reading or writing the frame store.
    Render,
    /// Exporting an animation.
    Export,
    /// Reading a message from the UI thread.
    Message,
    /// The worker stopped working (a panic, a lost GPU device, memory exhausted); the UI starts
    /// a fresh one.
    Crashed,
}

/// Worker → UI thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromWorker {
    /// The worker's module is loaded and it is acquiring a device.
    Started,
    /// The burn wgpu device is ready.
    DeviceReady {
        /// Time to acquire the device, in milliseconds.
        init_ms: f64,
    },
    /// A self-test finished.
    SelfTest {
        /// The computed checks.
        report: SelfTestReport,
    },
    /// Loading progress.
    LoadProgress {
        /// The file being fetched, or the component being prepared.
        file: String,
        /// What is happening.
        phase: LoadPhase,
        /// Which file (0-based) of `count`.
        index: u32,
        /// Files in all.
        count: u32,
        /// Bytes of this file done so far.
        done_bytes: u64,
        /// Bytes of this file, when known.
        total_bytes: Option<u64>,
        /// Bytes of this file that an earlier, interrupted download had already stored.
        #[serde(default)]
        resumed_bytes: u64,
        /// Milliseconds since this file started.
        elapsed_ms: f64,
    },
    /// The model is loaded.
    ModelReady {
        /// Its [`ModelSpec::id`].
        id: String,
        /// What was loaded (architecture, precision, backend), one line.
        summary: String,
        /// Pixels per side must be a multiple of this.
        size_multiple: u32,
        /// Bytes fetched over the network for this load (0 when it came from the cache).
        fetched_bytes: u64,
        /// Whether it was read from the offline cache.
        from_cache: bool,
        /// From the request to ready, in milliseconds.
        load_ms: f64,
        /// How step previews are made: `TAESD previews`, or why they are approximate.
        #[serde(default)]
        previews: String,
        /// Whether the TAESD loaded for previews fits the model's latents, so that an
        /// animation's frames may be decoded with it.
        #[serde(default)]
        taesd_frames: bool,
        /// The most heap the load used at once, above what the worker held before (weights
        /// stream to the device one tensor at a time, so on WebGPU this stays near the largest
        /// tensor; on the CPU backend the weights themselves stay in the heap).
        #[serde(default)]
        memory_growth_bytes: u64,
        /// The largest weight tensor of the model, in f32 bytes.
        #[serde(default)]
        largest_tensor_bytes: u64,
        /// The worker's wasm memory after loading (its peak: wasm memory never shrinks).
        #[serde(default)]
        memory_bytes: u64,
        /// The cross-attention layers (diffusers name, and how much smaller than the latent
        /// their maps are), for the attention probe.
        #[serde(default)]
        layers: Vec<(String, usize)>,
    },
    /// The ControlNet is loaded (a model loading afterwards drops it).
    ControlNetReady {
        /// Its [`ModelSpec::id`].
        id: String,
        /// Bytes fetched over the network (0 from the cache).
        fetched_bytes: u64,
        /// Whether it was read from the offline cache.
        from_cache: bool,
        /// From the request to ready, in milliseconds.
        load_ms: f64,
    },
    /// The ControlNet was freed (asked to, or because another model was loaded).
    ControlNetUnloaded,
    /// A step finished.
    Progress {
        /// The job.
        job: u64,
        /// Steps done.
        step: u32,
        /// Steps in all.
        steps: u32,
        /// Since the job started, in milliseconds.
        elapsed_ms: f64,
    },
    /// An intermediate image (the model's current estimate of the result).
    Preview {
        /// The job.
        job: u64,
        /// Steps done.
        step: u32,
        /// A PNG; travels beside the JSON, not in it.
        #[serde(skip)]
        png: Vec<u8>,
    },
    /// The finished image.
    Image {
        /// The job.
        job: u64,
        /// A PNG carrying A1111's `parameters` text; travels beside the JSON, not in it.
        #[serde(skip)]
        png: Vec<u8>,
        /// The seed used.
        seed: u64,
        /// From the request to the image, in milliseconds.
        elapsed_ms: f64,
        /// Mean time per sampling step, in milliseconds.
        step_ms: f64,
    },
    /// A finished frame of a render (sent with its PNG as transferable bytes).
    Frame {
        /// The render's id.
        render: String,
        /// The frame.
        frame: FrameInfo,
        /// The PNG (with `parameters`); travels beside the JSON, not in it.
        #[serde(skip)]
        png: Vec<u8>,
    },
    /// A finished frame's token heatmap (a render whose job asked for one), summed over the
    /// frame's steps and layers.
    FrameHeatmap {
        /// The render's id.
        render: String,
        /// The frame's generation index.
        index: usize,
        /// The map.
        heatmap: keyshift_core::image::heatmap::HeatmapData,
    },
    /// Where a render stands (after each step).
    RenderProgress {
        /// The job.
        job: u64,
        /// The render's id.
        render: String,
        /// Frames finished.
        frames_done: usize,
        /// Frames expected in all (gap filling may add more).
        frames_expected: usize,
        /// Seconds left for the whole render, once known.
        eta_seconds: Option<f64>,
        /// Bytes the temporal consistency keeps for the previous frame (on the GPU).
        #[serde(default)]
        temporal_bytes: u64,
    },
    /// A render finished: the video's order of frames (by generation index, mirror included,
    /// lead not), its frame rate and lead in/out.
    RenderDone {
        /// The job (`None` when an opened stored render is complete).
        job: Option<u64>,
        /// The render's id.
        render: String,
        /// Generation indices in video order.
        order: Vec<usize>,
        /// Frames per second of the video (`None`: no video).
        fps: Option<f64>,
        /// Copies of the first and last frame at the ends of the video.
        lead: usize,
        /// The most worker heap the render used at once above what the worker held when it
        /// started, in bytes (0 for an opened stored render). Frames go to the store, so this
        /// does not grow with the number of frames.
        #[serde(default)]
        heap_peak_bytes: u64,
    },
    /// A stored render was opened (its frames were sent before this).
    RenderOpened {
        /// The render as stored.
        info: RenderInfo,
    },
    /// The renders in the frame store.
    Renders {
        /// Newest first.
        renders: Vec<RenderInfo>,
    },
    /// Export progress.
    ExportProgress {
        /// The render.
        render: String,
        /// Frames done.
        done: usize,
        /// Frames in all.
        total: usize,
    },
    /// An export is ready (its bytes travel beside the JSON).
    Exported {
        /// The render.
        render: String,
        /// Its format.
        format: ExportFormat,
        /// Video frames in the file.
        frames: usize,
        /// The file.
        #[serde(skip)]
        bytes: Vec<u8>,
    },
    /// The job stopped before finishing, as asked.
    Cancelled {
        /// The job.
        job: u64,
    },
    /// An audio reference's analysis (for `AnalyseAudio` `id`), or why it failed.
    AudioAnalysed {
        /// The request's id.
        id: u64,
        /// The analysis, or what went wrong.
        result: Result<Box<AudioAnalysis>, String>,
    },
    /// The token counts of the prompt boxes.
    Tokens {
        /// The prompt's.
        prompt: TokenCount,
        /// The negative prompt's.
        negative: TokenCount,
        /// The positions of the prompt's context (its first `AND` part), for the token picker.
        #[serde(default)]
        chips: Vec<keyshift_core::tokens::TokenChip>,
    },
    /// A benchmark's result.
    Benchmarked {
        /// The benchmark.
        job: u64,
        /// What it measured.
        report: BenchReport,
    },
    /// A probe's result.
    Probed {
        /// The probe.
        job: u64,
        /// The drawn image (PNG); travels beside the JSON, not in it.
        #[serde(skip)]
        png: Vec<u8>,
        /// The layer as the original names it.
        layer: String,
        /// The map's size.
        width: usize,
        /// Its rows.
        height: usize,
    },
    /// The chosen tokens' cross-attention summed over a generation (sent after its image).
    Heatmap {
        /// The job.
        job: u64,
        /// Map columns.
        width: usize,
        /// Map rows.
        height: usize,
        /// `width · height` values, rows top to bottom, divided by their maximum.
        values: Vec<f32>,
        /// The context positions summed (empty: every one after the first).
        tokens: Vec<usize>,
    },
    /// The offline cache.
    Cache {
        /// The cached models.
        models: Vec<CachedModelInfo>,
        /// Bytes the site uses in the browser's storage.
        usage_bytes: u64,
        /// Bytes it may use.
        quota_bytes: u64,
    },
    /// Something failed; the worker stays alive and answers later messages where it can.
    Failed {
        /// Where it failed.
        stage: Stage,
        /// What the engine or browser said.
        message: String,
    },
}

/// A message that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("unreadable worker message: {0}")]
pub struct ProtocolError(String);

impl ToWorker {
    /// The JSON text sent through `postMessage`.
    pub fn to_json(&self) -> String {
        // Serialising these enums cannot fail (no maps with non-string keys, no custom impls).
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a message sent by [`ToWorker::to_json`].
    pub fn from_json(text: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError(e.to_string()))
    }
}

impl FromWorker {
    /// The bytes that travel beside the JSON (a frame's PNG, an export), if any.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Frame { png, .. }
            | Self::Preview { png, .. }
            | Self::Image { png, .. }
            | Self::Probed { png, .. } => Some(png),
            Self::Exported { bytes, .. } => Some(bytes),
            _ => None,
        }
    }

    /// Puts back the bytes that travelled beside the JSON.
    pub fn set_bytes(&mut self, data: Vec<u8>) {
        match self {
            Self::Frame { png, .. }
            | Self::Preview { png, .. }
            | Self::Image { png, .. }
            | Self::Probed { png, .. } => *png = data,
            Self::Exported { bytes, .. } => *bytes = data,
            _ => {}
        }
    }

    /// The JSON text sent through `postMessage`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a message sent by [`FromWorker::to_json`].
    pub fn from_json(text: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyshift_core::selftest::Check;

    fn check(name: &str) -> Check {
        Check {
            name: name.to_owned(),
            shape: vec![2, 2],
            sum: 1.5,
            expected_sum: 1.5,
            max_abs_error: 0.0,
            passed: true,
            elapsed_ms: 3.25,
        }
    }

    #[test]
    fn every_message_round_trips_through_json() {
        let messages = vec![
            FromWorker::Started,
            FromWorker::DeviceReady { init_ms: 12.5 },
            FromWorker::ControlNetReady {
                id: "control_v11p_sd15_canny".into(),
                fetched_bytes: 10,
                from_cache: false,
                load_ms: 5.0,
            },
            FromWorker::ControlNetUnloaded,
            FromWorker::FrameHeatmap {
                render: "r1".into(),
                index: 3,
                heatmap: keyshift_core::image::heatmap::HeatmapData {
                    width: 2,
                    height: 1,
                    values: vec![0.25, 1.0],
                    tokens: vec![5],
                },
            },
            FromWorker::SelfTest {
                report: SelfTestReport {
                    matmul: check("matmul"),
                    conv2d: check("conv2d"),
                },
            },
            FromWorker::Failed {
                stage: Stage::Device,
                message: "no adapter".to_owned(),
            },
        ];
        for m in messages {
            assert_eq!(FromWorker::from_json(&m.to_json()).expect("reads"), m);
        }
        let more = vec![
            FromWorker::LoadProgress {
                file: "unet/diffusion_pytorch_model.safetensors".into(),
                phase: LoadPhase::Download,
                index: 0,
                count: 3,
                done_bytes: 10,
                total_bytes: Some(100),
                resumed_bytes: 4,
                elapsed_ms: 5.0,
            },
            FromWorker::ModelReady {
                id: "tiny".into(),
                summary: "SD 1.x".into(),
                size_multiple: 16,
                fetched_bytes: 0,
                from_cache: true,
                load_ms: 1.5,
                previews: "TAESD previews".into(),
                taesd_frames: true,
                memory_growth_bytes: 5,
                largest_tensor_bytes: 4,
                memory_bytes: 9,
                layers: vec![("mid_block.attentions.0".into(), 8)],
            },
            FromWorker::Progress {
                job: 3,
                step: 1,
                steps: 4,
                elapsed_ms: 2.0,
            },
            FromWorker::Preview {
                job: 3,
                step: 1,
                png: Vec::new(),
            },
            FromWorker::Image {
                job: 3,
                png: Vec::new(),
                seed: 42,
                elapsed_ms: 9.0,
                step_ms: 2.0,
            },
            FromWorker::Cancelled { job: 3 },
            FromWorker::AudioAnalysed {
                id: 2,
                result: Ok(Box::new(AudioAnalysis {
                    duration: 1.5,
                    onsets: vec![0.25],
                    amplitude: vec![(0.0, 0.5)],
                    pitch: vec![(0.0, 440.0)],
                    waveform: vec![(-0.5, 0.5)],
                })),
            },
            FromWorker::AudioAnalysed {
                id: 3,
                result: Err("no samples".into()),
            },
            FromWorker::Tokens {
                prompt: TokenCount {
                    tokens: 80,
                    limit: 150,
                    chunks: vec![75, 5],
                },
                negative: TokenCount {
                    tokens: 0,
                    limit: 75,
                    chunks: vec![0],
                },
                chips: vec![keyshift_core::tokens::TokenChip {
                    index: 1,
                    text: "cat".into(),
                    weight: 1.2,
                    kind: keyshift_core::tokens::TokenKind::Word,
                    chunk: 0,
                }],
            },
            FromWorker::Heatmap {
                job: 4,
                width: 2,
                height: 1,
                values: vec![0.5, 1.0],
                tokens: vec![1],
            },
            FromWorker::Cache {
                models: vec![CachedModelInfo {
                    id: "tiny-sd1@f32".into(),
                    label: "tiny".into(),
                    bytes: 100,
                    complete: true,
                }],
                usage_bytes: 100,
                quota_bytes: 1000,
            },
        ];
        for m in more {
            assert_eq!(FromWorker::from_json(&m.to_json()).expect("reads"), m);
        }
        let model = ModelSpec {
            id: "tiny".into(),
            label: "tiny".into(),
            layout: ModelLayout::Diffusers,
            files: vec![ModelFile {
                path: "unet/config.json".into(),
                url: "/fixtures/tiny-sd1/diffusers/unet/config.json".into(),
                fallback: Some(("unet/a".into(), "/a".into())),
            }],
            precision: ModelPrecision::F32,
            pins: vec![("unet/config.json".into(), "ab".repeat(32))],
        };
        assert_eq!(
            model.pin("unet/config.json"),
            Some("ab".repeat(32).as_str())
        );
        assert_eq!(model.pin("unet/a"), None);
        let job = GenerateJob {
            job: 3,
            prompt: "a (cat:1.2)".into(),
            negative: String::new(),
            width: 64,
            height: 64,
            steps: 4,
            sampler: Sampler::Euler,
            cfg: 7.0,
            seed: 42,
            preview_every: 1,
            init: None,
            init_image: None,
            heatmap: None,
            control: Some(Box::new(ControlJob {
                settings: keyshift_core::control::ControlSettings {
                    guess_mode: true,
                    ..Default::default()
                },
                canny: true,
                image: Some(ImageSize {
                    width: 64,
                    height: 48,
                }),
                image_data: None,
                frames: Vec::new(),
            })),
        };
        for m in [
            ToWorker::RunSelfTest,
            ToWorker::LoadControlNet {
                controlnet: model.clone(),
            },
            ToWorker::UnloadControlNet,
            ToWorker::LoadModel {
                model: model.clone(),
                backend: ComputeBackend::Cpu,
                previewer: None,
            },
            ToWorker::LoadModel {
                model: model.clone(),
                backend: ComputeBackend::Webgpu,
                previewer: Some(model),
            },
            ToWorker::Generate { job },
            ToWorker::Cancel { job: 3 },
            ToWorker::AnalyseAudio {
                id: 1,
                rate: 44_100.0,
                options: OnsetOptions::default(),
                columns: 720,
            },
            ToWorker::CountTokens {
                prompt: "a cat".into(),
                negative: String::new(),
                steps: 20,
            },
            ToWorker::ListCache,
            ToWorker::DeleteCached { id: "x".into() },
        ] {
            assert_eq!(ToWorker::from_json(&m.to_json()).expect("reads"), m);
        }
    }

    #[test]
    fn the_wire_format_is_stable() {
        assert_eq!(
            ToWorker::RunSelfTest.to_json(),
            r#"{"type":"run_self_test"}"#
        );
        assert_eq!(
            FromWorker::Failed {
                stage: Stage::SelfTest,
                message: "x".into()
            }
            .to_json(),
            r#"{"type":"failed","stage":"self_test","message":"x"}"#
        );
    }

    #[test]
    fn samplers_and_precisions_are_enums_with_a1111_names_on_the_wire() {
        let json = r#"{"type":"generate","job":{"job":1,"prompt":"a","negative":"","width":64,
            "height":64,"steps":4,"sampler":"DPM++ 2M Karras","cfg":7.0,"seed":1,
            "preview_every":0}}"#;
        let Ok(ToWorker::Generate { job }) = ToWorker::from_json(json) else {
            panic!("reads");
        };
        assert_eq!(job.sampler, Sampler::DpmPp2mKarras);
        let unknown = json.replace("DPM++ 2M Karras", "Heun++");
        let err = ToWorker::from_json(&unknown)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("Heun++"), "{err}");
        assert_eq!(
            serde_json::to_string(&ModelPrecision::Int8).unwrap_or_default(),
            "\"int8\""
        );
        assert_eq!(ModelPrecision::from_name("f32"), Some(ModelPrecision::F32));
        assert_eq!(ModelPrecision::from_name("fp8"), None);
    }

    fn render_job() -> RenderJob {
        RenderJob {
            frame: GenerateJob {
                job: 9,
                prompt: "a (cat:1~0)".into(),
                negative: String::new(),
                width: 64,
                height: 64,
                steps: 4,
                sampler: Sampler::Euler,
                cfg: 7.0,
                seed: 42,
                preview_every: 0,
                init: None,
                init_image: None,
                heatmap: None,
                control: None,
            },
            shift: ShiftSettings {
                shift_steps: 3,
                mirror: true,
                ..ShiftSettings::default()
            },
            travel: Some(Box::new(TravelSettings {
                steps: "2, 3".into(),
                ..TravelSettings::default()
            })),
            parseq: Some(Box::new(ParseqSettings {
                document: r#"{"keyframes":[{"frame":0},{"frame":4}]}"#.into(),
                frames: "0..2".into(),
                ..ParseqSettings::default()
            })),
            render: "r1".into(),
            resume: true,
            temporal: Box::new(keyshift_core::temporal::Temporal {
                interpolation: Some(keyshift_core::temporal::Interpolation::default()),
                colour: Some(keyshift_core::image::ColourSpace::Lab),
            }),
            video: Some(Box::new(VideoJob {
                width: 72,
                height: 40,
                names: vec!["frame 0".into()],
                fps: 29.97,
                denoise: 0.5,
                frames: Vec::new(),
            })),
            control: None,
            taesd_frames: true,
        }
    }

    #[test]
    fn render_messages_round_trip_and_bytes_travel_beside_the_json() {
        let info = FrameInfo {
            losses: vec![[1.5, 0.25]],
            stages: Some(FrameStages {
                from: 1,
                to: 2,
                alpha: 0.5,
            }),
            index: 2,
            prompt: "a (cat:0.333)".into(),
            negative: String::new(),
            seed: 42,
            subseed: 42,
            subseed_strength: 0.0,
            cfg: 7.0,
            parameters: "a (cat:0.333)\nSteps: 4".into(),
        };
        for m in [
            ToWorker::Render { job: render_job() },
            ToWorker::ListRenders,
            ToWorker::OpenRender {
                render: "r1".into(),
            },
            ToWorker::DeleteRender {
                render: "r1".into(),
            },
            ToWorker::Export {
                render: "r1".into(),
                format: ExportFormat::Webm,
            },
        ] {
            assert_eq!(ToWorker::from_json(&m.to_json()).expect("reads"), m);
        }
        let mut frame = FromWorker::Frame {
            render: "r1".into(),
            frame: info.clone(),
            png: vec![0x89, b'P', b'N', b'G'],
        };
        let json = frame.to_json();
        assert!(!json.contains("png"), "{json}");
        let mut back = FromWorker::from_json(&json).expect("reads");
        assert_eq!(back.bytes(), Some(&[][..]));
        back.set_bytes(frame.bytes().unwrap_or_default().to_vec());
        assert_eq!(back, frame);
        frame.set_bytes(Vec::new());
        let stored = RenderInfo {
            id: "r1".into(),
            job: render_job(),
            frames: 3,
            bytes: 300,
            complete: false,
        };
        for m in [
            FromWorker::RenderProgress {
                job: 9,
                render: "r1".into(),
                frames_done: 1,
                frames_expected: 4,
                eta_seconds: Some(3.5),
                temporal_bytes: 1024,
            },
            FromWorker::RenderDone {
                job: Some(9),
                render: "r1".into(),
                order: vec![0, 1, 2, 1, 0],
                fps: Some(30.0),
                lead: 1,
                heap_peak_bytes: 1 << 20,
            },
            FromWorker::RenderOpened {
                info: stored.clone(),
            },
            FromWorker::Renders {
                renders: vec![stored],
            },
            FromWorker::ExportProgress {
                render: "r1".into(),
                done: 1,
                total: 5,
            },
        ] {
            assert_eq!(FromWorker::from_json(&m.to_json()).expect("reads"), m);
            assert_eq!(m.bytes(), None);
        }
        assert_eq!(
            serde_json::to_string(&ExportFormat::Webm).unwrap_or_default(),
            "\"webm\""
        );
        // A probe's PNG travels beside the JSON, as a frame's.
        let probed = FromWorker::Probed {
            job: 5,
            png: b"png".to_vec(),
            layer: "middle_block".into(),
            width: 8,
            height: 8,
        };
        let mut read = FromWorker::from_json(&probed.to_json()).expect("reads");
        assert_eq!(read.bytes(), Some(&[][..]));
        read.set_bytes(b"png".to_vec());
        assert_eq!(read, probed);
    }

    #[test]
    fn bench_messages_round_trip() {
        let job = BenchJob {
            job: 3,
            width: 64,
            height: 64,
            runs: 5,
        };
        let ask = ToWorker::Benchmark { job };
        assert_eq!(ToWorker::from_json(&ask.to_json()).expect("reads"), ask);
        let answer = FromWorker::Benchmarked {
            job: 3,
            report: BenchReport {
                width: 64,
                height: 64,
                runs: 5,
                median_ms: 12.5,
                min_ms: 11.0,
                warmup_ms: 900.0,
                checksum: -0.125,
            },
        };
        assert_eq!(
            FromWorker::from_json(&answer.to_json()).expect("reads"),
            answer
        );
        assert_eq!(answer.bytes(), None);
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(FromWorker::from_json("{\"type\":\"nope\"}").is_err());
        assert!(ToWorker::from_json("").is_err());
    }
}
