//! Turning worker messages into engine requests, and results into messages: plain functions,
//! tested natively.

use keyshift_core::image::{CANNY_HIGH, CANNY_LOW, canny_hint, lanczos_resize};
use keyshift_core::parameters::parse_sampler;
use keyshift_core::parseq::document::Document;
use keyshift_core::pngtext;
use keyshift_core::prompt::split_and;
use keyshift_core::schedule::needs_uncond;
use keyshift_core::travel::{EmbryoStep, Slice};
use keyshift_render::{
    AnimationSource, FrameRecord, FrameSpec, Hint, ParseqOptions, ParseqSource, RenderControl,
    RenderSettings, ShiftOptions, ShiftSource, SingleFrame, TravelGapOptions, TravelOptions,
    TravelSource, VideoHint,
};
use keyshift_sd::generate::{InitImage, Request, RgbImage, size_multiple};
use keyshift_sd::limits;
use keyshift_sd::model::{ModelInfo, Prediction, SdModel};
use keyshift_sd::weights::Precision;
use keyshift_web::cache::{CachedFile, bytes_text};
use keyshift_web::protocol::{
    ComputeBackend, ControlJob, FrameInfo, FrameStages, GenerateJob, ModelPrecision, ModelSpec,
    ParseqSettings, RenderJob, TravelSettings,
};

/// The engine request for `job` on `model`, or why it cannot run.
pub fn request_for(job: &GenerateJob, model: &SdModel) -> Result<Request, String> {
    let name = job.sampler.name();
    let sampler = parse_sampler(name, None).ok_or_else(|| format!("unknown sampler \"{name}\""))?;
    let (_, multiple) = size_multiple(model);
    let fits = |side: u32| side > 0 && (side as usize).is_multiple_of(multiple);
    if !fits(job.width) || !fits(job.height) {
        return Err(format!(
            "this model needs sides that are multiples of {multiple}; {}x{} is not",
            job.width, job.height
        ));
    }
    if job.steps == 0 {
        return Err("steps must be at least 1".into());
    }
    Ok(Request {
        prompt: job.prompt.clone(),
        negative: job.negative.clone(),
        steps: job.steps as usize,
        sampler,
        cfg: job.cfg,
        seed: job.seed,
        subseed: None,
        width: job.width as usize,
        height: job.height as usize,
        clip_skip: 0,
        init: None,
        schedule: model.info.schedule.clone(),
    })
}

/// The render layer's ControlNet settings for `control`, with the loaded ControlNet's name
/// (`None`: none is loaded, and the job cannot run).
pub fn render_control(
    control: &ControlJob,
    controlnet: Option<&str>,
) -> Result<RenderControl, String> {
    let model_label = controlnet
        .ok_or("no ControlNet is loaded: load one in the ControlNet panel, or turn it off")?;
    control.settings.check().map_err(|e| e.to_string())?;
    Ok(RenderControl {
        settings: control.settings.clone(),
        model_label: model_label.to_owned(),
    })
}

/// A single image's hint at `width × height`: the control image (or, without one, the init
/// image), resized with Lanczos, as it is or as its canny edges.
pub fn control_hint(
    control: &ControlJob,
    width: usize,
    height: usize,
    init: Option<&RgbImage>,
) -> Result<Hint, String> {
    let image = control
        .image_data
        .as_deref()
        .or(init)
        .ok_or("the ControlNet needs a control image (or an init image to take it from)")?;
    let image = if (image.width, image.height) == (width, height) {
        image.clone()
    } else {
        lanczos_resize(image, width, height)
    };
    Ok(if control.canny {
        Hint {
            source: "canny".into(),
            image: canny_hint(&image, CANNY_LOW, CANNY_HIGH),
        }
    } else {
        Hint {
            source: "control image".into(),
            image,
        }
    })
}

/// The one-frame render plan of `job` (checked by [`request_for`] into `request`): the settings
/// and the frame the render layer makes it from. `controlnet` names the loaded ControlNet.
pub fn single_frame(
    job: &GenerateJob,
    request: &Request,
    label: &str,
    controlnet: Option<&str>,
) -> Result<(RenderSettings, SingleFrame), String> {
    let mut settings = render_settings(request, 1.0, label);
    let init = job
        .init
        .zip(job.init_image.as_deref())
        .map(|(spec, image)| {
            let (w, h) = (request.width, request.height);
            InitImage {
                image: if (image.width, image.height) == (w, h) {
                    image.clone()
                } else {
                    lanczos_resize(image, w, h)
                },
                strength: spec.strength,
            }
        });
    let hint = match job.control.as_deref() {
        Some(control) => {
            settings.control = Some(render_control(control, controlnet)?);
            let init_image = init.as_ref().map(|i| &i.image);
            Some(control_hint(
                control,
                request.width,
                request.height,
                init_image,
            )?)
        }
        None => None,
    };
    let spec = FrameSpec {
        index: 0,
        prompt: job.prompt.clone(),
        negative: job.negative.clone(),
        seed: job.seed,
        subseed: job.seed,
        subseed_strength: 0.0,
        cfg: job.cfg,
        init,
        extra: std::collections::BTreeMap::new(),
        travel: None,
        direct: None,
        output_size: None,
        hint,
    };
    Ok((settings, SingleFrame::new(spec)))
}

