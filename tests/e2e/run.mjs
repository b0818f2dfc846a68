// Keyshift end-to-end tests: Playwright (playwright-core) drives Debian's Chromium, headless, with
// WebGPU on (SwiftShader on machines without a GPU), against the served release build.
//
//   KEYSHIFT_BASE_URL=http://127.0.0.1:8080 KEYSHIFT_DIST=../../dist node run.mjs
//
// Prints one line per test and ends with "N passed, N failed"; exits 1 on any failure.
import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
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
  // More switches for an experiment, space-separated (e.g. `--js-flags=--no-wasm-dynamic-tiering`).
  ...(process.env.KEYSHIFT_CHROMIUM_ARGS ?? '').split(' ').filter(Boolean),
  // The soak collects garbage before each sample (the worker's `keyshiftSoak`), to count GPU
  // buffers that are still reachable rather than those the collector has not reached yet.
  ...(process.env.KEYSHIFT_SOAK ? ['--js-flags=--expose-gc'] : []),
];

const facts = {};
// Every Content-Security-Policy violation in any page of any test (a `securitypolicyviolation`
// listener in every document); the suite fails unless there are none. The Trusted Types probe
// of the first test is counted apart.
const cspViolations = [];
const TT_PROBE = 'keyshift-trusted-types-probe';

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
  await context.exposeBinding('__keyshiftCspViolation', (_source, violation) => {
    cspViolations.push(violation);
  });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__keyshiftCspViolation?.({
        directive: e.effectiveDirective, blocked: e.blockedURI, sample: e.sample,
        source: e.sourceFile, line: e.lineNumber, page: window.location.href,
      });
    });
  });
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
/** An attribute of the element as it is now, or null: unlike a locator's `getAttribute`, it does
 * not wait (up to 30 s) for an element that is not there yet. */
const attributeNow = (page, id, name) => page.evaluate(([i, n]) =>
  document.querySelector(`[data-testid="${i}"]`)?.getAttribute(n) ?? null, [id, name]);

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
    // Trusted Types are enforced: markup that could run script cannot reach innerHTML, a string
    // cannot be a script URL, and the app's own policy refuses another origin's script.
    const probe = await page.evaluate((marker) => {
      const outcome = (f) => { try { f(); return 'allowed'; } catch (e) { return e.name; } };
      return {
        innerHTML: outcome(() => { document.createElement('div').innerHTML = `${marker}<img src=x onerror=alert(1)>`; }),
        svgOnload: outcome(() => { document.createElement('div').innerHTML = `${marker}<svg/onload=alert(1)>`; }),
        entityUrl: outcome(() => { document.createElement('div').innerHTML = `${marker}<a href="&#106;avascript:alert(1)">x</a>`; }),
        staticMarkup: outcome(() => { document.createElement('div').innerHTML = '<p class="only">on = 1 &amp; 2</p>'; }),
        worker: outcome(() => new Worker(`/${marker}.js`)),
        foreignScript: outcome(() => window.keyshiftTrustedScriptURL('https://example.com/x.js')),
      };
    }, TT_PROBE);
    assert.deepEqual(probe, {
      innerHTML: 'TypeError', svgOnload: 'TypeError', entityUrl: 'TypeError', staticMarkup: 'allowed',
      worker: 'TypeError', foreignScript: 'TypeError',
    });
    // No string is evaluated as script (in a task of the page's own: code DevTools evaluates is
    // exempt from the policy).
    const evalProbe = await page.evaluate((marker) => new Promise((resolve) => setTimeout(() => {
      try { eval(`'${marker}'`); resolve('allowed'); } catch (e) { resolve(e.name); }
    }, 0)), TT_PROBE);
    assert.equal(evalProbe, 'EvalError');
    // The listener that counts violations for the whole suite sees these (they arrive
    // asynchronously through the page binding).
    const probed = () => cspViolations.filter((v) => String(v.sample ?? '').includes(TT_PROBE)).length;
    for (let i = 0; i < 100 && probed() < 4; i += 1) await page.waitForTimeout(100);
    assert.ok(probed() >= 4, JSON.stringify(cspViolations));
  });
});

test('the System page shows the WebGPU adapter and the worker computes correctly on it', async () => {
  await withBrowser(async ({ page, errors }) => {
    await page.goto(`${BASE}/system`);
    // The status exists once the page has mounted; wait until its probe has answered.
    await page.waitForFunction(() => {
      const status = document.querySelector('[data-testid="gpu-status"]')?.textContent;
      return status && status !== 'checking…';
    });
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
    // The compute worker runs under the same policy, which it takes from its script's header (a
    // static host sends it from `_headers`): no string is evaluated there either.
    const worker = page.workers().find((w) => /worker/.test(w.url()));
    assert.ok(worker, `no compute worker among ${page.workers().map((w) => w.url())}`);
    // (Code that DevTools evaluates is exempt from the policy: the probe runs in a task of the
    // worker's own, a timer.)
    const inWorker = await worker.evaluate(() => new Promise((resolve) => setTimeout(() => {
      const outcome = (f) => { try { f(); return 'allowed'; } catch (e) { return e.name; } };
      resolve({ eval: outcome(() => eval('1 + 1')), newFunction: outcome(() => new Function('return 1')) });
    }, 0)));
    assert.deepEqual(inWorker, { eval: 'EvalError', newFunction: 'EvalError' });
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
    // A refused value is named, and the box shows again what the project holds.
    await byId(page, 'steps').fill('999');
    await byId(page, 'steps').dispatchEvent('change');
    assert.match(await text(page, 'edit-error'), /Steps/);
    assert.equal(await byId(page, 'steps').inputValue(), '33');
    link = await byId(page, 'share-link').inputValue();
    assert.match(link, /^http:\/\/127\.0\.0\.1:\d+\/#v4\./);
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

test('hostile links and documents: a deflate-bomb link, a link of megabytes, a Parseq document of a million keyframes and formulas that would never end are refused by name; the autosaved project and the open document stay', async () => {
  // 64 MiB of spaces deflate to about 64 KB: the link inflates past the 1 MiB limit.
  const bomb = `${BASE}/#v4.${deflateRawSync(Buffer.alloc(64 << 20, 0x20), { level: 9 }).toString('base64url')}`;
  const long = `${BASE}/#v4.${'A'.repeat(1_900_000)}`;
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    await byId(page, 'prompt').fill('my work');
    await page.waitForTimeout(1500);
    facts.hostileLinks = {};
    for (const [name, url] of [['bomb', bomb], ['long', long]]) {
      await page.goto('about:blank');
      await page.goto(url);
      await byId(page, 'link-error').waitFor();
      facts.hostileLinks[name] = await text(page, 'link-error');
      assert.match(facts.hostileLinks[name], /^This share link could not be opened; the project you were working on is still open\./);
      assert.equal(await byId(page, 'prompt').inputValue(), 'my work', `the ${name} link replaced the project`);
      await byId(page, 'notice-dismiss').click();
      await page.goto(BASE);
      assert.equal(await byId(page, 'prompt').inputValue(), 'my work', `the ${name} link lost the autosaved project`);
    }
    assert.match(facts.hostileLinks.bomb, /decompresses to more than 1048576 bytes/);
    // (Chromium takes no URL over 2 MiB, the app's own limit: the megabytes are read and refused.)
    assert.match(facts.hostileLinks.long, /its data does not decompress/);
    // Parseq: the open document stays when a hostile one is refused.
    await byId(page, 'mode-picker').selectOption('parseq');
    await page.waitForFunction(() => (document.querySelector('[data-testid="parseq-final-frame"]')?.value ?? '') !== '',
      null, { timeout: 60_000 });
    const finalFrame = await byId(page, 'parseq-final-frame').inputValue();
    const doc = JSON.parse(CATDUCK);
    const million = { ...doc, keyframes: Array.from({ length: 1_000_000 }, (_, frame) => ({ frame, strength: 0.5 })) };
    const deep = { ...doc, keyframes: [{ frame: 0, strength: 0.5, strength_i: `${'sin('.repeat(5000)}f${')'.repeat(5000)}` }, { frame: 10, strength: 1 }] };
    const wide = { ...doc, keyframes: [{ frame: 0, strength: 0.5, strength_i: Array(40_000).fill('f').join('+') }, { frame: 10, strength: 1 }] };
    const dir = mkdtempSync(join(tmpdir(), 'keyshift-hostile-parseq-'));
    try {
      facts.hostileParseq = {};
      for (const [name, d] of [['million', million], ['deep', deep], ['wide', wide]]) {
        const file = join(dir, `${name}.json`);
        writeFileSync(file, JSON.stringify(d));
        const started = Date.now();
        await byId(page, 'parseq-import').setInputFiles(file);
        // This file's message (the previous one stays until the new one replaces it).
        await page.waitForFunction((prefix) => (document.querySelector('[data-testid="parseq-error"]')?.textContent ?? '')
          .startsWith(prefix), `${name}.json:`, { timeout: 60_000 });
        const message = await text(page, 'parseq-error');
        facts.hostileParseq[name] = { message, ms: Date.now() - started };
        assert.ok(message.length < 400, `${name}: a message of ${message.length} characters`);
        assert.equal(await byId(page, 'parseq-final-frame').inputValue(), finalFrame, `${name}: the open document changed`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(facts.hostileParseq.million.message, 'million.json: too many frames: 1000000 (at most 100000)');
    assert.match(facts.hostileParseq.deep.message, /^deep\.json: Error parsing interpolation for strength at frame 0 \(sin\(sin\(.*… \(25001 characters\)\): Error: .*200/);
    assert.match(facts.hostileParseq.wide.message, /^wide\.json: Error parsing interpolation for strength at frame 0 \(f\+f\+.*… \(79999 characters\)\): Error: .*65536/);
    assert.deepEqual(errors, []);
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


// ---- Generation in the browser (the tiny test model served by the local server) ----

const TINY_LABEL = 'tiny test model (random weights)';
const CLI = process.env.KEYSHIFT_CLI;
const FIXTURE = process.env.KEYSHIFT_TINY_MODEL ?? '../../fixtures/tiny-sd1/diffusers';
const SETTINGS = { prompt: 'a photo of a cat', negative: '', width: '64', height: '64', steps: '4', cfg: '7', seed: '42', sampler: 'Euler' };

async function setProject(page, settings) {
  await byId(page, 'prompt').fill(settings.prompt);
  await byId(page, 'negative-prompt').fill(settings.negative);
  for (const id of ['width', 'height', 'steps', 'cfg', 'seed']) {
    await byId(page, id).fill(settings[id]);
    await byId(page, id).press('Tab');
  }
  await byId(page, 'sampler').selectOption(settings.sampler);
}

async function loadModel(page, { backend = 'webgpu', custom = '', precision = 'f32' } = {}) {
  await byId(page, 'model-picker').selectOption({ label: TINY_LABEL });
  await byId(page, 'model-precision').selectOption(precision);
  await byId(page, 'model-backend').selectOption(backend);
  await byId(page, 'model-custom').fill(custom);
  await byId(page, 'model-load').click();
  await page.waitForFunction(() => {
    const s = document.querySelector('[data-testid="model-status"]')?.textContent ?? '';
    return s.startsWith('Ready') || s.startsWith('Could not load');
  }, null, { timeout: GPU_TIMEOUT_MS });
  return text(page, 'model-status');
}

async function generateImage(page) {
  const before = await attributeNow(page, 'result-image', 'src');
  await byId(page, 'generate').click();
  await page.waitForFunction((old) => {
    const img = document.querySelector('[data-testid="result-image"]');
    const failed = document.querySelector('[data-testid="generate-error"]');
    return failed || (img && img.getAttribute('src') !== old);
  }, before, { timeout: GPU_TIMEOUT_MS });
  const error = await byId(page, 'generate-error').count() ? await text(page, 'generate-error') : null;
  assert.equal(error, null);
  return byId(page, 'result-image').getAttribute('src');
}

/** RGBA pixels of an image (a data URL), decoded by the browser. */
async function pixels(page, src) {
  return page.evaluate(async (url) => {
    const img = new Image();
    img.src = url;
    await img.decode();
    const canvas = new OffscreenCanvas(img.width, img.height);
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0);
    return { width: img.width, height: img.height, data: Array.from(ctx.getImageData(0, 0, img.width, img.height).data) };
  }, src);
}

/** The native CLI's image for the same settings, as a data URL. */
function cliImage() {
  assert.ok(CLI, 'KEYSHIFT_CLI (the native keyshift binary) is not set');
  const dir = mkdtempSync(join(tmpdir(), 'keyshift-cli-'));
  try {
    const out = join(dir, 'cli.png');
    const run = spawnSync(CLI, ['generate', '--model', FIXTURE, '--prompt', SETTINGS.prompt,
      '--negative', SETTINGS.negative, '--size', `${SETTINGS.width}x${SETTINGS.height}`,
      '--steps', SETTINGS.steps, '--cfg', SETTINGS.cfg, '--seed', SETTINGS.seed,
      '--sampler', SETTINGS.sampler, '--out', out], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    return `data:image/png;base64,${readFileSync(out).toString('base64')}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** How many `cell`×`cell` squares of an RGBA image hold more than one colour. */
function cellsWithDetail({ width, height, data }, cell) {
  let varied = 0;
  for (let cy = 0; cy < height; cy += cell) {
    for (let cx = 0; cx < width; cx += cell) {
      const first = ((cy * width) + cx) * 4;
      let differs = false;
      for (let y = cy; y < cy + cell && !differs; y += 1) {
        for (let x = cx; x < cx + cell; x += 1) {
          const at = ((y * width) + x) * 4;
          if ([0, 1, 2].some((c) => data[at + c] !== data[first + c])) { differs = true; break; }
        }
      }
      if (differs) varied += 1;
    }
  }
  return varied;
}

/** PSNR in dB of two RGBA images' RGB values (Infinity when equal). */
function psnr(a, b) {
  let sum = 0;
  let n = 0;
  for (let i = 0; i < a.data.length; i += 1) {
    if (i % 4 === 3) continue;
    sum += (a.data[i] - b.data[i]) ** 2;
    n += 1;
  }
  return sum === 0 ? Infinity : 10 * Math.log10((255 * 255) / (sum / n));
}

function compare(a, b) {
  assert.equal(a.width, b.width);
  assert.equal(a.height, b.height);
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.data.length; i += 1) {
    const d = Math.abs(a.data[i] - b.data[i]);
    max = Math.max(max, d);
    sum += d;
  }
  return { max, mean: sum / a.data.length };
}

let cliPixels = null;
async function expectCliImage(page, src) {
  if (!cliPixels) cliPixels = await pixels(page, cliImage());
  const diff = compare(await pixels(page, src), cliPixels);
  // f32 on different hardware: truncation to 8 bits may flip a value by one.
  assert.ok(diff.max <= 2 && diff.mean < 0.05, `pixels differ from the CLI's: ${JSON.stringify(diff)}`);
  return diff;
}

test('the tiny model loads from the local server and draws, on WebGPU, the native CLI image', async () => {
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    const status = await loadModel(page);
    assert.match(status, /^Ready: tiny test model .*; TAESD previews \(/);
    facts.tinyLoad = status;
    // Weights stream to the device one tensor at a time: the worker's memory grows by about the
    // largest tensor, never the model.
    facts.tinyLoadMemory = await byId(page, 'model-status').getAttribute('title');
    const [, growth, growthUnit, largest, largestUnit] =
      facts.tinyLoadMemory.match(/^Loading needed at most ([\d.]+) (B|KB|MB|GB) of worker memory at once \(largest tensor ([\d.]+) (B|KB|MB|GB); wasm memory [\d.]+ (?:B|KB|MB|GB)\)\.$/);
    const bytes = (v, unit) => Number(v) * { B: 1, KB: 1e3, MB: 1e6, GB: 1e9 }[unit];
    assert.ok(bytes(growth, growthUnit) <= bytes(largest, largestUnit) + 64 * 2 ** 20, facts.tinyLoadMemory);
    await setProject(page, SETTINGS);
    const src = await generateImage(page);
    facts.tinyWebgpuVsCli = await expectCliImage(page, src);
    facts.tinyWebgpuResult = await text(page, 'result-info');
    assert.match(facts.tinyWebgpuResult, /^Seed 42 /);
    // The PNG carries A1111's parameters.
    const [download] = await Promise.all([page.waitForEvent('download'), byId(page, 'download-png').click()]);
    const png = readFileSync(await download.path());
    assert.ok(png.includes(Buffer.from('Steps: 4, Sampler: Euler, CFG scale: 7, Seed: 42, Size: 64x64')));
    assert.equal(await byId(page, 'download-png').getAttribute('download'), 'keyshift-42.png');
    assert.deepEqual(errors, []);
  });
});

test('cancel stops a run between steps and the page stays usable', async () => {
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    // On the CPU backend (about 30× faster than SwiftShader's WebGPU here): cancelling between steps is the subject.
    assert.match(await loadModel(page, { backend: 'cpu' }), /^Ready: .*on CPU/);
    await setProject(page, { ...SETTINGS, steps: '150' });
    await byId(page, 'generate').click();
    await page.waitForFunction(() =>
      /step [2-9]\d*\/150/.test(document.querySelector('[data-testid="progress-text"]')?.textContent ?? ''),
    null, { timeout: GPU_TIMEOUT_MS });
    assert.match(await page.title(), /^\[\d+%\] Keyshift$/);
    // Step previews are TAESD decodes at image size: detail inside each latent pixel's cell (2×2
    // pixels for the tiny model), which the approximate preview (one colour per cell) cannot have.
    const preview = await pixels(page, await byId(page, 'preview-image').getAttribute('src'));
    assert.equal(preview.width, 64);
    assert.equal(preview.height, 64);
    facts.previewCellsWithDetail = cellsWithDetail(preview, 2);
    assert.ok(facts.previewCellsWithDetail > 512, `preview looks blocky: ${facts.previewCellsWithDetail}/1024 cells vary`);
    await byId(page, 'cancel').click();
    await page.waitForFunction(() => !document.querySelector('[data-testid="generate"]').disabled,
      null, { timeout: 60_000 });
    assert.equal(await byId(page, 'result-image').count(), 0);
    assert.equal(await page.title(), 'Keyshift');
    await setProject(page, { ...SETTINGS, steps: '2' });
    await generateImage(page);
    assert.deepEqual(errors, []);
  });
});

test('a truncated weights file gives a clear error and the app keeps working', async () => {
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    await byId(page, 'prompt').fill('kept prompt');
    const status = await loadModel(page, { custom: `${BASE}/fixtures/tiny-sd1-truncated/diffusers` });
    assert.match(status, /^Could not load .*is truncated: it needs \d+ bytes but has \d+/);
    assert.equal(await byId(page, 'prompt').inputValue(), 'kept prompt');
    assert.ok(await byId(page, 'generate').isDisabled());
    assert.match(await loadModel(page), /^Ready/);
    assert.deepEqual(errors, []);
  });
});

test('a downloaded weights file that does not match its pinned SHA-256 is discarded with a clear error, and the next load fetches it anew', async () => {
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    await byId(page, 'prompt').fill('kept prompt');
    await fetch(`${BASE}/__tamper/on`);
    let status;
    try {
      status = await loadModel(page, { backend: 'cpu' });
    } finally {
      await fetch(`${BASE}/__tamper/off`);
    }
    facts.tamperedDownload = status;
    assert.match(status, /^Could not load .*unet\/diffusion_pytorch_model\.safetensors does not match its published SHA-256 \(expected 3d87e583602cb0c4bab106938b1c3885ce30313bcf8e129786b8b2df0aad4ee9, got (?!3d87e583)[0-9a-f]{64}\)/);
    assert.equal(await byId(page, 'prompt').inputValue(), 'kept prompt');
    assert.ok(await byId(page, 'generate').isDisabled());
    assert.match(await loadModel(page, { backend: 'cpu' }), /^Ready/);
    assert.deepEqual(errors, []);
  });
});

test('the prompt boxes count tokens per 75-token chunk as A1111 does, live', async () => {
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    const counter = (id, want) => page.waitForFunction(([testid, text]) =>
      document.querySelector(`[data-testid="${testid}"]`)?.textContent?.trim() === text,
    [id, want], { timeout: 60_000 });
    await byId(page, 'prompt').fill('a photo of a (cat:1.2)');
    await counter('prompt-tokens', '5/75');
    await byId(page, 'prompt').fill(Array(80).fill('cat').join(' '));
    await counter('prompt-tokens', '80/150 (75 + 5)');
    await byId(page, 'negative-prompt').fill('blurry BREAK ugly');
    await counter('negative-tokens', '76/150 (1 + 1)');
    assert.deepEqual(errors, []);
  });
});

test('a local A1111 checkpoint, picked or dropped, loads without the network and draws the same image', async () => {
  const tiny = join(FIXTURE, '..');
  const waitStatus = (page) => page.waitForFunction(() => {
    const s = document.querySelector('[data-testid="model-status"]')?.textContent ?? '';
    return s.startsWith('Ready') || s.startsWith('Could not load');
  }, null, { timeout: GPU_TIMEOUT_MS });
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    await byId(page, 'model-precision').selectOption('f32');
    await byId(page, 'model-backend').selectOption('cpu');
    await byId(page, 'model-file').setInputFiles([
      join(tiny, 'tiny_sd1_inference.yaml'),
      join(tiny, 'tiny_sd1_fp16.safetensors'),
      join(FIXTURE, 'text_encoder', 'config.json'),
    ]);
    await waitStatus(page);
    const status = await text(page, 'model-status');
    assert.match(status, /^Ready: tiny_sd1_fp16\.safetensors — SD 1\.x/);
    facts.localFileLoad = status;
    await setProject(page, SETTINGS);
    facts.localFileVsCli = await expectCliImage(page, await generateImage(page));
    // A pickled checkpoint dropped on the page is refused by name; the model stays loaded.
    await page.evaluate(() => {
      const transfer = new DataTransfer();
      transfer.items.add(new File([new Uint8Array(8)], 'old.ckpt'));
      window.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
    });
    await byId(page, 'generate-error').waitFor();
    assert.match(await text(page, 'generate-error'), /^old\.ckpt: only \.safetensors checkpoints/);
    assert.match(await text(page, 'model-status'), /^Ready: tiny_sd1_fp16/);
    // Dropping the files loads them the same way.
    await page.evaluate(async () => {
      const transfer = new DataTransfer();
      for (const [path, name] of [
        ['/fixtures/tiny-sd1/tiny_sd1_fp16.safetensors', 'dropped.safetensors'],
        ['/fixtures/tiny-sd1/tiny_sd1_inference.yaml', 'dropped.yaml'],
        ['/fixtures/tiny-sd1/diffusers/text_encoder/config.json', 'config.json'],
      ]) {
        transfer.items.add(new File([await (await fetch(path)).blob()], name));
      }
      window.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
    });
    await page.waitForFunction(() =>
      (document.querySelector('[data-testid="model-status"]')?.textContent ?? '').startsWith('Ready: dropped'),
    null, { timeout: GPU_TIMEOUT_MS });
    assert.deepEqual(errors, []);
  });
});

test('a compute worker that stops is replaced, and the page stays usable', async () => {
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    await byId(page, 'prompt').fill('kept prompt');
    assert.match(await loadModel(page, { backend: 'cpu' }), /^Ready/);
    const workers = page.workers();
    assert.equal(workers.length, 1);
    // An uncaught error inside the worker, as a lost device or exhausted memory would raise.
    await workers[0].evaluate(() => { setTimeout(() => { throw new Error('simulated device loss'); }, 0); });
    await page.waitForFunction(() =>
      (document.querySelector('[data-testid="model-status"]')?.textContent ?? '').includes('the compute worker stopped'),
    null, { timeout: 60_000 });
    facts.crashStatus = await text(page, 'model-status');
    assert.match(facts.crashStatus, /simulated device loss.*a fresh one was started: load the model again$/);
    assert.equal(await byId(page, 'prompt').inputValue(), 'kept prompt');
    // The fresh worker loads and draws.
    assert.match(await loadModel(page, { backend: 'cpu' }), /^Ready/);
    await setProject(page, { ...SETTINGS, steps: '2' });
    await generateImage(page);
    assert.equal(page.workers().length, 1, 'the stopped worker is gone');
    assert.deepEqual(errors.filter((e) => !e.includes('simulated device loss')), []);
  });
});

