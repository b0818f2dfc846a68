//! Keyshift's Stable Diffusion engine on burn.
//!
//! - [`weights`]: safetensors read tensor by tensor from a byte source; diffusers and CompVis key
//!   layouts; typed load errors.
//! - [`config`]: model configurations as data.
//! - Model blocks, one per file: [`clip`], [`embeddings`], [`resnet`], [`transformer`] (with
//!   [`attention`] and [`hooks`]), [`unet`], [`vae`]; [`model`] loads them together.
//! - [`pipeline`]: sampling behind a step API, classifier-free guidance, img2img.
//! - [`golden`] (native): the `sd-golden` conformance runner against diffusers reference tensors.
//! - [`selftest`]: a matmul and a conv2d checked against f64 references, proving a device computes
//!   correctly (the System page's WebGPU check).
pub mod attention;
pub mod clip;
pub mod clock;
pub mod config;
pub mod embeddings;
#[cfg(not(target_arch = "wasm32"))]
pub mod golden;
pub mod hooks;
pub mod model;
pub mod nn;
pub mod pipeline;
pub mod resnet;
pub mod selftest;
pub mod transformer;
pub mod unet;
pub mod vae;
pub mod weights;

/// The burn device type the engine runs on (re-exported so callers need not depend on burn).
pub use burn::tensor::Device;
