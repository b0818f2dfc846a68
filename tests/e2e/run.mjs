// Keyshift end-to-end tests: Playwright (playwright-core) drives Debian's Chromium, headless, with
// WebGPU on (SwiftShader on machines without a GPU), against the served release build.
//
//   KEYSHIFT_BASE_URL=http://127.0.0.1:8080 KEYSHIFT_DIST=../../dist node run.mjs
//
// Prints one line per test and ends with "N passed, N failed"; exits 1 on any failure.
import { chromium } from 'playwright-core';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';

const BASE = process.env.KEYSHIFT_BASE_URL ?? 'http://127.0.0.1:8080';
const DIST = process.env.KEYSHIFT_DIST ?? '../../dist';
const CHROMIUM = process.env.KEYSHIFT_CHROMIUM ?? '/usr/bin/chromium';
// SwiftShader compiles WebGPU kernels on the CPU: allow minutes for the first self-test.
const GPU_TIMEOUT_MS = 300_000;

// The golden v1 link of crates/core/tests/share_links.rs, and the project it holds.
const GOLDEN_V1 = 'v1.Pc7BisJADIDhVwk5KQ6lrdvqznX3tgh7XxaJbZwOtp0yEy0i-uzGi9fw_UluONLAaPGLBCRAGxwanGIYJtEpwaIhscUjXwKNLRD8qbB5Vv0bOFzBRXYQz3IKczp5LUd2JP7C-_eKQ3-O8Wpg0Yc5crJFVi4VJhbxo0tobzj7Vjq0m3prsGPvOu2qolQkPKlY5wabo9unhnr9tc6qV88t2qJcf1T1ZvupItEw9Rz15PfvbrWCcgc_FCMlvN-f';

const ARGS = [
  '--headless=new', '--no-sandbox', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic', '--enable-unsafe-webgpu',
];

const facts = {};

async function withBrowser(fn) {
  const profile = mkdtempSync(join(tmpdir(), 'keyshift-e2e-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    ignoreDefaultArgs: ['--headless'],
    args: ARGS,
  });
  const errors = [];
  const watch = (page) => {
    page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  };
  context.on('page', watch);
  context.pages().forEach(watch);
  try {
    const page = context.pages()[0] ?? await context.newPage();
    await fn({ context, page, errors });
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

const byId = (page, id) => page.locator(`[data-testid="${id}"]`);
const text = async (page, id) => (await byId(page, id).textContent())?.trim();

async function waitForSelfTest(page) {
  await page.waitForFunction(() => {
    const s = document.querySelector('[data-testid="selftest-status"]')?.textContent ?? '';
    return s === 'passed' || s === 'wrong results' || s.startsWith('failed');
  }, null, { timeout: GPU_TIMEOUT_MS });
  return text(page, 'selftest-status');
}

async function waitForServiceWorkerControl(page) {
  await page.evaluate(async () => { await navigator.serviceWorker.ready; });
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 30_000 });
}

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

test('the app loads with no console errors and paints', async () => {
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    await byId(page, 'brand').waitFor();
    await byId(page, 'prompt').waitFor();
    const fcp = await page.evaluate(() =>
      performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null);
    facts.firstContentfulPaintMs = fcp && Math.round(fcp);
    assert.equal(await page.title(), 'Keyshift');
    // Navigation between the real workspaces.
    await byId(page, 'nav-system').click();
    await byId(page, 'gpu-status').waitFor();
    assert.equal(new URL(page.url()).pathname, '/system');
    await byId(page, 'nav-project').click();
    await byId(page, 'prompt').waitFor();
    await page.waitForTimeout(500);
    assert.deepEqual(errors, []);
  });
});

