//! What the browser offers for WebGPU: the adapter, its key limits and features, and advice when
//! something is missing. The types are plain data; [`probe`] reads them from `navigator.gpu`.

use serde::{Deserialize, Serialize};

/// The adapter limits the engine cares about, in the order the System page lists them.
pub const KEY_LIMITS: [&str; 7] = [
    "maxBufferSize",
    "maxStorageBufferBindingSize",
    "maxComputeWorkgroupStorageSize",
    "maxComputeInvocationsPerWorkgroup",
    "maxComputeWorkgroupSizeX",
    "maxStorageBuffersPerShaderStage",
    "maxComputeWorkgroupsPerDimension",
];

/// A WebGPU adapter as the browser describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterReport {
    /// `GPUAdapterInfo.vendor`, e.g. `"google"`, `"nvidia"`.
    pub vendor: String,
    /// `GPUAdapterInfo.architecture`, e.g. `"swiftshader"`, `"ampere"`.
    pub architecture: String,
    /// `GPUAdapterInfo.device` (often empty for privacy).
    pub device: String,
    /// `GPUAdapterInfo.description` (often empty for privacy).
    pub description: String,
    /// A software or otherwise limited adapter.
    pub is_fallback: bool,
    /// The `shader-f16` feature (half-precision shaders).
    pub shader_f16: bool,
    /// [`KEY_LIMITS`] with their values (`None` where the browser does not report one).
    pub limits: Vec<(String, Option<f64>)>,
}

/// The outcome of looking for WebGPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GpuStatus {
    /// `navigator.gpu` does not exist (old browser, flag off, or not a secure context).
    NoApi {
        /// Whether the page runs in a secure context (https or localhost).
        secure_context: bool,
    },
    /// `navigator.gpu` exists but `requestAdapter()` gave no adapter.
    NoAdapter,
    /// `requestAdapter()` failed with an error.
    Error(String),
    /// An adapter was found.
    Adapter(AdapterReport),
}

impl GpuStatus {
    /// What the user can do about a missing WebGPU, or `None` when an adapter is there.
    pub fn advice(&self) -> Option<String> {
        match self {
            GpuStatus::NoApi {
                secure_context: false,
            } => Some(
                "WebGPU is only offered to secure pages. Open Keyshift over https:// \
                 (or http://localhost while developing)."
                    .to_owned(),
            ),
            GpuStatus::NoApi {
                secure_context: true,
            } => Some(
                "This browser does not offer WebGPU. Use a current Chrome or Edge (version 113 \
                 or newer), Safari 26, or Firefox 141 on Windows; on Linux, Chrome needs \
                 chrome://flags/#enable-unsafe-webgpu turned on."
                    .to_owned(),
            ),
            GpuStatus::NoAdapter => Some(
                "The browser supports WebGPU but found no usable graphics adapter. Update the \
                 graphics driver, make sure hardware acceleration is on \
                 (chrome://settings/system), and check chrome://gpu for \"WebGPU: Hardware \
                 accelerated\"; on Linux, Chrome also needs chrome://flags/#enable-unsafe-webgpu."
                    .to_owned(),
            ),
            GpuStatus::Error(message) => Some(format!(
                "Asking the browser for a graphics adapter failed: {message}. Reload the page; \
                 if it happens again, restart the browser."
            )),
            GpuStatus::Adapter(_) => None,
        }
    }
}

/// Formats a byte count the way the System page shows limits (`1 GiB`, `32 KiB`, `256`).
pub fn format_limit(name: &str, value: Option<f64>) -> String {
    let Some(v) = value else {
        return "not reported".to_owned();
    };
    let is_bytes = name.ends_with("Size") && name != "maxComputeWorkgroupSizeX";
    if !is_bytes {
        return format!("{v}");
    }
    const UNITS: [(&str, f64); 3] = [
        ("GiB", 1_073_741_824.0),
        ("MiB", 1_048_576.0),
        ("KiB", 1024.0),
    ];
    for (unit, size) in UNITS {
        if v >= size && (v / size).fract() == 0.0 {
            return format!("{} {unit}", v / size);
        }
    }
    format!("{v} B")
}

#[cfg(target_arch = "wasm32")]
pub use browser::probe;

