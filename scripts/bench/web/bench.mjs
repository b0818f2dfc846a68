// The browser half of `cargo xtask bench peers` (dev-only): ONNX Runtime Web runs the tiny UNet's
// ONNX export (batch 2, as with CFG) on one execution provider and reports the median time of a
// forward pass. Driven by peers_web.mjs, which serves this page cross-origin isolated (wasm threads).
import * as ort from '/ort/ort.all.min.mjs';

ort.env.wasm.wasmPaths = '/ort/';
ort.env.wasm.numThreads = self.crossOriginIsolated ? navigator.hardwareConcurrency : 1;

/** Median milliseconds of `runs` forward passes after one warm-up, on `provider`. */
async function median(provider, runs) {
  const model = new Uint8Array(await (await fetch('/model.onnx')).arrayBuffer());
  const session = await ort.InferenceSession.create(model, { executionProviders: [provider] });
  const shapes = JSON.parse(await (await fetch('/shapes.json')).text());
  const feeds = {};
  for (const [name, { dims, value }] of Object.entries(shapes)) {
    const n = dims.reduce((a, b) => a * b, 1);
    feeds[name] = new ort.Tensor('float32', new Float32Array(n).fill(value), dims);
  }
  const once = async () => {
    const out = await session.run(feeds);
    // Read the result back, so a GPU provider's time includes finishing the work.
    const first = Object.values(out)[0];
    return (first.location === 'gpu-buffer') ? first.getData() : first.data;
  };
  const sample = await once();
  const times = [];
  for (let i = 0; i < runs; i += 1) {
    const start = performance.now();
    await once();
    times.push(performance.now() - start);
  }
  await session.release();
  times.sort((a, b) => a - b);
  const checksum = Array.from(sample.slice(0, 16)).reduce((a, b) => a + b, 0);
  return { ms: times[Math.floor(times.length / 2)], runs, checksum };
}

self.benchPeer = median;
document.getElementById('status').textContent = 'ready';
