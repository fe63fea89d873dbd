// dist/ is committed so that a page can load the client without a build step: it must be what src/ builds to.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { expect, it } from "vitest";

const here = resolve(__dirname, "..");

it("the committed dist/ is what src/ builds to (run `npm run build` and commit it)", () => {
  const out = mkdtempSync(join(tmpdir(), "hapta-dist-"));
  try {
    execFileSync(process.execPath, [join(here, "build.mjs"), "--out", out], { stdio: "pipe" });
    for (const file of ["hapta.js", "hapta.d.ts"]) {
      const built = readFileSync(join(out, file), "utf8");
      const committed = readFileSync(join(here, "dist", file), "utf8");
      expect(committed === built, `dist/${file} is stale`).toBe(true);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}, 60_000);

it("the built file has no imports: a page can load it as it is", async () => {
  const built = readFileSync(join(here, "dist", "hapta.js"), "utf8");
  expect(built).not.toMatch(/^\s*import\s/m);
  const module = await import(join(here, "dist", "hapta.js"));
  expect(Object.keys(module).sort()).toEqual(["Channel", "Hapta", "HaptaError", "Records", "backoffDelay"]);
});