/// The render settings every frame of `job` shares (checked by [`request_for`] into `request`).
pub fn render_settings(request: &Request, upscale: f64, label: &str) -> RenderSettings {
    RenderSettings {
        steps: request.steps,
        sampler: request.sampler,
        width: request.width,
        height: request.height,
        clip_skip: request.clip_skip,
        upscale,
        model_label: label.to_owned(),
        temporal: keyshift_core::temporal::Temporal::default(),
        control: None,
    }
}

/// The shift-attention render plan of `job`: its settings and source, or what is wrong with it
/// (a prompt error names the prompt and the position).
pub fn shift_plan(
    job: &RenderJob,
    request: &Request,
    label: &str,
) -> Result<(RenderSettings, ShiftSource), String> {
    valid_render_id(&job.render)?;
    let shift = &job.shift;
    if !(shift.upscale > 0.0 && shift.upscale <= 8.0) {
        return Err(format!(
            "upscale {} is outside 0 to 8 (1 keeps the size)",
            shift.upscale
        ));
    }
    let seed = u32::try_from(job.frame.seed)
        .map_err(|_| format!("seed {} is above 4294967295", job.frame.seed))?;
    let options = ShiftOptions {
        request: shift.request(&job.frame.prompt, &job.frame.negative, seed, job.frame.cfg),
        gap: shift.gap(),
        mirror: shift.mirror,
        fps: shift.fps,
        lead: usize::try_from(shift.lead).unwrap_or(usize::MAX),
    };
    let settings = render_settings(request, shift.upscale, label);
    let source = ShiftSource::new(options, &settings).map_err(|e| e.to_string())?;
    Ok((settings, source))
}

/// The render plan of `job` in its mode: prompt travel when it carries travel options,
/// shift-attention otherwise.
pub fn animation_plan(
    job: &RenderJob,
    request: &Request,
    label: &str,
) -> Result<(RenderSettings, AnimationSource), String> {
    if let Some(parseq) = &job.parseq {
        let (settings, source) = parseq_plan(job, parseq, request, label)?;
        return Ok((settings, AnimationSource::Parseq(Box::new(source))));
    }
    if let Some(video) = &job.video {
        let (settings, source) = video_plan(job, video, request, label)?;
        return Ok((settings, AnimationSource::Video(Box::new(source))));
    }
    match &job.travel {
        Some(travel) => {
            let (settings, source) = travel_plan(job, travel, request, label)?;
            Ok((settings, AnimationSource::Travel(Box::new(source))))
        }
        None => {
            let (settings, source) = shift_plan(job, request, label)?;
            Ok((settings, AnimationSource::Shift(Box::new(source))))
        }
    }
}

/// The Parseq render plan of `job`: its document rendered by the sequencer, the frames it asks
/// for, the job's prompts where the document does not manage them. Random seeds (−1) come from
/// the document's text, as on the command line, so the browser renders what the CLI renders.
pub fn parseq_plan(
    job: &RenderJob,
    parseq: &ParseqSettings,
    request: &Request,
    label: &str,
) -> Result<(RenderSettings, ParseqSource), String> {
    valid_render_id(&job.render)?;
    let doc = Document::from_json_str(&parseq.document).map_err(|e| e.to_string())?;
    let mut options = ParseqOptions::for_document(&doc).map_err(|e| e.to_string())?;
    options.range = parseq.range(options.frames.len())?;
    options.border = parseq.border;
    options.colour_coherence = parseq.colour_coherence;
    options.fallback = (job.frame.prompt.clone(), job.frame.negative.clone());
    let settings = render_settings(request, 1.0, label);
    let source = ParseqSource::new(options, &settings).map_err(|e| e.to_string())?;
    Ok((settings, source))
}

