//! ControlNet options shared by `generate` and `render video`: `--controlnet DIR|FILE` (a
//! diffusers ControlNet folder or the original single file), `--hint` (what guides each frame),
//! `--control-scale`, `--guess-mode`, `--control-start`, `--control-end`.

use std::path::{Path, PathBuf};

use keyshift_core::control::ControlSettings;
use keyshift_core::image::{CANNY_HIGH, CANNY_LOW, RgbImage, canny_hint, lanczos_resize};
use keyshift_render::{Hint, RenderControl, VideoHint};
use keyshift_sd::Device;
use keyshift_sd::controlnet::ControlNet;
use keyshift_sd::model::{DirFolder, SdModel};
use keyshift_sd::weights::Precision;

use crate::args::Args;

/// The ControlNet options.
pub const CONTROL_OPTIONS: &[&str] = &[
    "controlnet",
    "hint",
    "control-image",
    "control-scale",
    "guess-mode",
    "control-start",
    "control-end",
];

/// The ControlNet options that take no value.
pub const CONTROL_SWITCHES: &[&str] = &["guess-mode"];

/// The ControlNet of `--controlnet`, checked against `model`; `None` without the option.
pub fn load_controlnet(
    args: &Args,
    model: &SdModel,
    precision: Precision,
    device: &Device,
) -> Result<Option<ControlNet>, String> {
    let Some(path) = args.get("controlnet") else {
        if args.get("hint").is_some() {
            return Err("--hint needs --controlnet DIR (the ControlNet it guides)".into());
        }
        return Ok(None);
    };
    if args.get("hint").is_none() {
        return Err("--controlnet needs --hint (canny, or hint images)".into());
    }
    let path = Path::new(path);
    let loaded = if path.is_dir() {
        ControlNet::load_diffusers(&DirFolder(path.to_path_buf()), precision, device)
    } else {
        let (file, _) = crate::load::open_single(path).map_err(|e| format!("--controlnet: {e}"))?;
        ControlNet::load_single_file(file, &model.info.unet, precision, device)
    };
    let (net, config) = loaded.map_err(|e| format!("--controlnet {}: {e}", path.display()))?;
    config
        .check_fits(&model.info)
        .map_err(|e| format!("--controlnet {}: {e}", path.display()))?;
    Ok(Some(net))
}

/// The render's ControlNet settings from the options; `None` without `--controlnet`.
pub fn render_control(args: &Args) -> Result<Option<RenderControl>, String> {
    let Some(path) = args.get("controlnet") else {
        return Ok(None);
    };
    let settings = ControlSettings {
        scale: args.parsed("control-scale", 1.0)?,
        guess_mode: args.get("guess-mode").is_some(),
        start: args.parsed("control-start", 0.0)?,
        end: args.parsed("control-end", 1.0)?,
    };
    settings.check().map_err(|e| e.to_string())?;
    let path = Path::new(path.trim_end_matches('/'));
    let model_label = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Some(RenderControl {
        settings,
        model_label,
    }))
}

/// `--hint` for the frames a video render picks (by `pick`: range and stride) from a folder of
/// `total`: `canny` (each frame's edges), or a folder with one hint image per input frame in name
/// order, picked alike. One hint per picked frame.
pub fn video_hints(
    args: &Args,
    total: usize,
    pick: &dyn Fn(Vec<PathBuf>) -> Result<Vec<PathBuf>, String>,
) -> Result<Option<Vec<VideoHint>>, String> {
    let Some(hint) = args.get("hint") else {
        return Ok(None);
    };
    if hint == "canny" {
        let picked = pick(vec![PathBuf::new(); total])?;
        return Ok(Some(vec![VideoHint::Canny; picked.len()]));
    }
    let dir = PathBuf::from(hint);
    let files = crate::video::frame_files(&dir).map_err(|e| format!("--hint: {e}"))?;
    if files.len() != total {
        return Err(format!(
            "--hint: {} holds {} images for {total} input frames (one hint per frame, in name \
             order)",
            dir.display(),
            files.len()
        ));
    }
    pick(files)?
        .iter()
        .map(|path| {
            Ok(VideoHint::Image {
                name: path
                    .file_name()
                    .map_or(String::new(), |n| n.to_string_lossy().into_owned()),
                image: crate::video::read_image(path).map_err(|e| format!("--hint: {e}"))?,
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map(Some)
}

/// `--hint` for a single image: `canny` (the edges of `--control-image FILE`, or of the init
/// image `init` without one), or a hint image used as it is; at the render's size.
pub fn image_hint(
    args: &Args,
    width: usize,
    height: usize,
    init: Option<&RgbImage>,
) -> Result<Option<Hint>, String> {
    let Some(hint) = args.get("hint") else {
        return Ok(None);
    };
    let read = |path: &str| -> Result<RgbImage, String> {
        let image = crate::video::read_image(Path::new(path))?;
        Ok(if (image.width, image.height) == (width, height) {
            image
        } else {
            lanczos_resize(&image, width, height)
        })
    };
    if hint == "canny" {
        let image = match (args.get("control-image"), init) {
            (Some(path), _) => read(path).map_err(|e| format!("--control-image: {e}"))?,
            (None, Some(init)) => init.clone(),
            (None, None) => {
                return Err(
                    "--hint canny needs --control-image FILE (or --init) to find edges in".into(),
                );
            }
        };
        return Ok(Some(Hint {
            source: "canny".into(),
            image: canny_hint(&image, CANNY_LOW, CANNY_HIGH),
        }));
    }
    let name = Path::new(hint)
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    Ok(Some(Hint {
        source: name,
        image: read(hint).map_err(|e| format!("--hint: {e}"))?,
    }))
}