test('the System page shows the WebGPU adapter and the worker computes correctly on it', async () => {
  await withBrowser(async ({ page, errors }) => {
    await page.goto(`${BASE}/system`);
    await page.waitForFunction(() =>
      document.querySelector('[data-testid="gpu-status"]')?.textContent !== 'checking…');
    assert.equal(await text(page, 'gpu-status'), 'available');
    facts.adapter = {
      vendor: await text(page, 'gpu-vendor'),
      architecture: await text(page, 'gpu-architecture'),
      fallback: await text(page, 'gpu-fallback'),
      shaderF16: await text(page, 'gpu-f16'),
      maxStorageBufferBindingSize: await text(page, 'gpu-limit-maxStorageBufferBindingSize'),
      maxComputeWorkgroupStorageSize: await text(page, 'gpu-limit-maxComputeWorkgroupStorageSize'),
    };
    assert.notEqual(facts.adapter.vendor, '—');
    const status = await waitForSelfTest(page);
    assert.equal(status, 'passed');
    for (const check of ['selftest-matmul', 'selftest-conv2d']) {
      assert.equal(await text(page, `${check}-result`), 'pass');
    }
    // The exact f64 reference sums of the fixed inputs (keyshift_core::selftest), and the sums
    // computed on WebGPU in f32, which must agree closely.
    const sums = {};
    for (const [check, expected] of [['selftest-matmul', '1.4735'], ['selftest-conv2d', '-212.6845']]) {
      assert.equal(await text(page, `${check}-expected`), expected);
      const got = Number(await text(page, `${check}-sum`));
      assert.ok(Math.abs(got - Number(expected)) < 1e-2, `${check}: ${got} vs ${expected}`);
      sums[check] = got;
    }
    facts.selfTestSums = sums;
    facts.selfTest = {
      deviceInitMs: await text(page, 'device-init-ms'),
      matmulMs: await text(page, 'selftest-matmul-ms'),
      conv2dMs: await text(page, 'selftest-conv2d-ms'),
      matmulMaxError: await text(page, 'selftest-matmul-error'),
    };
    // Run it again from the UI: the worker stays alive and answers.
    await byId(page, 'selftest-rerun').click();
    assert.equal(await waitForSelfTest(page), 'passed');
    assert.deepEqual(errors, []);
  });
});