test('dropping an A1111-style PNG restores its prompt and settings', async () => {
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    const png = cliImage().split(',')[1];
    await page.evaluate((b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const transfer = new DataTransfer();
      transfer.items.add(new File([bytes], 'from-a1111.png', { type: 'image/png' }));
      window.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }, png);
    await byId(page, 'link-warnings').waitFor();
    assert.match(await text(page, 'link-warnings'), /Settings restored from from-a1111\.png/);
    assert.equal(await byId(page, 'prompt').inputValue(), SETTINGS.prompt);
    for (const id of ['width', 'height', 'steps', 'seed']) {
      assert.equal(await byId(page, id).inputValue(), SETTINGS[id], id);
    }
    assert.equal(await byId(page, 'sampler').inputValue(), 'Euler');
    assert.match(await byId(page, 'share-link').inputValue(), /#v4\./);
    assert.deepEqual(errors, []);
  });
});

test('a reload loads the model from the offline cache without fetching it again', async () => {
  const fixtureRequests = async () => {
    const counts = await (await fetch(`${BASE}/__requests`)).json();
    return Object.fromEntries(Object.entries(counts).filter(([path]) =>
      path.startsWith('/fixtures/tiny-sd1/') || path.startsWith('/fixtures/taesd-tiny-x2/')));
  };
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    // On the CPU backend (about 30× faster than SwiftShader's WebGPU here): the cache is the subject.
    assert.match(await loadModel(page, { backend: 'cpu' }), /^Ready: tiny test model .*; TAESD previews \(loaded in [\d.]+ s\)$/);
    const before = await fixtureRequests();
    assert.ok(Object.keys(before).length >= 9, JSON.stringify(before));
    await byId(page, 'cached-model').first().waitFor();
    assert.match(await byId(page, 'cached-model').first().textContent(), /tiny test model/);
    const start = Date.now();
    await page.reload();
    const status = await loadModel(page, { backend: 'cpu' });
    facts.pageLoadToReadyFromCacheMs = Date.now() - start;
    assert.match(status, /from the offline cache\)$/);
    facts.tinyLoadFromCache = status;
    assert.deepEqual(await fixtureRequests(), before, 'the cached model was fetched again');
    // Cold start: from the reload to the first image with the cached model, against a second
    // image (another seed) once everything is warm. Reported, not asserted (a timing).
    await setProject(page, { ...SETTINGS, steps: '2' });
    let clock = Date.now();
    await generateImage(page);
    const firstImageMs = Date.now() - clock;
    await setProject(page, { ...SETTINGS, steps: '2', seed: '43' });
    clock = Date.now();
    await generateImage(page);
    const warmImageMs = Date.now() - clock;
    const reloadToFirstImageMs = facts.pageLoadToReadyFromCacheMs + firstImageMs;
    facts.coldStart = { reloadToFirstImageMs, firstImageMs, warmImageMs,
      ratio: Number((reloadToFirstImageMs / warmImageMs).toFixed(2)) };
    await page.waitForFunction(() =>
      /used of .* available/.test(document.querySelector('[data-testid="storage-estimate"]')?.textContent ?? ''));
    await byId(page, 'cached-model').first().waitFor();
    // The model and its previewer are cached apart; deleting both empties the list.
    const cached = (await byId(page, 'cached-model').allTextContents()).join(' | ');
    assert.match(cached, /tiny test model/);
    assert.match(cached, /tiny TAESD/);
    for (const left of [1, 0]) {
      await byId(page, 'cache-delete').first().click();
      await page.waitForFunction((n) =>
        document.querySelectorAll('[data-testid="cached-model"]').length === n, left);
    }
    assert.deepEqual(errors, []);
  });
});

// The slow copy of the tiny model (weights trickle out), for interrupted downloads.
const SLOW = '/fixtures/tiny-sd1-slow/diffusers';
const modelStatus = (page) => text(page, 'model-status');
/** Starts loading the slow copy, f32 on the CPU backend. */
async function startSlowLoad(page) {
  await byId(page, 'model-precision').selectOption('f32');
  await byId(page, 'model-backend').selectOption('cpu');
  await byId(page, 'model-custom').fill(`${BASE}${SLOW}`);
  await byId(page, 'model-load').click();
}
/** The test server's request counts by path. */
const serverRequests = async () => (await fetch(`${BASE}/__requests`)).json();

test('a cached weights file with one byte changed fails its block digest, and the reload downloads the model again', async () => {
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    assert.match(await loadModel(page, { backend: 'cpu' }), /^Ready: tiny test model/);
    // One byte in the middle of the cached UNet weights, changed through the page's view of OPFS.
    const damaged = await page.evaluate(async () => {
      const models = await (await navigator.storage.getDirectory()).getDirectoryHandle('keyshift-models');
      for await (const dir of models.values()) {
        const manifest = JSON.parse(await (await (await dir.getFileHandle('manifest.json')).getFile()).text());
        const entry = manifest.files.find((f) => /^unet\/.*\.safetensors$/.test(f.path));
        if (!entry) continue;
        const handle = await dir.getFileHandle(entry.path.replaceAll('/', '%2F'));
        const at = Math.floor(entry.bytes / 2);
        const old = new Uint8Array(await (await handle.getFile()).slice(at, at + 1).arrayBuffer())[0];
        const writable = await handle.createWritable({ keepExistingData: true });
        await writable.write({ type: 'write', position: at, data: new Uint8Array([old ^ 0x5a]) });
        await writable.close();
        return { path: entry.path, bytes: entry.bytes, blocks: entry.blocks?.length ?? 0 };
      }
      return null;
    });
    assert.ok(damaged, 'no cached UNet weights');
    // The manifest holds a digest per 16 MiB block, which the load checks with crypto.subtle.
    assert.equal(damaged.blocks, Math.ceil(damaged.bytes / (16 << 20)));
    const url = `/fixtures/tiny-sd1/diffusers/${damaged.path}`;
    const before = (await serverRequests())[url] ?? 0;
    await page.reload();
    const status = await loadModel(page, { backend: 'cpu' });
    assert.match(status, /^Ready: tiny test model/);
    assert.doesNotMatch(status, /from the offline cache/);
    assert.equal((await serverRequests())[url], before + 1, `${url} was not downloaded again`);
    // The fresh copy is cached whole: the next reload uses it.
    await page.reload();
    assert.match(await loadModel(page, { backend: 'cpu' }), /from the offline cache\)$/);
    assert.deepEqual(errors, []);
  });
});

test('a download interrupted by a reload resumes where it stopped', async () => {
  const before = await serverRequests();
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    await startSlowLoad(page);
    // The text encoder is done and the UNet is on its way: reload the page.
    await page.waitForFunction(() => /^Downloading unet\/diffusion_pytorch_model(\.fp16)?\.safetensors \(5\/7\): [\d.]+ (KB|MB)/
      .test(document.querySelector('[data-testid="model-status"]')?.textContent ?? ''), null, { timeout: 120_000 });
    facts.interruptedAt = await modelStatus(page);
    await page.reload();
    await startSlowLoad(page);
    await page.waitForFunction(() => /resumed at/.test(document.querySelector('[data-testid="model-status"]')?.textContent ?? '')
      || /^Ready/.test(document.querySelector('[data-testid="model-status"]')?.textContent ?? ''), null, { timeout: 120_000 });
    facts.resumedStatus = await modelStatus(page);
    assert.match(facts.resumedStatus, /^Downloading unet\/.* · resumed at [\d.]+ (KB|MB)$/);
    await page.waitForFunction(() => /^(Ready|Could not load)/.test(document.querySelector('[data-testid="model-status"]')?.textContent ?? ''),
      null, { timeout: 120_000 });
    assert.match(await modelStatus(page), /^Ready/);
    const after = await serverRequests();
    const counts = Object.fromEntries(Object.entries(after).map(([k, n]) => [k, n - (before[k] ?? 0)])
      .filter(([, n]) => n > 0));
    const ranges = Object.keys(counts).filter((k) => k.startsWith(`range ${SLOW}/unet/`));
    facts.resumeRequests = ranges;
    assert.equal(ranges.length, 1, JSON.stringify(counts));
    assert.ok(Number(ranges[0].match(/bytes=(\d+)-$/)[1]) > 0, ranges[0]);
    // (The fixture has no fp16 files: each load asks for fp16, then takes the f32 file.)
    assert.equal(counts[`${SLOW}/text_encoder/model.safetensors`], 1, 'the finished file was fetched again');
    // The resumed file is whole: the model draws the CLI's image.
    await setProject(page, SETTINGS);
    facts.resumedVsCli = await expectCliImage(page, await generateImage(page));
    assert.deepEqual(errors, []);
  });
});

