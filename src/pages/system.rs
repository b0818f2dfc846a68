//! The System page: what WebGPU this browser offers, and proof that the engine computes correctly
//! on it (the compute worker's self-test).

use keyshift_core::selftest::Check;
use keyshift_web::gpu::{self, AdapterReport, GpuStatus};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::app::Shared;

/// The System page.
#[component]
pub fn SystemPage() -> impl IntoView {
    let status = RwSignal::new(None::<GpuStatus>);
    spawn_local(async move { status.set(Some(gpu::probe().await)) });
    view! {
        <section class="card">
            <h1>"System"</h1>
            <h2>"WebGPU"</h2>
            {move || match status.get() {
                None => view! { <p data-testid="gpu-status">"checking…"</p> }.into_any(),
                Some(GpuStatus::Adapter(adapter)) => view! { <Adapter adapter/> }.into_any(),
                Some(missing) => view! {
                    <p class="badge bad" data-testid="gpu-status">"unavailable"</p>
                    <p data-testid="gpu-advice">{missing.advice().unwrap_or_default()}</p>
                }.into_any(),
            }}
        </section>
        <SelfTest/>
        <Benchmark/>
    }
}

/// Benchmark this device: UNet steps with CFG of the loaded model at the project's size.
#[component]
fn Benchmark() -> impl IntoView {
    let shared = expect_context::<Shared>();
    let (studio, project) = (shared.studio, shared.project);
    let runs = RwSignal::new(crate::bench::DEFAULT_RUNS.to_string());
    let refused = RwSignal::new(None::<String>);
    let start = move |_| {
        let sent = studio
            .try_update(|s| s.benchmark(&project.get_untracked(), &runs.get_untracked()))
            .unwrap_or_else(|| Err("the page is closing".into()));
        match sent {
            Ok(message) => {
                refused.set(None);
                shared.send(&message);
            }
            Err(e) => refused.set(Some(e)),
        }
    };
    let cancel = move |_| {
        if let Some(job) = studio.with_untracked(|s| s.bench.running) {
            shared.send(&keyshift_web::protocol::ToWorker::Cancel { job });
        }
    };
    let running = move || studio.with(|s| s.bench.running.is_some());
    view! {
        <section class="card">
            <h2>"Benchmark this device"</h2>
            <p class="hint">
                "Times UNet steps with CFG (batch 2) of the loaded model at the project's size, \
                 after one warm-up step, on the backend it was loaded on. Fixed inputs: the \
                 checksum is the same on every device that computes correctly."
            </p>
            <label class="check">"Timed steps "
                <input type="number" class="count" min="1" max="100" data-testid="bench-runs"
                    prop:value=move || runs.get()
                    on:change=move |e| runs.set(event_target_value(&e))/>
            </label>
            <button data-testid="bench-run" disabled=running on:click=start>"Benchmark"</button>
            <Show when=running>
                <button class="ghost" data-testid="bench-cancel" on:click=cancel>"Cancel"</button>
                <p data-testid="bench-status">"measuring…"</p>
            </Show>
            {move || refused.get().or_else(|| studio.with(|s| s.bench.error.clone()))
                .map(|e| view! { <p class="error" data-testid="bench-error">{e}</p> })}
            {move || studio.with(|s| s.bench.result_text().zip(s.bench.result.as_ref()
                .map(|(r, _)| r.checksum)))
                .map(|(text, checksum)| view! {
                    <p data-testid="bench-result">{text}</p>
                    <p>"Checksum (the first 16 output values summed): "
                        <span data-testid="bench-checksum">{format!("{checksum:.6}")}</span></p>
                })}
        </section>
    }
}

#[component]
fn Adapter(adapter: AdapterReport) -> impl IntoView {
    let or_dash = |s: String| if s.is_empty() { "—".to_owned() } else { s };
    view! {
        <p class="badge good" data-testid="gpu-status">"available"</p>
        <table class="facts">
            <tr><th>"Vendor"</th><td data-testid="gpu-vendor">{or_dash(adapter.vendor)}</td></tr>
            <tr><th>"Architecture"</th>
                <td data-testid="gpu-architecture">{or_dash(adapter.architecture)}</td></tr>
            <tr><th>"Device"</th><td>{or_dash(adapter.device)}</td></tr>
            <tr><th>"Description"</th><td>{or_dash(adapter.description)}</td></tr>
            <tr><th>"Software (fallback) adapter"</th>
                <td data-testid="gpu-fallback">{if adapter.is_fallback { "yes" } else { "no" }}</td></tr>
            <tr><th>"shader-f16"</th>
                <td data-testid="gpu-f16">{if adapter.shader_f16 { "yes" } else { "no" }}</td></tr>
            {adapter.limits.into_iter().map(|(name, value)| {
                let text = gpu::format_limit(&name, value);
                let testid = format!("gpu-limit-{name}");
                view! { <tr><th>{name}</th><td data-testid=testid>{text}</td></tr> }
            }).collect_view()}
        </table>
        {(!adapter.shader_f16).then(|| view! {
            <p class="hint">"Without shader-f16, models run in f32: twice the GPU memory of f16."</p>
        })}
        {adapter.is_fallback.then(|| view! {
            <p class="hint">"This is a software adapter: it computes correctly but very slowly."</p>
        })}
    }
}

#[component]
fn SelfTest() -> impl IntoView {
    let shared = expect_context::<Shared>();
    let worker = shared.worker;
    view! {
        <section class="card">
            <h2>"Engine self-test (in the compute worker)"</h2>
            <p class="hint">
                "burn runs a matmul and a conv2d on the WebGPU device inside a Web Worker; the \
                 results are compared with exact references."
            </p>
            <p>"Status: " <span data-testid="selftest-status">{move || worker.get().status()}</span></p>
            <p>"Device acquired in: "
                <span data-testid="device-init-ms">
                    {move || worker.get().device_init_ms.map_or("—".to_owned(), |ms| format!("{ms:.0} ms"))}
                </span>
            </p>
            {move || worker.get().report.map(|r| view! {
                <table class="facts">
                    <tr><th>"Check"</th><th>"Sum"</th><th>"Expected sum"</th><th>"Max error"</th>
                        <th>"Time"</th><th>"Result"</th></tr>
                    <CheckRow check=r.matmul testid="selftest-matmul"/>
                    <CheckRow check=r.conv2d testid="selftest-conv2d"/>
                </table>
            })}
            <button data-testid="selftest-rerun" disabled=move || worker.get().running
                on:click=move |_| shared.rerun_self_test()>"Run again"</button>
        </section>
    }
}

#[component]
fn CheckRow(check: Check, testid: &'static str) -> impl IntoView {
    view! {
        <tr data-testid=testid>
            <td>{check.name}</td>
            <td data-testid=format!("{testid}-sum")>{format!("{:.4}", check.sum)}</td>
            <td data-testid=format!("{testid}-expected")>{format!("{:.4}", check.expected_sum)}</td>
            <td data-testid=format!("{testid}-error")>{format!("{:.2e}", check.max_abs_error)}</td>
            <td data-testid=format!("{testid}-ms")>{format!("{:.0} ms", check.elapsed_ms)}</td>
            <td data-testid=format!("{testid}-result")>{if check.passed { "pass" } else { "FAIL" }}</td>
        </tr>
    }
}
