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
async fn the_cpu_fallback_multiplies_with_simd_kernels_and_correctly() {
    assert!(!keyshift_sd::cpu_simd(), "off until the CPU device is made");
    let device = keyshift_sd::cpu_device();
    assert!(keyshift_sd::cpu_simd());
    let report = keyshift_sd::selftest::run(&device).await.expect("runs");
    assert!(report.passed(), "{report:#?}");
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

/// The largest tensor of SD 1.x (the 49408 × 768 token embedding, 152 MB in f32) read from an
/// fp16 file as the engine reads weights: the heap needs at most its f32 size plus 64 MB, at f32
/// and at int8, and the tensor itself ends up on the GPU.
#[wasm_bindgen_test]
async fn the_largest_sd1_tensor_loads_within_its_size_plus_64_mb_of_heap() {
    use keyshift_sd::weights::{Loader, Precision, Prefixed, SafetensorsFile, WeightStore};
    use keyshift_worker::{blob::BlobSource, heap};
    let (rows, cols) = (49_408usize, 768usize);
    let data_len = rows * cols * 2;
    let mut header = format!(
        r#"{{"weight":{{"dtype":"F16","shape":[{rows},{cols}],"data_offsets":[0,{data_len}]}}}}"#
    );
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut head = (header.len() as u64).to_le_bytes().to_vec();
    head.extend_from_slice(header.as_bytes());
    let parts = js_sys::Array::new();
    parts.push(&js_sys::Uint8Array::from(head.as_slice()));
    // The data lives in JavaScript memory, as a downloaded file does.
    parts.push(&js_sys::Uint8Array::new_with_length(
        u32::try_from(data_len).expect("fits"),
    ));
    let blob = web_sys::Blob::new_with_u8_array_sequence(&parts).expect("blob");
    let device = keyshift_worker::device().await.expect("WebGPU device");
    let f32_bytes = rows * cols * 4;
    for precision in [Precision::F32, Precision::Int8] {
        let source = BlobSource::new(blob.clone()).expect("source");
        let file = SafetensorsFile::open("big.safetensors", Box::new(source)).expect("opens");
        let mut store = WeightStore::new(vec![file]);
        let base = heap::reset_peak();
        let tensor = Loader::new(&mut store, &Prefixed::default(), &device)
            .with_precision(precision)
            .dequantized::<2>("weight", [rows, cols])
            .expect("loads");
        let peak = heap::peak_bytes() - base;
        web_sys::console::log_1(
            &format!("{precision:?}: peak heap {peak} bytes for a {f32_bytes}-byte tensor").into(),
        );
        assert!(
            peak <= f32_bytes + (64 << 20),
            "{precision:?}: the load needed {peak} bytes at once for a {f32_bytes}-byte tensor"
        );
        assert_eq!(tensor.dims(), [rows, cols]);
    }
}