test('a network drop while a model downloads fails with a clear message, and the next load resumes where it stopped', async () => {
  const before = await serverRequests();
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    await byId(page, 'prompt').fill('kept prompt');
    await startSlowLoad(page);
    await page.waitForFunction(() => /^Downloading unet\/diffusion_pytorch_model(\.fp16)?\.safetensors \(5\/7\): [\d.]+ (KB|MB)/
      .test(document.querySelector('[data-testid="model-status"]')?.textContent ?? ''), null, { timeout: 120_000 });
    // The server cuts the transfer mid-file, as a dropped connection would.
    await fetch(`${BASE}/__drop/on`);
    try {
      await page.waitForFunction(() => /^Could not load/.test(document.querySelector('[data-testid="model-status"]')?.textContent ?? ''),
        null, { timeout: 120_000 });
    } finally {
      await fetch(`${BASE}/__drop/off`);
    }
    facts.networkDropStatus = await modelStatus(page);
    assert.match(facts.networkDropStatus, /unet\/diffusion_pytorch_model\.safetensors.*download/i);
    assert.equal(await byId(page, 'prompt').inputValue(), 'kept prompt');
    await startSlowLoad(page);
    await page.waitForFunction(() => /resumed at|^Ready|^Could not load/.test(document.querySelector('[data-testid="model-status"]')?.textContent ?? ''),
      null, { timeout: 120_000 });
    assert.match(await modelStatus(page), /^Downloading unet\/.* · resumed at [\d.]+ (KB|MB)$/);
    await page.waitForFunction(() => /^(Ready|Could not load)/.test(document.querySelector('[data-testid="model-status"]')?.textContent ?? ''),
      null, { timeout: 120_000 });
    assert.match(await modelStatus(page), /^Ready/);
    const after = await serverRequests();
    const ranges = Object.keys(after).filter((k) => k.startsWith(`range ${SLOW}/unet/`) && after[k] > (before[k] ?? 0));
    assert.equal(ranges.length, 1, JSON.stringify(ranges));
    await setProject(page, SETTINGS);
    facts.networkDropResumedVsCli = await expectCliImage(page, await generateImage(page));
    assert.deepEqual(errors.filter((e) => !/Failed to load resource|network|ERR_/.test(e)), []);
  });
});

test('int8: the model prepared on the first load is what the cache keeps, and it draws the same image after a reload', async () => {
  const fixtureRequests = async () => {
    const counts = await (await fetch(`${BASE}/__requests`)).json();
    return Object.fromEntries(Object.entries(counts).filter(([path]) => path.startsWith('/fixtures/tiny-sd1/')));
  };
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    assert.match(await loadModel(page, { backend: 'cpu', precision: 'int8' }), /^Ready: .*int8 on CPU/);
    await setProject(page, SETTINGS);
    const first = await pixels(page, await generateImage(page));
    // The cache holds the int8 files (about 0.58 of fp16), not the downloaded f32 ones.
    await page.waitForFunction(() => /tiny test model/.test(
      [...document.querySelectorAll('[data-testid="cached-model"]')].map((e) => e.textContent).join(' ')));
    const entry = (await byId(page, 'cached-model').allTextContents()).find((t) => t.includes('tiny test model'));
    facts.int8CacheEntry = entry;
    const [, size, unit] = entry.match(/— ([\d.]+) (KB|MB)/);
    const mb = Number(size) / (unit === 'KB' ? 1000 : 1);
    assert.ok(mb > 3 && mb < 5, entry);
    const before = await fixtureRequests();
    await page.reload();
    const status = await loadModel(page, { backend: 'cpu', precision: 'int8' });
    assert.match(status, /int8 on CPU.*from the offline cache\)$/);
    assert.deepEqual(await fixtureRequests(), before, 'the cached model was fetched again');
    await setProject(page, SETTINGS);
    const again = await pixels(page, await generateImage(page));
    assert.deepEqual(compare(first, again), { max: 0, mean: 0 });
    assert.deepEqual(errors, []);
  });
});

test('the CPU fallback draws the same image, and benchmarks this device', async () => {
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    const status = await loadModel(page, { backend: 'cpu' });
    assert.match(status, /^Ready: .*on CPU/);
    await setProject(page, SETTINGS);
    facts.tinyCpuVsCli = await expectCliImage(page, await generateImage(page));
    facts.tinyCpuResult = await text(page, 'result-info');
    // Benchmark this device (the System page) on the model just loaded: UNet steps with CFG on
    // fixed inputs, whose output sums (first 16 values) to what diffusers computes in torch for
    // the same inputs (crates/cli/tests/bench.rs records it: −4.575187).
    await byId(page, 'nav-system').click();
    await byId(page, 'bench-runs').fill('2');
    await byId(page, 'bench-runs').press('Tab');
    await byId(page, 'bench-run').click();
    await page.waitForFunction(() => document.querySelector('[data-testid="bench-result"], [data-testid="bench-error"]'),
      null, { timeout: GPU_TIMEOUT_MS });
    assert.equal(await byId(page, 'bench-error').count(), 0);
    facts.benchCpu = await text(page, 'bench-result');
    assert.match(facts.benchCpu, /^[\d.]+ ms per UNet step with CFG at 64×64 \(median of 2; fastest [\d.]+ ms; first step \d+ ms\) — tiny test model \(random weights\): SD 1\.x, .* on CPU \(slow\)$/);
    const checksum = Number(await text(page, 'bench-checksum'));
    assert.ok(Math.abs(checksum - -4.575187) < 1e-3, `checksum ${checksum}`);
    assert.deepEqual(errors, []);
  });
});

// ---- Animations -------------------------------------------------------------------------------

// Two steps a frame: SwiftShader takes over a minute for a 4-step frame on a busy 2-core machine.
const SHIFT = { ...SETTINGS, steps: '2', prompt: 'a photo of a (cat:1.5~0.2)', shiftSteps: '5', lead: '1' };
const SHIFT_FRAMES = 6;
// Mirrored (each frame forward, then back), then one lead frame at each end.
const SHIFT_VIDEO_FRAMES = 2 * SHIFT_FRAMES + 2;

