// dist/ is committed, as clients/js's is, so that the example and a page without a build step use what src/ says:
// it must be what src/ builds to.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { expect, it } from "vitest";

const here = resolve(__dirname, "..");

it("the committed dist/ is what src/ builds to (run `npm run build` and commit it)", () => {
  const out = mkdtempSync(join(tmpdir(), "hapta-react-dist-"));
  try {
    execFileSync(process.execPath, [join(here, "build.mjs"), "--out", out], { stdio: "pipe" });
    for (const file of ["hapta-react.js", "hapta-react.d.ts"]) {
      const built = readFileSync(join(out, file), "utf8");
      const committed = readFileSync(join(here, "dist", file), "utf8");
      expect(committed === built, `dist/${file} is stale`).toBe(true);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}, 60_000);

it("the built file imports react alone (its peer; @hapta/client is only its types) and exports the hooks", async () => {
  const built = readFileSync(join(here, "dist", "hapta-react.js"), "utf8");
  const imported = [...built.matchAll(/^import .* from "([^"]+)";$/gm)].map((found) => found[1]);
  expect(new Set(imported)).toEqual(new Set(["react"]));
  const module = await import(join(here, "dist", "hapta-react.js"));
  expect(Object.keys(module).sort()).toEqual(["HaptaProvider", "keepLast", "pendingOf", "queryKey", "queryOptions",
    "recordOptions", "useChannel", "useConnectionState", "useHapta", "useMutation", "useQuery", "useRecord",
    "useSession"]);
});
