//! Keyshift's Stable Diffusion engine on burn.
//!
//! - [`selftest`]: a matmul and a conv2d checked against f64 references, proving a device computes
//!   correctly (the System page's WebGPU check).
pub mod clock;
pub mod selftest;

/// The burn device type the engine runs on (re-exported so callers need not depend on burn).
pub use burn::tensor::Device;
