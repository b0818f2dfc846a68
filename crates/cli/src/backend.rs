//! Choosing the device: burn's CPU backend, or wgpu (Vulkan, Metal, DX12) when an adapter exists.

use keyshift_sd::Device;

/// Why `--backend wgpu` fails in a build without the `wgpu` feature.
#[cfg(not(feature = "wgpu"))]
pub const NO_WGPU: &str = "--backend wgpu: this keyshift was built without the wgpu backend \
     (cargo feature `wgpu`, on by default); use --backend cpu";

/// The backends the CLI offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// burn's pure-Rust CPU backend (`flex`).
    Cpu,
    /// burn on wgpu: the same WGSL kernels the browser runs on WebGPU.
    Wgpu,
}

impl Backend {
    /// Reads `cpu` or `wgpu`.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "cpu" => Ok(Self::Cpu),
            "wgpu" => Ok(Self::Wgpu),
            other => Err(format!("--backend: \"{other}\" is not cpu or wgpu")),
        }
    }

    /// The device, or a message saying why there is none.
    pub fn device(self) -> Result<Device, String> {
        match self {
            Self::Cpu => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            Self::Wgpu => {
                keyshift_sd::wgpu_adapter(&keyshift_sd::wgpu::Instance::default())?;
                Ok(keyshift_sd::wgpu_device())
            }
            #[cfg(not(feature = "wgpu"))]
            Self::Wgpu => Err(NO_WGPU.to_owned()),
        }
    }
}
