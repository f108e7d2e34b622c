import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

/**
 * `npm run build:dashboard`: the dashboard as static files in dist/dashboard/,
 * served by berth under /dashboard/ (src/dashboard/dashboard.controller.ts).
 * The tests build into a directory of their own with `--outDir`.
 */
export default defineConfig({
  root: fileURLToPath(new URL('./web/', import.meta.url)),
  base: '/dashboard/',
  // Preact's JSX runtime; no plugin needed for that.
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: fileURLToPath(new URL('../../dist/dashboard/', import.meta.url)),
    emptyOutDir: true,
    // Only files with a hash in their name, so berth can let browsers keep them for good.
    assetsInlineLimit: 0,
    // The CSP allows scripts of our own origin only; no inline polyfill.
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  logLevel: 'warn',
});
