// Keyshift compute worker loader (a template: `cargo xtask build` fills in the names). Runs as a module
// worker: instantiates the engine's wasm module and hands control to it. Messages that arrive while
// the module is still compiling are kept and delivered once the engine listens.
import init, { gpu_memory, heap_live_bytes, worker_main } from './{{compute_js}}';

// A lost GPU device (a driver reset, the GPU process restarting) would leave the engine waiting
// for work that never completes: the worker stops instead, so that the page starts a fresh one,
// keeps the finished frames and offers Resume. Devices the engine destroys itself are not losses.
const devices = new Set();
let losing = false;
if (self.GPUAdapter) {
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    devices.add(device);
    device.lost.then((info) => {
      devices.delete(device);
      if (info.reason === 'destroyed' && !losing) return;
      setTimeout(() => { throw new Error(`the GPU device was lost (${info.message || info.reason})`); }, 0);
    });
    return device;
  };
}
// Fault injection for the end-to-end tests: what a device loss does, on demand. Returns how many
// live devices it destroyed.
self.keyshiftLoseDevice = () => {
  losing = true;
  const live = [...devices];
  for (const device of live) device.destroy();
  return live.length;
};

// Soak measurements for the end-to-end tests: GPU buffers made, destroyed and collected (each
// counted once), and the engine's live heap next to the size wasm memory has grown to. wgpu frees
// a buffer on the web by dropping its handle, not by destroy(): the browser releases it when the
// wrapper is garbage-collected, which a FinalizationRegistry counts. With V8's `gc` exposed
// (`--js-flags=--expose-gc`), a sample first collects, so that "live" means reachable.
const buffers = { created: 0, destroyed: 0, collected: 0 };
if (self.GPUDevice && self.GPUBuffer) {
  const gone = new WeakSet();
  const collected = new FinalizationRegistry(() => { buffers.collected += 1; });
  const createBuffer = GPUDevice.prototype.createBuffer;
  GPUDevice.prototype.createBuffer = function (...args) {
    buffers.created += 1;
    const buffer = createBuffer.apply(this, args);
    collected.register(buffer, null, buffer);
    return buffer;
  };
  const destroy = GPUBuffer.prototype.destroy;
  GPUBuffer.prototype.destroy = function (...args) {
    if (!gone.has(this)) {
      gone.add(this);
      collected.unregister(this);
      buffers.destroyed += 1;
    }
    return destroy.apply(this, args);
  };
}
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
let memory = null;
self.keyshiftSoak = async () => {
  const gcForced = typeof self.gc === 'function';
  if (gcForced) {
    // Finalizers run in tasks after the collection: wait until the count settles.
    self.gc();
    for (let seen = -1, i = 0; seen !== buffers.collected && i < 50; i += 1) {
      seen = buffers.collected;
      await pause(20);
    }
  }
  const [gpuAllocations, gpuBytesInUse, gpuBytesReserved] = gpu_memory() ?? [];
  return {
    gpuAllocations,
    gpuBytesInUse,
    gpuBytesReserved,
    gpuBuffersLive: buffers.created - buffers.destroyed - buffers.collected,
    gpuBuffersCreated: buffers.created,
    gpuBuffersCollected: buffers.collected,
    gcForced,
    heapLiveBytes: heap_live_bytes(),
    wasmMemoryBytes: memory?.buffer.byteLength ?? 0,
  };
};

const early = [];
self.onmessage = (event) => early.push(event);
memory = (await init({ module_or_path: new URL('./{{compute_wasm}}', import.meta.url) })).memory;
worker_main();
for (const event of early) self.onmessage?.(event);
