// Keyshift compute worker loader (a template: `cargo xtask build` fills in the names). Runs as a module
// worker: instantiates the engine's wasm module and hands control to it. Messages that arrive while
// the module is still compiling are kept and delivered once the engine listens.
import init, { worker_main } from './{{compute_js}}';

// A lost GPU device (a driver reset, the GPU process restarting) would leave the engine waiting
// for work that never completes: the worker stops instead, so that the page starts a fresh one,
// keeps the finished frames and offers Resume. Devices the engine destroys itself are not losses.
const devices = [];
let losing = false;
if (self.GPUAdapter) {
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    devices.push(device);
    device.lost.then((info) => {
      if (info.reason === 'destroyed' && !losing) return;
      setTimeout(() => { throw new Error(`the GPU device was lost (${info.message || info.reason})`); }, 0);
    });
    return device;
  };
}
// Fault injection for the end-to-end tests: what a device loss does, on demand.
self.keyshiftLoseDevice = () => {
  losing = true;
  for (const device of devices) device.destroy();
  return devices.length;
};

const early = [];
self.onmessage = (event) => early.push(event);
await init({ module_or_path: new URL('./{{compute_wasm}}', import.meta.url) });
worker_main();
for (const event of early) self.onmessage?.(event);
