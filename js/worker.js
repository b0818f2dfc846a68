// Keyshift compute worker loader (a template: `cargo xtask build` fills in the names). Runs as a module
// worker: instantiates the engine's wasm module and hands control to it. Messages that arrive while
// the module is still compiling are kept and delivered once the engine listens.
import init, { worker_main } from './{{compute_js}}';

const early = [];
self.onmessage = (event) => early.push(event);
await init({ module_or_path: new URL('./{{compute_wasm}}', import.meta.url) });
worker_main();
for (const event of early) self.onmessage?.(event);