/// The video-input plan of `job`: its frames as img2img with the job's prompts and seed.
pub fn video_plan(
    job: &RenderJob,
    video: &keyshift_web::protocol::VideoJob,
    request: &Request,
    label: &str,
) -> Result<(RenderSettings, keyshift_render::VideoSource), String> {
    valid_render_id(&job.render)?;
    if video.frames.len() != video.names.len() {
        return Err(format!(
            "the video's {} frames arrived as {}; pick the video again",
            video.names.len(),
            video.frames.len()
        ));
    }
    let hints = match job.control.as_deref() {
        None => None,
        Some(c) if c.canny => Some(vec![VideoHint::Canny; video.frames.len()]),
        Some(c) if c.frames.len() == video.frames.len() => Some(
            c.frames
                .iter()
                .enumerate()
                .map(|(i, image)| VideoHint::Image {
                    name: format!("hint frame {i}"),
                    image: image.clone(),
                })
                .collect(),
        ),
        Some(c) => {
            return Err(format!(
                "the hint video gave {} frames for the video's {}: pick it again",
                c.frames.len(),
                video.frames.len()
            ));
        }
    };
    let mut hints = hints.map(Vec::into_iter);
    let frames = video
        .frames
        .iter()
        .zip(&video.names)
        .map(|(image, name)| keyshift_render::VideoFrame {
            name: name.clone(),
            image: image.clone(),
            prompt: job.frame.prompt.clone(),
            negative: job.frame.negative.clone(),
            denoise: video.denoise,
            hint: hints.as_mut().and_then(Iterator::next),
        })
        .collect();
    let options = keyshift_render::VideoOptions {
        frames,
        seed: job.frame.seed,
        cfg: job.frame.cfg,
        fps: video.fps,
    };
    let settings = render_settings(request, 1.0, label);
    let source =
        keyshift_render::VideoSource::new(options, &settings).map_err(|e| e.to_string())?;
    Ok((settings, source))
}

/// The prompt-travel render plan of `job` (the stages are its prompt's lines).
pub fn travel_plan(
    job: &RenderJob,
    travel: &TravelSettings,
    request: &Request,
    label: &str,
) -> Result<(RenderSettings, TravelSource), String> {
    valid_render_id(&job.render)?;
    let slice = Slice::parse(&travel.slice).map_err(|e| e.to_string())?;
    let options = TravelOptions {
        prompt: job.frame.prompt.clone(),
        negative: job.frame.negative.clone(),
        steps: travel.steps.clone(),
        mode: travel.mode,
        interp: travel.interp,
        easing: travel.easing,
        replace_dim: travel.replace_dim,
        replace_order: travel.replace_order,
        genesis: travel.genesis,
        denoise: travel.denoise,
        embryo_step: EmbryoStep(travel.embryo_step),
        seed: job.frame.seed,
        cfg: job.frame.cfg,
        pad: usize::try_from(travel.pad).unwrap_or(usize::MAX),
        slice,
        fps: travel.fps,
        gap: TravelGapOptions {
            gap: travel.gap(),
            blur: travel.ssim_blur,
            crop: travel.ssim_crop,
        },
        grad: travel.grad,
        token_order: travel.token_order,
        subseed: u64::try_from(travel.subseed).ok(),
        subseed_strength: travel.subseed_strength,
    };
    let settings = render_settings(request, 1.0, label);
    let source = TravelSource::new(options, &settings).map_err(|e| e.to_string())?;
    Ok((settings, source))
}

/// A frame store id: letters, digits, `-` and `_`, 1 to 64 of them.
pub fn valid_render_id(id: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("\"{id}\" is not a valid render id"))
    }
}

/// The plan that makes a stored frame again: its own prompts, seeds, CFG and manifest fields.
pub fn frame_again(record: &FrameRecord) -> SingleFrame {
    SingleFrame::new(FrameSpec {
        index: record.generation_index,
        prompt: record.prompt.clone(),
        negative: record.negative.clone(),
        seed: record.seed,
        subseed: record.subseed,
        subseed_strength: record.subseed_strength,
        cfg: record.cfg,
        init: None,
        extra: record.extra.clone(),
        travel: None,
        direct: None,
        output_size: None,
        hint: None,
    })
}

/// What the UI shows of a finished frame.
pub fn frame_info(record: &FrameRecord, parameters: &str) -> FrameInfo {
    FrameInfo {
        index: record.generation_index,
        prompt: record.prompt.clone(),
        negative: record.negative.clone(),
        seed: record.seed,
        subseed: record.subseed,
        subseed_strength: record.subseed_strength,
        cfg: record.cfg,
        parameters: parameters.to_owned(),
        stages: frame_stages(record),
        losses: record.losses.clone(),
    }
}

/// A prompt-travel frame's stages and α, from its record.
pub fn frame_stages(record: &FrameRecord) -> Option<FrameStages> {
    let number = |key: &str| record.extra.get(key).and_then(serde_json::Value::as_f64);
    let index = |key: &str| {
        record
            .extra
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .and_then(|v| usize::try_from(v).ok())
    };
    Some(FrameStages {
        from: index("from")?,
        to: index("to")?,
        alpha: number("alpha")?,
    })
}

/// Whether `job` fits a WebGPU device that allows `limit` bytes per buffer; otherwise what is too
/// large and what the user can do.
pub fn check_fits(job: &GenerateJob, info: &ModelInfo, limit: u64) -> Result<(), String> {
    let rows = usize::from(needs_uncond(job.cfg)) + split_and(&job.prompt).len().max(1);
    check_size(info, (job.width as usize, job.height as usize), rows, limit)
}

