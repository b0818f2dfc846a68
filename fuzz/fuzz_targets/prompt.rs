#![no_main]

#[path = "../capped.rs"]
mod capped;

#[global_allocator]
static ALLOC: capped::Capped = capped::Capped;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(run) = keyshift_core::fuzz::target("prompt") {
        run(data);
    }
});
