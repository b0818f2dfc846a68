//! Wall-clock timing that works natively and in the browser.

/// Measures elapsed time from its creation.
///
/// `web_time::Instant` is the browser's `performance.now()` on wasm32 and std's `Instant` natively;
/// clippy's wasm guard (no `std::time::Instant`) therefore flags it on native builds only. This is
/// the one place allowed to use it.
#[allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "web_time::Instant is wasm-safe; natively it is std's Instant"
)]
pub struct Stopwatch(web_time::Instant);

#[allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "web_time::Instant is wasm-safe; natively it is std's Instant"
)]
impl Stopwatch {
    /// Starts measuring now.
    pub fn start() -> Self {
        Self(web_time::Instant::now())
    }

    /// Milliseconds since [`Stopwatch::start`].
    pub fn elapsed_ms(&self) -> f64 {
        self.0.elapsed().as_secs_f64() * 1e3
    }
}