/// Whether a generation of `rows` conditioning rows at `w`×`h` fits buffers of `limit` bytes;
/// otherwise which buffer does not, and the largest square that would.
pub fn check_size(
    info: &ModelInfo,
    (w, h): (usize, usize),
    rows: usize,
    limit: u64,
) -> Result<(), String> {
    let Err(too_large) = limits::check(&limits::generation_buffers(info, w, h, rows), limit) else {
        return Ok(());
    };
    let smaller = match limits::largest_square(info, rows, limit, 64) {
        Some(side) => format!("at most {side}×{side} fits"),
        None => "no size fits".to_owned(),
    };
    Err(format!(
        "{w}×{h} is too large for this GPU: {} needs {} in one buffer, and it allows {} \
         (maxStorageBufferBindingSize). {smaller} with these settings; or load the model on the \
         CPU (slow).",
        too_large.what,
        bytes_text(too_large.bytes),
        bytes_text(too_large.limit)
    ))
}

/// Whether a model whose largest weight takes `largest` bytes can be held by a WebGPU device that
/// allows `limit` bytes per buffer.
pub fn check_weights_fit(largest: u64, limit: u64) -> Result<(), String> {
    if largest <= limit {
        return Ok(());
    }
    Err(format!(
        "this GPU allows {} per buffer (maxStorageBufferBindingSize), and the model's largest \
         weight needs {}: load it on the CPU (slow), or use a browser or GPU that allows more",
        bytes_text(limit),
        bytes_text(largest)
    ))
}

/// The engine's precision for the protocol's.
pub fn engine_precision(precision: ModelPrecision) -> Precision {
    match precision {
        ModelPrecision::Int8 => Precision::Int8,
        ModelPrecision::F32 => Precision::F32,
    }
}

/// One line describing a loaded model.
pub fn summary(info: &ModelInfo, backend: ComputeBackend) -> String {
    let family = if info.clip.hidden_size >= 1024 {
        "SD 2.x"
    } else {
        "SD 1.x"
    };
    let prediction = match info.prediction {
        Prediction::Epsilon => "ε-prediction",
        Prediction::V => "v-prediction",
    };
    let precision = match info.precision {
        Precision::F32 => "f32",
        Precision::Int8 => "int8",
    };
    let backend = match backend {
        ComputeBackend::Webgpu => "WebGPU",
        ComputeBackend::Cpu => "CPU (slow)",
    };
    format!(
        "{family}, {prediction}, UNet {} channels, {precision} on {backend}",
        info.unet.block_out_channels.first().copied().unwrap_or(0)
    )
}

/// `image` at `width × height`: each output pixel the mean of the source pixels it covers (a
/// TAESD preview is 8× its latent, which is not the image size for every VAE).
pub fn fit(image: RgbImage, width: usize, height: usize) -> RgbImage {
    if (image.width, image.height) == (width, height) || width == 0 || height == 0 {
        return image;
    }
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        let (y0, y1) = span(y, height, image.height);
        for x in 0..width {
            let (x0, x1) = span(x, width, image.width);
            let mut sum = [0u32; 3];
            for sy in y0..y1 {
                for sx in x0..x1 {
                    let at = (sy * image.width + sx) * 3;
                    for (c, s) in sum.iter_mut().enumerate() {
                        *s += u32::from(image.data.get(at + c).copied().unwrap_or(0));
                    }
                }
            }
            let n = u32::try_from((y1 - y0) * (x1 - x0)).unwrap_or(1).max(1);
            data.extend(sum.map(|s| u8::try_from((s + n / 2) / n).unwrap_or(u8::MAX)));
        }
    }
    RgbImage {
        width,
        height,
        data,
    }
}

/// The source rows (or columns) `[start, end)` that output `i` of `out` covers in `src`; at least
/// one.
fn span(i: usize, out: usize, src: usize) -> (usize, usize) {
    let start = (i * src / out).min(src.saturating_sub(1));
    let end = ((i + 1) * src)
        .div_ceil(out)
        .clamp(start + 1, src.max(start + 1));
    (start, end)
}

/// A PNG of `image` carrying `parameters` as A1111's `parameters` text.
/// A probe's layer (by diffusers or original name), tap and drawing, or what is wrong with it.
pub fn probe_plan<'l>(
    job: &keyshift_web::protocol::ProbeJob,
    layers: &'l [keyshift_sd::unet::AttentionLayer],
) -> Result<
    (
        &'l keyshift_sd::unet::AttentionLayer,
        keyshift_sd::taps::TapConfig,
        keyshift_sd::taps::OverlayMode,
    ),
    String,
