//! The runtime (normalised) project type: what the app edits and what a share link restores.

use serde::{Deserialize, Serialize};

use super::animation::Animation;

/// Smallest and largest image side, in pixels. Sides are multiples of [`SIZE_STEP`].
pub const MIN_SIZE_PX: u32 = 64;
/// Largest image side, in pixels.
pub const MAX_SIZE_PX: u32 = 2048;
/// Image sides are multiples of the VAE's downscale factor.
pub const SIZE_STEP: u32 = 8;
/// Largest number of sampling steps (A1111's slider maximum).
pub const MAX_STEPS: u32 = 150;
/// Largest CFG scale (A1111's slider maximum).
pub const MAX_CFG: f64 = 30.0;
/// Largest project name and prompt lengths, in characters.
pub const MAX_TEXT_CHARS: usize = 20_000;

/// A sampler, named as AUTOMATIC1111 names it in its UI and infotext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Sampler {
    /// Euler ancestral (A1111's default).
    #[default]
    #[serde(rename = "Euler a")]
    EulerAncestral,
    /// Euler.
    #[serde(rename = "Euler")]
    Euler,
    /// DDIM.
    #[serde(rename = "DDIM")]
    Ddim,
    /// DPM++ 2M with the model's own sigmas.
    #[serde(rename = "DPM++ 2M")]
    DpmPp2m,
    /// DPM++ 2M with Karras sigmas.
    #[serde(rename = "DPM++ 2M Karras")]
    DpmPp2mKarras,
    /// Latent consistency model sampling.
    #[serde(rename = "LCM")]
    Lcm,
}

impl Sampler {
    /// Every sampler, in the order a picker lists them.
    pub const ALL: [Sampler; 6] = [
        Sampler::EulerAncestral,
        Sampler::Euler,
        Sampler::Ddim,
        Sampler::DpmPp2m,
        Sampler::DpmPp2mKarras,
        Sampler::Lcm,
    ];

    /// The A1111 name (`"Euler a"`, `"DPM++ 2M Karras"`…).
    pub fn name(self) -> &'static str {
        match self {
            Sampler::EulerAncestral => "Euler a",
            Sampler::Euler => "Euler",
            Sampler::Ddim => "DDIM",
            Sampler::DpmPp2m => "DPM++ 2M",
            Sampler::DpmPp2mKarras => "DPM++ 2M Karras",
            Sampler::Lcm => "LCM",
        }
    }

    /// Looks a sampler up by its A1111 name, ignoring case and surrounding spaces.
    pub fn from_name(name: &str) -> Option<Sampler> {
        let wanted = name.trim();
        Sampler::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(wanted))
    }
}

/// The seed of a generation: A1111 writes `-1` for "random".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seed {
    /// A new random seed for every generation.
    #[default]
    Random,
    /// A fixed seed.
    Fixed(u32),
}

impl Seed {
    /// The A1111 number: `-1` for random.
    pub fn to_a1111(self) -> i64 {
        match self {
            Seed::Random => -1,
            Seed::Fixed(s) => i64::from(s),
        }
    }
}

/// Generation settings in A1111's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationSettings {
    /// Image width in pixels, a multiple of 8.
    pub width_px: u32,
    /// Image height in pixels, a multiple of 8.
    pub height_px: u32,
    /// Sampling steps, 1..=150.
    pub steps: u32,
    /// Classifier-free guidance scale, 0..=30.
    pub cfg_scale: f64,
    /// The seed.
    pub seed: Seed,
    /// The sampler.
    pub sampler: Sampler,
}

impl Default for GenerationSettings {
    fn default() -> Self {
        Self {
            width_px: 512,
            height_px: 512,
            steps: 20,
            cfg_scale: 7.0,
            seed: Seed::Random,
            sampler: Sampler::EulerAncestral,
        }
    }
}

/// A Keyshift project, normalised: every value is in range.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// A name for the project (free text).
    pub name: String,
    /// The positive prompt, in A1111 syntax.
    pub prompt: String,
    /// The negative prompt, in A1111 syntax.
    pub negative_prompt: String,
    /// Generation settings.
    pub settings: GenerationSettings,
    /// The animation mode and its options.
    pub animation: Animation,
}

impl Default for Project {
    fn default() -> Self {
        Self {
            name: "Untitled".to_owned(),
            prompt: String::new(),
            negative_prompt: String::new(),
            settings: GenerationSettings::default(),
            animation: Animation::default(),
        }
    }
}
