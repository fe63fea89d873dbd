// A live query's ops, applied as the gateway means them: in order, a move taken out before it is put back. The
// cases by hand, then the gateway's own diffs (hapta/live/window.py: diff, checked there by its apply) of random
// lists, which applyOps must turn into the same lists.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { applyOps } from "../src/queries";
import type { LiveOp } from "../src/records";
import { ROOT } from "./support";

interface Item { id: string; version: number }
const item = (id: string, version = 1): Item => ({ id, version });
const ids = (items: Item[]) => items.map((i) => i.id);

describe("applyOps", () => {
  const abcd = ["a", "b", "c", "d"].map((id) => item(id));

  it("inserts at an index, deletes and updates where it is", () => {
    expect(ids(applyOps([], [{ op: "insert", index: 0, record: item("a") }]))).toEqual(["a"]);
    expect(ids(applyOps(abcd, [{ op: "insert", index: 4, record: item("e") }]))).toEqual(["a", "b", "c", "d", "e"]);
    expect(ids(applyOps(abcd, [{ op: "insert", index: 1, record: item("x") }]))).toEqual(["a", "x", "b", "c", "d"]);
    expect(ids(applyOps(abcd, [{ op: "delete", id: "c" }]))).toEqual(["a", "b", "d"]);
    const updated = applyOps(abcd, [{ op: "update", id: "b", record: item("b", 2) }]);
    expect(updated).toEqual([item("a"), item("b", 2), item("c"), item("d")]);
  });

  it("moves: out first, then in at the index of the list without it", () => {
    expect(ids(applyOps(abcd, [{ op: "move", id: "d", index: 0, record: item("d", 2) }])))
      .toEqual(["d", "a", "b", "c"]);
    expect(ids(applyOps(abcd, [{ op: "move", id: "a", index: 2, record: item("a", 2) }])))
      .toEqual(["b", "c", "a", "d"]);
    expect(applyOps(abcd, [{ op: "move", id: "b", index: 3, record: item("b", 5) }]).at(-1)).toEqual(item("b", 5));
  });

  it("applies in order: the index of an insert counts what the ops before it did", () => {
    // the newest of a window of three leaves and the next one enters at the bottom (docs/protocol.md)
    const ops: LiveOp<Item>[] = [{ op: "delete", id: "a" }, { op: "insert", index: 2, record: item("d") }];
    expect(ids(applyOps(abcd.slice(0, 3), ops))).toEqual(["b", "c", "d"]);
    const reversed: LiveOp<Item>[] = [{ op: "insert", index: 2, record: item("d") }, { op: "delete", id: "a" }];
    expect(ids(applyOps(abcd.slice(0, 3), reversed))).toEqual(["b", "d", "c"]);
  });

  it("leaves the items it was given as they were", () => {
    const before = [...abcd];
    applyOps(abcd, [{ op: "delete", id: "a" }, { op: "insert", index: 0, record: item("z") }]);
    expect(abcd).toEqual(before);
  });

  it("refuses an op on a record it does not hold, and an op it does not know", () => {
    expect(() => applyOps(abcd, [{ op: "delete", id: "nothere" }])).toThrow(/nothere/);
    expect(() => applyOps(abcd, [{ op: "update", id: "nothere", record: item("nothere") }])).toThrow(/nothere/);
    expect(() => applyOps(abcd, [{ op: "swap", id: "a" } as unknown as LiveOp<Item>])).toThrow(/swap/);
  });

  it("turns the items into what the gateway's diff meant, for random lists", () => {
    // The gateway's diff (window.py) of random before/after lists, each checked there by window.py's apply.
    const script = `
import json, random
from hapta.live.window import apply, diff
rng = random.Random(29)
cases = []
for n in range(400):
    names = [f"r{i}" for i in range(rng.randint(1, 14))]
    before = [(i, 1, {"id": i, "version": 1}) for i in rng.sample(names, rng.randint(0, len(names)))]
    after = []
    for i in rng.sample(names, rng.randint(0, len(names))):
        version = rng.choice((1, 2))
        after.append((i, version, {"id": i, "version": version}))
    ops = diff(before, after)
    held, wanted = [r for _, _, r in before], [r for _, _, r in after]
    assert apply(held, ops) == wanted
    cases.append({"before": held, "ops": ops, "after": wanted})
print(json.dumps(cases))
`;
    const cases = JSON.parse(execFileSync(join(ROOT, ".venv", "bin", "python"), ["-c", script],
                                          { cwd: ROOT, encoding: "utf8" }));
    expect(cases).toHaveLength(400);
    expect(cases.filter((c: { ops: LiveOp<Item>[] }) => c.ops.some((op) => op.op === "move")).length)
      .toBeGreaterThan(50);
    for (const { before, ops, after } of cases) expect(applyOps(before, ops)).toEqual(after);
  });
});
