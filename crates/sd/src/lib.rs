//! Keyshift's Stable Diffusion engine on burn.
//!
//! - [`weights`]: safetensors read tensor by tensor from a byte source; diffusers and CompVis key
//!   layouts; typed load errors.
//! - [`config`]: model configurations as data.
//! - Model blocks, one per file: [`clip`], [`embeddings`], [`resnet`], [`transformer`] (with
//!   [`attention`] and [`hooks`]), [`unet`], [`vae`]; [`model`] loads them together.
//! - [`taesd`]: the tiny autoencoder TAESD (fast previews, cheap encodes) in both of its layouts.
//! - [`conditioning`]: prompts → embeddings the A1111 way (schedules, `AND`, chunks, emphasis).
//! - [`generate`]: one image from a request (the CLI and the worker share it).
//! - [`pipeline`]: sampling behind a step API, classifier-free guidance, img2img.
//! - [`golden`] (native): the `sd-golden` conformance runner against diffusers reference tensors.
//! - [`taps`]: attention hooks: cross-attention heatmaps per token (VXA and over a generation),
//!   attention interpolation between frames.
//! - [`grad`]: prompt travel's grad mode: PGD steps on the conditioning through burn's autodiff.
//! - [`travel`]: prompt travel's mixed conditioning (lerp, slerp, replace masks) per step.
//! - [`limits`]: the largest GPU buffers a model and an image size need, against a device's limit.
//! - [`selftest`]: a matmul and a conv2d checked against f64 references, proving a device computes
//!   correctly (the System page's WebGPU check).
pub mod attention;
pub mod bands;
pub mod clip;
pub mod clock;
pub mod conditioning;
pub mod config;
pub mod controlnet;
pub mod embeddings;
pub mod generate;
#[cfg(not(target_arch = "wasm32"))]
pub mod golden;
pub mod grad;
pub mod hooks;
pub mod limits;
pub mod model;
pub mod nn;
pub mod pipeline;
pub mod resnet;
pub mod selftest;
pub mod softmax;
pub mod taesd;
pub mod taps;
pub mod transformer;
pub mod travel;
pub mod unet;
pub mod vae;
pub mod weights;

/// The burn device type the engine runs on (re-exported so callers need not depend on burn).
pub use burn::tensor::Device;

/// burn's CPU backend (`flex`). In the browser its matrix products (and the convolutions built on
/// them) run on wasm's 128-bit SIMD kernels: they are in the module already, so every browser that
/// can load it has SIMD, but the product crate picks its scalar kernels unless it is told otherwise.
pub fn cpu_device() -> Device {
    #[cfg(target_arch = "wasm32")]
    gemm::set_wasm_simd128(true);
    Device::flex()
}

/// Whether the CPU backend's matrix products use SIMD kernels: natively always (the product
/// crate detects the CPU's vector units), in the browser once [`cpu_device`] switched them on.
pub fn cpu_simd() -> bool {
    #[cfg(target_arch = "wasm32")]
    return gemm::get_wasm_simd128();
    #[cfg(not(target_arch = "wasm32"))]
    true
}

/// The default wgpu device natively (Vulkan, Metal or DX12; lavapipe in CI). Lazy: it fails on
/// first use when the machine has no adapter, so check for one first.
#[cfg(all(not(target_arch = "wasm32"), feature = "wgpu"))]
pub fn wgpu_device() -> Device {
    Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)
}

/// The wgpu crate burn runs on natively: to ask for an adapter, or open a device with chosen
/// limits for [`wgpu_device_from`].
#[cfg(all(not(target_arch = "wasm32"), feature = "wgpu"))]
pub use wgpu;

/// The machine's default wgpu adapter, or a message saying what to install.
#[cfg(all(not(target_arch = "wasm32"), feature = "wgpu"))]
pub fn wgpu_adapter(instance: &wgpu::Instance) -> Result<wgpu::Adapter, String> {
    pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default())).map_err(
        |e| {
            format!(
                "no wgpu adapter on this machine ({e}); install a Vulkan driver (Debian: \
                 mesa-vulkan-drivers, Mesa's lavapipe) or use --backend cpu"
            )
        },
    )
}

/// burn's wgpu setup type: a device and queue the caller created (natively), e.g. with smaller
/// limits than the adapter's, for [`wgpu_device_from`].
#[cfg(all(not(target_arch = "wasm32"), feature = "wgpu"))]
pub use burn::tensor::wgpu::WgpuSetup;

/// Registers a wgpu device the caller created (natively) as the engine's device.
#[cfg(all(not(target_arch = "wasm32"), feature = "wgpu"))]
pub fn wgpu_device_from(setup: WgpuSetup) -> Result<Device, String> {
    Device::wgpu_options()
        .setup(setup)
        .init()
        .map_err(|e| e.to_string())
}
