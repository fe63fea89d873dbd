// Builds dist/hapta.js (one ES module, no dependencies) and dist/hapta.d.ts. `node build.mjs --out DIR` builds
// into DIR instead: the staleness test builds there and compares with the committed dist/.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import ts from "typescript";
import { joinDeclarations } from "./declarations.mjs";

const root = dirname(fileURLToPath(import.meta.url));
const at = process.argv.indexOf("--out");
const out = at > 0 ? process.argv[at + 1] : join(root, "dist");
mkdirSync(out, { recursive: true });

await build({
  entryPoints: [join(root, "src", "hapta.ts")],
  outfile: join(out, "hapta.js"),
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "neutral",
  legalComments: "none",
  banner: { js: "// @hapta/client (built from clients/js/src by build.mjs; do not edit)" },
});

// Declarations: tsc writes one per module; joinDeclarations makes them the one hapta.d.ts the package names, of what
// hapta.ts exports and what that mentions. The joined file must type-check on its own.
const types = mkdtempSync(join(tmpdir(), "hapta-types-"));
try {
  execFileSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", root,
    "--emitDeclarationOnly", "--outDir", types], { stdio: "inherit" });
  writeFileSync(join(out, "hapta.d.ts"), joinDeclarations(types, "hapta"));
} finally {
  rmSync(types, { recursive: true, force: true });
}
const checked = ts.createProgram([join(out, "hapta.d.ts")], {
  strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, lib: ["lib.es2022.d.ts", "lib.dom.d.ts"], types: [],
  skipDefaultLibCheck: true,
});
const problems = ts.getPreEmitDiagnostics(checked);
if (problems.length) {
  throw new Error("dist/hapta.d.ts does not type-check:\n" + ts.formatDiagnostics(problems, {
    getCanonicalFileName: (name) => name, getCurrentDirectory: () => root, getNewLine: () => "\n" }));
}
