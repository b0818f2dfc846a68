//! `sd-golden`: checks the engine against reference tensors from diffusers, in the fixture format
//! of `fixtures/tiny-sd1` (model files + `golden.json` + `golden.safetensors`). Every entry the
//! runner recognises is checked, for every model layout the fixture holds; the rest is skipped.

mod modules;
mod pipelines;
mod schedules;

pub use modules::check_model;

use burn::tensor::Device;
use serde_json::Value;

use crate::config::ClipConfig;
use crate::model::{Folder, SdModel};
use crate::weights::{LoadError, SafetensorsFile};

/// Relative tolerance for single modules: max |got − want| ≤ tol · max(1, max |want|).
pub const MODULE_TOLERANCE: f32 = 2e-5;
/// Relative tolerance for whole multi-step runs.
pub const PIPELINE_TOLERANCE: f32 = 1e-4;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// `layout/entry`, e.g. `single-file/unet.out_t500`.
    pub name: String,
    /// Whether it is within tolerance.
    pub passed: bool,
    /// What was compared, or why it failed.
    pub detail: String,
}

/// All checks of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GoldenReport {
    /// In the order they ran.
    pub checks: Vec<Check>,
}

impl GoldenReport {
    /// Whether every check passed (and there was at least one).
    pub fn is_success(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    /// One line per failure, then `N passed, N failed`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in self.checks.iter().filter(|c| !c.passed) {
            out.push_str(&format!("FAIL {}: {}\n", c.name, c.detail));
        }
        let passed = self.checks.iter().filter(|c| c.passed).count();
        out.push_str(&format!(
            "{passed} passed, {} failed",
            self.checks.len() - passed
        ));
        out
    }

    pub(crate) fn push(&mut self, check: Check) {
        self.checks.push(check);
    }
}

/// Why the fixture could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum GoldenError {
    /// `golden.json` is missing or not JSON.
    #[error("golden.json: {0}")]
    Json(String),
    /// `golden.safetensors` could not be opened.
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// Compares `got` with `want` at a relative tolerance.
pub fn compare(name: &str, got: &[f32], want: &[f32], tolerance: f32) -> Check {
    if got.len() != want.len() {
        let detail = format!("{} values, expected {}", got.len(), want.len());
        return Check {
            name: name.to_owned(),
            passed: false,
            detail,
        };
    }
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    let (max_err, at) = got
        .iter()
        .zip(want)
        .enumerate()
        .map(|(i, (g, w))| ((g - w).abs(), i))
        .fold((0f32, 0), |best, cur| {
            if cur.0 > best.0 || cur.0.is_nan() {
                cur
            } else {
                best
            }
        });
    let passed = max_err <= tolerance * scale && got.iter().all(|v| v.is_finite());
    let detail = format!(
        "max abs error {max_err:.3e} at {at} (got {}, want {}), scale {scale:.3e}, tolerance {:.1e}",
        got.get(at).copied().unwrap_or(f32::NAN),
        want.get(at).copied().unwrap_or(f32::NAN),
        tolerance * scale
    );
    Check {
        name: name.to_owned(),
        passed,
        detail,
    }
}

/// The reference tensors and their descriptions.
pub struct Golden {
    /// The description (`golden.json`).
    pub json: Value,
    tensors: SafetensorsFile,
}

impl Golden {
    /// Reads `golden.json` and opens `golden.safetensors` in `folder`.
    pub fn open(folder: &dyn Folder) -> Result<Self, GoldenError> {
        let text = folder
            .read_text("golden.json")
            .ok_or_else(|| GoldenError::Json("not found".into()))?;
        let json = serde_json::from_str(&text).map_err(|e| GoldenError::Json(e.to_string()))?;
        let source = folder
            .open("golden.safetensors")
            .ok_or_else(|| LoadError::Io {
                file: "golden.safetensors".into(),
                message: "not found".into(),
            })?;
        Ok(Self {
            json,
            tensors: SafetensorsFile::open("golden.safetensors", source)?,
        })
    }

