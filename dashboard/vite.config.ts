// The dashboard's build: into the Python package (hapta/dashboard/), committed, so that `hapta serve` and the
// single binary serve it without Node. The gateway's Content-Security-Policy allows scripts and styles from 'self'
// only, so nothing may be inlined: no module-preload polyfill (an inline script), no data: assets.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/_/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "../hapta/dashboard",
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    cssCodeSplit: false,
    sourcemap: false,
    reportCompressedSize: false,
  },
  // The client is the repository's own (clients/js/src): Vite may read outside this folder for it.
  server: { fs: { allow: [".."] } },
});
