//! Keyshift's web app: a leptos single-page app. Components read state and emit commands; the
//! logic lives in [`state`] (plain types, tested natively) and the browser I/O in `browser`.

pub mod animate;
pub mod bench;
pub mod control;
pub mod parseq;
pub mod parseq_audio;
pub mod parseq_ops;
pub mod parseq_prompts;
pub mod parseq_view;
pub mod state;
pub mod studio;
pub mod temporal;
pub mod text;
pub mod travel;
pub mod video;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod browser;
#[cfg(target_arch = "wasm32")]
mod pages;
#[cfg(target_arch = "wasm32")]
mod recorder;

/// Entry point: called by the boot script once the module is instantiated.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn start() {
    console_error_panic_hook::set_once();
    init_tracing();
    leptos::mount::mount_to_body(app::App);
}

#[cfg(target_arch = "wasm32")]
fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .without_time()
        .with_writer(tracing_web::MakeWebConsoleWriter::new());
    // A second initialisation (not expected) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(layer).try_init();
}
