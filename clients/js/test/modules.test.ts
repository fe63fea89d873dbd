// The modules of src/ depend on each other in one direction: no module imports itself through others (type-only
// imports count too: they are dependencies of the code as it is read), and hapta.ts, the facade that composes the
// others, is imported by none and reaches all of them.
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const src = resolve(__dirname, "..", "src");

// import ... from "./x.js", export ... from "./x.js", import "./x.js", import("./x.js"); across lines.
const IMPORT = new RegExp([
  String.raw`^\s*(?:import|export)\s[^;]*?\bfrom\s*["']([^"']+)["']`,
  String.raw`^\s*import\s*["']([^"']+)["']`,
  String.raw`\bimport\(\s*["']([^"']+)["']\s*\)`,
].join("|"), "gm");

/** Each module of src/ (by name, without .ts) and the modules of src/ it imports. */
function imports(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of readdirSync(src).filter((name) => name.endsWith(".ts")).sort()) {
    const text = readFileSync(join(src, file), "utf8");
    const used = new Set<string>();
    for (const found of text.matchAll(IMPORT)) {
      const specifier = found[1] ?? found[2] ?? found[3];
      if (!specifier.startsWith(".")) continue;
      used.add(specifier.replace(/^\.\//, "").replace(/\.(js|ts)$/, ""));
    }
    graph.set(file.replace(/\.ts$/, ""), [...used].sort());
  }
  return graph;
}

/** A circle of imports (["a", "b", "a"]: a imports b, b imports a), or null. */
function findCycle(graph: Map<string, string[]>): string[] | null {
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (module: string): string[] | null => {
    if (path.includes(module)) return [...path.slice(path.indexOf(module)), module];
    if (done.has(module)) return null;
    path.push(module);
    for (const next of graph.get(module) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    done.add(module);
    return null;
  };
  for (const module of graph.keys()) {
    const cycle = visit(module);
    if (cycle) return cycle;
  }
  return null;
}

describe("the modules of src/", () => {
  it("import only modules that exist, and none imports itself through others", () => {
    const graph = imports();
    for (const [module, used] of graph) {
      for (const name of used) {
        expect(graph.has(name), `${module}.ts imports ./${name}, which is not in src/`).toBe(true);
      }
    }
    const cycle = findCycle(graph);
    expect(cycle, `an import cycle: ${cycle?.join(" -> ")}`).toBeNull();
  });

  it("hapta.ts composes them: none imports it, and it reaches every one", () => {
    const graph = imports();
    const importers = [...graph].filter(([, used]) => used.includes("hapta")).map(([module]) => module);
    expect(importers).toEqual([]);
    const reached = new Set<string>();
    const reach = (module: string) => {
      if (reached.has(module)) return;
      reached.add(module);
      graph.get(module)!.forEach(reach);
    };
    reach("hapta");
    expect([...graph.keys()].filter((module) => !reached.has(module))).toEqual([]);
    expect(graph.size).toBeGreaterThan(2);   // the reading of import lines found the modules
  });

  it("the cycle check finds a cycle, through type-only and multi-line imports too", () => {
    expect(findCycle(new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]]]))).toEqual(["a", "b", "c", "a"]);
    expect(findCycle(new Map([["a", ["b", "c"]], ["b", ["c"]], ["c", []]]))).toBeNull();
    const text = 'import type {\n  A,\n  B,\n} from "./b.js";\nexport { C } from "./c.js";\nimport "./d.js";\n';
    expect([...text.matchAll(IMPORT)].map((m) => m[1] ?? m[2] ?? m[3])).toEqual(["./b.js", "./c.js", "./d.js"]);
  });
});
