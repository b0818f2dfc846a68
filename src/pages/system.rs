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
