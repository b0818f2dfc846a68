//! The wire schema of share links, one type per schema version, and the normalisation from wire to
//! runtime types. Wire types are lenient (every field has a default, numbers are wide) so that a link
//! with an out-of-range or unknown value still opens, with a warning, instead of failing whole.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Warning;
use super::project::{
    GenerationSettings, MAX_CFG, MAX_SIZE_PX, MAX_STEPS, MAX_TEXT_CHARS, MIN_SIZE_PX, Project,
    SIZE_STEP, Sampler, Seed,
};

/// Schema version 1 of a Keyshift project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectV1 {
    /// Project name.
    #[serde(default)]
    pub name: String,
    /// Positive prompt.
    #[serde(default)]
    pub prompt: String,
    /// Negative prompt.
    #[serde(default)]
    pub negative_prompt: String,
    /// Generation settings.
    #[serde(default)]
    pub settings: SettingsV1,
    /// Fields this version does not know; reported as warnings.
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, Value>,
}

/// Generation settings of schema version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SettingsV1 {
    /// Width in pixels.
    pub width: i64,
    /// Height in pixels.
    pub height: i64,
    /// Sampling steps.
    pub steps: i64,
    /// CFG scale.
    pub cfg_scale: f64,
    /// Seed; -1 is random.
    pub seed: i64,
    /// Sampler name, as A1111 writes it.
    pub sampler: String,
    /// Fields this version does not know; reported as warnings.
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, Value>,
}

impl Default for SettingsV1 {
    fn default() -> Self {
        SettingsV1::from(&GenerationSettings::default())
    }
}

impl From<&GenerationSettings> for SettingsV1 {
    fn from(s: &GenerationSettings) -> Self {
        Self {
            width: i64::from(s.width_px),
            height: i64::from(s.height_px),
            steps: i64::from(s.steps),
            cfg_scale: s.cfg_scale,
            seed: s.seed.to_a1111(),
            sampler: s.sampler.name().to_owned(),
            unknown: BTreeMap::new(),
        }
    }
}

impl From<&Project> for ProjectV1 {
    fn from(p: &Project) -> Self {
        Self {
            name: p.name.clone(),
            prompt: p.prompt.clone(),
            negative_prompt: p.negative_prompt.clone(),
            settings: SettingsV1::from(&p.settings),
            unknown: BTreeMap::new(),
        }
    }
}

impl ProjectV1 {
    /// Normalises the wire value into a runtime [`Project`], clamping what is out of range and
    /// collecting a warning for every change and every unknown field.
    pub fn normalise(self, warnings: &mut Vec<Warning>) -> Project {
        unknown_fields("", &self.unknown, warnings);
        unknown_fields("settings.", &self.settings.unknown, warnings);
        Project {
            name: limit_text("name", self.name, warnings),
            prompt: limit_text("prompt", self.prompt, warnings),
            negative_prompt: limit_text("negative_prompt", self.negative_prompt, warnings),
            settings: normalise_settings(&self.settings, warnings),
        }
    }
}

fn unknown_fields(prefix: &str, unknown: &BTreeMap<String, Value>, warnings: &mut Vec<Warning>) {
    for key in unknown.keys() {
        warnings.push(Warning::UnknownField {
            field: format!("{prefix}{key}"),
        });
    }
}

fn limit_text(field: &'static str, text: String, warnings: &mut Vec<Warning>) -> String {
    if text.chars().count() <= MAX_TEXT_CHARS {
        return text;
    }
    warnings.push(Warning::Truncated {
        field,
        max_chars: MAX_TEXT_CHARS,
    });
    text.chars().take(MAX_TEXT_CHARS).collect()
}

fn normalise_settings(s: &SettingsV1, warnings: &mut Vec<Warning>) -> GenerationSettings {
    let defaults = GenerationSettings::default();
    GenerationSettings {
        width_px: normalise_side("settings.width", s.width, warnings),
        height_px: normalise_side("settings.height", s.height, warnings),
        steps: clamp_int("settings.steps", s.steps, 1, i64::from(MAX_STEPS), warnings),
        cfg_scale: normalise_cfg(s.cfg_scale, defaults.cfg_scale, warnings),
        seed: normalise_seed(s.seed, warnings),
        sampler: Sampler::from_name(&s.sampler).unwrap_or_else(|| {
            warnings.push(Warning::UnknownSampler {
                name: s.sampler.clone(),
                used: defaults.sampler.name(),
            });
            defaults.sampler
        }),
    }
}

/// Clamps an image side into range and rounds it to the nearest multiple of 8.
fn normalise_side(field: &'static str, value: i64, warnings: &mut Vec<Warning>) -> u32 {
    let step = i64::from(SIZE_STEP);
    let clamped = value.clamp(i64::from(MIN_SIZE_PX), i64::from(MAX_SIZE_PX));
    let rounded = (clamped + step / 2) / step * step;
    if rounded != value {
        warnings.push(Warning::Adjusted {
            field,
            from: value.to_string(),
            to: rounded.to_string(),
        });
    }
    u32::try_from(rounded).unwrap_or(MIN_SIZE_PX)
}

fn clamp_int(field: &'static str, value: i64, lo: i64, hi: i64, w: &mut Vec<Warning>) -> u32 {
    let clamped = value.clamp(lo, hi);
    if clamped != value {
        w.push(Warning::Adjusted {
            field,
            from: value.to_string(),
            to: clamped.to_string(),
        });
    }
    u32::try_from(clamped).unwrap_or(0)
}

fn normalise_cfg(value: f64, default: f64, warnings: &mut Vec<Warning>) -> f64 {
    let fixed = if value.is_finite() {
        value.clamp(0.0, MAX_CFG)
    } else {
        default
    };
    if fixed.to_bits() != value.to_bits() {
        warnings.push(Warning::Adjusted {
            field: "settings.cfg_scale",
            from: value.to_string(),
            to: fixed.to_string(),
        });
    }
    fixed
}

fn normalise_seed(value: i64, warnings: &mut Vec<Warning>) -> Seed {
    if value == -1 {
        return Seed::Random;
    }
    match u32::try_from(value) {
        Ok(seed) => Seed::Fixed(seed),
        Err(_) => {
            warnings.push(Warning::Adjusted {
                field: "settings.seed",
                from: value.to_string(),
                to: "-1 (random)".to_owned(),
            });
            Seed::Random
        }
    }
}
