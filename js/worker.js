// Keyshift compute worker loader (a template: `cargo xtask build` fills in the names). Runs as a module
// worker: instantiates the engine's wasm module and hands control to it.
import init, { worker_main } from './{{compute_js}}';

await init({ module_or_path: new URL('./{{compute_wasm}}', import.meta.url) });
worker_main();
