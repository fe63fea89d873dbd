// `npm run build` writes dist/, which `bin/hapta serve --static examples/react-feed/dist` serves (and which is
// committed: the example runs from a checkout without Node). `npm run dev` serves the sources with hot reload; set
// VITE_HAPTA_URL to the gateway's socket then (the built page talks to the gateway that serves it).
import { defineConfig } from "vite";

export default defineConfig({
  base: "./",
  esbuild: { jsx: "automatic" },   // React's JSX runtime, as the dashboard (Preact's) does
  // @hapta/react and @hapta/client are linked from clients/; React must be this app's one copy
  resolve: { dedupe: ["react", "react-dom", "@hapta/client"] },
  build: { outDir: "dist", emptyOutDir: true, assetsDir: "assets", chunkSizeWarningLimit: 300 },
});
