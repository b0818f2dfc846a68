// Dev-only driver for the browser half of `cargo xtask bench peers`: serves page.html, ONNX Runtime
// Web's files and the tiny UNet's ONNX export with COOP/COEP (cross-origin isolated, so the wasm
// provider may use threads), opens Chromium headless with WebGPU, and prints one JSON object with the
// median milliseconds per UNet forward on the webgpu and wasm providers.
//
//   node peers_web.mjs MODEL.onnx SHAPES.json [--runs N] [--chromium PATH]
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
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await browser.close();
  server.close();
}