test('edits go into the share link, and the link restores them in a new browser', async () => {
  let link;
  await withBrowser(async ({ page }) => {
    await page.goto(BASE);
    await byId(page, 'prompt').fill('a (red fox:1.3) in [snow|rain], by a master');
    await byId(page, 'negative-prompt').fill('blurry');
    await byId(page, 'steps').fill('33');
    await byId(page, 'steps').dispatchEvent('change');
    await byId(page, 'sampler').selectOption('DDIM');
    await byId(page, 'seed').fill('4242');
    await byId(page, 'seed').dispatchEvent('change');
    link = await byId(page, 'share-link').inputValue();
    assert.match(link, /^http:\/\/127\.0\.0\.1:\d+\/#v1\./);
    assert.equal(page.url(), link, 'the address bar follows the edits');
  });
  await withBrowser(async ({ page, errors }) => {
    await page.goto(link);
    await byId(page, 'prompt').waitFor();
    assert.equal(await byId(page, 'prompt').inputValue(), 'a (red fox:1.3) in [snow|rain], by a master');
    assert.equal(await byId(page, 'negative-prompt').inputValue(), 'blurry');
    assert.equal(await byId(page, 'steps').inputValue(), '33');
    assert.equal(await byId(page, 'sampler').inputValue(), 'DDIM');
    assert.equal(await byId(page, 'seed').inputValue(), '4242');
    assert.equal(await byId(page, 'link-error').count(), 0);
    assert.deepEqual(errors, []);
  });
});

test('the golden v1 link opens to its project', async () => {
  await withBrowser(async ({ page }) => {
    await page.goto(`${BASE}/#${GOLDEN_V1}`);
    await byId(page, 'prompt').waitFor();
    assert.equal(await byId(page, 'project-name').inputValue(), 'Cat to dog');
    assert.equal(await byId(page, 'prompt').inputValue(), 'a (cat:1~0) and a [dog:0.5], by greg rutkowski');
    assert.equal(await byId(page, 'width').inputValue(), '768');
    assert.equal(await byId(page, 'cfg').inputValue(), '6.5');
    assert.equal(await byId(page, 'sampler').inputValue(), 'DPM++ 2M Karras');
    assert.equal(await byId(page, 'seed').inputValue(), '1234567890');
  });
});

test('a corrupted link shows a dismissable error and keeps the default project', async () => {
  await withBrowser(async ({ page }) => {
    const broken = `${BASE}/#${GOLDEN_V1.slice(0, 40)}`;
    await page.goto(broken);
    await byId(page, 'link-error').waitFor();
    assert.match(await text(page, 'link-error'), /could not be opened/);
    assert.match(await text(page, 'link-error'), /cut short/);
    assert.equal(await byId(page, 'prompt').inputValue(), '');
    assert.equal(await byId(page, 'steps').inputValue(), '20');
    // The bad link stays in the address bar until the user edits something.
    assert.equal(page.url(), broken);
    await byId(page, 'notice-dismiss').click();
    assert.equal(await byId(page, 'link-error').count(), 0);
    // A bad edit is refused with a message and changes nothing.
    await byId(page, 'width').fill('513');
    await byId(page, 'width').dispatchEvent('change');
    assert.match(await text(page, 'edit-error'), /multiple of 8/);
    assert.equal(page.url(), broken);
  });
});

test('the manifest makes the app installable', async () => {
  await withBrowser(async ({ page }) => {
    await page.goto(BASE);
    const href = await page.locator('link[rel="manifest"]').getAttribute('href');
    const manifest = await page.evaluate(async (h) => (await fetch(h)).json(), href);
    for (const key of ['id', 'name', 'short_name', 'start_url', 'background_color', 'theme_color']) {
      assert.ok(manifest[key], `manifest.${key}`);
    }
    assert.equal(manifest.display, 'standalone');
    const sizes = await page.evaluate(async (icons) => Promise.all(icons.map(async (icon) => {
      const blob = await (await fetch(icon.src)).blob();
      const bitmap = await createImageBitmap(blob);
      return { sizes: icon.sizes, purpose: icon.purpose, real: `${bitmap.width}x${bitmap.height}` };
    })), manifest.icons);
    for (const s of sizes) assert.equal(s.real, s.sizes);
    assert.ok(sizes.some((s) => s.real === '192x192'));
    assert.ok(sizes.some((s) => s.real === '512x512' && s.purpose === 'any'));
    assert.ok(sizes.some((s) => s.real === '512x512' && s.purpose === 'maskable'));
  });
});

test('with the network off, a reload still starts the app and its GPU worker', async () => {
  await withBrowser(async ({ context, page, errors }) => {
    await page.goto(`${BASE}/system`);
    await waitForServiceWorkerControl(page);
    await context.setOffline(true);
    const probe = await page.evaluate(() => fetch('/build-info.json').then(() => 'online', () => 'offline'));
    assert.equal(probe, 'offline', 'the network is really off');
    errors.length = 0; // the probe's own failed request is expected
    await page.reload();
    await byId(page, 'brand').waitFor();
    assert.equal(await waitForSelfTest(page), 'passed');
    await byId(page, 'nav-project').click();
    await byId(page, 'prompt').waitFor();
    assert.deepEqual(errors, []);
  });
});

test('a new build announces itself and a reload switches to it', async () => {
  const swPath = join(DIST, 'sw.js');
  const original = readFileSync(swPath, 'utf8');
  try {
    await withBrowser(async ({ page }) => {
      await page.goto(BASE);
      await waitForServiceWorkerControl(page);
      assert.equal(await byId(page, 'update-banner').count(), 0);
      // Publish a "new build": a changed service worker script.
      writeFileSync(swPath, original.replace(/const BUILD = '([^']*)'/, "const BUILD = '$1-next'"));
      await page.evaluate(async () => (await navigator.serviceWorker.getRegistration()).update());
      await byId(page, 'update-banner').waitFor({ timeout: 30_000 });
      const reloaded = page.waitForEvent('load');
      await byId(page, 'update-reload').click();
      await reloaded;
      await byId(page, 'brand').waitFor();
      const cacheNames = await page.evaluate(() => caches.keys());
      assert.ok(cacheNames.some((n) => n.endsWith('-next')), cacheNames.join(','));
      assert.ok(!cacheNames.some((n) => !n.endsWith('-next')), 'old caches are deleted');
      assert.equal(await byId(page, 'update-banner').count(), 0);
    });
  } finally {
    writeFileSync(swPath, original);
  }
});

let passed = 0;
let failed = 0;
for (const { name, fn } of tests) {
  const start = Date.now();
  try {
    await fn();
    passed += 1;
    console.log(`ok - ${name} (${Date.now() - start} ms)`);
  } catch (error) {
    failed += 1;
    console.log(`FAILED - ${name} (${Date.now() - start} ms)\n  ${String(error?.stack ?? error).split('\n').join('\n  ')}`);
  }
}
console.log(`e2e facts: ${JSON.stringify(facts)}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
