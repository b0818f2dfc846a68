// Keyshift boot script (a template: `cargo xtask build` fills in the file names and hashes the file).
// Loads the app module, then registers the service worker and drives its update prompt.
import init, { start } from './{{app_js}}';

await init({ module_or_path: new URL('./{{app_wasm}}', import.meta.url) });
start();

if ('serviceWorker' in navigator) {
  const announce = () => {
    window.keyshiftUpdateWaiting = true;
    window.dispatchEvent(new Event('keyshift:update'));
  };
  navigator.serviceWorker.register('/sw.js').then((registration) => {
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