> {
    use keyshift_sd::taps::{OverlayMode, TapConfig, Tokens};
    let layer = layers
        .iter()
        .find(|l| l.is_named(&job.layer))
        .ok_or_else(|| {
            format!(
                "\"{}\" is not a cross-attention layer of this model",
                job.layer
            )
        })?;
    if !(0.0..=1000.0).contains(&job.time) {
        return Err(format!("time {} is outside 0 to 999", job.time));
    }
    let tokens = if job.tokens.is_empty() {
        Tokens::AllButFirst
    } else {
        Tokens::At(job.tokens.clone())
    };
    let mode = if job.grey {
        OverlayMode::Grey
    } else {
        OverlayMode::Masked
    };
    Ok((layer, TapConfig::vxa(&layer.name, tokens), mode))
}

pub fn png_bytes(image: &RgbImage, parameters: Option<&str>) -> Result<Vec<u8>, String> {
    let texts: Vec<(&str, &str)> = parameters.map(|p| ("parameters", p)).into_iter().collect();
    pngtext::encode_rgb(image.width, image.height, &image.data, &texts).map_err(|e| e.to_string())
}

/// The first cached file whose SHA-256 is not the one `spec` now pins for its path (pins added
/// or changed after it was cached).
pub fn unpinned<'a>(spec: &ModelSpec, files: &'a [CachedFile]) -> Option<&'a CachedFile> {
    files
        .iter()
        .find(|f| spec.pin(&f.path).is_some_and(|pin| pin != f.sha256))
}