#[cfg(target_arch = "wasm32")]
mod browser {
    use js_sys::{Function, Promise, Reflect};
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    use super::{AdapterReport, GpuStatus, KEY_LIMITS};

    fn get(target: &JsValue, key: &str) -> JsValue {
        Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    }

    fn get_string(target: &JsValue, key: &str) -> String {
        get(target, key).as_string().unwrap_or_default()
    }

    fn describe(err: &JsValue) -> String {
        let message = get_string(err, "message");
        if message.is_empty() {
            format!("{err:?}")
        } else {
            message
        }
    }

    /// Looks for WebGPU through `navigator.gpu.requestAdapter()`. Works on the UI thread and in
    /// workers.
    pub async fn probe() -> GpuStatus {
        let global = js_sys::global();
        let secure_context = get(&global, "isSecureContext").as_bool().unwrap_or(false);
        let gpu = get(&get(&global, "navigator"), "gpu");
        if gpu.is_undefined() || gpu.is_null() {
            return GpuStatus::NoApi { secure_context };
        }
        let Ok(request) = get(&gpu, "requestAdapter").dyn_into::<Function>() else {
            return GpuStatus::NoApi { secure_context };
        };
        let promise = match request.call0(&gpu) {
            Ok(p) => Promise::from(p),
            Err(e) => return GpuStatus::Error(describe(&e)),
        };
        let adapter = match JsFuture::from(promise).await {
            Ok(a) if a.is_null() || a.is_undefined() => return GpuStatus::NoAdapter,
            Ok(a) => a,
            Err(e) => return GpuStatus::Error(describe(&e)),
        };
        GpuStatus::Adapter(read_adapter(&adapter))
    }

    fn read_adapter(adapter: &JsValue) -> AdapterReport {
        let info = get(adapter, "info");
        let features = get(adapter, "features");
        let shader_f16 = get(&features, "has")
            .dyn_into::<Function>()
            .ok()
            .and_then(|has| has.call1(&features, &JsValue::from_str("shader-f16")).ok())
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let limits = get(adapter, "limits");
        let is_fallback = get(&info, "isFallbackAdapter")
            .as_bool()
            .or_else(|| get(adapter, "isFallbackAdapter").as_bool())
            .unwrap_or(false);
        AdapterReport {
            vendor: get_string(&info, "vendor"),
            architecture: get_string(&info, "architecture"),
            device: get_string(&info, "device"),
            description: get_string(&info, "description"),
            is_fallback,
            shader_f16,
            limits: KEY_LIMITS
                .iter()
                .map(|name| ((*name).to_owned(), get(&limits, name).as_f64()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_formatted_in_binary_units() {
        assert_eq!(
            format_limit("maxBufferSize", Some(1_073_741_824.0)),
            "1 GiB"
        );
        assert_eq!(
            format_limit("maxComputeWorkgroupStorageSize", Some(32768.0)),
            "32 KiB"
        );
        assert_eq!(
            format_limit("maxStorageBufferBindingSize", Some(134_217_728.0)),
            "128 MiB"
        );
        assert_eq!(
            format_limit("maxStorageBufferBindingSize", Some(1000.0)),
            "1000 B"
        );
        assert_eq!(format_limit("maxComputeWorkgroupSizeX", Some(256.0)), "256");
        assert_eq!(
            format_limit("maxComputeInvocationsPerWorkgroup", None),
            "not reported"
        );
    }

    #[test]
    fn advice_is_given_exactly_when_webgpu_is_missing() {
        assert!(
            GpuStatus::NoAdapter
                .advice()
                .is_some_and(|a| a.contains("adapter"))
        );
        assert!(
            GpuStatus::NoApi {
                secure_context: false
            }
            .advice()
            .is_some_and(|a| a.contains("https://"))
        );
        assert!(
            GpuStatus::NoApi {
                secure_context: true
            }
            .advice()
            .is_some_and(|a| a.contains("Chrome"))
        );
        let adapter = AdapterReport {
            vendor: "google".into(),
            architecture: "swiftshader".into(),
            device: String::new(),
            description: String::new(),
            is_fallback: true,
            shader_f16: false,
            limits: vec![],
        };
        assert_eq!(GpuStatus::Adapter(adapter).advice(), None);
    }
}
