//! Loading a model from a path: a diffusers folder, or a single `.safetensors` (with a `.yaml` of
//! the same name beside it, as A1111 looks for one).

use std::path::Path;

use keyshift_sd::Device;
use keyshift_sd::model::{DirFolder, SdModel};
use keyshift_sd::weights::{FileSource, SafetensorsFile};

/// Loads the model at `path`.
#[allow(
    clippy::disallowed_methods,
    reason = "the native CLI reads the config beside the model"
)]
pub fn load_model(path: &Path, device: &Device) -> Result<SdModel, String> {
    if path.is_dir() {
        return SdModel::load_diffusers(&DirFolder(path.to_path_buf()), device)
            .map_err(|e| format!("{}: {e}", path.display()));
    }
    let source = FileSource::open(path).map_err(|e| e.to_string())?;
    let name = path.display().to_string();
    let file = SafetensorsFile::open(&name, Box::new(source)).map_err(|e| e.to_string())?;
    let yaml = std::fs::read_to_string(path.with_extension("yaml")).ok();
    SdModel::load_single_file(file, yaml.as_deref(), None, device).map_err(|e| e.to_string())
}
