// Dev-only driver for the browser half of `cargo xtask bench peers`: serves page.html, ONNX Runtime
// Web's files and the tiny UNet's ONNX export with COOP/COEP (cross-origin isolated, so the wasm
// provider may use threads), opens Chromium headless with WebGPU, and prints one JSON object with the
// median milliseconds per UNet forward on the webgpu and wasm providers. With `--app URL` (Keyshift's
// built site, served with the tiny test model), it then loads the tiny model in Keyshift in the same
// browser, on WebGPU and on the CPU, and runs the System page's "Benchmark this device" on each: the
// same UNet step with CFG on the same inputs.
//
//   node peers_web.mjs MODEL.onnx SHAPES.json [--runs N] [--chromium PATH] [--app URL]
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { join, extname, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const [model, shapes] = process.argv.slice(2, 4);
const option = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const runs = Number(option('--runs', '5'));
const app = option('--app', null);
// As long as a step may take on a software adapter, and a model load.
const TIMEOUT_MS = 30 * 60 * 1000;
const executable = option('--chromium', process.env.KEYSHIFT_CHROMIUM ?? '/usr/bin/chromium');
const types = { '.html': 'text/html', '.mjs': 'text/javascript', '.js': 'text/javascript',
  '.wasm': 'application/wasm', '.json': 'application/json', '.onnx': 'application/octet-stream' };

function file(path) {
  if (path === '/' || path === '/page.html') return join(here, 'page.html');
  if (path === '/bench.mjs') return join(here, 'bench.mjs');
  if (path === '/model.onnx') return model;
  if (path === '/shapes.json') return shapes;
  if (path.startsWith('/ort/') && !path.includes('..')) {
    return join(here, 'node_modules', 'onnxruntime-web', 'dist', path.slice(5));
  }
  return null;
}

const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://x').pathname;
  if (url === '/favicon.ico') {
    res.writeHead(204).end();
    return;
  }
  const path = file(url);
  let body;
  try {
    body = path && readFileSync(path);
  } catch {
    body = null;
  }
  if (!body) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, {
    'Content-Type': types[extname(path)] ?? 'application/octet-stream',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Embedder-Policy': 'require-corp',
  }).end(body);
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const base = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({
  executablePath: executable,
  ignoreDefaultArgs: ['--headless'],
  args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking'],
});
try {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') process.stderr.write(`console: ${m.text()}\n`); });
  await page.goto(`${base}/page.html`);
  await page.waitForFunction(() => document.getElementById('status').textContent === 'ready');
  const isolated = await page.evaluate(() => self.crossOriginIsolated);
  const threads = await page.evaluate(() => navigator.hardwareConcurrency);
  const result = { ortweb_version: JSON.parse(readFileSync(join(here, 'node_modules', 'onnxruntime-web', 'package.json'))).version,
    cross_origin_isolated: isolated, wasm_threads: isolated ? threads : 1, runs };
  for (const provider of ['webgpu', 'wasm']) {
    const r = await page.evaluate(([p, n]) => self.benchPeer(p, n), [provider, runs]);
    result[`ortweb_${provider}_unet_ms`] = Number(r.ms.toFixed(2));
    result[`ortweb_${provider}_checksum`] = r.checksum;
  }
  if (app) Object.assign(result, await keyshift(browser, app));
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await browser.close();
  server.close();
}

/** Keyshift's "Benchmark this device" on the tiny model, loaded on WebGPU and then on the CPU. */
async function keyshift(browser, url) {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') process.stderr.write(`keyshift console: ${m.text()}\n`); });
  const id = (testid) => page.getByTestId(testid);
  await page.goto(url);
  const out = {};
  for (const [backend, key, named] of [['webgpu', 'webgpu', 'on WebGPU'], ['cpu', 'wasm', 'on CPU']]) {
    await id('nav-project').click();
    await id('model-picker').selectOption({ label: 'tiny test model (random weights)' });
    await id('model-precision').selectOption('f32');
    await id('model-backend').selectOption(backend);
    await id('model-load').click();
    await page.waitForFunction((on) => {
      const s = document.querySelector('[data-testid="model-status"]')?.textContent ?? '';
      return (s.startsWith('Ready') && s.includes(on)) || s.startsWith('Could not load');
    }, named, { timeout: TIMEOUT_MS });
    const status = await id('model-status').textContent();
    if (!status.startsWith('Ready')) throw new Error(`Keyshift (${backend}): ${status}`);
    // The tiny model's native size: a 32×32 latent, as the ONNX export's.
    for (const side of ['width', 'height']) {
      await id(side).fill('64');
      await id(side).press('Tab');
    }
    await id('nav-system').click();
    await id('bench-runs').fill(String(runs));
    await id('bench-runs').press('Tab');
    await id('bench-run').click();
    // The result names the model and its backend: the previous backend's result does not count.
    await page.waitForFunction((on) => document.querySelector('[data-testid="bench-error"]')
      || (document.querySelector('[data-testid="bench-result"]')?.textContent ?? '').includes(on),
    named, { timeout: TIMEOUT_MS });
    if (await id('bench-error').count()) throw new Error(`Keyshift (${backend}): ${await id('bench-error').textContent()}`);
    const text = await id('bench-result').textContent();
    const ms = Number(text.match(/^([\d.]+) ms per UNet step/)?.[1]);
    if (!(ms > 0)) throw new Error(`Keyshift (${backend}): no time in "${text}"`);
    out[`keyshift_${key}_unet_ms`] = ms;
    out[`keyshift_${key}_checksum`] = Number(await id('bench-checksum').textContent());
    out[`keyshift_${key}_result`] = text;
  }
  await page.close();
  return out;
}
