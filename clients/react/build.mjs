// Builds dist/hapta-react.js (one ES module that imports only react, its peer) and dist/hapta-react.d.ts, as
// clients/js builds its dist. `node build.mjs --out DIR` builds into DIR instead: the staleness test builds there
// and compares with the committed dist/.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import ts from "typescript";
import { joinDeclarations } from "../js/declarations.mjs";

const root = dirname(fileURLToPath(import.meta.url));
const at = process.argv.indexOf("--out");
const out = at > 0 ? process.argv[at + 1] : join(root, "dist");
mkdirSync(out, { recursive: true });

await build({
  entryPoints: [join(root, "src", "index.ts")],
  outfile: join(out, "hapta-react.js"),
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "neutral",
  external: ["react", "@hapta/client"],
  legalComments: "none",
  banner: { js: "// @hapta/react (built from clients/react/src by build.mjs; do not edit)" },
});

// Declarations: tsc writes one per module; clients/js's joinDeclarations makes them one file. It joins modules of
// src/ only, so the imports of the peers (react, @hapta/client) are taken out first and put back on top.
const types = mkdtempSync(join(tmpdir(), "hapta-react-types-"));
try {
  execFileSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", root,
    "--emitDeclarationOnly", "--outDir", types], { stdio: "inherit" });
  const peers = new Map();   // package -> the names imported from it
  const PEER_IMPORT = /^import type \{ ([^}]+) \} from "([^".][^"]*)";\n/gm;
  for (const file of readdirSync(types).filter((name) => name.endsWith(".d.ts"))) {
    const text = readFileSync(join(types, file), "utf8").replace(PEER_IMPORT, (_, names, from) => {
      const known = peers.get(from) ?? new Set();
      names.split(",").map((name) => name.trim()).filter(Boolean).forEach((name) => known.add(name));
      peers.set(from, known);
      return "";
    });
    if (/^import .* from "[^.]/m.test(text)) {
      throw new Error(`${file}: a peer's import that is not \`import type { ... }\``);
    }
    writeFileSync(join(types, file), text);
  }
  const imports = [...peers].sort(([a], [b]) => a.localeCompare(b))
    .map(([from, names]) => `import type { ${[...names].sort().join(", ")} } from "${from}";`);
  writeFileSync(join(out, "hapta-react.d.ts"), [...imports, joinDeclarations(types, "index")].join("\n"));
} finally {
  rmSync(types, { recursive: true, force: true });
}
const checked = ts.createProgram([join(out, "hapta-react.d.ts")], {
  strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, lib: ["lib.es2022.d.ts", "lib.dom.d.ts"], types: [],
  module: ts.ModuleKind.ES2022, moduleResolution: ts.ModuleResolutionKind.Bundler, skipDefaultLibCheck: true,
  // the peers as this folder has them, wherever `--out` is
  paths: { "*": [join(root, "node_modules", "@types", "*"), join(root, "node_modules", "*")] },
});
const problems = ts.getPreEmitDiagnostics(checked);
if (problems.length) {
  throw new Error("dist/hapta-react.d.ts does not type-check:\n" + ts.formatDiagnostics(problems, {
    getCanonicalFileName: (name) => name, getCurrentDirectory: () => root, getNewLine: () => "\n" }));
}
