//! Keyshift's browser glue.
//!
//! - [`protocol`]: messages between the UI thread and the compute worker (plain serde, tested
//!   natively).
//! - [`cache`]: the offline model cache's manifest, OPFS names and SHA-256 digests.
//! - [`gpu`]: WebGPU adapter report and advice; `gpu::probe` reads `navigator.gpu` (wasm32).
//! - `worker` (wasm32): spawning the module worker and both ends of its message channel.
pub mod cache;
pub mod gpu;
pub mod protocol;
#[cfg(target_arch = "wasm32")]
pub mod worker;
