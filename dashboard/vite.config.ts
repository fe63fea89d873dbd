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
  // `npm run dev`: the page from Vite, its socket passed on to a running gateway (HAPTA_GATEWAY, by default the one
  // `bin/hapta serve` starts), so the dev page is the same origin as its socket, as /_/ is. The client is the
  // repository's own (clients/js/src): Vite may read outside this folder for it.
  server: {
    fs: { allow: [".."] },
    proxy: { "/ws": { target: process.env.HAPTA_GATEWAY ?? "http://127.0.0.1:8080", ws: true } },
  },
});