/** The CLI's frames for the same animation (folder output, video order), as data URLs. */
function cliShiftFrames() {
  assert.ok(CLI, 'KEYSHIFT_CLI (the native keyshift binary) is not set');
  const dir = mkdtempSync(join(tmpdir(), 'keyshift-cli-shift-'));
  try {
    const run = spawnSync(CLI, ['render', 'shift', '--model', FIXTURE, '--prompt', SHIFT.prompt,
      '--negative', SHIFT.negative, '--shift-steps', SHIFT.shiftSteps, '--size', `${SHIFT.width}x${SHIFT.height}`,
      '--steps', SHIFT.steps, '--cfg', SHIFT.cfg, '--seed', SHIFT.seed, '--sampler', SHIFT.sampler,
      '--mirror', '--lead', SHIFT.lead, '--out', dir], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const frames = [];
    for (let i = 0; i < SHIFT_FRAMES; i += 1) {
      const png = readFileSync(join(dir, `${String(i).padStart(5, '0')}.png`));
      frames.push(`data:image/png;base64,${png.toString('base64')}`);
    }
    return frames;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function setAnimation(page) {
  await setProject(page, SHIFT);
  await byId(page, 'mode-picker').selectOption('shift-attention');
  for (const [id, value] of [['shift-steps', SHIFT.shiftSteps], ['shift-lead', SHIFT.lead]]) {
    await byId(page, id).fill(value);
    await byId(page, id).press('Tab');
  }
  await byId(page, 'shift-mirror').check();
}

const frameCount = (page) => page.locator('[data-testid="frame-strip"] [data-testid="frame"]').count();

/** Waits until the strip holds `n` frames; fails on a render error, or when no new frame has come
 * for GPU_TIMEOUT_MS (a slow machine only makes it wait longer, a stalled render fails). */
async function waitForFrames(page, n) {
  let seen = -1;
  while (seen < n) {
    const handle = await page.waitForFunction(([want, before]) => {
      const failed = document.querySelector('[data-testid="render-error"]');
      const count = document.querySelectorAll('[data-testid="frame-strip"] [data-testid="frame"]').length;
      return failed || count >= want || count > before ? { failed: Boolean(failed), count } : null;
    }, [n, seen], { timeout: GPU_TIMEOUT_MS, polling: 1000 });
    const { failed, count } = await handle.jsonValue();
    if (failed) break;
    seen = count;
  }
  const error = await byId(page, 'render-error').count() ? await text(page, 'render-error') : null;
  assert.equal(error, null);
}

/** Waits until all `n` frames are in the strip and the status says the render finished. */
async function renderFinished(page, n) {
  await waitForFrames(page, n);
  await page.waitForFunction((k) => new RegExp(`^${k} frames rendered`).test(document.querySelector('[data-testid="render-status"]')?.textContent ?? ''),
    n, { timeout: GPU_TIMEOUT_MS });
}

async function exportFile(page, id) {
  const before = await attributeNow(page, 'export-download', 'href');
  await byId(page, id).click();
  await page.waitForFunction((old) => {
    const link = document.querySelector('[data-testid="export-download"]');
    return document.querySelector('[data-testid="render-error"]') || (link && link.getAttribute('href') !== old);
  }, before, { timeout: GPU_TIMEOUT_MS });
  const error = await byId(page, 'render-error').count() ? await text(page, 'render-error') : null;
  assert.equal(error, null);
  // Saved as the user saves it (the page's CSP keeps fetch() away from object URLs).
  const [download] = await Promise.all([page.waitForEvent('download'), byId(page, 'export-download').click()]);
  return { name: download.suggestedFilename(), bytes: readFileSync(await download.path()) };
}

/** An independent EBML walk: the DocType and every SimpleBlock/Block of a WebM file. */
function webmSummary(buf) {
  const vint = (at, keepMarker) => {
    const first = buf[at];
    let len = 1;
    while (len <= 8 && !(first & (0x80 >> (len - 1)))) len += 1;
    let value = keepMarker ? first : first & (0xff >> len);
    for (let i = 1; i < len; i += 1) value = value * 256 + buf[at + i];
    return { value, len };
  };
  const MASTERS = new Set([0x1a45dfa3, 0x18538067, 0x1654ae6b, 0xae, 0xe0, 0x1f43b675, 0xa0, 0x1549a966]);
  const out = { docType: null, blocks: 0, keyframes: 0, width: null, height: null, codec: null };
  const walk = (start, end) => {
    let at = start;
    while (at < end) {
      const id = vint(at, true);
      const size = vint(at + id.len, false);
      const body = at + id.len + size.len;
      const unknown = size.value === 2 ** (7 * size.len) - 1;
      const stop = unknown ? end : body + size.value;
      if (MASTERS.has(id.value)) walk(body, stop);
      else if (id.value === 0x4282) out.docType = buf.subarray(body, stop).toString('latin1');
      else if (id.value === 0x86) out.codec = buf.subarray(body, stop).toString('latin1');
      else if (id.value === 0xb0) out.width = buf.readUIntBE(body, stop - body);
      else if (id.value === 0xba) out.height = buf.readUIntBE(body, stop - body);
      else if (id.value === 0xa3 || id.value === 0xa1) {
        out.blocks += 1;
        if (id.value === 0xa3 && buf[body + vint(body, false).len + 2] & 0x80) out.keyframes += 1;
      }
      at = stop;
    }
  };
  walk(0, buf.length);
  return out;
}

/** Frames of an animated GIF: its image descriptors, found by walking the blocks. */
function gifFrames(buf) {
  assert.equal(buf.subarray(0, 6).toString('latin1'), 'GIF89a');
  let at = 13;
  if (buf[10] & 0x80) at += 3 * 2 ** ((buf[10] & 7) + 1);
  let frames = 0;
  const skipSubBlocks = () => { while (buf[at] !== 0) at += buf[at] + 1; at += 1; };
  while (at < buf.length && buf[at] !== 0x3b) {
    if (buf[at] === 0x21) { at += 2; skipSubBlocks(); continue; }
    assert.equal(buf[at], 0x2c, `unexpected GIF block at ${at}`);
    frames += 1;
    const packed = buf[at + 9];
    at += 10;
    if (packed & 0x80) at += 3 * 2 ** ((packed & 7) + 1);
    at += 1;
    skipSubBlocks();
  }
  return frames;
}

/** The files of a zip written without compression, by name (from its central directory). */
function zipFiles(buf) {
  const files = new Map();
  for (let at = 0; at + 46 <= buf.length; at += 1) {
    if (buf.readUInt32LE(at) !== 0x02014b50) continue;
    const size = buf.readUInt32LE(at + 20);
    const length = buf.readUInt16LE(at + 28);
    const local = buf.readUInt32LE(at + 42);
    const name = buf.subarray(at + 46, at + 46 + length).toString('utf8');
    const data = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    files.set(name, buf.subarray(data, data + size));
    at += 45 + length;
  }
  return files;
}

/** The names in a zip (its central directory). */
function zipNames(buf) {
  const names = [];
  for (let at = 0; at + 46 <= buf.length; at += 1) {
    if (buf.readUInt32LE(at) !== 0x02014b50) continue;
    const length = buf.readUInt16LE(at + 28);
    names.push(buf.subarray(at + 46, at + 46 + length).toString('utf8'));
    at += 45 + length;
  }
  return names;
}

test('shift-attention in the Animate workspace: the CLI frames, resume after a reload, WebM/GIF/zip exports, the link', async () => {
  let link;
  await withBrowser(async ({ page, errors }) => {
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto(BASE);
    assert.match(await loadModel(page), /^Ready/);
    await setAnimation(page);
    assert.equal(await text(page, 'frame-count'),
      `${SHIFT_FRAMES} frames · video ${SHIFT_VIDEO_FRAMES} frames, 0.5 s at 30 fps`);
    await byId(page, 'render').click();
    await waitForFrames(page, 1);
    // A reload mid-render: the finished frames are in the frame store.
    await page.reload();
    await byId(page, 'resume-render').waitFor({ timeout: 60_000 });
    const kept = await frameCount(page);
    assert.ok(kept >= 1 && kept < SHIFT_FRAMES, `frames kept over the reload: ${kept}`);
    facts.shiftFramesKeptOverReload = kept;
    // Resumed on the CPU backend (about 30× faster than SwiftShader's WebGPU here): the stored
    // frames do not depend on the device that made them, and every frame must still be the
    // CLI's. (The fault-injection test resumes on WebGPU.)
    assert.match(await loadModel(page, { backend: 'cpu' }), /^Ready: .*on CPU/);
    await byId(page, 'resume-render').click();
    await waitForFrames(page, SHIFT_FRAMES);
    await page.waitForFunction(() => !document.querySelector('[data-testid="export-webm"]')?.disabled,
      null, { timeout: GPU_TIMEOUT_MS });
    assert.equal(await frameCount(page), SHIFT_FRAMES);
    await page.screenshot({ path: join(tmpdir(), 'keyshift-animate-1280.png') });
    await page.setViewportSize({ width: 1920, height: 1080 });
    await page.screenshot({ path: join(tmpdir(), 'keyshift-animate-1920.png') });
    // Every frame equals the CLI's, pixel for pixel (to 8-bit rounding across devices).
    const cli = cliShiftFrames();
    const strip = page.locator('[data-testid="frame-strip"] [data-testid="frame"] img');
    let worst = { max: 0, mean: 0 };
    for (let i = 0; i < SHIFT_FRAMES; i += 1) {
      const src = await strip.nth(i).getAttribute('src');
      const diff = compare(await pixels(page, src), await pixels(page, cli[i]));
      assert.ok(diff.max <= 2 && diff.mean < 0.05, `frame ${i} differs from the CLI's: ${JSON.stringify(diff)}`);
      if (diff.max > worst.max) worst = diff;
    }
    facts.shiftWebgpuThenCpuVsCli = worst;
    // The player steps with the arrow keys; the prompt shows the range's value at that frame.
    await byId(page, 'player').focus();
    await page.keyboard.press('ArrowRight');
    assert.equal(await text(page, 'player-position'), `2/${2 * SHIFT_FRAMES}`);
    assert.match(await text(page, 'prompt-at-frame'), /^Frame 1: a photo of a \(cat:1\.2\d*\)$/);
    // Exports.
    const webm = await exportFile(page, 'export-webm');
    const summary = webmSummary(webm.bytes);
    facts.webm = { bytes: webm.bytes.length, ...summary };
    assert.equal(summary.docType, 'webm');
    assert.equal(summary.blocks, SHIFT_VIDEO_FRAMES);
    assert.equal(`${summary.width}x${summary.height}`, '64x64');
    assert.ok(['V_VP9', 'V_VP8'].includes(summary.codec), summary.codec);
    assert.match(webm.name, /^keyshift-\d+\.webm$/);
    // Chromium plays it (in a blank page: the app's CSP allows no media from object URLs).
    const blank = await page.context().newPage();
    const decoded = await blank.evaluate(async (b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const video = document.createElement('video');
      video.muted = true;
      video.src = URL.createObjectURL(new Blob([bytes], { type: 'video/webm' }));
      await new Promise((ok, fail) => { video.onloadeddata = ok; video.onerror = () => fail(new Error(String(video.error?.message))); });
      return { width: video.videoWidth, height: video.videoHeight, frames: video.getVideoPlaybackQuality?.().totalVideoFrames ?? null };
    }, webm.bytes.toString('base64'));
    await blank.close();
    assert.equal(`${decoded.width}x${decoded.height}`, '64x64', 'Chromium decodes the WebM');
    const gif = await exportFile(page, 'export-gif');
    assert.equal(gifFrames(gif.bytes), SHIFT_VIDEO_FRAMES);
    const zip = await exportFile(page, 'export-zip');
    const names = zipNames(zip.bytes);
    assert.equal(names.filter((n) => n.endsWith('.png')).length, 2 * SHIFT_FRAMES);
    for (const n of ['frames.json', 'shift-attention-info.txt']) assert.ok(names.includes(n), n);
    // The PNGs in it carry each frame's A1111 parameters (stored, so the text is in the zip as is).
    assert.ok(zip.bytes.includes(Buffer.from(`Steps: ${SHIFT.steps}, Sampler: Euler, CFG scale: 7, Seed: 42, Size: 64x64`)));
    assert.match(await byId(page, 'frame-parameters').textContent(),
      new RegExp(`^a photo of a \\(cat:1\\.2\\d*\\)\nSteps: ${SHIFT.steps}, Sampler: Euler, CFG scale: 7, Seed: 42, Size: 64x64`));
    // Re-render the frame at the player (frame 1): it is made again and is the same image.
    const before = await strip.nth(1).getAttribute('src');
    await byId(page, 'rerender-frame').click();
    await page.waitForFunction((old) =>
      document.querySelector('[data-testid="render-error"]')
      || document.querySelectorAll('[data-testid="frame-strip"] [data-testid="frame"] img')[1]?.getAttribute('src') !== old,
    before, { timeout: GPU_TIMEOUT_MS });
    const again = await strip.nth(1).getAttribute('src');
    const rediff = compare(await pixels(page, again), await pixels(page, cli[1]));
    assert.ok(rediff.max <= 2 && rediff.mean < 0.05, `the re-rendered frame differs: ${JSON.stringify(rediff)}`);
    link = await byId(page, 'share-link').inputValue();
    assert.deepEqual(errors.filter((e) => !e.includes('unreadable')), []);
  });
  // The link restores the animation settings in a fresh browser.
  await withBrowser(async ({ page }) => {
    await page.goto(link);
    assert.equal(await byId(page, 'mode-picker').inputValue(), 'shift-attention');
    assert.equal(await byId(page, 'shift-steps').inputValue(), SHIFT.shiftSteps);
    assert.equal(await byId(page, 'shift-lead').inputValue(), SHIFT.lead);
    assert.equal(await byId(page, 'shift-mirror').isChecked(), true);
    assert.equal(await byId(page, 'prompt').inputValue(), SHIFT.prompt);
  });
});

const TRAVEL = { ...SETTINGS, steps: '2', prompt: 'a photo of a cat\na painting of a dog\na bird in the sky', negative: 'blurry' };
const TRAVEL_FRAMES = 5; // 1 + 2 + 2: each transition's intermediate, then its target

/** The CLI's prompt travel with the same settings: its frames (video order) and frames.json. */
function cliTravel() {
  assert.ok(CLI, 'KEYSHIFT_CLI (the native keyshift binary) is not set');
  const dir = mkdtempSync(join(tmpdir(), 'keyshift-cli-travel-'));
  try {
    const run = spawnSync(CLI, ['render', 'travel', '--model', FIXTURE, '--prompt', TRAVEL.prompt,
      '--negative', TRAVEL.negative, '--travel-steps', '2', '--interp', 'slerp',
      '--size', `${TRAVEL.width}x${TRAVEL.height}`, '--steps', TRAVEL.steps, '--cfg', TRAVEL.cfg,
      '--seed', TRAVEL.seed, '--sampler', TRAVEL.sampler, '--out', dir], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const manifest = JSON.parse(readFileSync(join(dir, 'frames.json'), 'utf8'));
    const frames = manifest.map((f) => `data:image/png;base64,${readFileSync(join(dir, f.file)).toString('base64')}`);
    return { frames, manifest };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('prompt travel in the Animate workspace: a 3-stage slerp travel equals the CLI, exports WebM, and the stage editor travels in the link', async () => {
  let link;
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    // On the CPU backend (about 30× faster than SwiftShader's WebGPU here): the conditioning walk is the subject, and the CPU matches the CLI closest.
    assert.match(await loadModel(page, { backend: 'cpu' }), /^Ready: .*on CPU/);
    await setProject(page, TRAVEL);
    await byId(page, 'mode-picker').selectOption('prompt-travel');
    await byId(page, 'travel-steps').fill('2');
    await byId(page, 'travel-steps').press('Tab');
    await byId(page, 'travel-interp').selectOption('slerp');
    assert.equal(await byId(page, 'genesis').inputValue(), 'fixed');
    assert.equal(await byId(page, 'travel-mode').inputValue(), 'linear');
    assert.equal(await byId(page, 'easing').inputValue(), 'linear');
    assert.equal(await page.locator('[data-testid="stage"]').count(), 3);
    assert.equal(await text(page, 'frame-count'), '3 stages · 5 frames · video 5 frames, 0.5 s at 10 fps');
    await byId(page, 'render').click();
    await waitForFrames(page, TRAVEL_FRAMES);
    await page.waitForFunction(() => !document.querySelector('[data-testid="export-webm"]')?.disabled,
      null, { timeout: GPU_TIMEOUT_MS });
    const cli = cliTravel();
    assert.deepEqual(cli.manifest.map((f) => [f.from, f.to, f.alpha]),
      [[0, 1, 0], [0, 1, 0.5], [0, 1, 1], [1, 2, 0.5], [1, 2, 1]]);
    const strip = page.locator('[data-testid="frame-strip"] [data-testid="frame"] img');
    assert.equal(await strip.count(), TRAVEL_FRAMES);
    let worst = { max: 0, mean: 0 };
    for (let i = 0; i < TRAVEL_FRAMES; i += 1) {
      const diff = compare(await pixels(page, await strip.nth(i).getAttribute('src')), await pixels(page, cli.frames[i]));
      assert.ok(diff.max <= 2 && diff.mean < 0.05, `travel frame ${i} differs from the CLI's: ${JSON.stringify(diff)}`);
      if (diff.max > worst.max) worst = diff;
    }
    facts.travelCpuVsCli = worst;
    const labels = await page.locator('[data-testid="frame-stages"]').allTextContents();
    assert.deepEqual(labels, ['1→2 α 0.00', '1→2 α 0.50', '1→2 α 1.00', '2→3 α 0.50', '2→3 α 1.00']);
    const webm = await exportFile(page, 'export-webm');
    const summary = webmSummary(webm.bytes);
    assert.equal(summary.docType, 'webm');
    assert.equal(summary.blocks, TRAVEL_FRAMES);
    facts.travelWebm = { bytes: webm.bytes.length, ...summary };
    // The stage editor is a second view of the prompt's lines and the travel steps.
    const seed = page.locator('[data-testid="stage-seed"]').nth(1);
    await seed.fill('7');
    await seed.press('Tab');
    const steps = page.locator('[data-testid="stage-steps"]').nth(1);
    await steps.fill('3');
    await steps.press('Tab');
    await byId(page, 'stage-add').click();
    assert.equal(await byId(page, 'prompt').inputValue(),
      'a photo of a cat\na painting of a dog THEN(seed=7)\na bird in the sky\na bird in the sky');
    assert.equal(await byId(page, 'travel-steps').inputValue(), '2, 3, 3');
    await page.locator('[data-testid="stage-remove"]').nth(3).click();
    assert.equal(await byId(page, 'travel-steps').inputValue(), '2, 3');
    link = await byId(page, 'share-link').inputValue();
    assert.deepEqual(errors.filter((e) => !e.includes('unreadable')), []);
  });
  await withBrowser(async ({ page }) => {
    await page.goto(link);
    assert.equal(await byId(page, 'mode-picker').inputValue(), 'prompt-travel');
    assert.equal(await byId(page, 'travel-interp').inputValue(), 'slerp');
    assert.equal(await byId(page, 'travel-steps').inputValue(), '2, 3');
    const rows = page.locator('[data-testid="stage-prompt"]');
    assert.equal(await rows.count(), 3);
    assert.equal(await rows.nth(1).inputValue(), 'a painting of a dog');
    assert.equal(await page.locator('[data-testid="stage-seed"]').nth(1).inputValue(), '7');
    assert.equal(await page.locator('[data-testid="stage-steps"]').nth(1).inputValue(), '3');
  });
});

test('grad mode walks the conditioning on WebGPU, one PGD iteration per frame, and shows the losses', async () => {
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    assert.match(await loadModel(page), /^Ready/);
    await setProject(page, { ...TRAVEL, prompt: 'a photo of a cat\na painting of a dog' });
    await byId(page, 'mode-picker').selectOption('prompt-travel');
    await byId(page, 'travel-mode').selectOption('grad');
    await byId(page, 'travel-steps').fill('2');
    await byId(page, 'travel-steps').press('Tab');
    assert.equal(await byId(page, 'grad-iter').inputValue(), '1');
    assert.equal(await byId(page, 'grad-method').inputValue(), 'clip');
    assert.equal(await text(page, 'frame-count'), '2 stages · 3 frames · video 3 frames, 0.3 s at 10 fps');
    await byId(page, 'render').click();
    await waitForFrames(page, 3).catch((e) => { throw new Error(`${e.message}\n${errors.join('\n')}`); });
    await page.waitForFunction(() => !document.querySelector('[data-testid="export-webm"]')?.disabled,
      null, { timeout: GPU_TIMEOUT_MS });
    // The walked frame is the video's second.
    await page.locator('[data-testid="frame-strip"] [data-testid="frame"]').nth(1).click();
    const losses = await text(page, 'frame-losses');
    assert.match(losses, /^Grad losses — step 1: latent \d+\.\d{4}, cond \d+\.\d{4}$/);
    facts.gradLossesWebgpu = losses;
    assert.deepEqual(errors.filter((e) => !e.includes('unreadable')), []);
  });
});

/** The worker heap peak of the finished render, in bytes. */
async function renderHeapPeak(page) {
  assert.match(await text(page, 'render-status'), /rendered · worker memory peak [\d.]+ (B|KB|MB|GB)$/);
  return Number(await byId(page, 'render-status').getAttribute('data-heap-peak'));
}

async function renderFrames(page, shiftSteps) {
  await byId(page, 'shift-steps').fill(String(shiftSteps));
  await byId(page, 'shift-steps').press('Tab');
  await byId(page, 'render').click();
  await page.waitForFunction((n) => {
    const done = /rendered · worker memory/.test(document.querySelector('[data-testid="render-status"]')?.textContent ?? '');
    return document.querySelector('[data-testid="render-error"]')
      || (done && document.querySelectorAll('[data-testid="frame-strip"] [data-testid="frame"]').length === n);
  }, shiftSteps + 1, { timeout: GPU_TIMEOUT_MS + 20_000 * shiftSteps }).catch(async (e) => {
    throw new Error(`${e.message}; status "${await text(page, 'render-status')}", ${await frameCount(page)} frames, count "${await text(page, 'frame-count')}", progress "${await text(page, 'render-progress-text').catch(() => '')}"`);
  });
  const error = await byId(page, 'render-error').count() ? await text(page, 'render-error') : null;
  assert.equal(error, null);
  return renderHeapPeak(page);
}

// The issue's benchmark renders 50 frames (KEYSHIFT_BENCH_FRAMES=50); CI renders 8, twice the
// 4 it is compared with, which shows the same.
const BENCH_FRAMES = Number(process.env.KEYSHIFT_BENCH_FRAMES ?? 8);

test('benchmark: the worker heap of a render does not grow with its frames (4 vs many frames)', async () => {
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    // On the CPU backend (about 30× faster than SwiftShader's WebGPU here), where the model's
    // tensors live in the worker's heap too: what a render holds per frame is the subject.
    assert.match(await loadModel(page, { backend: 'cpu' }), /^Ready: .*on CPU/);
    await setProject(page, { ...SETTINGS, prompt: 'a (cat:1~0)', steps: '1', cfg: '1' });
    await byId(page, 'mode-picker').selectOption('shift-attention');
    // Four frames at least on both sides: on WebGPU the worker renders up to four frames per
    // UNet call (each in flight holds its state), so both renders would hold the same number at
    // once; on the CPU it renders one at a time.
    await renderFrames(page, 3); // warm-up: the first render builds the tokenizer and kernels
    const few = await renderFrames(page, 3);
    const started = Date.now();
    const many = await renderFrames(page, BENCH_FRAMES - 1);
    facts.renderHeapPeak = { frames4: few, [`frames${BENCH_FRAMES}`]: many, msPerFrame: Math.round((Date.now() - started) / BENCH_FRAMES) };
    // The list of stored renders follows: all three, complete.
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="stored-render"]').length === 3);
    assert.doesNotMatch(await text(page, 'render-list'), /unfinished/);
    // Frames go to the frame store the moment they exist: more frames add nothing to the heap
    // (a 64×64 frame is 12 KB as RGB; ten more kept in memory would add 120 KB, plus their PNGs).
    assert.ok(many <= few + 64e3, JSON.stringify(facts.renderHeapPeak));
    assert.deepEqual(errors, []);
  });
});

// TAESD frames: 16 shift-attention frames of one step each, on the browser's CPU backend (fast
// enough to render twice), against the CLI's `render shift --taesd`.
const TAESD_SHIFT = { ...SETTINGS, prompt: 'a photo of a (cat:1.5~0.2)', steps: '1' };
const TAESD_FRAMES = 16;

