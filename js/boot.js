// Keyshift boot script (a template: `cargo xtask build` fills in the file names and hashes the file).
// Loads the app module, then registers the service worker and drives its update prompt.
import init, { start } from './{{app_js}}';

// The page's CSP requires Trusted Types for script URLs: one policy, for this origin's own scripts
// (the compute worker, the service worker). The app asks for it through keyshiftTrustedScriptURL.
const policy = window.trustedTypes?.createPolicy('keyshift', {
  createScriptURL(url) {
    const parsed = new URL(url, document.baseURI);
    if (parsed.origin !== window.location.origin) {
      throw new TypeError(`Keyshift runs scripts from ${window.location.origin} only, not ${parsed.origin}`);
    }
    return parsed.href;
  },
});
window.keyshiftTrustedScriptURL = (url) => (policy ? policy.createScriptURL(url) : url);
// Leptos builds the static parts of views from compile-time HTML through innerHTML; Keyshift's
// own code never sets innerHTML (clippy refuses it), so no user text goes there. The default
// policy lets that static markup through and refuses anything that could run script.
// Inside a tag: an event handler attribute however it is separated, a script URL, a character
// reference (which could spell one) or a control character; anywhere: an element that loads or
// runs code.
const SCRIPT_CAPABLE = new RegExp([
  '<\\s*(script|iframe|object|embed|frame|frameset|base|meta|link|style)\\b',
  '<[^>]*([\\s/"\'=]on[a-z]+\\s*=|\\b(javascript|vbscript|data)\\s*:|&#|&(colon|tab|newline);|srcdoc|[\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f])',
].join('|'), 'i');
window.trustedTypes?.createPolicy('default', {
  createHTML: (html) => (SCRIPT_CAPABLE.test(html) ? null : html),
});

await init({ module_or_path: new URL('./{{app_wasm}}', import.meta.url) });
start();

if ('serviceWorker' in navigator) {
  const announce = () => {
    window.keyshiftUpdateWaiting = true;
    window.dispatchEvent(new Event('keyshift:update'));
  };
  navigator.serviceWorker.register(window.keyshiftTrustedScriptURL('/sw.js')).then((registration) => {
    if (registration.waiting && navigator.serviceWorker.controller) announce();
    registration.addEventListener('updatefound', () => {
      const incoming = registration.installing;
      if (!incoming) return;
      incoming.addEventListener('statechange', () => {
        // Only an update: the first install has no controller yet and needs no prompt.
        if (incoming.state === 'installed' && navigator.serviceWorker.controller) announce();
      });
    });
    window.keyshiftApplyUpdate = () => {
      window.keyshiftUpdateAccepted = true;
      if (registration.waiting) registration.waiting.postMessage({ type: 'SKIP_WAITING' });
    };
  }).catch((error) => console.warn('Keyshift: offline support is off:', error));
  navigator.serviceWorker.addEventListener('controllerchange', () => {
    // Reload only when the user accepted the update (not when the first worker takes control).
    if (window.keyshiftUpdateAccepted) window.location.reload();
  });
}
