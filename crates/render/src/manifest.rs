//! What is recorded of each frame: the manifest entry (`frames.json`) and A1111's `parameters`.

use std::collections::BTreeMap;

use keyshift_core::parameters::{Parameters, sampler_name};
use keyshift_core::prompt::python_repr;
use keyshift_sd::generate::Request;
use serde::{Deserialize, Serialize};

use crate::source::FrameSpec;

/// One frame's settings, as every mode writes them into `frames.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameRecord {
    /// The file the frame is stored in (set by whoever writes it).
    pub file: String,
    /// Position in the order of generation.
    pub generation_index: usize,
    /// Prompt.
    pub prompt: String,
    /// Negative prompt.
    pub negative: String,
    /// Seed.
    pub seed: u64,
    /// Variation seed.
    pub subseed: u64,
    /// Variation strength.
    pub subseed_strength: f64,
    /// CFG scale.
    pub cfg: f64,
    /// Sampling steps.
    pub steps: usize,
    /// Sampler, as A1111 names it.
    pub sampler: String,
    /// Width of the stored frame (after upscaling).
    pub width: usize,
    /// Height of the stored frame.
    pub height: usize,
    /// img2img strength, when the frame had an init image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denoise: Option<f64>,
    /// Grad mode: each PGD step's latent and conditioning losses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub losses: Vec<[f64; 2]>,
    /// Mode-specific fields.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl FrameRecord {
    /// The record of `spec` rendered with `request` into an image of `width × height`.
    pub fn new(spec: &FrameSpec, request: &Request, width: usize, height: usize) -> Self {
        let (name, schedule) = sampler_name(request.sampler);
        let sampler = match schedule {
            Some(s) => format!("{name} {s}"),
            None => name.to_owned(),
        };
        Self {
            file: String::new(),
            generation_index: spec.index,
            prompt: spec.prompt.clone(),
            negative: spec.negative.clone(),
            seed: spec.seed,
            subseed: spec.subseed,
            subseed_strength: spec.subseed_strength,
            cfg: spec.cfg,
            steps: request.steps,
            sampler,
            width,
            height,
            denoise: request.init.as_ref().map(|i| i.strength),
            losses: Vec::new(),
            extra: spec.extra.clone(),
        }
    }
}

/// The key of [`FrameRecord::extra`] whose object replaces fields in `frames.json`: a mode that
/// must show a value as its sequence wrote it (a Parseq seed of −1 or 10.5, the whole
/// `deforum_prompt`) puts it there; the engine's value moves to `engine_<field>`.
pub const OVERRIDES: &str = "overrides";

impl FrameRecord {
    /// The record as reading it back from its stored JSON gives it. serde_json reads some
    /// floats back one unit in the last place off; records are made in this form so that a
    /// frame resumed from its PNG and a frame just made are written alike.
    pub fn as_stored(&self) -> Self {
        serde_json::to_string(self)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_else(|| self.clone())
    }

    /// The frame's `frames.json` entry (see [`OVERRIDES`]).
    pub fn manifest_entry(&self) -> Result<serde_json::Value, String> {
        let mut value = serde_json::to_value(self).map_err(|e| e.to_string())?;
        if let Some(fields) = value.as_object_mut()
            && let Some(serde_json::Value::Object(overrides)) = fields.remove(OVERRIDES)
        {
            for (key, shown) in overrides {
                if let Some(engine) = fields.insert(key.clone(), shown) {
                    fields.insert(format!("engine_{key}"), engine);
                }
            }
        }
        Ok(value)
    }
}

/// A1111's `parameters` for a frame: the request's, with the variation strength written as
/// Python writes a float (`0.5`, `1.0`, `0.3333333333333333`), as A1111 does. The variation seed
/// and strength appear only when the strength is above 0.
pub fn frame_parameters(request: &Request, spec: &FrameSpec, model: &str) -> Parameters {
    let mut parameters = request.parameters(model);
    for (key, value) in &mut parameters.fields {
        if key == "Variation seed strength" {
            *value = python_repr(spec.subseed_strength);
        }
    }
    parameters
}
