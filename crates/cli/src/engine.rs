//! What every rendering command shares: the device and model from `--backend`, `--model` and
//! `--quant`, the render settings from `--steps`, `--sampler`, `--size`, `--clip-skip` and
//! `--upscale`, and the loop that drives a render session with progress on stderr.

use std::path::Path;

use keyshift_core::parameters::parse_sampler;
use keyshift_core::tokens::ClipTokenizer;
use std::collections::BTreeMap;

use keyshift_render::{
    Event, Finished, FinishedFrame, FrameSource, RenderSession, RenderSettings, StoredFrame,
};
use keyshift_sd::Device;
use keyshift_sd::controlnet::ControlNet;
use keyshift_sd::generate::size_multiple;
use keyshift_sd::model::DirFolder;
use keyshift_sd::model::SdModel;
use keyshift_sd::taesd::Taesd;
use keyshift_sd::taps::StepHook;
use keyshift_sd::weights::Precision;

use crate::args::{Args, parse_size};
use crate::backend::Backend;
use crate::control::{load_controlnet, render_control};
use crate::load::load_model;

/// The options every rendering command reads.
pub const ENGINE_OPTIONS: &[&str] = &[
    "model",
    "steps",
    "sampler",
    "size",
    "clip-skip",
    "quant",
    "backend",
    "taesd",
    "batch",
];

/// A loaded model and what runs it.
pub struct Engine {
    /// Where tensors live.
    pub device: Device,
    /// The model.
    pub model: SdModel,
    /// The CLIP tokenizer.
    pub tokenizer: ClipTokenizer,
    /// The model's name for the `parameters` text (the file or folder name).
    pub label: String,
    /// The ControlNet of `--controlnet`, for the frames with a hint.
    pub controlnet: Option<ControlNet>,
    /// The TAESD of `--taesd`, which then decodes every frame instead of the VAE.
    pub taesd: Option<Taesd>,
    /// `--batch`: frames that may share one UNet call per step (1: frame by frame; `None`,
    /// `--batch auto` or no option: what pays off on the device, see
    /// [`RenderSession::with_auto_frame_batch`]).
    pub batch: Option<usize>,
}

impl Engine {
    /// Loads `--model` at `--quant` on `--backend`.
    pub fn load(args: &Args) -> Result<Self, String> {
        let device = Backend::parse(args.get("backend").unwrap_or("cpu"))?.device()?;
        let path = Path::new(args.required("model")?);
        let model = load_model(path, precision(args)?, &device)?;
        let controlnet = load_controlnet(args, &model, precision(args)?, &device)?;
        let taesd = load_taesd(args, &model, &device)?;
        let tokenizer = ClipTokenizer::embedded().map_err(|e| e.to_string())?;
        let batch = match args.get("batch") {
            None | Some("auto") => None,
            Some(_) => match args.parsed("batch", 1usize)? {
                0 => return Err("--batch must be at least 1 (or auto)".into()),
                n => Some(n),
            },
        };
        let label = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self {
            device,
            model,
            tokenizer,
            label,
            controlnet,
            taesd,
            batch,
        })
    }

    /// The render settings from the arguments, checked against the model.
    pub fn settings(&self, args: &Args, upscale: f64) -> Result<RenderSettings, String> {
        let sampler_arg = args.get("sampler").unwrap_or("Euler a");
        let sampler = parse_sampler(sampler_arg, None).ok_or_else(|| {
            format!(
                "--sampler: unknown sampler \"{sampler_arg}\" (Euler, Euler a, DDIM, DPM++ 2M, \
                 DPM++ 2M Karras, LCM)"
            )
        })?;
        let (downscale, multiple) = size_multiple(&self.model);
        let native = 64 * downscale;
        let (width, height) = match args.get("size") {
            Some(s) => parse_size(s)?,
            None => (native, native),
        };
        if width == 0 || height == 0 || width % multiple != 0 || height % multiple != 0 {
            return Err(format!(
                "--size: {width}x{height} is not a positive multiple of {multiple} on each side"
            ));
        }
        let steps = args.parsed("steps", 20usize)?;
        if steps == 0 {
            return Err("--steps must be at least 1".into());
        }
        Ok(RenderSettings {
            steps,
            sampler,
            width,
            height,
            clip_skip: args.parsed("clip-skip", 0usize)?,
            upscale,
            model_label: self.label.clone(),
            temporal: keyshift_core::temporal::Temporal::default(),
            control: render_control(args)?,
        })
    }

    /// Renders the frames of `source` (those in `stored` are handed back, not rendered again),
    /// handing each finished frame to `on_frame`. `stop_after` ends the render early, after that
    /// many newly rendered frames (`None`: the render was stopped). `hook` sees every UNet call
    /// (a tap, or `NoHook`).
    pub fn render<S: FrameSource>(
        &self,
        settings: RenderSettings,
        source: S,
        stored: BTreeMap<usize, StoredFrame>,
        stop_after: Option<usize>,
        hook: &mut dyn StepHook,
        on_frame: &mut dyn FnMut(FinishedFrame) -> Result<(), String>,
    ) -> Result<Option<Finished>, String> {
        let mut session =
            RenderSession::new(&self.model, &self.tokenizer, &self.device, settings, source);
        session.resume_with(stored);
        if let Some(net) = &self.controlnet {
            session.with_controlnet(net);
        }
        if let Some(taesd) = &self.taesd {
            session.with_taesd_frames(taesd);
        }
        match self.batch {
            Some(frames) => session.with_frame_batch(frames),
            None => session.with_auto_frame_batch(),
        }
        let mut rendered = 0;
        loop {
            let event =
                pollster::block_on(session.advance(&mut *hook)).map_err(|e| e.to_string())?;
            match event {
                Event::Step(step) => {
                    let p = session.progress();
                    let eta = p
                        .eta_seconds
                        .map_or(String::new(), |s| format!(", {s:.0} s left"));
                    eprint!(
                        "\rframe {}/{} step {}/{}{eta}   ",
                        p.frames_done + 1,
                        p.frames_expected,
                        step.step,
                        step.steps
                    );
                }
                Event::Frame(frame) => {
                    rendered += usize::from(!frame.resumed);
                    on_frame(frame)?;
                    if stop_after.is_some_and(|n| rendered >= n) {
                        eprintln!();
                        return Ok(None);
                    }
                }
                Event::Done(finished) => {
                    eprintln!();
                    return Ok(Some(finished));
                }
            }
        }
    }
}

/// `--quant`: `f32` (the default) or `int8`.
pub fn precision(args: &Args) -> Result<Precision, String> {
    let text = args.get("quant").unwrap_or("f32");
    Precision::parse(text).ok_or_else(|| format!("--quant: expected int8 or f32, got \"{text}\""))
}

/// Writes `bytes` to `path`.
#[allow(
    clippy::disallowed_methods,
    reason = "the native CLI writes the files it is asked to"
)]
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `--taesd DIR`: TAESD as published (the diffusers folder, or the original
/// `taesd_decoder.safetensors`), checked against the model's latents.
fn load_taesd(args: &Args, model: &SdModel, device: &Device) -> Result<Option<Taesd>, String> {
    let Some(dir) = args.get("taesd") else {
        return Ok(None);
    };
    let folder = DirFolder(Path::new(dir).to_path_buf());
    let taesd =
        Taesd::load_folder(&folder, false, device).map_err(|e| format!("--taesd {dir}: {e}"))?;
    let (downscale, _) = size_multiple(model);
    taesd
        .check_fits(model.info.vae.latent_channels, downscale)
        .map_err(|e| format!("--taesd {dir}: {e}"))?;
    Ok(Some(taesd))
}
