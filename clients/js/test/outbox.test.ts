// The outbox without a gateway: a memory store, a connection that answers as each test says, and tabs that share
// the store, the lock and a channel as a browser's tabs do.
import { describe, expect, it } from "vitest";
import { HaptaError } from "../src/errors";
import { classify, Outbox, replaceIds, type OutboxEvent, type OutboxLink } from "../src/outbox";
import { MemoryStore, type OfflineStore, type OutboxEntry } from "../src/store";
import { tabsOf, type Tabs } from "../src/tabs";
import { until } from "./support";

/** Resolves once `condition()` (which may wait) holds, or fails after a second. */
async function eventually(condition: () => Promise<unknown> | unknown): Promise<void> {
  const deadline = Date.now() + 1000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((wait) => setTimeout(wait, 5));
  }
}

type Json = Record<string, any>;
type Answer = (op: string, args: Json) => Promise<any> | any;

const DAY = 24 * 3600_000;

/** Tabs of one origin: one lock and one channel (a message reaches the others, not its sender). */
function origin() {
  const lock = tabsOf("test", false);
  const members: { heard: ((message: Json) => void)[] }[] = [];
  return (): Tabs => {
    const me = { heard: [] as ((message: Json) => void)[] };
    members.push(me);
    return {
      post: (message) => members.filter((m) => m !== me).forEach((m) => m.heard.forEach((h) => h(structuredClone(
        message)))),
      listen: (handler) => { me.heard.push(handler); },
      exclusive: (name, body) => lock.exclusive(name, body),
      close: () => undefined,
    };
  };
}

/** An outbox over `store`, on a connection that answers with `answer` (a thrown HaptaError is a refusal). */
function outbox(store: OfflineStore, answer: Answer, tabs: Tabs = tabsOf("solo", false),
                options: Partial<ConstructorParameters<typeof Outbox>[4]> = {}) {
  const state = { ready: true, user: "u1" as string | null, server: null as Json | null };
  const sent: Json[] = [];
  const events: OutboxEvent[] = [];
  const added: OutboxEntry[] = [];
  let changes = 0;
  const link: OutboxLink = {
    ready: () => state.ready,
    user: () => state.user,
    attempt: async (op, args) => {
      sent.push({ op, args: structuredClone(args) });
      return answer(op, args);
    },
    read: async () => state.server,
    version: (collection, id) => (id === "held" ? 7 : undefined),
    attach: async (op, args) => args,
  };
  const box = new Outbox(store, tabs, link, {
    changed: () => { changes++; },
    added: (entry) => added.push(entry),
    landed: () => undefined,
    undoing: (entries) => entries.map((e) => ({ key: e.key, collection: String(e.args.collection), id: String(e.args.id),
                                                action: "update" as const, shown: e.args.data as Json, restored: null })),
    report: (event) => events.push(event),
  }, { keyLife: 23 * 3600_000, grace: 50, ...options });
  return { box, state, sent, events, added, link, changes: () => changes };
}

/** A gateway that stores what it is sent, in order, once per key (as idempotency keys make it). */
function gateway() {
  const done = new Map<string, Json>();
  const rows: Json[] = [];
  let next = 0;
  const answer: Answer = (op, args) => {
    const key = args.idempotency_key;
    if (done.has(key)) return done.get(key);
    let result: Json;
    if (op === "records.create") {
      result = { id: `r${++next}`, version: 1, ...args.data };
      rows.push(result);
    } else if (op === "records.update") {
      const row = rows.find((r) => r.id === args.id);
      if (!row) throw new HaptaError("NOT_FOUND", `no record ${args.id}`);
      if (args.version !== undefined && args.version !== row.version) {
        throw new HaptaError("CONFLICT", "stale", { version: row.version });
      }
      Object.assign(row, args.data, { version: row.version + 1 });
      result = { ...row };
    } else {
      result = { id: args.id };
    }
    done.set(key, result);
    return result;
  };
  return { answer, rows };
}