function cliTaesdFrames() {
  assert.ok(CLI, 'KEYSHIFT_CLI (the native keyshift binary) is not set');
  const dir = mkdtempSync(join(tmpdir(), 'keyshift-cli-taesd-'));
  try {
    const s = TAESD_SHIFT;
    const run = spawnSync(CLI, ['render', 'shift', '--model', FIXTURE, '--prompt', s.prompt,
      '--negative', s.negative, '--shift-steps', String(TAESD_FRAMES - 1), '--size', `${s.width}x${s.height}`,
      '--steps', s.steps, '--cfg', s.cfg, '--seed', s.seed, '--sampler', s.sampler,
      '--taesd', join(FIXTURE, '..', '..', 'taesd-tiny-x2'), '--out', dir], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    return Array.from({ length: TAESD_FRAMES }, (_, i) =>
      `data:image/png;base64,${readFileSync(join(dir, `${String(i).padStart(5, '0')}.png`)).toString('base64')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('TAESD frames: a 16-frame shift-attention render decoded by the model\'s TAESD equals the CLI\'s --taesd frames; frames per minute against the VAE', async () => {
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    assert.match(await loadModel(page, { backend: 'cpu' }), /^Ready: .*on CPU/);
    await setProject(page, TAESD_SHIFT);
    await byId(page, 'mode-picker').selectOption('shift-attention');
    // Offered because the tiny model's TAESD fits its latents (2×); off unless chosen.
    assert.equal(await byId(page, 'animate-taesd').isChecked(), false);
    await renderFrames(page, 1); // warm-up
    let clock = Date.now();
    await renderFrames(page, TAESD_FRAMES - 1);
    const vaeMs = Date.now() - clock;
    const strip = page.locator('[data-testid="frame-strip"] [data-testid="frame"] img');
    const vaeFirst = await pixels(page, await strip.first().getAttribute('src'));
    await byId(page, 'animate-taesd').check();
    clock = Date.now();
    await renderFrames(page, TAESD_FRAMES - 1);
    const taesdMs = Date.now() - clock;
    const perMinute = (ms) => Number((TAESD_FRAMES * 60_000 / ms).toFixed(1));
    facts.browserCpuShift16FramesPerMinute = { vae: perMinute(vaeMs), taesd: perMinute(taesdMs) };
    // Each frame equals the CLI's to within f32 differences between the browser's and the native
    // CPU kernels. The random-weight tiny model amplifies them on a frame or two (here frame 4,
    // max 17 levels, mean 1.1), so the bar is PSNR ≥ 30 dB — TAESD's and the VAE's decodes of
    // the same latent are 8 dB apart.
    const cli = cliTaesdFrames();
    const psnrs = [];
    let exact = 0;
    for (let i = 0; i < TAESD_FRAMES; i += 1) {
      const ours = await pixels(page, await strip.nth(i).getAttribute('src'));
      const theirs = await pixels(page, cli[i]);
      const db = psnr(ours, theirs);
      assert.ok(db >= 30, `TAESD frame ${i} differs from the CLI's: ${db.toFixed(1)} dB, ${JSON.stringify(compare(ours, theirs))}`);
      psnrs.push(Number(db.toFixed(1)));
      if (compare(ours, theirs).max <= 2) exact += 1;
    }
    facts.taesdFramesVsCli = { lowestPsnrDb: Math.min(...psnrs), framesWithin2Levels: exact };
    // Not the VAE's frame: TAESD decoded it.
    assert.ok(psnr(await pixels(page, await strip.first().getAttribute('src')), vaeFirst) < 20);
    assert.deepEqual(errors, []);
  });
});

test('the project is autosaved, and a project file dropped on the page opens', async () => {
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    await byId(page, 'prompt').fill('autosaved (fox:1~0)');
    await byId(page, 'mode-picker').selectOption('shift-attention');
    await page.goto(BASE); // no link: the autosave opens
    assert.equal(await byId(page, 'prompt').inputValue(), 'autosaved (fox:1~0)');
    assert.equal(await byId(page, 'mode-picker').inputValue(), 'shift-attention');
    const [download] = await Promise.all([page.waitForEvent('download'), byId(page, 'download-project').click()]);
    assert.equal(download.suggestedFilename(), 'Untitled.keyshift');
    const file = readFileSync(await download.path(), 'utf8');
    assert.match(file, /^v4\./);
    await byId(page, 'prompt').fill('something else');
    await page.evaluate((content) => {
      const transfer = new DataTransfer();
      transfer.items.add(new File([content], 'saved.keyshift', { type: 'text/plain' }));
      window.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }, file);
    await page.waitForFunction(() =>
      document.querySelector('[data-testid="prompt"]')?.value === 'autosaved (fox:1~0)');
    assert.match(await text(page, 'link-warnings'), /Project opened from saved\.keyshift\./);
    assert.deepEqual(errors, []);
  });
});

test('without WebCodecs, the WebM export records the frames through MediaRecorder', async () => {
  await withBrowser(async ({ page, errors }) => {
    // As in a browser without VideoEncoder on the page.
    await page.addInitScript(() => { delete window.VideoEncoder; });
    await page.goto(BASE);
    // On the CPU backend (about 30× faster than SwiftShader's WebGPU here): the export is the subject.
    assert.match(await loadModel(page, { backend: 'cpu' }), /^Ready: .*on CPU/);
    await setProject(page, { ...SETTINGS, prompt: 'a (cat:1~0)', steps: '1', cfg: '1' });
    await byId(page, 'mode-picker').selectOption('shift-attention');
    await byId(page, 'shift-fps').fill('10');
    await byId(page, 'shift-fps').press('Tab');
    await renderFrames(page, 2);
    const webm = await exportFile(page, 'export-webm');
    const summary = webmSummary(webm.bytes);
    facts.mediaRecorderWebm = { bytes: webm.bytes.length, ...summary };
    assert.equal(summary.docType, 'webm');
    assert.equal(summary.blocks, 3);
    assert.equal(await byId(page, 'export-download').getAttribute('data-frames'), '3');
    assert.deepEqual(errors, []);
  });
});

test('a full storage quota stops a render with a clear message; the frames stay and Resume completes it as an uninterrupted render', async () => {
  const cli = cliFaultFrames();
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    // On the CPU backend (about 30× faster than SwiftShader's WebGPU here): storage is the subject.
    assert.match(await loadModel(page, { backend: 'cpu' }), /^Ready: .*on CPU/);
    await setProject(page, FAULT);
    await byId(page, 'mode-picker').selectOption('shift-attention');
    await byId(page, 'shift-steps').fill(FAULT.shiftSteps);
    await byId(page, 'shift-steps').press('Tab');
    // Leave room for the job and a few 64×64 frames (about 12 KB each); Chromium reserves
    // 1 MiB of quota for a file while it is written.
    const origin = new URL(BASE).origin;
    const cdp = await page.context().newCDPSession(page);
    const usage = await page.evaluate(async () => (await navigator.storage.estimate()).usage);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: usage + 1_048_576 + 40_000 });
    await byId(page, 'render').click();
    await byId(page, 'render-error').waitFor({ timeout: GPU_TIMEOUT_MS });
    const message = await text(page, 'render-error');
    facts.quotaMessage = message;
    assert.match(message, /^The browser's storage for this site is full: the frames rendered so far are kept/);
    const kept = await frameCount(page);
    facts.quotaFramesKept = kept;
    assert.ok(kept >= 1 && kept < FAULT_FRAMES, `frames kept: ${kept}`);
    const before = [];
    for (const src of await stripFrames(page)) before.push(await pixels(page, src));
    await byId(page, 'resume-render').waitFor();
    await cdp.send('Storage.overrideQuotaForOrigin', { origin });
    await byId(page, 'resume-render').click();
    await renderFinished(page, FAULT_FRAMES);
    // Every frame equals the uninterrupted render's (the CLI's); those kept did not change.
    const frames = await stripFrames(page);
    assert.equal(frames.length, FAULT_FRAMES);
    let worst = { max: 0, mean: 0 };
    for (let i = 0; i < FAULT_FRAMES; i += 1) {
      const now = await pixels(page, frames[i]);
      const diff = compare(now, await pixels(page, cli[i]));
      assert.ok(diff.max <= 2 && diff.mean < 0.05, `frame ${i} differs from the uninterrupted render's: ${JSON.stringify(diff)}`);
      if (before[i]) assert.equal(compare(now, before[i]).max, 0, `kept frame ${i} changed`);
      if (diff.max > worst.max) worst = diff;
    }
    facts.quotaResumedVsCli = worst;
    assert.deepEqual(errors, []);
  });
});

// Fault injection: one step a frame at CFG 1, so that the faults, not the sampling, take the time.
const FAULT = { ...SETTINGS, steps: '1', cfg: '1', prompt: 'a (cat:1~0)', shiftSteps: '8' };
const FAULT_FRAMES = 9;

/** The CLI's uninterrupted render of the FAULT animation, frames as data URLs. */
function cliFaultFrames() {
  assert.ok(CLI, 'KEYSHIFT_CLI (the native keyshift binary) is not set');
  const dir = mkdtempSync(join(tmpdir(), 'keyshift-cli-fault-'));
  try {
    const run = spawnSync(CLI, ['render', 'shift', '--model', FIXTURE, '--prompt', FAULT.prompt,
      '--negative', FAULT.negative, '--shift-steps', FAULT.shiftSteps, '--size', `${FAULT.width}x${FAULT.height}`,
      '--steps', FAULT.steps, '--cfg', FAULT.cfg, '--seed', FAULT.seed, '--sampler', FAULT.sampler,
      '--out', dir], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    return Array.from({ length: FAULT_FRAMES }, (_, i) =>
      `data:image/png;base64,${readFileSync(join(dir, `${String(i).padStart(5, '0')}.png`)).toString('base64')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The strip's frames (their `src`), in order. */
const stripFrames = (page) => page.locator('[data-testid="frame-strip"] [data-testid="frame"] img')
  .evaluateAll((imgs) => imgs.map((img) => img.getAttribute('src')));

/** Waits for the render to stop because the compute worker stopped, and returns the message. */
async function workerStopped(page) {
  await page.waitForFunction(() => /^The compute worker stopped/.test(document.querySelector('[data-testid="render-error"]')?.textContent ?? ''),
    null, { timeout: GPU_TIMEOUT_MS });
  return text(page, 'render-error');
}

/** Overwrites stored frame `index` of the (only) render in the frame store with garbage;
 * returns how many frames the store holds (null when there is no render). */
async function corruptStoredFrame(page, index) {
  return page.evaluate(async (name) => {
    const root = await (await navigator.storage.getDirectory()).getDirectoryHandle('keyshift-renders');
    for await (const [, dir] of root.entries()) {
      const file = await dir.getFileHandle(name);
      const writable = await file.createWritable({ keepExistingData: true });
      await writable.write({ type: 'write', position: 40, data: new Uint8Array(64).fill(0x5a) });
      await writable.close();
      let frames = 0;
      for await (const [entry] of dir.entries()) if (/^\d{5}\.png$/.test(entry)) frames += 1;
      return frames;
    }
    return null;
  }, `${String(index).padStart(5, '0')}.png`);
}

test('fault injection mid-render: a lost GPU device, a killed worker, a reload and a corrupted stored frame each keep the finished frames with a clear message, and Resume ends with the uninterrupted render\'s frames', async () => {
  const cli = cliFaultFrames();
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    assert.match(await loadModel(page), /^Ready: .*on WebGPU/);
    await setProject(page, FAULT);
    await byId(page, 'mode-picker').selectOption('shift-attention');
    await byId(page, 'shift-steps').fill(FAULT.shiftSteps);
    await byId(page, 'shift-steps').press('Tab');
    assert.match(await text(page, 'frame-count'), new RegExp(`^${FAULT_FRAMES} frames`));
    const finished = {};
    const keep = async () => {
      const srcs = await stripFrames(page);
      for (let i = 0; i < srcs.length; i += 1) finished[i] ??= await pixels(page, srcs[i]);
    };
    const unchanged = async (what) => {
      const now = await stripFrames(page);
      assert.ok(now.length >= Object.keys(finished).length, `${what}: frames lost (${now.length} of ${Object.keys(finished).length})`);
    };
    // 1. The worker is killed mid-render (an uncaught error in it).
    await byId(page, 'render').click();
    await waitForFrames(page, 2);
    await keep();
    await page.workers()[0].evaluate(() => { setTimeout(() => { throw new Error('simulated worker crash'); }, 0); });
    assert.equal(await workerStopped(page), 'The compute worker stopped (simulated worker crash); load the model again, then Resume.');
    await unchanged('worker killed');
    await keep();
    // 2. The GPU device is lost mid-render (destroyed through the worker's test hook).
    assert.match(await loadModel(page), /^Ready: .*on WebGPU/);
    await byId(page, 'resume-render').click();
    await waitForFrames(page, Object.keys(finished).length + 1);
    await keep();
    assert.equal(await page.workers()[0].evaluate(() => self.keyshiftLoseDevice()) > 0, true, 'no GPU device to lose');
    facts.faultDeviceLost = await workerStopped(page);
    assert.match(facts.faultDeviceLost, /^The compute worker stopped \(the GPU device was lost \([^()]+\)\); load the model again, then Resume\.$/);
    assert.match(await text(page, 'model-status'), /GPU device was lost.*a fresh one was started: load the model again$/);
    await unchanged('device lost');
    await keep();
    // 3. A reload with a stored frame corrupted: the others show again, that one renders anew
    // (on the CPU backend: faster here).
    const kept = Object.keys(finished).length;
    assert.ok(kept >= 3 && kept < FAULT_FRAMES, `frames before the reload: ${kept}`);
    // The store may hold a frame more than the strip showed (one stored as the worker stopped).
    const stored = await corruptStoredFrame(page, 1);
    assert.ok(stored >= kept, `frames in the store: ${stored}, shown before: ${kept}`);
    await page.reload();
    await byId(page, 'resume-render').waitFor({ timeout: 60_000 });
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="frame-strip"] [data-testid="frame"]').length >= n,
      stored - 1, { timeout: 60_000 });
    facts.faultFramesAfterCorruptReload = { kept, stored, shown: await frameCount(page) };
    assert.equal(await frameCount(page), stored - 1, 'every readable stored frame shows after the reload');
    assert.match(await loadModel(page, { backend: 'cpu' }), /^Ready/);
    await byId(page, 'resume-render').click();
    await renderFinished(page, FAULT_FRAMES);
    // The frames equal an uninterrupted render's (the CLI's), those kept through the faults too.
    const frames = await stripFrames(page);
    assert.equal(frames.length, FAULT_FRAMES);
    let worst = { max: 0, mean: 0 };
    for (let i = 0; i < FAULT_FRAMES; i += 1) {
      const diff = compare(await pixels(page, frames[i]), await pixels(page, cli[i]));
      assert.ok(diff.max <= 2 && diff.mean < 0.05, `frame ${i} differs from the uninterrupted render's: ${JSON.stringify(diff)}`);
      if (finished[i] && i !== 1 && i < kept) {
        const same = compare(await pixels(page, frames[i]), finished[i]);
        assert.equal(same.max, 0, `frame ${i} changed over the faults`);
      }
      if (diff.max > worst.max) worst = diff;
    }
    facts.faultResumedVsCli = worst;
    assert.deepEqual(errors.filter((e) => !/GPU device was lost|simulated worker crash|unreadable/.test(e)), []);
  });
});

const CATDUCK = readFileSync('../../crates/core/src/parseq/templates/catduck.json', 'utf8');
const PARSEQ = { ...SETTINGS, steps: '2', sampler: 'Euler' };
const PARSEQ_FRAMES = 4;

/** The CLI's render of `doc`'s first frames; with `stored` (PNG bytes of frames 0..k-1 made
 * elsewhere, e.g. in the browser), it resumes from them and renders frame k alone. */
