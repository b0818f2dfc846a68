//! Keyshift's pure logic: no burn, no web-sys, fast tests.
//!
//! - [`share`]: the versioned project schema and its share-link codec.
//! - [`prompt`]: AUTOMATIC1111's prompt language (emphasis, `BREAK`, prompt editing, alternation,
//!   `AND`), read exactly as A1111 reads it.
//! - [`shift`]: shift-attention's `a~b~c` ranges, `THEN` segments, frame order and SSIM gap filling.
//! - [`travel`]: prompt travel's stages, frames and α per genesis, easing, slices and replace
//!   orders.
//! - [`plan`]: the frame plan every sequence source produces.
//! - [`export`]: lead padding, animated GIF, stored zip, CRC-32.
//! - [`image`]: the RGB image buffer, SSIM (torchmetrics-exact) and Lanczos resizing.
//! - [`noise`]: seeded latent noise exactly as PyTorch's CPU generator makes it, with A1111's
//!   variation seeds.
//! - [`tokens`]: CLIP BPE tokens, 75-token chunks and per-token weights for the text encoder.
//! - [`parameters`]: A1111's generation-parameters text and sampler names.
//! - [`limits`]: the largest files, video frames and audio the page reads.
//! - [`pngtext`]: PNG files with A1111's `parameters` text chunk.
//! - [`weights`]: the safetensors reader, byte sources, weight-loading errors, `.yaml` hints.
//! - [`fuzz`]: the fuzz targets' bodies.
//! - [`conformance`]: runs the conformance case files against this crate.
//! - [`schedule`]: noise schedules and sampler step coefficients (DDIM, Euler, Euler a, DPM++ 2M,
//!   LCM; diffusers and k-diffusion/A1111) as scalar math for the engine.
pub mod audio;
pub mod conformance;
pub mod control;
pub mod export;
pub mod fuzz;
pub mod image;
pub mod limits;
pub mod noise;
pub mod parameters;
pub mod parseq;
pub mod plan;
pub mod pngtext;
pub mod prompt;
pub mod schedule;
pub mod selftest;
pub mod share;
pub mod shift;
pub mod temporal;
pub mod tokens;
pub mod travel;
pub mod weights;
