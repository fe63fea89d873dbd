// Optimistic updates, without a gateway: the filter language and sort order as the client guesses them, writes
// laid over a live query's items (pending, echoed, rolled back by no longer being laid), and the ops that turn what
// was shown into what is shown.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { comparator, decide, parseFilter, timestampKey } from "../src/filter";
import { diffItems, effectsOf, overlay, recordKey, shapeOf, type RecordIndex, type Write } from "../src/overlay";
import { applyOps } from "../src/queries";
import { ROOT } from "./support";

type Json = Record<string, any>;
const ada = { id: "u1", username: "ada", verified: true };

describe("the filter language, in the client", () => {
  const post = { id: "p1", author: "u1", text: "Cats and dogs", public: true, likes: 3, created: "2025-01-02T10:00:00Z",
                 tags: null };
  const check = (filter: string, record: Json = post) => decide(parseFilter(filter), record, { user: ada });

  it("answers as the gateway would: comparisons, contains, in, null, and SQL's three values", () => {
    expect(check('author = @user.id && public = true')).toBe(true);
    expect(check('text ~ "DOGS"')).toBe(true);
    expect(check('text !~ "dogs"')).toBe(false);
    expect(check("likes > 2 && likes <= 3")).toBe(true);
    expect(check('author in ["u2", "u1"]')).toBe(true);
    expect(check('author in ["u2", null]')).toBe(null);       // unknown: never matches
    expect(check("tags = null")).toBe(true);
    expect(check("tags != null")).toBe(false);
    expect(check('tags = "x"')).toBe(null);
    expect(check('!(tags = "x")')).toBe(null);                // ! of unknown stays unknown
    expect(check('tags = "x" || public = true')).toBe(true);
    expect(check('created > "2025-01-02T09:59:59.999999Z"')).toBe(true);   // timestamps as instants
    expect(check('created < "2025-01-02T10:00:00.000001Z"')).toBe(true);
  });

  it("says unknown where only the gateway can tell, unless the rest decides it", () => {
    expect(check("post.public = true", { id: "c1", post: "p1" })).toBe("unknown");   // through a relation
    expect(check('text @@ "cats"')).toBe("unknown");                               // full-text search
    expect(check('missing = "x"')).toBe("unknown");                                // a field it does not carry
    expect(check("likes > 1 || post.public = true", { id: "c1", likes: 3 })).toBe(true);
    expect(check("likes > 5 && post.public = true", { id: "c1", likes: 3 })).toBe(false);
    expect(decide(parseFilter("author = @user.id"), post, { user: null })).toBe(null);   // nobody: no match
  });

  it("reads strings with escapes, numbers, negative numbers and nesting", () => {
    expect(check('text = "Cats and dogs" && (likes = 3 || likes = -1)')).toBe(true);
    expect(check('text = "a\\"b"', { id: "x", text: 'a"b' })).toBe(true);
    expect(() => parseFilter("text ~")).toThrow();
    expect(() => parseFilter('text = "open')).toThrow();
  });

  it("orders as records.list does: nulls last ascending and first descending, ties by id, timestamps as instants",
    () => {
      const rows = [{ id: "b", n: 1 }, { id: "a", n: 1 }, { id: "c", n: null }, { id: "d", n: 0 }];
      expect([...rows].sort(comparator("n")).map((r) => r.id)).toEqual(["d", "a", "b", "c"]);
      expect([...rows].sort(comparator("-n")).map((r) => r.id)).toEqual(["c", "a", "b", "d"]);
      const times = [{ id: "x", t: "2025-01-01T00:00:00Z" }, { id: "y", t: "2025-01-01T00:00:00.5Z" },
                     { id: "z", t: "2024-12-31T23:59:59.999999Z" }];
      expect([...times].sort(comparator("-t")).map((r) => r.id)).toEqual(["y", "x", "z"]);
      expect(timestampKey("2025-01-01T00:00:00.000001Z")! - timestampKey("2025-01-01T00:00:00Z")!).toBe(1);
    });

  it("agrees with the gateway's own evaluator on random records and filters", () => {
    // hapta/query/evaluate.py on the same records and filters (bound to a schema of text, int, bool fields).
    const script = `
import json, random
from hapta.query import parse
from hapta.query.evaluate import evaluate
from hapta.query.check import bind
from hapta.query.schema import Field, Schema, Table
rng = random.Random(30)
table = Table("t", {"id": Field("id", "text"), "name": Field("name", "text"), "n": Field("n", "int"),
                     "flag": Field("flag", "bool")})
schema = Schema({"t": table})
def value(kind):
    return rng.choice({"text": ["a", "b", "ab", None], "int": [0, 1, 2, None], "bool": [True, False, None]}[kind])
def compare():
    field, kind = rng.choice([("name", "text"), ("n", "int"), ("flag", "bool")])
    op = rng.choice(["=", "!="] + (["<", ">", "<=", ">="] if kind == "int" else []) + (["~", "!~"] if kind == "text" else []))
    literal = value(kind)
    if op in ("~", "!~") and literal is None:
        literal = "a"
    if op not in ("=", "!=") and literal is None:
        literal = 1 if kind == "int" else "a"
    return f"{field} {op} {json.dumps(literal)}"
def expr(depth=0):
    if depth > 2 or rng.random() < 0.4:
        return compare()
    kind = rng.choice(["&&", "||", "!"])
    return f"!({expr(depth + 1)})" if kind == "!" else f"({expr(depth + 1)} {kind} {expr(depth + 1)})"
cases = []
for n in range(300):
    record = {"id": f"r{n}", "name": value("text"), "n": value("int"), "flag": value("bool")}
    text = expr()
    cases.append({"record": record, "filter": text, "match": evaluate(bind(parse(text), table, schema), record, {})})
print(json.dumps(cases))
`;
    const cases = JSON.parse(execFileSync(join(ROOT, ".venv", "bin", "python"), ["-c", script],
                                          { cwd: ROOT, encoding: "utf8" }));
    expect(cases).toHaveLength(300);
    const matching = cases.filter((c: { match: boolean }) => c.match).length;
    expect(matching).toBeGreaterThan(50);
    expect(matching).toBeLessThan(250);
    for (const { record, filter, match } of cases) {
      expect(decide(parseFilter(filter), record) === true, filter).toBe(match);
    }
  });
});

