//! Runs in headless Chromium, inside a dedicated worker as the app does (`cargo xtask test`, or
//! `cargo test --release --target wasm32-unknown-unknown -p keyshift -p keyshift-worker`).
#![cfg(target_arch = "wasm32")]
#![allow(
    clippy::expect_used,
    reason = "a test fails by panicking (clippy does not see wasm_bindgen_test as a test)"
)]

use keyshift_web::gpu::{self, GpuStatus};
use keyshift_web::protocol::{FromWorker, ToWorker};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_dedicated_worker);

#[wasm_bindgen_test]
async fn webgpu_adapter_is_visible_in_a_worker() {
    let status = gpu::probe().await;
    let GpuStatus::Adapter(adapter) = status else {
        panic!("no WebGPU adapter in the worker: {status:?}");
    };
    assert!(!adapter.vendor.is_empty(), "{adapter:?}");
    let binding = adapter
        .limits
        .iter()
        .find(|(name, _)| name == "maxStorageBufferBindingSize")
        .and_then(|(_, v)| *v);
    assert!(
        binding.is_some_and(|b| b >= 128.0 * 1024.0 * 1024.0),
        "{adapter:?}"
    );
}

#[wasm_bindgen_test]
async fn burn_computes_the_self_test_correctly_on_webgpu() {
    let device = keyshift_worker::device().await.expect("WebGPU device");
    let report = keyshift_sd::selftest::run(&device).await.expect("runs");
    assert!(report.passed(), "{report:#?}");
    assert_eq!(report.matmul.shape, vec![64, 64]);
    assert_eq!(report.conv2d.shape, vec![1, 4, 16, 16]);
    // Run twice: the second run reuses the device and the compiled kernels.
    let again = keyshift_sd::selftest::run(&device)
        .await
        .expect("runs again");
    assert!(again.passed());
    assert_eq!(again.matmul.sum, report.matmul.sum);
}

#[wasm_bindgen_test]
fn messages_survive_the_trip_as_the_worker_sends_them() {
    let text = FromWorker::DeviceReady { init_ms: 4.0 }.to_json();
    assert_eq!(
        FromWorker::from_json(&text).expect("reads"),
        FromWorker::DeviceReady { init_ms: 4.0 }
    );
    assert!(ToWorker::from_json("{\"type\":\"generate\"}").is_err());
}
