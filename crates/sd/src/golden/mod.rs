//! `sd-golden`: checks the engine against reference tensors from diffusers, in the fixture format
//! of `fixtures/tiny-sd1` (model files + `golden.json` + `golden.safetensors`), for every model
//! layout the fixture holds. The fixture drives the run: the cases and tables its `golden.json`
//! lists are run, and each output is compared where the fixture has its reference tensor. What
//! the runner knows but cannot check (a sampler Keyshift does not have, a case marked `optional`
//! that cannot run) is counted as skipped, with the reason; a reference tensor, table, sampler or
//! case it does not recognise is a failure, and so is a check the engine could not run (a panic
//! included) — the others still run.

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
    /// What was not checked: `(name, why)`.
    pub skipped: Vec<(String, String)>,
}

impl GoldenReport {
    /// Whether every check passed (and there was at least one).
    pub fn is_success(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    /// One line per failure, one per skipped entry, then `N passed, N failed, N skipped`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in self.checks.iter().filter(|c| !c.passed) {
            out.push_str(&format!("FAIL {}: {}\n", c.name, c.detail));
        }
        for (name, why) in &self.skipped {
            out.push_str(&format!("skipped {name}: {why}\n"));
        }
        let passed = self.checks.iter().filter(|c| c.passed).count();
        out.push_str(&format!(
            "{passed} passed, {} failed, {} skipped",
            self.checks.len() - passed,
            self.skipped.len()
        ));
        out
    }

    pub(crate) fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    pub(crate) fn fail(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.push(Check {
            name: name.into(),
            passed: false,
            detail: detail.into(),
        });
    }

    pub(crate) fn skip(&mut self, name: impl Into<String>, why: impl Into<String>) {
        self.skipped.push((name.into(), why.into()));
    }

    /// A case that could not run: skipped when the fixture marks it `optional`, else a failure.
    pub(crate) fn cannot_run(&mut self, case: &Value, name: String, why: &str) {
        if case.get("optional").and_then(Value::as_bool) == Some(true) {
            self.skip(name, format!("optional, {why}"));
        } else {
            self.fail(name, why);
        }
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
    /// The reference tensors a check has read.
    used: std::collections::BTreeSet<String>,
    /// Name prefixes of entries that were skipped, could not run or panicked: their tensors are
    /// accounted for by that report, not "unrecognised".
    excused: Vec<String>,
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
            used: std::collections::BTreeSet::new(),
            excused: Vec::new(),
        })
    }

    /// Accounts for the tensors named `prefix…` of an entry already reported as skipped or failed.
    pub(crate) fn excuse(&mut self, prefix: impl Into<String>) {
        self.excused.push(prefix.into());
    }

    /// Whether the fixture has the reference tensor `name`.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.entries().contains_key(name)
    }

    /// Reference tensors no check has read.
    pub fn unused(&self) -> Vec<String> {
        let entries = self.tensors.entries().keys();
        let excused = |k: &str| self.excused.iter().any(|p| k.starts_with(p.as_str()));
        entries
            .filter(|k| !self.used.contains(*k) && !excused(k))
            .cloned()
            .collect()
    }

    /// An integer reference tensor (`te.input_ids`) as `i64`s.
    pub fn ints(&mut self, name: &str) -> Option<Vec<i64>> {
        let (entry, bytes) = self.tensors.read_bytes(name).ok()?;
        self.used.insert(name.to_owned());
        if entry.dtype.is_float() {
            return None;
        }
        let size = entry.dtype.size();
        let int = |c: &[u8]| -> Option<i64> {
            Some(match size {
                8 => i64::from_le_bytes(c.try_into().ok()?),
                4 => i64::from(i32::from_le_bytes(c.try_into().ok()?)),
                _ => return None,
            })
        };
        bytes.chunks(size.max(1)).map(int).collect()
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
        self.used.insert(base.to_owned());
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

/// Runs every check the fixture lists, for every layout.
pub fn run(folder: &dyn Folder, device: &Device) -> Result<GoldenReport, GoldenError> {
    let mut golden = Golden::open(folder)?;
    let mut report = GoldenReport::default();
    if !guarded(&mut report, "schedule", |report| {
        schedules::check(&mut golden, report);
    }) {
        golden.excuse("sched.");
    }
    let mut loaded = 0;
    for (label, path) in golden.layouts() {
        match load_layout(folder, &golden, label, &path, device) {
            Ok(model) => {
                loaded += 1;
                check_layout(&model, &mut golden, label, device, &mut report);
            }
            Err(e) => report.fail(format!("{label}/load"), e.to_string()),
        }
    }
    if loaded > 0 {
        for name in golden.unused() {
            report.fail(name, "a reference tensor that no check recognised");
        }
    }
    Ok(report)
}

/// Every section's checks for one loaded layout, each guarded on its own: a panic in one is
/// reported and excuses that section's tensors; the others still run.
fn check_layout(
    model: &SdModel,
    golden: &mut Golden,
    label: &str,
    device: &Device,
    report: &mut GoldenReport,
) {
    let sections: [(&str, &str, modules::Section); 4] = [
        ("te", "te.", modules::check_text_encoder),
        ("unet", "unet.", modules::check_unet),
        ("vae", "vae.", modules::check_vae),
        ("pipe", "pipe.", pipelines::check),
    ];
    for (name, prefix, section) in sections {
        let ok = guarded(report, &format!("{label}/{name}"), |report| {
            section(model, golden, label, device, report);
        });
        if !ok {
            golden.excuse(prefix);
        }
    }
}

/// Runs checks, turning a panic of the engine into a failure so that the others still run;
/// false when it panicked.
pub(super) fn guarded(
    report: &mut GoldenReport,
    label: &str,
    f: impl FnOnce(&mut GoldenReport),
) -> bool {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(report)));
    let Err(panic) = outcome else {
        return true;
    };
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "no message".to_owned());
    report.fail(
        format!("{label}/panic"),
        format!("the engine panicked: {message}"),
    );
    false
}
