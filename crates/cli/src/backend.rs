//! Choosing the device: burn's CPU backend, or wgpu (Vulkan, Metal, DX12) when an adapter exists.

use keyshift_sd::Device;

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
            Self::Wgpu => {
                let instance = wgpu::Instance::default();
                let adapter = pollster::block_on(
                    instance.request_adapter(&wgpu::RequestAdapterOptions::default()),
                );
                match adapter {
                    Ok(_) => Ok(keyshift_sd::wgpu_device()),
                    Err(e) => Err(format!(
                        "no wgpu adapter on this machine ({e}); install a Vulkan driver (e.g. Mesa's lavapipe) or use --backend cpu"
                    )),
                }
            }
        }
    }
}
