//! `keyshift render video --frames-dir IN/ …`: video input, as Attention-Interpolation renders a
//! video (seeds.md §4) but as img2img of each frame: the frames of a folder (PNG or JPEG, in name
//! order, optionally a range and a stride), each rendered with the prompt at `--denoise`, the
//! same seed for every frame, output at the source's size; attention interpolation
//! (`--interp-config`, the original's defaults unless `none`) and colour matching to the first
//! frame (`--hist`, `lab` unless `none`).

use std::path::{Path, PathBuf};

use keyshift_core::image::RgbImage;
use keyshift_core::share::parse_frames;
use keyshift_render::{VideoFrame, VideoOptions, VideoSource};

use crate::args::Args;
use crate::control::{CONTROL_OPTIONS, CONTROL_SWITCHES, video_hints};
use crate::engine::{ENGINE_OPTIONS, Engine};
use crate::render::render_to;
use crate::temporal::TEMPORAL_OPTIONS;

const VIDEO_OPTIONS: &[&str] = &[
    "frames-dir",
    "prompt",
    "negative",
    "denoise",
    "seed",
    "cfg",
    "fps",
    "range",
    "stride",
    "out",
    "resume",
    "stop-after",
];

/// `keyshift render video …`.
pub fn run(args: &[String]) -> Result<(), String> {
    let switches: Vec<&str> = ["resume"].iter().chain(CONTROL_SWITCHES).copied().collect();
    let args = Args::parse(args, &switches)?.with_defaults(vec![
        ("interp-config", "default".to_owned()),
        ("hist", "lab".to_owned()),
        ("sampler", "DDIM".to_owned()),
    ]);
    let known: Vec<&str> = VIDEO_OPTIONS
        .iter()
        .chain(ENGINE_OPTIONS)
        .chain(TEMPORAL_OPTIONS)
        .chain(CONTROL_OPTIONS)
        .copied()
        .collect();
    if let Some(unknown) = args.unknown(&known) {
        return Err(unknown);
    }
    let dir = PathBuf::from(args.required("frames-dir")?);
    let all = frame_files(&dir)?;
    let total = all.len();
    let stride = args.parsed("stride", 1usize)?.max(1);
    let pick = |files: Vec<PathBuf>| -> Result<Vec<PathBuf>, String> {
        let files = match args.get("range") {
            Some(range) => {
                let r = parse_frames(range, files.len()).map_err(|e| format!("--range: {e}"))?;
                files[r].to_vec()
            }
            None => files,
        };
        Ok(files.into_iter().step_by(stride).collect())
    };
    let files = pick(all)?;
    let mut hints = video_hints(&args, total, &pick)?.map(Vec::into_iter);
    let denoise: f64 = args.parsed("denoise", 0.5)?;
    let (prompt, negative) = (
        args.required("prompt")?.to_owned(),
        args.get("negative").unwrap_or("").to_owned(),
    );
    let frames = files
        .iter()
        .map(|path| {
            Ok(VideoFrame {
                name: path
                    .file_name()
                    .map_or(String::new(), |n| n.to_string_lossy().into_owned()),
                image: read_image(path)?,
                prompt: prompt.clone(),
                negative: negative.clone(),
                denoise,
                hint: hints.as_mut().and_then(Iterator::next),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let fps: f64 = args.parsed("fps", 30.0)?;
    if !(fps.is_finite() && fps > 0.0) {
        return Err(format!("--fps: {fps} (a rate above 0, e.g. 29.97)"));
    }
    let engine = Engine::load(&args)?;
    let first = frames.first().map(|f| (f.image.width, f.image.height));
    let args = match (args.get("size"), first) {
        (None, Some((w, h))) => args.with_defaults(vec![("size", render_size(&engine, w, h))]),
        _ => args,
    };
    let settings = engine.settings(&args, 1.0)?;
    let options = VideoOptions {
        frames,
        seed: args.parsed("seed", 17u64)?,
        cfg: args.parsed("cfg", 7.5)?,
        fps: fps / stride as f64,
    };
    let source = VideoSource::new(options, &settings).map_err(|e| e.to_string())?;
    render_to(&args, &engine, settings, source)
}

/// The size to render a `w × h` source at: each side rounded to the model's multiple (at least
/// one multiple).
fn render_size(engine: &Engine, w: usize, h: usize) -> String {
    let (_, multiple) = keyshift_sd::generate::size_multiple(&engine.model);
    let round = |v: usize| (((v + multiple / 2) / multiple).max(1)) * multiple;
    format!("{}x{}", round(w), round(h))
}

/// The PNG and JPEG files of `dir`, in name order.
#[allow(
    clippy::disallowed_methods,
    reason = "the native CLI reads the folder it is given"
)]
pub(crate) fn frame_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("--frames-dir: cannot read {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .is_some_and(|e| matches!(e.as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "--frames-dir: {} holds no PNG or JPEG frames",
            dir.display()
        ));
    }
    Ok(files)
}

/// A PNG or JPEG file's pixels.
#[allow(
    clippy::disallowed_methods,
    reason = "the native CLI reads the images it is given"
)]
pub(crate) fn read_image(path: &Path) -> Result<RgbImage, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let is_png = bytes.starts_with(b"\x89PNG");
    let decoded = if is_png {
        keyshift_core::pngtext::decode_rgb(&bytes).map_err(|e| e.to_string())
    } else {
        decode_jpeg(&bytes)
    };
    let (width, height, data) = decoded.map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(RgbImage {
        width,
        height,
        data,
    })
}

/// A JPEG's size and RGB bytes.
fn decode_jpeg(bytes: &[u8]) -> Result<(usize, usize, Vec<u8>), String> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder
        .decode_headers()
        .map_err(|e| format!("not a readable PNG or JPEG ({e:?})"))?;
    let (width, height) = decoder.dimensions().ok_or("a JPEG without a size")?;
    let side = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    keyshift_core::pngtext::check_image_size(side(width), side(height))
        .map_err(|e| e.to_string())?;
    let data = decoder
        .decode()
        .map_err(|e| format!("not a readable PNG or JPEG ({e:?})"))?;
    let (width, height) = decoder.dimensions().ok_or("a JPEG without a size")?;
    if data.len() != width * height * 3 {
        return Err(format!(
            "a JPEG of {width}x{height} decoded to {} bytes",
            data.len()
        ));
    }
    Ok((width, height, data))
}
