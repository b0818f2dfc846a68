//! Loading a model from a path: a diffusers folder, or a single `.safetensors` (with a `.yaml` of
//! the same name beside it, as A1111 looks for one).

use std::path::Path;

use keyshift_sd::Device;
use keyshift_sd::model::{DirFolder, Int8Model, SdModel};
use keyshift_sd::weights::{FileSource, Precision, SafetensorsFile};

/// Loads the model at `path` at `precision` (a model saved as int8 loads as int8 anyway).
pub fn load_model(path: &Path, precision: Precision, device: &Device) -> Result<SdModel, String> {
    if path.is_dir() {
        return SdModel::load_diffusers_at(&DirFolder(path.to_path_buf()), precision, device)
            .map_err(|e| format!("{}: {e}", path.display()));
    }
    let (file, yaml) = open_single(path)?;
    SdModel::load_single_file_at(file, yaml.as_deref(), None, precision, device)
        .map_err(|e| e.to_string())
}

/// Loads the model at `path` as int8, with the files that hold it so.
pub fn quantize_model(path: &Path, device: &Device) -> Result<Int8Model, String> {
    if path.is_dir() {
        return SdModel::quantize_diffusers(&DirFolder(path.to_path_buf()), device)
            .map_err(|e| format!("{}: {e}", path.display()));
    }
    let (file, yaml) = open_single(path)?;
    SdModel::quantize_single_file(file, yaml.as_deref(), None, device).map_err(|e| e.to_string())
}

/// A single `.safetensors` file and the `.yaml` of the same name beside it, if any.
#[allow(
    clippy::disallowed_methods,
    reason = "the native CLI reads the config beside the model"
)]
pub(crate) fn open_single(path: &Path) -> Result<(SafetensorsFile, Option<String>), String> {
    let source = FileSource::open(path).map_err(|e| e.to_string())?;
    let name = path.display().to_string();
    let file = SafetensorsFile::open(&name, Box::new(source)).map_err(|e| e.to_string())?;
    let yaml = std::fs::read_to_string(path.with_extension("yaml")).ok();
    Ok((file, yaml))
}

/// Bytes the float tensors under `path` (a file, or a folder's `.safetensors` files) would take
/// in f16.
#[allow(
    clippy::disallowed_methods,
    reason = "native-only: lists the model folder"
)]
pub fn fp16_bytes(path: &Path) -> Result<u64, String> {
    let mut files = Vec::new();
    if path.is_dir() {
        for dir in ["text_encoder", "unet", "vae"] {
            let entries = std::fs::read_dir(path.join(dir))
                .map_err(|e| format!("{}: {e}", path.join(dir).display()))?;
            let first = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(".safetensors"))
                .min();
            files.extend(first);
        }
    } else {
        files.push(path.to_path_buf());
    }
    let mut total = 0u64;
    for file in files {
        let (file, _) = open_single(&file)?;
        total += file
            .entries()
            .values()
            .filter(|e| e.dtype.is_float())
            .map(|e| e.shape.iter().product::<usize>() as u64 * 2)
            .sum::<u64>();
    }
    Ok(total)
}