describe("writes laid over a live query", () => {
  const shape = shapeOf({ collection: "posts", sort: "-created", limit: 3, filter: "public = true" }, parseFilter);
  const server = [
    { id: "p3", text: "three", public: true, created: "2025-01-03T00:00:00Z", version: 1 },
    { id: "p2", text: "two", public: true, created: "2025-01-02T00:00:00Z", version: 4 },
    { id: "p1", text: "one", public: true, created: "2025-01-01T00:00:00Z", version: 1 },
  ];
  const index = (): RecordIndex => new Map(server.map((r) => [recordKey("posts", r.id), r]));
  const later = Date.parse("2025-02-01T00:00:00Z");
  const create = (key: string, data: Json, made = later): Write =>
    ({ key, op: "records.create", args: { collection: "posts", data }, made, tempIds: [`local-${key}`] });
  const update = (key: string, id: string, data: Json): Write =>
    ({ key, op: "records.update", args: { collection: "posts", id, data }, made: later });
  const remove = (key: string, id: string): Write =>
    ({ key, op: "records.delete", args: { collection: "posts", id }, made: later });
  const shown = (writes: Write[], echoed = new Set<string>(), items: Json[] = server) =>
    overlay(items, effectsOf(writes, index()), shape, {}, echoed);

  it("a pending create enters where the sort puts it, marked pending; the window keeps its limit", () => {
    const items = shown([create("k1", { text: "new", public: true })]);
    expect(items.map((r) => r.id)).toEqual(["local-k1", "p3", "p2"]);
    expect(items[0]).toMatchObject({ $pending: true, text: "new", created: "2025-02-01T00:00:00.000Z" });
    expect(items.slice(1).every((r) => !r.$pending)).toBe(true);
  });

  it("a write with files shows the files it keeps, then the new ones pending with their previews", () => {
    const picture = (name: string) => ({ field: "media", name, type: "image/png", size: 10, data: new Uint8Array(10) });
    const made = { ...create("k1", { text: "with a picture", public: true }),
                   files: [{ ...picture("a.png"), preview: "blob:a" }] };
    expect(shown([made])[0].media).toEqual([{ name: "a.png", size: 10, type: "image/png", $pending: true,
                                              $preview: "blob:a" }]);
    const held = { name: "old.png", size: 5, type: "image/png", sha256: "x" };
    const other = { name: "other.png", size: 6, type: "image/png", sha256: "y" };
    server[1] = { ...server[1], media: [held, other] } as any;
    try {
      // an update that names no files to keep keeps them all; one that names some keeps those (tokens not shown)
      const keepAll = { ...update("k2", "p2", {}), files: [picture("b.png")] };
      expect(shown([keepAll])[1].media.map((f: Json) => [f.name, !!f.$pending])).toEqual([
        ["old.png", false], ["other.png", false], ["b.png", true]]);
      const keepOne = { ...update("k3", "p2", { media: [{ name: "other.png" }, { upload: "t1" }] }),
                        files: [picture("b.png")] };
      expect(shown([keepOne])[1].media).toEqual([other, { name: "b.png", size: 10, type: "image/png",
                                                         $pending: true }]);
    } finally {
      delete (server[1] as any).media;
    }
  });

  it("one the filter does not match, or that sorts past a full window, does not enter", () => {
    expect(shown([create("k1", { text: "private", public: false })])).toEqual(server);
    const old = create("k2", { text: "old", public: true }, Date.parse("2020-01-01T00:00:00Z"));
    expect(shown([old])).toEqual(server);
    // a window that is not full holds the whole result: it goes at the end
    const two = overlay(server.slice(0, 2), effectsOf([old], index()), shape, {}, new Set());
    expect(two.map((r) => r.id)).toEqual(["p3", "p2", "local-k2"]);
  });

  it("updates merge into the record held, move where the sort says, and leave when the filter no longer holds", () => {
    const edited = shown([update("k1", "p2", { text: "two!" })]);
    expect(edited.map((r) => [r.id, r.text, !!r.$pending])).toEqual([["p3", "three", false], ["p2", "two!", true],
                                                                     ["p1", "one", false]]);
    expect(edited[1].version).toBe(4);   // the version it was made against, until the gateway's answer
    expect(shown([update("k1", "p1", { created: "2025-01-04T00:00:00Z" })]).map((r) => r.id))
      .toEqual(["p1", "p3", "p2"]);
    expect(shown([update("k1", "p2", { public: false })]).map((r) => r.id)).toEqual(["p3", "p1"]);
    expect(shown([update("k1", "elsewhere", { text: "?" })])).toEqual(server);   // not held: nothing to show
  });

  it("writes apply in order: a create, then its edit, then a delete of another", () => {
    const writes = [create("k1", { text: "new", public: true }), update("k2", "local-k1", { text: "newer" }),
                    remove("k3", "p3")];
    const items = shown(writes);
    expect(items.map((r) => [r.id, r.text])).toEqual([["local-k1", "newer"], ["p2", "two"], ["p1", "one"]]);
  });

  it("a batch's ops, with $ref, apply as the single writes would", () => {
    const batch: Write = { key: "b", op: "records.batch", made: later, tempIds: ["local-b0", null],
      args: { ops: [{ op: "create", collection: "posts", data: { text: "b", public: true } },
                    { op: "update", collection: "posts", id: { $ref: 0 }, data: { text: "b!" } }] } };
    expect(shown([batch]).map((r) => [r.id, r.text])).toEqual([["local-b0", "b!"], ["p3", "three"], ["p2", "two"]]);
  });

  it("a refused write is no longer laid over the items: what it showed is rolled back", () => {
    const writes = [update("k1", "p2", { text: "two!" }), remove("k2", "p3")];
    const before = shown(writes);
    const after = shown(writes.slice(0, 1));   // k2 refused: it leaves the outbox
    const ops = diffItems(before, after);
    expect(applyOps(before, ops)).toEqual(after);
    expect(after.map((r) => r.id)).toEqual(["p3", "p2", "p1"]);
  });

  it("a landed write shows its answer, pending, until the gateway's items show it; then it is echoed", () => {
    const answer = { id: "p9", text: "new", public: true, created: "2025-02-01T00:00:01Z", version: 1 };
    const landed: Write = { ...create("k1", { text: "new", public: true }), answer };
    const echoed = new Set<string>();
    expect(shown([landed], echoed).map((r) => [r.id, !!r.$pending])).toEqual([["p9", true], ["p3", false],
                                                                            ["p2", false]]);
    expect(echoed.size).toBe(0);
    const caughtUp = [answer, ...server.slice(0, 2)];   // the diff arrived
    expect(overlay(caughtUp, effectsOf([landed], index()), shape, {}, echoed)).toEqual(caughtUp);
    expect(echoed.has("k1\u0000p9")).toBe(true);
    // once echoed, it is never laid over this query again (someone deleting it later is not undone)
    expect(overlay(server, effectsOf([landed], index()), shape, {}, echoed)).toEqual(server);
  });

  it("a filter the client cannot decide keeps a held record where it is and places no new one", () => {
    const related = shapeOf({ collection: "posts", sort: "-created", limit: 5, filter: "author.verified = true" },
                            parseFilter);
    const effects = effectsOf([update("k1", "p2", { text: "two!" }), create("k2", { text: "x" })], index());
    const items = overlay(server, effects, related, {}, new Set());
    expect(items.map((r) => [r.id, r.text])).toEqual([["p3", "three"], ["p2", "two!"], ["p1", "one"]]);
  });
});

describe("diffItems", () => {
  it("makes ops that turn one list into the other, as the gateway's diff would, for random lists", () => {
    let seed = 7;
    const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    for (let n = 0; n < 500; n++) {
      const ids = Array.from({ length: 1 + Math.floor(random() * 12) }, (_, i) => `r${i}`);
      const pick = () => ids.filter(() => random() < 0.6).sort(() => random() - 0.5)
        .map((id) => ({ id, version: random() < 0.8 ? 1 : 2 }));
      const before = pick();
      const after = pick();
      expect(applyOps(before, diffItems(before, after))).toEqual(after);
    }
  });

  it("one insert at the top is one op; the records below it do not move", () => {
    const before = [{ id: "a" }, { id: "b" }, { id: "c" }];
    expect(diffItems(before, [{ id: "z" }, ...before])).toEqual([{ op: "insert", index: 0, record: { id: "z" } }]);
    expect(diffItems(before, before)).toEqual([]);
  });
});