function cliParseq(doc, stored = []) {
  const dir = mkdtempSync(join(tmpdir(), 'keyshift-cli-parseq-'));
  try {
    const file = join(dir, 'doc.json');
    writeFileSync(file, doc);
    const out = join(dir, 'out');
    const args = ['render', 'parseq', file, '--model', FIXTURE,
      '--size', `${PARSEQ.width}x${PARSEQ.height}`, '--steps', PARSEQ.steps, '--sampler', PARSEQ.sampler,
      '--frames', `0..${PARSEQ_FRAMES}`, '--out', out];
    if (stored.length > 0) {
      mkdirSync(join(out, '.in-progress'), { recursive: true });
      stored.forEach((png, i) => writeFileSync(join(out, '.in-progress', `${String(i).padStart(5, '0')}.png`), png));
      args.push('--resume', '--stop-after', '1');
    }
    const run = spawnSync(CLI, args, { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    if (stored.length > 0) {
      const next = readFileSync(join(out, '.in-progress', `${String(stored.length).padStart(5, '0')}.png`));
      return `data:image/png;base64,${next.toString('base64')}`;
    }
    const manifest = JSON.parse(readFileSync(join(out, 'frames.json'), 'utf8'));
    const frames = manifest.map((f) => `data:image/png;base64,${readFileSync(join(out, f.file)).toString('base64')}`);
    return { frames, manifest };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Saves what a button downloads. */
async function download(page, id) {
  const [file] = await Promise.all([page.waitForEvent('download'), byId(page, id).click()]);
  return { name: file.suggestedFilename(), bytes: readFileSync(await file.path()) };
}

test('Parseq: a ?parseq= link opens catduck; a grid edit moves the graph and the rendered JSON, undo, a dragged node; each of 4 loop frames equals the CLI\'s from the same previous frame; JSON, zip and WebM exports', async () => {
  await withBrowser(async ({ page, errors }) => {
    await page.goto(`${BASE}/?parseq=${encodeURIComponent(CATDUCK)}`);
    assert.equal(await byId(page, 'mode-picker').inputValue(), 'parseq');
    assert.match(await text(page, 'link-warnings'), /Opened the Parseq document from the link/);
    assert.ok(!page.url().includes('?parseq='), 'the document moves from the query to the project link');
    const cell = byId(page, 'cell-40-zoom');
    assert.equal(await cell.inputValue(), '1.5');
    assert.equal(await byId(page, 'cell-40-zoom_i').inputValue(), '');
    assert.equal(await byId(page, 'cell-0-zoom_i').inputValue(), 'C');
    // An empty cell shows the interpolated value.
    assert.match(await byId(page, 'cell-80-zoom').getAttribute('placeholder'), /^1\.2\d*$/);
    const curve = () => byId(page, 'curve-zoom').getAttribute('d');
    const rendered = async () => JSON.parse(await byId(page, 'parseq-rendered').textContent());
    const before = await curve();
    await byId(page, 'parseq-rendered-toggle').click();
    await cell.fill('2');
    // Past the editor's 250 ms save into the project: the save must not rebuild the editor
    // (it did, and its undo history went with it).
    await page.waitForTimeout(600);
    assert.notEqual(await curve(), before, 'the graph follows the edit');
    assert.equal((await rendered()).frame, 40);
    assert.equal((await rendered()).zoom, 2);
    // A broken formula names its position and keeps the previous one.
    await byId(page, 'cell-0-zoom_i').fill('L + (');
    assert.match(await text(page, 'parseq-error'), /zoom.*frame 0/);
    await byId(page, 'cell-0-zoom_i').fill('C');
    await cell.press('Tab');
    await byId(page, 'parseq-undo').click();
    assert.equal(await cell.inputValue(), '1.5');
    assert.equal(await curve(), before, 'undo restores the curve');
    // Drag the zoom node of frame 40 down: its value falls.
    const node = byId(page, 'node-zoom-40');
    await node.scrollIntoViewIfNeeded();
    const box = await node.boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2, box.y + 40, { steps: 5 });
    await page.mouse.up();
    const dragged = Number(await byId(page, 'cell-40-zoom').inputValue());
    assert.ok(dragged < 1.4 && dragged > 0.5, `dragged zoom: ${dragged}`);
    assert.equal((await rendered()).zoom, dragged);
    // Ctrl+A adds a keyframe after the focused one; Ctrl+D deletes it.
    await byId(page, 'cell-40-zoom').focus();
    await page.keyboard.press('Control+a');
    await byId(page, 'cell-41-zoom').waitFor();
    await byId(page, 'cell-41-zoom').focus();
    await page.keyboard.press('Control+d');
    await byId(page, 'cell-41-zoom').waitFor({ state: 'detached' });
    // Render the first 4 frames on the tiny model, on the CPU backend (about 30× faster than
    // SwiftShader's WebGPU here): the document's schedule and the 2D motion are the subject.
    assert.match(await loadModel(page, { backend: 'cpu' }), /^Ready: .*on CPU/);
    await setProject(page, PARSEQ);
    await byId(page, 'parseq-frames').fill(`0..${PARSEQ_FRAMES}`);
    await byId(page, 'parseq-frames').press('Tab');
    assert.match(await text(page, 'frame-count'), /^4 frames \(0\.\.3\)/);
    await page.waitForTimeout(600);
    const doc = (await download(page, 'parseq-save')).bytes.toString('utf8');
    await byId(page, 'render').click();
    await waitForFrames(page, PARSEQ_FRAMES);
    await page.waitForFunction(() => !document.querySelector('[data-testid="export-webm"]')?.disabled,
      null, { timeout: GPU_TIMEOUT_MS });
    const cli = cliParseq(doc);
    assert.equal(cli.manifest.length, PARSEQ_FRAMES);
    assert.equal(cli.manifest[0].denoise, null);
    assert.ok(cli.manifest.slice(1).every((f) => Math.abs(f.denoise - (1 - f.strength)) < 1e-9));
    const strip = page.locator('[data-testid="frame-strip"] [data-testid="frame"] img');
    assert.equal(await strip.count(), PARSEQ_FRAMES);
    // Frame 0 is one txt2img image: the CLI's. Every later frame is img2img of the one before
    // moved, so a 1-level difference from the CLI (WebGPU's, or wasm's float rounding) would
    // carry into the next and grow with each loop (the native wgpu backend on lavapipe drifts
    // from the CPU backend that way on this random-weight model). So each loop step is checked
    // on its own: the CLI
    // resumes from the browser's frames 0..k-1 (their PNGs, as the worker stored them) and
    // renders frame k, which must be the browser's frame k.
    const srcs = [];
    for (let i = 0; i < PARSEQ_FRAMES; i += 1) srcs.push(await strip.nth(i).getAttribute('src'));
    const zip = zipFiles((await exportFile(page, 'export-zip')).bytes);
    const zipped = JSON.parse(zip.get('frames.json').toString('utf8'));
    assert.equal(zipped.length, PARSEQ_FRAMES);
    const browserPngs = zipped.map((f) => zip.get(f.file));
    const first = compare(await pixels(page, srcs[0]), await pixels(page, cli.frames[0]));
    assert.ok(first.max <= 2 && first.mean < 0.05, `parseq frame 0 differs from the CLI's: ${JSON.stringify(first)}`);
    const steps = [{ max: first.max, mean: Number(first.mean.toFixed(4)) }];
    const loop = [steps[0]];
    for (let k = 1; k < PARSEQ_FRAMES; k += 1) {
      const step = compare(await pixels(page, srcs[k]), await pixels(page, cliParseq(doc, browserPngs.slice(0, k))));
      assert.ok(step.max <= 2 && step.mean < 0.05, `parseq frame ${k} from the browser's frame ${k - 1} differs from the CLI's: ${JSON.stringify(step)}`);
      steps.push({ max: step.max, mean: Number(step.mean.toFixed(4)) });
      const whole = compare(await pixels(page, srcs[k]), await pixels(page, cli.frames[k]));
      loop.push({ max: whole.max, mean: Number(whole.mean.toFixed(4)) });
    }
    facts.parseqCpuVsCliPerStep = steps;
    facts.parseqCpuVsCliWholeLoop = loop;
    const output = JSON.parse((await download(page, 'parseq-export')).bytes.toString('utf8'));
    assert.equal(output.rendered_frames.length, 120);
    assert.equal(output.rendered_frames[40].zoom, dragged);
    assert.ok(output.rendered_frames_meta.zoom);
    const webm = await exportFile(page, 'export-webm');
    const summary = webmSummary(webm.bytes);
    assert.equal(summary.docType, 'webm');
    assert.equal(summary.blocks, PARSEQ_FRAMES);
    facts.parseqWebm = { bytes: webm.bytes.length, ...summary };
    assert.deepEqual(errors.filter((e) => !e.includes('unreadable')), []);
  });
});

/** A 16-bit mono WAV of silence with short noise bursts at `times` seconds. */
function clickWav(times, seconds, rate = 22050) {
  const n = Math.round(seconds * rate);
  const data = Buffer.alloc(44 + 2 * n);
  data.write('RIFF', 0); data.writeUInt32LE(36 + 2 * n, 4); data.write('WAVE', 8);
  data.write('fmt ', 12); data.writeUInt32LE(16, 16); data.writeUInt16LE(1, 20); data.writeUInt16LE(1, 22);
  data.writeUInt32LE(rate, 24); data.writeUInt32LE(2 * rate, 28); data.writeUInt16LE(2, 32); data.writeUInt16LE(16, 34);
  data.write('data', 36); data.writeUInt32LE(2 * n, 40);
  let x = 12345;
  for (const t of times) {
    const start = Math.round(t * rate);
    for (let i = start; i < Math.min(n, start + 500); i += 1) {
      x = (x * 1103515245 + 12345) % 2147483648;
      data.writeInt16LE(Math.round((x / 2147483648 - 0.5) * 40000), 44 + 2 * i);
    }
  }
  return data;
}

test('Parseq audio: a loaded file is analysed in the worker, its onsets become keyframes and its amplitude a time series', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'keyshift-audio-'));
  try {
    const file = join(dir, 'clicks.wav');
    writeFileSync(file, clickWav([1.0, 2.0, 3.0, 4.5], 6));
    await withBrowser(async ({ page, errors }) => {
      await page.goto(BASE);
      await byId(page, 'mode-picker').selectOption('parseq');
      await byId(page, 'cell-40-zoom').waitFor();
      await byId(page, 'onset-offset').fill('0');
      await byId(page, 'onset-offset').press('Tab');
      await byId(page, 'audio-load').setInputFiles(file);
      await page.waitForFunction(() => /onsets$/.test(document.querySelector('[data-testid="audio-status"]')?.textContent ?? ''),
        null, { timeout: 60_000 });
      assert.equal(await text(page, 'audio-status'), 'clicks.wav: 6.0 s, 4 onsets');
      assert.ok((await byId(page, 'audio-waveform').locator('line').count()) >= 2, 'onsets drawn under the graph');
      await byId(page, 'onsets-to-keyframes').click();
      // 20 fps: onsets near 1, 2, 3 and 4.5 s are frames near 20, 40 (a keyframe already), 60, 90.
      const frames = (await page.locator('[data-testid="grid-frame"]').allTextContents()).map(Number);
      facts.audioKeyframes = frames;
      assert.equal(await byId(page, 'share-too-long').count(), 0, 'a small document fits a link');
      for (const want of [20, 60, 90]) {
        assert.ok(frames.some((f) => Math.abs(f - want) <= 1), `a keyframe near ${want}: ${frames}`);
      }
      await byId(page, 'amplitude-series').click();
      await byId(page, 'cell-0-zoom_i').fill('1 + amplitude(f, 1)');
      await byId(page, 'cell-0-zoom_i').press('Tab');
      assert.equal(await byId(page, 'parseq-error').count(), 0);
      assert.deepEqual(errors, []);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('hostile images: headers claiming 60000×60000 (PNG, GIF, JPEG, WebP) are refused by name before anything is decoded, garbage and a truncated PNG by name too; the init image stays', async () => {
  const u16le = (n) => [n & 0xff, n >> 8];
  const u32be = (n) => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
  const huge = 60000;
  const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, ...Buffer.from('IHDR'),
    ...u32be(huge), ...u32be(huge), 8, 2, 0, 0, 0, 0, 0, 0, 0]);
  const gif = Buffer.from([...Buffer.from('GIF89a'), ...u16le(huge), ...u16le(huge), 0, 0, 0, 0x3b]);
  // A 1×1 screen whose first frame is 60000×60000 (a decoder grows the canvas to fit it).
  const gifFrame = Buffer.from([...Buffer.from('GIF89a'), 1, 0, 1, 0, 0, 0, 0, 0x2c, 0, 0, 0, 0, ...u16le(huge), ...u16le(huge),
    0, 2, 2, 0x4c, 0x01, 0, 0x3b]);
  const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xc0, 0, 17, 8, huge >> 8, huge & 0xff, huge >> 8, huge & 0xff, 3,
    1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0, 0xff, 0xd9]);
  const webp = Buffer.from([...Buffer.from('RIFF'), 22, 0, 0, 0, ...Buffer.from('WEBPVP8X'), 10, 0, 0, 0, 0, 0, 0, 0,
    (huge - 1) & 0xff, (huge - 1) >> 8, 0, (huge - 1) & 0xff, (huge - 1) >> 8, 0]);
  const good = readFileSync(join(FIXTURE, '..', '..', 'tiny-controlnet', 'hint.png'));
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    await byId(page, 'init-image').setInputFiles(join(FIXTURE, '..', '..', 'tiny-controlnet', 'hint.png'));
    await byId(page, 'init-strength').waitFor();
    let preview = await byId(page, 'init-preview').getAttribute('src');
    const alert = page.locator('.init-image [role="alert"]');
    const cases = [['huge.png', 'image/png', png], ['huge.gif', 'image/gif', gif], ['frame.gif', 'image/gif', gifFrame], ['huge.jpg', 'image/jpeg', jpeg],
      ['huge.webp', 'image/webp', webp]];
    facts.hostileImages = {};
    for (const [name, mimeType, buffer] of cases) {
      await byId(page, 'init-image').setInputFiles({ name, mimeType, buffer });
      await alert.waitFor({ timeout: 30_000 });
      const message = await alert.textContent();
      facts.hostileImages[name] = message;
      assert.equal(message, `${name}: the image is 60000×60000 (3600 megapixels); Keyshift reads images up to 64 megapixels and 16384 pixels a side`);
      assert.equal(await byId(page, 'init-preview').getAttribute('src'), preview, `${name} replaced the init image`);
      // A good image clears the message; the next case starts from it.
      await byId(page, 'init-image').setInputFiles({ name: 'good.png', mimeType: 'image/png', buffer: good });
      await alert.waitFor({ state: 'detached', timeout: 30_000 });
      preview = await byId(page, 'init-preview').getAttribute('src');
    }
    for (const [name, buffer] of [['garbage.png', Buffer.from('this is not an image at all')], ['cut.png', good.subarray(0, good.length / 2)]]) {
      await byId(page, 'init-image').setInputFiles({ name, mimeType: 'image/png', buffer });
      await alert.waitFor({ timeout: 30_000 });
      facts.hostileImages[name] = await alert.textContent();
      assert.equal(facts.hostileImages[name], `${name}: the browser cannot decode this file as an image`);
      assert.equal(await byId(page, 'init-preview').getAttribute('src'), preview, `${name} replaced the init image`);
      await byId(page, 'init-image').setInputFiles({ name: 'good.png', mimeType: 'image/png', buffer: good });
      await alert.waitFor({ state: 'detached', timeout: 30_000 });
      preview = await byId(page, 'init-preview').getAttribute('src');
    }
    assert.equal(await byId(page, 'init-strength').inputValue(), '0.75');
    assert.deepEqual(errors, []);
  });
});

/** A WebM of one VP8 track whose header claims `width`×`height`, with one (garbage) frame. */
function webmClaiming(width, height) {
  const size = (n) => [0x01, 0, ...[40, 32, 24, 16, 8, 0].map((s) => Number((BigInt(n) >> BigInt(s)) & 0xffn))];
  const uint = (n) => { const out = []; do { out.unshift(n & 0xff); n = Math.floor(n / 256); } while (n > 0); return out; };
  const el = (id, data) => [...id, ...size(data.length), ...data];
  const ebml = el([0x1a, 0x45, 0xdf, 0xa3], [...el([0x42, 0x86], [1]), ...el([0x42, 0x82], [...Buffer.from('webm')])]);
  const video = el([0xe0], [...el([0xb0], uint(width)), ...el([0xba], uint(height))]);
  const entry = el([0xae], [...el([0xd7], [1]), ...el([0x83], [1]), ...el([0x86], [...Buffer.from('V_VP8')]), ...video]);
  const cluster = el([0x1f, 0x43, 0xb6, 0x75], [...el([0xe7], [0]), ...el([0xa3], [0x81, 0, 0, 0x80, ...Buffer.alloc(32, 0x5a)])]);
  const segment = el([0x18, 0x53, 0x80, 0x67], [...el([0x15, 0x49, 0xa9, 0x66], el([0x2a, 0xd7, 0xb1], uint(1_000_000))),
    ...el([0x16, 0x54, 0xae, 0x6b], entry), ...cluster]);
  return Buffer.from([...ebml, ...segment]);
}

/** A WAV header (8 kHz, mono, 16-bit) whose data chunk claims 4 GiB: 74 hours. */
function wavClaimingHours() {
  const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return [...b]; };
  return Buffer.from([...Buffer.from('RIFF'), ...u32(0xffffffff), ...Buffer.from('WAVEfmt '), ...u32(16), 1, 0, 1, 0,
    ...u32(8000), ...u32(16000), 2, 0, 16, 0, ...Buffer.from('data'), ...u32(0xffffffff), ...Buffer.alloc(64)]);
}

/** A sparse file of `bytes` (nothing written: only its size is read). */
function sparseFile(dir, name, bytes) {
  const path = join(dir, name);
  writeFileSync(path, '');
  truncateSync(path, bytes);
  return path;
}