describe("the outbox", () => {
  it("keeps each write with a key, then sends them in order, one at a time; each leaves when answered", async () => {
    const store = new MemoryStore();
    const { rows, answer } = gateway();
    let inFlight = 0;
    let most = 0;
    const { box, sent } = outbox(store, async (op, args) => {
      most = Math.max(most, ++inFlight);
      await new Promise((wait) => setTimeout(wait, 5));
      inFlight--;
      return answer(op, args);
    });
    const answers = await Promise.all([1, 2, 3].map((n) => box.add("records.create", { collection: "posts",
                                                                                      data: { text: `t${n}` } })));
    expect(answers.map((a) => a.text)).toEqual(["t1", "t2", "t3"]);
    expect(rows.map((r) => r.text)).toEqual(["t1", "t2", "t3"]);
    expect(most).toBe(1);
    expect(sent.every((s) => typeof s.args.idempotency_key === "string")).toBe(true);
    expect(new Set(sent.map((s) => s.args.idempotency_key)).size).toBe(3);
    expect(await store.entries()).toEqual([]);
    expect(box.pending()).toEqual([]);
  });

  it("a write with files: its files go up in its turn, then it names their tokens; expired tokens go once more, "
     + "a second TOKEN_INVALID in a row refuses it", async () => {
    const store = new MemoryStore();
    const { answer, rows } = gateway();
    let uploads = 0;
    let refuseTokens = 0;   // how many tries the "gateway" answers TOKEN_INVALID
    const { box, link, sent, events } = outbox(store, (op, args) => {
      if (refuseTokens > 0) {
        refuseTokens--;
        throw new HaptaError("TOKEN_INVALID", "that upload is not valid", { field: "media" });
      }
      return answer(op, args);
    });
    link.attach = async (op, args, files) => {
      uploads += files.length;
      return { ...args, data: { ...(args.data as Json), media: files.map(() => ({ upload: `t${uploads}` })) } };
    };
    const picture = { field: "media", name: "a.png", type: "image/png", size: 3, data: new Uint8Array(3) };
    refuseTokens = 1;
    const post = await box.add("records.create", { collection: "posts", data: { text: "late" } }, [picture]);
    expect(post.media).toEqual([{ upload: "t2" }]);
    expect(uploads).toBe(2);
    expect(sent.map((s) => s.args.idempotency_key)).toEqual([sent[0].args.idempotency_key,
                                                             sent[0].args.idempotency_key]);
    refuseTokens = 2;
    const refused = await box.add("records.create", { collection: "posts", data: { text: "never" } }, [picture])
      .catch((error) => error.code);
    expect(refused).toBe("TOKEN_INVALID");
    expect(uploads).toBe(4);
    expect(events.map((e) => [e.kind, e.error.code, e.write.files])).toEqual([
      ["refused", "TOKEN_INVALID", [{ field: "media", name: "a.png", type: "image/png", size: 3 }]]]);
    expect(rows.map((r) => r.text)).toEqual(["late"]);
  });

  it("waits while offline or signed out, and sends only as the user who made the write", async () => {
    const store = new MemoryStore();
    const { answer, rows } = gateway();
    const { box, state, sent } = outbox(store, answer);
    state.ready = false;
    const made = box.add("records.create", { collection: "posts", data: { text: "offline" } });
    await eventually(async () => (await store.entries()).length === 1);
    expect(box.pending().map((w) => [w.op, w.user])).toEqual([["records.create", "u1"]]);
    expect(sent).toEqual([]);
    state.ready = true;
    state.user = null;          // open, but signed out
    box.flush();
    await new Promise((wait) => setTimeout(wait, 20));
    expect(sent).toEqual([]);
    state.user = "u1";
    box.flush();
    expect((await made).text).toBe("offline");
    expect(rows).toHaveLength(1);
  });

  it("refusals for now are sent again with the same key; an unknown outcome too, answered once", async () => {
    const store = new MemoryStore();
    const { answer, rows } = gateway();
    const refusals = [new HaptaError("RATE_LIMITED", "slow down", undefined, 0.01),
                      new HaptaError("UNAVAILABLE", "lost", { outcome: "unknown" })];
    let attempts = 0;
    const { box, sent } = outbox(store, (op, args) => {
      attempts++;
      if (attempts === 2) answer(op, args);   // done, but the answer is lost with the socket
      if (attempts <= 2) throw refusals[attempts - 1];
      return answer(op, args);
    });
    const made = box.add("records.create", { collection: "posts", data: { text: "once" } });
    await until(() => sent.length === 2 || null);
    box.flush();   // the reconnect
    expect((await made).text).toBe("once");
    expect(sent.map((s) => s.args.idempotency_key)).toEqual(Array(3).fill(sent[0].args.idempotency_key));
    expect(rows).toHaveLength(1);
  });

  it("a refusal removes the write, reports it with what was rolled back, and rejects its promise", async () => {
    const store = new MemoryStore();
    const { answer, rows } = gateway();
    const { box, events } = outbox(store, (op, args) => {
      if (args.data?.text === "bad") throw new HaptaError("FORBIDDEN", "the create rule of posts does not allow it");
      return answer(op, args);
    });
    const bad = box.add("records.create", { collection: "posts", data: { text: "bad" } });
    const good = box.add("records.create", { collection: "posts", data: { text: "good" } });
    expect((await bad.catch((e) => e)).code).toBe("FORBIDDEN");
    expect((await good).text).toBe("good");
    expect(rows.map((r) => r.text)).toEqual(["good"]);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ kind: "refused", write: { op: "records.create", user: "u1" },
                                      error: { code: "FORBIDDEN" } });
    expect(events[0].rolledBack).toHaveLength(1);
  });

  it("later writes take the gateway's id for a record created offline, and the version its answer gave", async () => {
    const store = new MemoryStore();
    const { answer, rows } = gateway();
    const { box, state, sent } = outbox(store, answer);
    state.ready = false;
    box.add("records.create", { collection: "posts", data: { text: "draft" } });
    await eventually(async () => (await store.entries()).length === 1);
    const temp = (await store.entries())[0].tempIds![0]!;
    expect(temp).toMatch(/^local-/);
    box.add("records.update", { collection: "posts", id: temp, data: { text: "edited" } });
    box.add("records.update", { collection: "posts", id: temp, data: { text: "edited again" } });
    box.add("records.create", { collection: "comments", data: { post: temp, text: "first" } });
    await eventually(async () => (await store.entries()).length === 4);
    state.ready = true;
    box.flush();
    await until(() => sent.length === 4 || null);
    await eventually(async () => (await store.entries()).length === 0);
    const id = rows[0].id;
    expect(sent.map((s) => [s.op, s.args.id, s.args.version, s.args.data.post])).toEqual([
      ["records.create", undefined, undefined, undefined],
      ["records.update", id, 1, undefined],   // made against the create, which the gateway answered at version 1
      ["records.update", id, 2, undefined],   // made against the first edit
      ["records.create", undefined, undefined, id],
    ]);
    expect(rows[0]).toMatchObject({ text: "edited again", version: 3 });
    expect(box.idFor(temp)).toBe(id);
  });

  it("a write kept only after the create it names has landed still gets its id and its version", async () => {
    const store = new MemoryStore();
    let release = () => {};
    const later = new Promise<void>((done) => { release = done; });
    let adds = 0;
    const slow: OfflineStore = {   // the second write's keeping takes longer than the first write's trip
      entries: () => store.entries(), put: (e) => store.put(e), remove: (seqs) => store.remove(seqs),
      cached: (id) => store.cached(id), cache: (id, v) => store.cache(id, v), clearCache: (o) => store.clearCache(o),
      owner: () => store.owner(),
      add: async (entry) => {
        if (++adds === 2) await later;
        return store.add(entry);
      },
    };
    const { answer, rows } = gateway();
    const { box, sent } = outbox(slow, answer);
    const created = box.add("records.create", { collection: "posts", data: { text: "draft" } });
    const temp = box.writes().at(-1)!.tempIds![0]!;
    const edited = box.add("records.update", { collection: "posts", id: temp, data: { text: "edited" } });
    await created;
    release();
    await edited;
    expect(sent[1].args).toMatchObject({ id: rows[0].id, version: 1 });
    expect(rows[0]).toMatchObject({ text: "edited", version: 2 });
  });

  it("an update names the version the client holds; writes that follow a refused create are dropped too",
    async () => {
      const store = new MemoryStore();
      const { box, state, sent, events } = outbox(store, (op, args) => {
        if (op === "records.create") throw new HaptaError("VALIDATION_FAILED", "text is too long");
        return { id: args.id, version: (args.version ?? 0) + 1 };
      });
      state.ready = false;
      box.add("records.update", { collection: "posts", id: "held", data: { text: "x" } });
      const created = box.add("records.create", { collection: "posts", data: { text: "x".repeat(300) } });
      await eventually(async () => (await store.entries()).length === 2);
      const temp = (await store.entries())[1].tempIds![0]!;
      const follower = box.add("records.update", { collection: "posts", id: temp, data: { text: "y" } });
      await eventually(async () => (await store.entries()).length === 3);
      state.ready = true;
      box.flush();
      expect((await created.catch((e) => e)).code).toBe("VALIDATION_FAILED");
      expect((await follower.catch((e) => e)).code).toBe("NOT_FOUND");
      expect(sent.map((s) => [s.op, s.args.version])).toEqual([["records.update", 7], ["records.create", undefined]]);
      expect(events.map((e) => [e.kind, e.write.op, e.error.code])).toEqual([
        ["refused", "records.create", "VALIDATION_FAILED"], ["refused", "records.update", "NOT_FOUND"]]);
      expect(await store.entries()).toEqual([]);
    });

  it("a stale version: by default the gateway's version stands and the app is told both", async () => {
    const store = new MemoryStore();
    const { answer, rows } = gateway();
    rows.push({ id: "held", text: "theirs", version: 9 });
    const { box, state, events } = outbox(store, answer);
    state.server = { id: "held", text: "theirs", version: 9 };
    const mine = await box.add("records.update", { collection: "posts", id: "held", data: { text: "mine" } })
      .catch((e) => e);
    expect(mine.code).toBe("CONFLICT");
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ kind: "conflict", mine: { text: "mine" },
                                      server: { text: "theirs", version: 9 } });
    expect(rows[0].text).toBe("theirs");
  });

  it("a conflict policy may write over the gateway's version: a new write, at its version", async () => {
    const store = new MemoryStore();
    const { answer, rows } = gateway();
    rows.push({ id: "held", text: "theirs", likes: 2, version: 9 });
    const { box, state, events, sent } = outbox(store, answer, tabsOf("solo", false), {
      conflict: ({ mine, server }) => ({ ...mine, text: `${server.text} + ${mine.text}` }),
    });
    state.server = { ...rows[0] };
    const merged = await box.add("records.update", { collection: "posts", id: "held", data: { text: "mine" } });
    expect(merged).toMatchObject({ text: "theirs + mine", likes: 2, version: 10 });
    expect(events).toEqual([]);
    expect(sent[1].args.version).toBe(9);
    expect(sent[1].args.idempotency_key).not.toBe(sent[0].args.idempotency_key);   // another request: another key
  });

  it("another user signing in drops the writes of the one before, reported; theirs stay", async () => {
    const store = new MemoryStore();
    const { answer, rows } = gateway();
    const { box, state, events } = outbox(store, answer);
    state.ready = false;
    const theirs = box.add("records.create", { collection: "posts", data: { text: "ada's" } });
    await eventually(async () => (await store.entries()).length === 1);
    state.user = "u2";
    state.ready = true;
    await box.signedIn("u2");
    expect((await theirs.catch((e) => e)).code).toBe("UNAUTHENTICATED");
    expect(events.map((e) => [e.kind, e.write.user])).toEqual([["dropped", "u1"]]);
    expect(rows).toEqual([]);
    expect((await box.add("records.create", { collection: "posts", data: { text: "ben's" } })).text).toBe("ben's");
  });

  it("a write first sent more than a day ago without an answer is not sent again; one never sent is", async () => {
    const store = new MemoryStore();
    const { answer, rows } = gateway();
    const long = Date.now() - 2 * DAY;
    const base = { user: "u1", op: "records.create", made: long, tempIds: ["local-x"] };
    await store.add({ ...base, key: "k-sent", sentAt: long, args: { collection: "posts", data: { text: "maybe" },
                                                                    idempotency_key: "k-sent" } });
    await store.add({ ...base, key: "k-never", args: { collection: "posts", data: { text: "surely not" },
                                                       idempotency_key: "k-never" } });
    const { box, events, sent } = outbox(store, answer);
    await box.load();
    box.flush();
    await eventually(async () => (await store.entries()).length === 0);
    expect(events.map((e) => [e.kind, e.write.key, e.error.details?.outcome])).toEqual([["expired", "k-sent",
                                                                                         "unknown"]]);
    expect(sent.map((s) => s.args.idempotency_key)).toEqual(["k-never"]);
    expect(rows.map((r) => r.text)).toEqual(["surely not"]);
  });

  it("tabs share one outbox: each write is sent once, by one tab at a time, and each tab hears it", async () => {
    const store = new MemoryStore();
    const { answer, rows } = gateway();
    const tab = origin();
    let inFlight = 0;
    let most = 0;
    const slow: Answer = async (op, args) => {
      most = Math.max(most, ++inFlight);
      await new Promise((wait) => setTimeout(wait, 3));
      inFlight--;
      return answer(op, args);
    };
    const one = outbox(store, slow, tab());
    const two = outbox(store, slow, tab());
    await Promise.all([one.box.load(), two.box.load()]);
    one.state.ready = two.state.ready = false;
    const made = [];
    for (let n = 0; n < 10; n++) made.push((n % 2 ? one : two).box.add("records.create", { collection: "posts",
                                                                                            data: { text: `w${n}` } }));
    await eventually(async () => (await store.entries()).length === 10);
    expect(one.added).toHaveLength(10);   // its own five, and the other tab's five as it heard them
    expect(two.added).toHaveLength(10);
    one.state.ready = two.state.ready = true;
    one.box.flush();
    two.box.flush();
    await Promise.all(made);
    expect(rows.map((r) => r.text)).toEqual(Array.from({ length: 10 }, (_, n) => `w${n}`));
    expect(one.sent.length + two.sent.length).toBe(10);
    expect(most).toBe(1);
  });
});

