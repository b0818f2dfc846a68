//! A wgpu device opened by hand so that its limits can be those of an ordinary WebGPU adapter, and
//! whose allocator says which buffers it holds: `keyshift bench unet --backend wgpu` runs under
//! `--buffer-limit` (WebGPU's default 128 MiB unless told) and reports the largest buffer the device
//! allocated.

use keyshift_sd::Device;
use keyshift_sd::wgpu;

/// The engine's device on a wgpu device of our own.
pub struct Gpu {
    /// The device the engine runs on.
    pub device: Device,
    raw: wgpu::Device,
}

impl Gpu {
    /// Opens the default adapter with its storage-buffer and buffer-size limits lowered to
    /// `limit` bytes (where the adapter allows more).
    pub fn open(limit: u64) -> Result<Self, String> {
        let instance = wgpu::Instance::default();
        let adapter = keyshift_sd::wgpu_adapter(&instance)?;
        let mut limits = adapter.limits();
        limits.max_buffer_size = limits.max_buffer_size.min(limit);
        limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.min(limit);
        let (raw, queue) = pollster::block_on(
            adapter.request_device(&wgpu::DeviceDescriptor {
                label: Some("keyshift bench"),
                required_features: adapter
                    .features()
                    .difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
                required_limits: limits,
                memory_hints: wgpu::MemoryHints::MemoryUsage,
                ..Default::default()
            }),
        )
        .map_err(|e| format!("the wgpu device could not be opened: {e}"))?;
        let backend = adapter.get_info().backend;
        let device = keyshift_sd::wgpu_device_from(keyshift_sd::WgpuSetup {
            instance,
            adapter,
            device: raw.clone(),
            queue,
            backend,
        })?;
        Ok(Self { device, raw })
    }

    /// The largest buffer the device's allocator holds now (pages the engine's memory pools keep),
    /// or `None` where the backend keeps no report.
    pub fn largest_buffer(&self) -> Option<u64> {
        let report = self.raw.generate_allocator_report()?;
        Some(report.allocations.iter().map(|a| a.size).max().unwrap_or(0))
    }
}