test('hostile videos, audio and files: a WebM claiming 60000×60000 frames, garbage video, a WAV claiming 74 hours, and files over their size limits (video, audio, project, Parseq document) are refused by name before they are read or decoded; the project stays', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'keyshift-hostile-'));
  const MiB = 1 << 20;
  try {
    await withBrowser(async ({ page, errors }) => {
      await page.goto(BASE);
      await byId(page, 'prompt').fill('kept (fox:1~0)');
      await byId(page, 'mode-picker').selectOption('video');
      const renderError = async (expected) => {
        await page.waitForFunction((t) => document.querySelector('[data-testid="render-error"]')?.textContent === t,
          expected, { timeout: 60_000 });
        return expected;
      };
      facts.hostileMedia = {};
      await byId(page, 'video-input').setInputFiles({ name: 'huge.webm', mimeType: 'video/webm', buffer: webmClaiming(60000, 60000) });
      facts.hostileMedia.webm = await renderError('huge.webm: the video\'s frames are 60000×60000; Keyshift reads frames up to 64 megapixels and 16384 pixels a side');
      await byId(page, 'video-input').setInputFiles({ name: 'garbage.webm', mimeType: 'video/webm', buffer: Buffer.from('not a video, not at all') });
      facts.hostileMedia.garbage = await renderError('garbage.webm: the browser cannot play this file as a video');
      await byId(page, 'video-input').setInputFiles(sparseFile(dir, 'long.webm', 600 * MiB));
      facts.hostileMedia.bigVideo = await renderError('long.webm: the file is 600 MiB; videos of up to 512 MiB are read');
      assert.match(await text(page, 'video-summary'), /^(?!long|huge|garbage)/, 'no video was taken');
      // Audio (Parseq's audio panel) and a Parseq document.
      await byId(page, 'mode-picker').selectOption('parseq');
      await byId(page, 'cell-40-zoom').waitFor();
      const parseqError = async (expected) => {
        await page.waitForFunction((t) => document.querySelector('[data-testid="parseq-error"]')?.textContent === t,
          expected, { timeout: 60_000 });
        return expected;
      };
      await byId(page, 'audio-load').setInputFiles({ name: 'hours.wav', mimeType: 'audio/wav', buffer: wavClaimingHours() });
      facts.hostileMedia.wav = await parseqError('hours.wav: the audio lasts 268435 s; audio of up to 1200 s (20 minutes) is analysed');
      await byId(page, 'audio-load').setInputFiles(sparseFile(dir, 'big.ogg', 300 * MiB));
      facts.hostileMedia.bigAudio = await parseqError('big.ogg: the file is 300 MiB; audio files of up to 256 MiB are read');
      await byId(page, 'parseq-import').setInputFiles(sparseFile(dir, 'big.json', 65 * MiB));
      facts.hostileMedia.bigDocument = await parseqError('big.json: the file is 65 MiB; project files and PNGs of up to 64 MiB are read');
      assert.equal(await byId(page, 'cell-40-zoom').count(), 1, 'the open document stays');
      // A project file of 65 MiB dropped on the page.
      await page.evaluate((bytes) => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([new Uint8Array(bytes)], 'big.keyshift', { type: 'text/plain' }));
        window.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
      }, 65 * MiB);
      await byId(page, 'link-error').waitFor({ timeout: 30_000 });
      facts.hostileMedia.bigProject = await text(page, 'link-error');
      assert.match(facts.hostileMedia.bigProject, /big\.keyshift: nothing was opened; the open project stays\..*the file is 65 MiB; project files and PNGs of up to 64 MiB are read/s);
      assert.equal(await byId(page, 'prompt').inputValue(), 'kept (fox:1~0)');
      assert.equal(await byId(page, 'mode-picker').inputValue(), 'parseq');
      assert.deepEqual(errors, []);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('img2img in the Generate card: a picked init image and strength draw what the CLI draws', async () => {
  assert.ok(CLI, 'KEYSHIFT_CLI (the native keyshift binary) is not set');
  const dir = mkdtempSync(join(tmpdir(), 'keyshift-img2img-'));
  try {
    const init = join(dir, 'init.png');
    const made = spawnSync(CLI, ['generate', '--model', FIXTURE, '--prompt', 'a red square', '--size', '64x64',
      '--steps', '2', '--seed', '7', '--sampler', 'Euler', '--out', init], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const out = join(dir, 'cli.png');
    const run = spawnSync(CLI, ['generate', '--model', FIXTURE, '--prompt', SETTINGS.prompt, '--negative', SETTINGS.negative,
      '--size', '64x64', '--steps', SETTINGS.steps, '--cfg', SETTINGS.cfg, '--seed', SETTINGS.seed, '--sampler', SETTINGS.sampler,
      '--init', init, '--strength', '0.5', '--out', out], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    await withBrowser(async ({ page, errors }) => {
      await page.goto(BASE);
      // On the CPU backend (about 30× faster than SwiftShader's WebGPU here): the init image is the subject.
      assert.match(await loadModel(page, { backend: 'cpu' }), /^Ready: .*on CPU/);
      await setProject(page, SETTINGS);
      await byId(page, 'init-image').setInputFiles(init);
      await byId(page, 'init-strength').waitFor();
      assert.equal(await byId(page, 'init-strength').inputValue(), '0.75');
      await byId(page, 'init-strength').fill('0.5');
      await byId(page, 'init-strength').press('Tab');
      const src = await generateImage(page);
      const diff = compare(await pixels(page, src), await pixels(page, `data:image/png;base64,${readFileSync(out).toString('base64')}`));
      facts.img2imgCpuVsCli = diff;
      assert.ok(diff.max <= 2 && diff.mean < 0.05, `img2img differs from the CLI's: ${JSON.stringify(diff)}`);
      const text2img = compare(await pixels(page, src), await pixels(page, cliImage()));
      assert.ok(text2img.mean > 1, 'the init image changed the result');
      await byId(page, 'init-clear').click();
      assert.equal(await byId(page, 'init-strength').count(), 0);
      assert.deepEqual(errors, []);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ControlNet: the tiny ControlNet loads in the Generate card and guides an image by a control image\'s canny edges, as the CLI does', async () => {
  assert.ok(CLI, 'KEYSHIFT_CLI (the native keyshift binary) is not set');
  const dir = mkdtempSync(join(tmpdir(), 'keyshift-controlnet-'));
  const controlnet = join(FIXTURE, '..', '..', 'tiny-controlnet', 'diffusers');
  try {
    const control = join(dir, 'control.png');
    const made = spawnSync(CLI, ['generate', '--model', FIXTURE, '--prompt', 'a red square', '--size', '64x64',
      '--steps', '2', '--seed', '7', '--sampler', 'Euler', '--out', control], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const out = join(dir, 'cli.png');
    const run = spawnSync(CLI, ['generate', '--model', FIXTURE, '--prompt', SETTINGS.prompt, '--negative', SETTINGS.negative,
      '--size', '64x64', '--steps', SETTINGS.steps, '--cfg', SETTINGS.cfg, '--seed', SETTINGS.seed, '--sampler', SETTINGS.sampler,
      '--controlnet', controlnet, '--hint', 'canny', '--control-image', control, '--control-scale', '0.8', '--guess-mode',
      '--out', out], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    await withBrowser(async ({ page, errors }) => {
      await page.goto(BASE);
      // On the CPU backend (about 30× faster than SwiftShader's WebGPU here): the ControlNet's guidance is the subject.
      assert.match(await loadModel(page, { backend: 'cpu' }), /^Ready: .*on CPU/);
      await setProject(page, SETTINGS);
      await page.locator('[data-testid="controlnet-panel"] > summary').click();
      await byId(page, 'controlnet-choice').selectOption({ label: 'tiny test ControlNet (random weights)' });
      await byId(page, 'controlnet-load').click();
      // The weight is typed while the ControlNet loads and committed only after the worker's
      // messages (loaded, the cache listing) have updated the page: typing is never reset by them.
      await byId(page, 'controlnet-scale').fill('0.8');
      await page.waitForFunction(() => /ready in/.test(document.querySelector('[data-testid="controlnet-status"]')?.textContent ?? ''),
        null, { timeout: 120_000 });
      await page.waitForTimeout(1000);
      assert.equal(await byId(page, 'controlnet-scale').inputValue(), '0.8', 'the typed control weight was reset by a worker message');
      await byId(page, 'controlnet-scale').press('Tab');
      await byId(page, 'controlnet-guess').check();
      await byId(page, 'controlnet-image').setInputFiles(control);
      await page.getByText('Control image: control.png (64x64).').waitFor();
      const src = await generateImage(page);
      const diff = compare(await pixels(page, src), await pixels(page, `data:image/png;base64,${readFileSync(out).toString('base64')}`));
      facts.controlnetCpuVsCli = diff;
      assert.ok(diff.max <= 2 && diff.mean < 0.05, `the ControlNet image differs from the CLI's: ${JSON.stringify(diff)}`);
      const plain = compare(await pixels(page, src), await pixels(page, cliImage()));
      assert.ok(plain.mean > 1, `the ControlNet changed the image: ${JSON.stringify(plain)}`);
      await byId(page, 'controlnet-unload').click();
      await page.getByText('No ControlNet loaded.').waitFor();
      assert.deepEqual(errors, []);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Heatmaps: a chosen token\'s attention drawn over a tiny image (the CLI\'s), its opacity and PNG; the temporal panel in every mode, kept in the link', async () => {
  assert.ok(CLI, 'KEYSHIFT_CLI (the native keyshift binary) is not set');
  const dir = mkdtempSync(join(tmpdir(), 'keyshift-heatmap-'));
  try {
    const cliMap = join(dir, 'map.png');
    const run = spawnSync(CLI, ['generate', '--model', FIXTURE, '--prompt', SETTINGS.prompt,
      '--negative', SETTINGS.negative, '--size', `${SETTINGS.width}x${SETTINGS.height}`,
      '--steps', SETTINGS.steps, '--cfg', SETTINGS.cfg, '--seed', SETTINGS.seed, '--sampler', SETTINGS.sampler,
      '--out', join(dir, 'image.png'), '--heatmap-tokens', '5', '--heatmap-out', cliMap], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    await withBrowser(async ({ page, errors }) => {
      await page.goto(BASE);
      // On the CPU backend (about 30× faster than SwiftShader's WebGPU here): the map and its controls are the subject
      // (the VXA test reads the same attention taps on WebGPU).
      assert.match(await loadModel(page, { backend: 'cpu' }), /^Ready: .*on CPU/);
      await setProject(page, SETTINGS);
      await byId(page, 'token-picker').locator('summary').click();
      // "a photo of a cat": position 5 is "cat" (0 is the start token).
      const cat = page.locator('[data-testid="token-chip"][data-index="5"]');
      await cat.waitFor();
      assert.match(await cat.textContent(), /cat/);
      assert.ok(await page.locator('[data-testid="token-chip"][data-index="0"]').isDisabled(), 'the start token is not a choice');
      await cat.click();
      assert.match(await cat.getAttribute('class'), /chosen/);
      await generateImage(page);
      await byId(page, 'heatmap-overlay').waitFor();
      await byId(page, 'heatmap-opacity').fill('0.8');
      assert.equal(await byId(page, 'heatmap-overlay').evaluate((e) => e.style.opacity), '0.8');
      await byId(page, 'heatmap-opacity').fill('0.5');
      const saved = await download(page, 'heatmap-save');
      const drawn = await pixels(page, `data:image/png;base64,${saved.bytes.toString('base64')}`);
      const diff = compare(drawn, await pixels(page, `data:image/png;base64,${readFileSync(cliMap).toString('base64')}`));
      facts.heatmapCpuVsCli = diff;
      assert.ok(diff.max <= 3 && diff.mean < 0.5, `the heatmap differs from the CLI's: ${JSON.stringify(diff)}`);
      const plain = compare(drawn, await pixels(page, await byId(page, 'result-image').getAttribute('src')));
      assert.ok(plain.mean > 5, 'the colour map is drawn over the image');
      // The temporal panel: in each animation mode, its settings go into the link.
      for (const mode of ['shift-attention', 'prompt-travel', 'parseq']) {
        await byId(page, 'mode-picker').selectOption(mode);
        await byId(page, 'temporal-panel').waitFor();
      }
      await byId(page, 'mode-picker').selectOption('shift-attention');
      await byId(page, 'temporal-panel').locator('summary').click();
      await byId(page, 'temporal-interp').check();
      await byId(page, 'temporal-ema').fill('0.5');
      await byId(page, 'temporal-ema').press('Tab');
      await byId(page, 'temporal-use-value').check();
      await byId(page, 'temporal-colour').selectOption('hsv');
      assert.match(await byId(page, 'temporal-panel').locator('summary').textContent(), /attention interpolation, HSV colour matching/);
      await page.waitForTimeout(300);
      const url = page.url();
      const reopened = await page.context().newPage();
      await reopened.goto(url);
      await byId(reopened, 'temporal-panel').locator('summary').click();
      assert.ok(await byId(reopened, 'temporal-interp').isChecked());
      assert.equal(await byId(reopened, 'temporal-ema').inputValue(), '0.5');
      assert.ok(await byId(reopened, 'temporal-use-value').isChecked());
      assert.equal(await byId(reopened, 'temporal-colour').inputValue(), 'hsv');
      await reopened.close();
      assert.deepEqual(errors, []);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Heatmaps for animations: a chosen token gives every shift-attention frame its heatmap in the strip and over the player, exported as a zip of PNGs', async () => {
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    // On the CPU backend (about 30× faster than SwiftShader's WebGPU here): the per-frame maps are the subject (VXA's maps run on WebGPU).
    assert.match(await loadModel(page, { backend: 'cpu' }), /^Ready: .*on CPU/);
    await setAnimation(page);
    // A shorter run than the shift-attention test's: 3 frames of 2 steps.
    const frames = 3;
    for (const [id, value] of [['shift-steps', String(frames - 1)], ['steps', '2']]) {
      await byId(page, id).fill(value);
      await byId(page, id).press('Tab');
    }
    await byId(page, 'token-picker').locator('summary').click();
    const cat = page.locator('[data-testid="token-chip"]').filter({ hasText: 'cat' }).first();
    await cat.waitFor();
    await cat.click();
    await byId(page, 'render').click();
    await waitForFrames(page, frames);
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="frame-heatmap"]').length >= n,
      frames, { timeout: GPU_TIMEOUT_MS });
    await page.waitForFunction(() => !document.querySelector('[data-testid="export-webm"]')?.disabled,
      null, { timeout: GPU_TIMEOUT_MS });
    await byId(page, 'player-heatmap').waitFor();
    await byId(page, 'player-heatmap-opacity').fill('0.8');
    assert.equal(await byId(page, 'player-heatmap').evaluate((e) => e.style.opacity), '0.8');
    // Each frame's map differs from the others' (the token's weight shifts from 1.5 to 0.2).
    const maps = await page.locator('[data-testid="frame-heatmap"]').evaluateAll((imgs) => imgs.map((i) => i.src));
    const first = await pixels(page, maps[0]);
    const last = await pixels(page, maps[maps.length - 1]);
    assert.ok(compare(first, last).mean > 0, 'the maps of the first and last frames differ');
    const zip = await exportFile(page, 'export-heatmaps');
    assert.match(zip.name, /-heatmaps\.zip$/);
    const files = zipFiles(zip.bytes);
    const names = [...files.keys()];
    assert.equal(names.length, 2 * frames, `every video frame (mirrored): ${names}`);
    assert.equal(names[0], 'heatmap-00000.png');
    const frame = await page.locator('[data-testid="frame-strip"] [data-testid="frame"] img').first().getAttribute('src');
    const drawn = await pixels(page, `data:image/png;base64,${files.get('heatmap-00000.png').toString('base64')}`);
    const over = compare(drawn, await pixels(page, frame));
    facts.animationHeatmapOverFrame = over;
    assert.ok(over.mean > 1, `the heatmap is drawn over the frame: ${JSON.stringify(over)}`);
    assert.deepEqual(errors, []);
  });
});

test('VXA: the attention probe of an uploaded PNG equals the CLI\'s keyshift heatmap', async () => {
  assert.ok(CLI, 'KEYSHIFT_CLI (the native keyshift binary) is not set');
  const dir = mkdtempSync(join(tmpdir(), 'keyshift-vxa-'));
  try {
    const image = join(dir, 'in.png');
    const made = spawnSync(CLI, ['generate', '--model', FIXTURE, '--prompt', 'a red square', '--size', '64x64',
      '--steps', '2', '--seed', '7', '--sampler', 'Euler', '--out', image], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const out = join(dir, 'vxa.png');
    const run = spawnSync(CLI, ['heatmap', '--model', FIXTURE, '--image', image, '--prompt', SETTINGS.prompt,
      '--out', out], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    await withBrowser(async ({ page, errors }) => {
      await page.goto(BASE);
      assert.match(await loadModel(page), /^Ready/);
      await setProject(page, SETTINGS);
      await byId(page, 'vxa').locator('summary').click();
      await byId(page, 'vxa-image').setInputFiles(image);
      assert.match(await byId(page, 'vxa-layer').inputValue(), /^mid_block/);
      await page.waitForFunction(() => !document.querySelector('[data-testid="vxa-run"]')?.disabled);
      await byId(page, 'vxa-run').click();
      await byId(page, 'vxa-result').waitFor({ timeout: GPU_TIMEOUT_MS });
      const diff = compare(await pixels(page, await byId(page, 'vxa-result').getAttribute('src')),
        await pixels(page, `data:image/png;base64,${readFileSync(out).toString('base64')}`));
      facts.vxaWebgpuVsCli = diff;
      assert.ok(diff.max <= 3 && diff.mean < 0.2, `the probe differs from the CLI's: ${JSON.stringify(diff)}`);
      assert.match(await byId(page, 'vxa').locator('figcaption').textContent(), /middle_block\.1\.transformer_blocks\.0\.attn2/);
      assert.deepEqual(errors, []);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Video input: a WebM\'s frames read in the browser, 3 rendered as img2img with attention interpolation, exported as WebM', async () => {
  const video = join(FIXTURE, '..', '..', 'video', 'tiny-6f-10fps.webm');
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    // On the CPU backend (about 30× faster than SwiftShader's WebGPU here): reading the video and temporal blending are the subject.
    assert.match(await loadModel(page, { backend: 'cpu' }), /^Ready: .*on CPU/);
    await setProject(page, { ...SETTINGS, steps: '4', sampler: 'DDIM' });
    await byId(page, 'mode-picker').selectOption('video');
    for (const [id, value] of [['video-fps', '10'], ['video-count', '3'], ['video-denoise', '0.6']]) {
      await byId(page, id).fill(value);
      await byId(page, id).press('Tab');
    }
    await byId(page, 'video-input').setInputFiles(video);
    await page.waitForFunction(() => /3 frames to render/.test(document.querySelector('[data-testid="video-summary"]')?.textContent ?? ''));
    assert.match(await text(page, 'video-summary'), /^tiny-6f-10fps\.webm: 64x64, 0\.6\d* s/);
    await byId(page, 'temporal-panel').locator('summary').click();
    await byId(page, 'temporal-interp').check();
    await byId(page, 'render').click();
    await waitForFrames(page, 3);
    await page.waitForFunction(() => !document.querySelector('[data-testid="export-webm"]')?.disabled,
      null, { timeout: GPU_TIMEOUT_MS });
    // Chromium has WebCodecs: the WebM is demuxed in Rust and decoded by its VideoDecoder.
    assert.match(await text(page, 'video-summary'), /frames read by WebCodecs$/);
    facts.videoTemporalStorage = await text(page, 'temporal-storage');
    assert.match(facts.videoTemporalStorage, /^Kept for the previous frame on the compute device: [\d.]+ (KB|MB)$/);
    const strip = page.locator('[data-testid="frame-strip"] [data-testid="frame"] img');
    assert.equal(await strip.count(), 3);
    const first = await pixels(page, await strip.nth(0).getAttribute('src'));
    const second = await pixels(page, await strip.nth(1).getAttribute('src'));
    assert.equal(`${first.width}x${first.height}`, '64x64');
    assert.ok(compare(first, second).mean > 0.5, 'the frames follow the video');
    const webm = await exportFile(page, 'export-webm');
    const summary = webmSummary(webm.bytes);
    assert.equal(summary.blocks, 3);
    facts.videoWebm = { bytes: webm.bytes.length, ...summary };
    assert.deepEqual(errors, []);
  });
});

test('Parseq benchmark: one keystroke in a 10,000-frame, 20-field document updates grid, graph and values (Performance API)', async () => {
  assert.ok(CLI, 'KEYSHIFT_CLI (the native keyshift binary) is not set');
  const dir = mkdtempSync(join(tmpdir(), 'keyshift-bench-doc-'));
  try {
    const file = join(dir, 'bench.json');
    const made = spawnSync(CLI, ['bench', 'sequencer', '--document', file], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    await withBrowser(async ({ page, errors }) => {
      await page.goto(BASE);
      await byId(page, 'mode-picker').selectOption('parseq');
      await byId(page, 'parseq-import').setInputFiles(file);
      await byId(page, 'cell-100-strength').waitFor();
      // Each keystroke starts right after a frame (so that no unrelated frame falls inside it):
      // its main-thread time is the input handler and the reactive updates it causes, until a
      // message posted after them arrives. The frame that follows is timed too, against a frame
      // after no keystroke (headless Chromium spends a few ms on every frame).
      const timing = await page.evaluate(async () => {
        const message = () => new Promise((r) => { const c = new MessageChannel(); c.port1.onmessage = r; c.port2.postMessage(0); });
        const afterFrame = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
        const nextFrame = async () => {
          await new Promise((r) => requestAnimationFrame(r));
          const t = performance.now();
          await message();
          return performance.now() - t;
        };
        const keystroke = [];
        const frame = [];
        const idle = [];
        for (let i = 0; i < 24; i += 1) {
          await afterFrame();
          idle.push(await nextFrame());
          await afterFrame();
          const input = document.querySelector('[data-testid="cell-100-strength"]');
          const path = document.querySelector('[data-testid="curve-strength"]')?.getAttribute('d');
          const t0 = performance.now();
          input.value = `1.${i + 1}`;
          input.dispatchEvent(new Event('input', { bubbles: true }));
          await message();
          keystroke.push(performance.now() - t0);
          if (document.querySelector('[data-testid="curve-strength"]')?.getAttribute('d') === path) throw new Error('the graph did not follow');
          frame.push(await nextFrame());
        }
        return { keystroke, frame, idle };
      });
      const stats = (xs) => {
        const sorted = [...xs].sort((a, b) => a - b);
        return { median: Number(sorted[Math.floor(sorted.length / 2)].toFixed(2)), max: Number(sorted[sorted.length - 1].toFixed(2)) };
      };
      facts.parseqKeystrokeMs = stats(timing.keystroke);
      facts.parseqFrameAfterKeystrokeMs = stats(timing.frame);
      facts.parseqIdleFrameMs = stats(timing.idle);
      // The 10,000-frame document's link is long: the share card says so and offers the file.
      await page.waitForTimeout(600);
      facts.parseqBenchLinkChars = (await byId(page, 'share-link').inputValue()).length;
      if (facts.parseqBenchLinkChars > 32_000) await byId(page, 'share-too-long').waitFor();
      assert.deepEqual(errors, []);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Soak (KEYSHIFT_SOAK=1 registers it; minutes long, so not part of CI): 200 generations, then a
// 500-frame animation, in one page, on WebGPU or (KEYSHIFT_SOAK_BACKEND=cpu) the browser's CPU
// backend, where SwiftShader's WebGPU is too slow for the full counts. The worker's live heap and
// its live GPU buffers (made, less destroyed or garbage-collected, after a forced collection) are
// sampled as they go (the loader script's `keyshiftSoak` hook); after a warm-up both must stay at
// their level, and the curves go to the facts for the report.
if (process.env.KEYSHIFT_SOAK) test('soak: 200 generations and a 500-frame animation in one page; the worker heap and GPU buffers return to their baseline', async () => {
  const generations = Number(process.env.KEYSHIFT_SOAK_GENERATIONS ?? 200);
  const frames = Number(process.env.KEYSHIFT_SOAK_FRAMES ?? 500);
  const backend = process.env.KEYSHIFT_SOAK_BACKEND ?? 'webgpu';
  await withBrowser(async ({ page, errors }) => {
    await page.goto(BASE);
    assert.match(await loadModel(page, { backend }), backend === 'cpu' ? /^Ready: .*on CPU/ : /^Ready: .*on WebGPU/);
    facts.soakBackend = backend;
    await setProject(page, { ...SETTINGS, steps: '2' });
    const sample = () => page.workers()[0].evaluate(() => self.keyshiftSoak());
    assert.ok((await sample()).gcForced, 'the soak needs V8\'s gc exposed in the worker');
    const curve = [];
    const started = Date.now();
    for (let i = 1; i <= generations; i += 1) {
      // A new seed each time: the same image again would leave the result's data URL unchanged.
      await byId(page, 'seed').fill(String(1000 + i));
      await byId(page, 'seed').press('Tab');
      await generateImage(page);
      curve.push({ generation: i, ...(await sample()) });
    }
    facts.soakGenerationSeconds = (Date.now() - started) / 1000;
    const warm = curve[Math.min(4, curve.length - 1)];
    const last = curve[curve.length - 1];
    facts.soakGenerations = curve.filter((c) => c.generation === 1 || c.generation % 20 === 0 || c === warm);
    // Every generation after which the count of live GPU buffers changed.
    facts.soakGpuBufferChanges = curve.filter((c, i) => i > 0 && c.gpuBuffersLive !== curve[i - 1].gpuBuffersLive)
      .map((c) => [c.generation, c.gpuBuffersLive]);
    assert.ok(last.heapLiveBytes <= warm.heapLiveBytes + (1 << 20), `heap grew over ${generations} generations: ${warm.heapLiveBytes} → ${last.heapLiveBytes}`);
    assert.ok(last.gpuBuffersLive <= warm.gpuBuffersLive, `GPU buffers grew over ${generations} generations: ${warm.gpuBuffersLive} → ${last.gpuBuffersLive}`);
    // Engine tensors on the device (cubecl's live allocations and their bytes) come back exactly;
    // its pool pages (the GPU buffers) are kept for reuse and do not grow.
    if (backend !== 'cpu') {
      assert.equal(last.gpuAllocations, warm.gpuAllocations, 'device allocations after the generations');
      assert.equal(last.gpuBytesInUse, warm.gpuBytesInUse, 'device bytes in use after the generations');
      assert.ok(last.gpuBytesReserved <= warm.gpuBytesReserved, `device pool grew: ${warm.gpuBytesReserved} → ${last.gpuBytesReserved}`);
    }
    // The animation: one step a frame at CFG 1; sampled every few seconds while it renders. An
    // eight-frame render of the same prompt first sets the baseline: its encodings stay in the
    // text encoder's cache (at most 32 rows), and the pool gains pages for the shapes of a full
    // batch of frames (four to a UNet call).
    await setProject(page, { ...SETTINGS, steps: '1', cfg: '1', prompt: 'a (cat:1~0)' });
    await byId(page, 'mode-picker').selectOption('shift-attention');
    const renderShift = async (n) => {
      await byId(page, 'shift-steps').fill(String(n - 1));
      await byId(page, 'shift-steps').press('Tab');
      await byId(page, 'render').click();
    };
    const rendered = (n) => page.waitForFunction((k) => new RegExp(`^${k} frames rendered`).test(document.querySelector('[data-testid="render-status"]')?.textContent ?? ''),
      n, { timeout: GPU_TIMEOUT_MS });
    await renderShift(8);
    await rendered(8);
    const before = await sample();
    const animation = [{ frames: 0, ...before }];
    const t0 = Date.now();
    await renderShift(frames);
    let done = 0;
    while (done < frames) {
      await page.waitForTimeout(5000);
      assert.equal(await byId(page, 'render-error').count(), 0, 'the render failed');
      done = await frameCount(page);
      animation.push({ frames: done, ...(await sample()) });
    }
    await rendered(frames);
    const after = await sample();
    animation.push({ frames, ...after });
    facts.soakAnimationSeconds = (Date.now() - t0) / 1000;
    const step = Math.max(1, Math.floor(animation.length / 12));
    facts.soakAnimation = animation.filter((_, i) => i % step === 0 || i === animation.length - 1);
    const peak = Math.max(...animation.map((a) => a.heapLiveBytes));
    facts.soakAnimationHeapPeak = peak;
    assert.ok(after.heapLiveBytes <= before.heapLiveBytes + (1 << 20), `heap after the animation: ${before.heapLiveBytes} → ${after.heapLiveBytes}`);
    assert.ok(after.gpuBuffersLive <= before.gpuBuffersLive, `GPU buffers after the animation: ${before.gpuBuffersLive} → ${after.gpuBuffersLive}`);
    if (backend !== 'cpu') {
      assert.equal(after.gpuAllocations, before.gpuAllocations, 'device allocations after the animation');
      assert.equal(after.gpuBytesInUse, before.gpuBytesInUse, 'device bytes in use after the animation');
      assert.ok(after.gpuBytesReserved <= before.gpuBytesReserved, `device pool grew over the animation: ${before.gpuBytesReserved} → ${after.gpuBytesReserved}`);
    }
    assert.deepEqual(errors, []);
  });
});

let passed = 0;
let failed = 0;
const only = process.env.KEYSHIFT_E2E_ONLY;
const selected = tests.filter((t) => !only || only.split('|').some((o) => t.name.includes(o)));
// A filter that selects nothing (or one of its parts that matches no test) is a mistake, not a pass.
const unmatched = only ? only.split('|').filter((o) => !tests.some((t) => t.name.includes(o))) : [];
if (selected.length === 0 || unmatched.length > 0) {
  console.log(`FAILED - KEYSHIFT_E2E_ONLY=${JSON.stringify(only)} matches no test for ${JSON.stringify(unmatched)}`);
  process.exit(1);
}
// Lanes: `cargo xtask test` runs this file in several processes at once, each with
// `KEYSHIFT_E2E_SHARD=k/n` and its own server; each takes its share of the selected tests,
// balanced by the previous run's times (`KEYSHIFT_E2E_TIMES`), and writes its own times to
// `KEYSHIFT_E2E_TIMES_OUT`.
function readTimes(file) {
  try { return JSON.parse(readFileSync(file, 'utf8')); } catch { return {}; }
}
function share(list, shard, times) {
  const [k, n] = shard.split('/').map(Number);
  if (!(n >= 1 && k >= 0 && k < n)) throw new Error(`KEYSHIFT_E2E_SHARD=${shard}: expected k/n with 0 ≤ k < n`);
  const cost = (t) => times[t.name] ?? 60_000;
  const load = new Array(n).fill(0);
  const lane = new Map();
  [...list].sort((a, b) => cost(b) - cost(a)).forEach((t) => {
    const least = load.indexOf(Math.min(...load));
    load[least] += cost(t);
    lane.set(t, least);
  });
  return list.filter((t) => lane.get(t) === k);
}
const shard = process.env.KEYSHIFT_E2E_SHARD;
const mine = shard ? share(selected, shard, readTimes(process.env.KEYSHIFT_E2E_TIMES)) : selected;
if (shard) console.log(`lane ${shard}: ${mine.length} of ${selected.length} tests`);
const took = {};
for (const { name, fn } of mine) {
  const start = Date.now();
  try {
    await fn();
    passed += 1;
    console.log(`ok - ${name} (${Date.now() - start} ms)`);
  } catch (error) {
    failed += 1;
    console.log(`FAILED - ${name} (${Date.now() - start} ms)\n  ${String(error?.stack ?? error).split('\n').join('\n  ')}`);
  }
  took[name] = Date.now() - start;
}
if (process.env.KEYSHIFT_E2E_TIMES_OUT) writeFileSync(process.env.KEYSHIFT_E2E_TIMES_OUT, JSON.stringify(took));
const probes = cspViolations.filter((v) => String(v.sample ?? '').includes(TT_PROBE));
const violations = cspViolations.filter((v) => !probes.includes(v));
facts.cspViolations = violations.length;
facts.trustedTypesProbeViolations = probes.length;
if (violations.length > 0) {
  failed += 1;
  console.log(`FAILED - Content-Security-Policy violations across the suite: ${JSON.stringify(violations.slice(0, 10))}`);
}
console.log(`e2e facts: ${JSON.stringify(facts)}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