describe("what the outbox does with an answer", () => {
  it("sends again what was refused for now; gives a stale version to the policy; removes the rest", () => {
    expect(["RATE_LIMITED", "UNAVAILABLE", "TIMEOUT", "TOKEN_EXPIRED", "UNAUTHENTICATED"]
      .map((code) => classify(new HaptaError(code, "")))).toEqual(Array(5).fill("retry"));
    expect(classify(new HaptaError("CONFLICT", "stale", { version: 3 }))).toBe("conflict");
    expect(classify(new HaptaError("CONFLICT", "taken", { fields: ["username"] }))).toBe("refused");
    expect(["FORBIDDEN", "VALIDATION_FAILED", "NOT_FOUND", "BAD_REQUEST", "RULE_DENIED", "INTERNAL"]
      .map((code) => classify(new HaptaError(code, "")))).toEqual(Array(6).fill("refused"));
    expect(classify(new TypeError("cyclic"))).toBe("refused");
  });

  it("swaps temporary ids where a write names a record: its id, top-level data, a batch's ops", () => {
    const ids = new Map([["local-a", "r1"]]);
    expect(replaceIds({ id: "local-a", data: { post: "local-a", nested: { post: "local-a" } } }, ids))
      .toEqual({ id: "r1", data: { post: "r1", nested: { post: "local-a" } } });
    expect(replaceIds({ ops: [{ op: "delete", id: "local-a" }, { op: "create", data: { post: "local-a" } }] }, ids))
      .toEqual({ ops: [{ op: "delete", id: "r1" }, { op: "create", data: { post: "r1" } }] });
    const untouched = { id: "r2", data: { text: "local-a is a fine name" } };
    expect(replaceIds(untouched, ids)).toBe(untouched);
  });
});