    /// A reference tensor and its shape; `name[a:b]` selects rows `a..b` of the first axis.
    pub fn tensor(&mut self, name: &str) -> Option<(Vec<f32>, Vec<usize>)> {
        let (base, rows) = match name.split_once('[') {
            Some((base, range)) => {
                let (a, b) = range.trim_end_matches(']').split_once(':')?;
                (
                    base,
                    Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)),
                )
            }
            None => (name, None),
        };
        let shape = self.tensors.entries().get(base)?.shape.clone();
        let values = self.tensors.read_f32(base).ok()?;
        match rows {
            None => Some((values, shape)),
            Some((a, b)) => {
                let row: usize = shape.iter().skip(1).product();
                let mut s = shape;
                s[0] = b.checked_sub(a)?;
                Some((values.get(a * row..b * row)?.to_vec(), s))
            }
        }
    }

    /// The model layouts the fixture names: `(label, relative path)`.
    pub fn layouts(&self) -> Vec<(&'static str, String)> {
        let files = &self.json["files"];
        let mut out = Vec::new();
        if let Some(d) = files["diffusers"].as_str() {
            out.push(("diffusers", d.to_owned()));
        }
        if let Some(s) = files["single_file"].as_str() {
            out.push(("single-file", s.to_owned()));
        }
        out
    }
}

/// A sub-folder view of a [`Folder`].
struct Sub<'a> {
    inner: &'a dyn Folder,
    prefix: String,
}

impl Folder for Sub<'_> {
    fn read_text(&self, path: &str) -> Option<String> {
        self.inner.read_text(&format!("{}/{path}", self.prefix))
    }
    fn open(&self, path: &str) -> Option<Box<dyn crate::weights::ByteSource>> {
        self.inner.open(&format!("{}/{path}", self.prefix))
    }
}

/// Loads the model of one layout named by the fixture.
pub fn load_layout(
    folder: &dyn Folder,
    golden: &Golden,
    label: &str,
    path: &str,
    device: &Device,
) -> Result<SdModel, LoadError> {
    if label == "diffusers" {
        return SdModel::load_diffusers(
            &Sub {
                inner: folder,
                prefix: path.to_owned(),
            },
            device,
        );
    }
    let source = folder.open(path).ok_or_else(|| LoadError::Io {
        file: path.to_owned(),
        message: "not found".into(),
    })?;
    let file = SafetensorsFile::open(path, source)?;
    let yaml = golden.json["files"]["original_config"]
        .as_str()
        .and_then(|p| folder.read_text(p));
    // The text encoder's head count is not in the weights: take it from the fixture's diffusers
    // config when there is one (as A1111 takes it from the CLIP config it ships with).
    let hint = golden.json["files"]["diffusers"]
        .as_str()
        .and_then(|d| folder.read_text(&format!("{d}/text_encoder/config.json")))
        .and_then(|t| ClipConfig::from_json("text_encoder/config.json", &t).ok());
    SdModel::load_single_file(file, yaml.as_deref(), hint.as_ref(), device)
}

/// Runs every recognised check for every layout.
pub fn run(folder: &dyn Folder, device: &Device) -> Result<GoldenReport, GoldenError> {
    let mut golden = Golden::open(folder)?;
    let mut report = GoldenReport::default();
    schedules::check(&mut golden, &mut report);
    for (label, path) in golden.layouts() {
        match load_layout(folder, &golden, label, &path, device) {
            Ok(model) => {
                check_model(&model, &mut golden, label, device, &mut report);
                pipelines::check(&model, &mut golden, label, device, &mut report);
            }
            Err(e) => report.push(Check {
                name: format!("{label}/load"),
                passed: false,
                detail: e.to_string(),
            }),
        }
    }
    Ok(report)
}