/// The message for a downloaded file whose SHA-256 is not the one published for it.
pub fn pin_mismatch(path: &str, pinned: &str, got: &str) -> String {
    format!(
        "{path} does not match its published SHA-256 (expected {pinned}, got {got}); the \
         download was discarded, load again to fetch it anew"
    )
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail by panicking")]
    use super::*;
    use keyshift_sd::Device;
    use keyshift_sd::model::DirFolder;

    fn model() -> SdModel {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/tiny-sd1/diffusers");
        SdModel::load_diffusers(&DirFolder(dir), &Device::flex()).unwrap()
    }

    fn job() -> GenerateJob {
        GenerateJob {
            job: 1,
            prompt: "a cat".into(),
            negative: String::new(),
            width: 64,
            height: 64,
            steps: 4,
            sampler: keyshift_web::protocol::Sampler::Euler,
            cfg: 7.0,
            seed: 42,
            preview_every: 0,
            init: None,
            init_image: None,
            heatmap: None,
            control: None,
        }
    }

    #[test]
    fn cached_files_are_held_to_the_pins_of_the_spec_that_loads_them() {
        let file = |path: &str, digest: &str| CachedFile {
            path: path.into(),
            bytes: 1,
            sha256: digest.repeat(64),
            blocks: Vec::new(),
        };
        let files = [file("a", "1"), file("b", "2"), file("c", "3")];
        let mut spec = ModelSpec {
            id: "m".into(),
            label: "m".into(),
            layout: keyshift_web::protocol::ModelLayout::Diffusers,
            files: Vec::new(),
            precision: ModelPrecision::F32,
            pins: vec![("a".into(), "1".repeat(64))],
        };
        assert_eq!(unpinned(&spec, &files), None);
        spec.pins.push(("c".into(), "9".repeat(64)));
        assert_eq!(unpinned(&spec, &files).map(|f| f.path.as_str()), Some("c"));
    }

    #[test]
    fn a_file_that_does_not_match_its_pin_is_named_with_both_digests() {
        let m = pin_mismatch("unet/w.safetensors", &"a".repeat(64), &"b".repeat(64));
        assert!(m.starts_with("unet/w.safetensors does not match its published SHA-256"));
        assert!(
            m.contains(&"a".repeat(64)) && m.contains(&"b".repeat(64)),
            "{m}"
        );
    }

    #[test]
    fn a_job_becomes_the_request_the_cli_would_make() {
        let model = model();
        let request = request_for(&job(), &model).unwrap();
        assert_eq!((request.width, request.height, request.steps), (64, 64, 4));
        assert_eq!(request.schedule, model.info.schedule);
        let text = request.parameters("tiny").to_text();
        assert!(text.contains("Steps: 4, Sampler: Euler, CFG scale: 7, Seed: 42, Size: 64x64"));
        assert!(summary(&model.info, ComputeBackend::Webgpu).starts_with("SD 1.x, ε-prediction"));
    }

    #[test]
    fn the_one_frame_plan_asks_the_engine_for_the_job_request() {
        use keyshift_render::{FrameSource, RenderSession, frame_parameters};
        let model = model();
        let request = request_for(&job(), &model).unwrap();
        let (settings, mut source) = single_frame(&job(), &request, "tiny", None).unwrap();
        let spec = source.next_frame().unwrap().unwrap();
        assert!(source.next_frame().unwrap().is_none(), "one frame");
        let tokenizer = keyshift_core::tokens::ClipTokenizer::embedded().unwrap();
        let device = keyshift_sd::Device::flex();
        let session = RenderSession::new(&model, &tokenizer, &device, settings, source);
        let planned = session.request(&spec);
        assert_eq!(
            frame_parameters(&planned, &spec, "tiny").to_text(),
            request.parameters("tiny").to_text()
        );
        assert_eq!(planned.subseed, None, "no variation seed at strength 0");
    }

    #[test]
    fn bad_jobs_say_what_is_wrong() {
        let model = model();
        for sampler in keyshift_web::protocol::Sampler::ALL {
            let mut good = job();
            good.sampler = sampler;
            assert!(request_for(&good, &model).is_ok(), "{}", sampler.name());
        }
        // Any multiple of the VAE's factor (2 for the tiny model) is a size, as in A1111.
        let mut odd = job();
        odd.width = 66;
        assert!(request_for(&odd, &model).is_ok());
        let mut bad = job();
        bad.width = 65;
        let err = request_for(&bad, &model).unwrap_err();
        assert!(err.contains("65x64"), "{err}");
        let mut bad = job();
        bad.steps = 0;
        assert!(request_for(&bad, &model).is_err());
    }

    fn render_job(prompt: &str) -> RenderJob {
        RenderJob {
            frame: GenerateJob {
                prompt: prompt.into(),
                ..job()
            },
            shift: keyshift_web::protocol::ShiftSettings {
                shift_steps: 2,
                ..Default::default()
            },
            travel: None,
            parseq: None,
            render: "1733389200000".into(),
            resume: false,
            temporal: Box::default(),
            video: None,
            control: None,
            taesd_frames: false,
        }
    }

    #[test]
    fn a_video_job_renders_each_frame_as_img2img_at_its_own_size() {
        use keyshift_render::FrameSource;
        let model = model();
        let mut job = render_job("a cat");
        let frame = |v: u8| keyshift_core::image::RgbImage {
            width: 72,
            height: 40,
            data: vec![v; 72 * 40 * 3],
        };
        job.video = Some(Box::new(keyshift_web::protocol::VideoJob {
            width: 72,
            height: 40,
            names: vec!["frame 0".into(), "frame 2".into()],
            fps: 5.0,
            denoise: 0.6,
            frames: vec![frame(10), frame(200)],
        }));
        let request = request_for(&job.frame, &model).unwrap();
        let (_, mut source) = animation_plan(&job, &request, "tiny").unwrap();
        let first = source.next_frame().unwrap().unwrap();
        assert_eq!(first.output_size, Some((72, 40)));
        let init = first.init.unwrap();
        assert_eq!(
            (init.image.width, init.image.height, init.strength),
            (64, 64, 0.6)
        );
        assert_eq!(first.seed, job.frame.seed, "the same seed for every frame");
        assert_eq!(first.extra["source"], "frame 0");
        assert!(source.next_frame().unwrap().is_some());
        assert!(source.next_frame().unwrap().is_none());
        // Frames that did not arrive (a resumed render without its video) are refused.
        job.video.as_mut().unwrap().frames.clear();
        let err = animation_plan(&job, &request, "tiny").err().unwrap();
        assert!(err.contains("pick the video again"), "{err}");
    }

    fn control(canny: bool) -> Box<ControlJob> {
        Box::new(ControlJob {
            settings: keyshift_core::control::ControlSettings::default(),
            canny,
            image: None,
            image_data: None,
            frames: Vec::new(),
        })
    }

    #[test]
    fn a_controlled_image_takes_its_hint_from_the_control_or_init_image() {
        use keyshift_render::FrameSource;
        let model = model();
        let mut job = job();
        job.control = Some(control(true));
        let request = request_for(&job, &model).unwrap();
        let err = single_frame(&job, &request, "tiny", Some("cn"))
            .err()
            .unwrap();
        assert!(err.contains("needs a control image"), "{err}");
        let err = single_frame(&job, &request, "tiny", None).err().unwrap();
        assert!(err.contains("no ControlNet is loaded"), "{err}");
        // A 32x32 control image with a bright square: resized to 64x64, then its edges.
        let mut data = vec![0u8; 32 * 32 * 3];
        for y in 8..24 {
            for x in 8..24 {
                data[(y * 32 + x) * 3..][..3].fill(230);
            }
        }
        let image = RgbImage {
            width: 32,
            height: 32,
            data,
        };
        job.control.as_mut().unwrap().image_data = Some(Box::new(image.clone()));
        let (settings, mut source) = single_frame(&job, &request, "tiny", Some("cn")).unwrap();
        assert_eq!(settings.control.unwrap().model_label, "cn");
        let hint = source.next_frame().unwrap().unwrap().hint.unwrap();
        let want = canny_hint(&lanczos_resize(&image, 64, 64), CANNY_LOW, CANNY_HIGH);
        assert_eq!((hint.source.as_str(), &hint.image), ("canny", &want));
        assert!(want.data.contains(&255), "the square has edges");
        // Without canny the image is the hint; bad settings are refused by name.
        let c = job.control.as_mut().unwrap();
        c.canny = false;
        c.settings.end = 0.0;
        let err = single_frame(&job, &request, "tiny", Some("cn"))
            .err()
            .unwrap();
        assert!(err.contains("start 0 and end 0"), "{err}");
        job.control.as_mut().unwrap().settings.end = 1.0;
        let (_, mut source) = single_frame(&job, &request, "tiny", Some("cn")).unwrap();
        let hint = source.next_frame().unwrap().unwrap().hint.unwrap();
        assert_eq!(hint.image, lanczos_resize(&image, 64, 64));
    }

    #[test]
    fn a_controlled_video_hints_each_frame_with_its_edges() {
        use keyshift_render::FrameSource;
        let model = model();
        let mut job = render_job("a cat");
        let mut data = vec![20u8; 64 * 64 * 3];
        data[..64 * 32 * 3].fill(220);
        let frame = RgbImage {
            width: 64,
            height: 64,
            data,
        };
        job.video = Some(Box::new(keyshift_web::protocol::VideoJob {
            width: 64,
            height: 64,
            names: vec!["frame 0".into()],
            fps: 5.0,
            denoise: 0.6,
            frames: vec![frame.clone()],
        }));
        job.control = Some(control(true));
        let request = request_for(&job.frame, &model).unwrap();
        let (_, mut source) = animation_plan(&job, &request, "tiny").unwrap();
        let hint = source.next_frame().unwrap().unwrap().hint.unwrap();
        assert_eq!(hint.image, canny_hint(&frame, CANNY_LOW, CANNY_HIGH));
        job.control = Some(control(false));
        let err = animation_plan(&job, &request, "tiny").err().unwrap();
        assert!(err.contains("gave 0 frames for the video's 1"), "{err}");
        // A hint video's frame guides its video frame as it is (resized to the render's size).
        let hint = RgbImage {
            width: 32,
            height: 32,
            data: vec![77; 32 * 32 * 3],
        };
        job.control.as_mut().unwrap().frames = vec![hint.clone()];
        let (_, mut source) = animation_plan(&job, &request, "tiny").unwrap();
        let spec = source.next_frame().unwrap().unwrap();
        let got = spec.hint.unwrap();
        assert_eq!(got.source, "hint frame 0");
        assert_eq!(got.image, lanczos_resize(&hint, 64, 64));
    }

    #[test]
    fn a_probe_names_its_layer_either_way_and_checks_time() {
        let model = model();
        let layers = model.unet.attention_layers();
        let mut probe = keyshift_web::protocol::ProbeJob {
            job: 1,
            width: 64,
            height: 64,
            prompt: "a cat".into(),
            tokens: vec![],
            time: 1.0,
            layer: "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2".into(),
            grey: true,
            unit_input: false,
            image: None,
        };
        let (layer, config, _) = probe_plan(&probe, &layers).unwrap();
        assert_eq!(layer.name, "mid_block.attentions.0");
        assert_eq!(config.maps, [keyshift_sd::taps::Tokens::AllButFirst]);
        probe.time = 1500.0;
        assert!(probe_plan(&probe, &layers).is_err());
        probe.layer = "nope".into();
        assert!(probe_plan(&probe, &layers).unwrap_err().contains("nope"));
    }

    #[test]
    fn a_render_job_becomes_the_cli_shift_plan() {
        use keyshift_render::FrameSource;
        let model = model();
        let job = render_job("a (cat:1~0) THEN(seed=7,cfg=3) a (dog:0~1)");
        let request = request_for(&job.frame, &model).unwrap();
        let (settings, mut source) = shift_plan(&job, &request, "tiny").unwrap();
        assert_eq!(settings.upscale, 1.0);
        assert_eq!(source.regular_frames(), 6);
        let first = source.next_frame().unwrap().unwrap();
        assert_eq!(
            (first.prompt.as_str(), first.seed, first.cfg),
            ("a (cat:1.0)", 42, 7.0)
        );
        let bad = render_job("a (cat:1~~0)");
        let err = shift_plan(&bad, &request, "tiny").map(|_| ()).unwrap_err();
        assert!(err.contains("at character"), "{err}");
        let mut bad_id = render_job("a");
        bad_id.render = "../x".into();
        let err = shift_plan(&bad_id, &request, "tiny")
            .map(|_| ())
            .unwrap_err();
        assert!(err.contains("not a valid render id"), "{err}");
    }

    /// Soak: a 10,000-frame render is planned one frame at a time, and what the frame store keeps
    /// of it (the job) does not grow with its frames.
    #[test]
    fn a_ten_thousand_frame_plan_is_stored_small_and_built_frame_by_frame() {
        use keyshift_render::FrameSource;
        let model = model();
        let mut job = render_job("a (cat:1~0)");
        let small = serde_json::to_string(&job).unwrap().len();
        job.shift.shift_steps = 9_999;
        let stored = serde_json::to_string(&job).unwrap();
        assert!(stored.len() <= small + 3, "{} bytes stored", stored.len());
        let request = request_for(&job.frame, &model).unwrap();
        let (_, mut source) = shift_plan(&job, &request, "tiny").unwrap();
        assert_eq!(source.regular_frames(), 10_000);
        let (mut frames, mut last) = (0, String::new());
        while let Some(spec) = source.next_frame().unwrap() {
            frames += 1;
            last = spec.prompt;
        }
        assert_eq!(frames, 10_000);
        assert_eq!(last, "a (cat:0.0)");
    }

    #[test]
    fn a_frame_made_again_asks_for_what_its_record_says() {
        use keyshift_render::{FrameSource, RenderSession};
        let model = model();
        let job = render_job("a (cat:1~0) THEN(seed=7,cfg=3) a (dog:0~1)");
        let request = request_for(&job.frame, &model).unwrap();
        let (settings, mut source) = shift_plan(&job, &request, "tiny").unwrap();
        let specs: Vec<FrameSpec> = std::iter::from_fn(|| source.next_frame().unwrap()).collect();
        let spec = &specs[4];
        let record = FrameRecord::new(
            spec,
            &RenderSession::new(
                &model,
                &keyshift_core::tokens::ClipTokenizer::embedded().unwrap(),
                &keyshift_sd::Device::flex(),
                settings.clone(),
                SingleFrame::new(spec.clone()),
            )
            .request(spec),
            64,
            64,
        );
        let mut again = frame_again(&record);
        let made = again.next_frame().unwrap().unwrap();
        assert_eq!(
            (
                made.index,
                &made.prompt,
                made.seed,
                made.subseed,
                made.subseed_strength,
                made.cfg
            ),
            (
                4,
                &spec.prompt,
                spec.seed,
                spec.subseed,
                spec.subseed_strength,
                spec.cfg
            )
        );
        assert_eq!(made.extra, spec.extra);
        assert!(made.subseed_strength > 0.0, "a frame between two seeds");
    }

    #[test]
    fn the_png_carries_the_parameters() {
        let image = RgbImage {
            width: 2,
            height: 1,
            data: vec![1, 2, 3, 4, 5, 6],
        };
        let png = png_bytes(&image, Some("a cat\nSteps: 4")).unwrap();
        let texts = pngtext::read_texts(&png).unwrap();
        assert_eq!(texts, vec![("parameters".into(), "a cat\nSteps: 4".into())]);
        assert_eq!(pngtext::decode_rgb(&png).unwrap().2, image.data);
    }

    #[test]
    fn previews_fit_the_image_size_by_averaging() {
        // 4×2 → 2×1: each output pixel averages a 2×2 square.
        let image = RgbImage {
            width: 4,
            height: 2,
            data: [
                [0, 0, 0],
                [10, 20, 30],
                [100, 100, 100],
                [200, 200, 200],
                [2, 2, 2],
                [12, 22, 32],
                [100, 100, 100],
                [201, 201, 201],
            ]
            .concat(),
        };
        let small = fit(image.clone(), 2, 1);
        assert_eq!((small.width, small.height), (2, 1));
        assert_eq!(small.data, vec![6, 11, 16, 150, 150, 150]);
        assert_eq!(fit(image.clone(), 4, 2), image);
        // Upscaling repeats pixels.
        let big = fit(small, 4, 1);
        assert_eq!(
            big.data,
            [[6, 11, 16], [6, 11, 16], [150, 150, 150], [150, 150, 150]].concat()
        );
        // Odd ratios cover every source pixel and never read outside.
        let odd = fit(image, 3, 2);
        assert_eq!(odd.data.len(), 18);
    }

    #[test]
    fn a_job_too_large_for_the_gpu_says_what_and_what_fits() {
        let model = model();
        let ok = job();
        assert_eq!(check_fits(&ok, &model.info, 1 << 30), Ok(()));
        // The tiny model at 512×512: 2 rows × its heads × 256² latents… over 1 MB.
        let big = GenerateJob {
            width: 512,
            height: 512,
            ..job()
        };
        let err = check_fits(&big, &model.info, 1 << 20).unwrap_err();
        assert!(
            err.starts_with("512×512 is too large for this GPU: "),
            "{err}"
        );
        assert!(err.contains("allows 1.0 MB"), "{err}");
        assert!(err.contains("fits with these settings"), "{err}");
        assert_eq!(check_weights_fit(10, 10), Ok(()));
        let err = check_weights_fit(151_781_376, 134_217_728).unwrap_err();
        assert!(
            err.contains("allows 134 MB") && err.contains("needs 152 MB"),
            "{err}"
        );
    }
}
