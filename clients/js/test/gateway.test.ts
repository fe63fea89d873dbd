// @hapta/client against a real `hapta serve` (test/support.ts): what an app does, through the real socket.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hapta, HaptaError, type Change, type LiveOp } from "../src/hapta";
import { applyOps } from "../src/queries";
import { ADMIN_KEY, ANON_KEY, MemoryStorage, PASSWORD, startGateway, uniqueName, until, type Gateway } from "./support";

interface Post {
  id: string;
  author: string;
  text: string;
  public: boolean;
  created: string;
  media: { name: string; size: number; type: string; sha256: string }[];
  version: number;
}

let gateway: Gateway;
const open: Hapta[] = [];

async function connect(options: Parameters<typeof Hapta.connect>[1] = {}): Promise<Hapta> {
  const hapta = await Hapta.connect(gateway.url, { backoff: { base: 50, cap: 500 }, ...options });
  open.push(hapta);
  return hapta;
}

/** A guest account (auth.guest): a user as any other for what it writes, without using up the few registrations
 * the gateway allows per address. */
async function guest(options: Parameters<typeof Hapta.connect>[1] = {}) {
  const hapta = await connect(options);
  const session = await hapta.auth.guest();
  return { hapta, user: session.user as { id: string } };
}

async function signedUp(options: Parameters<typeof Hapta.connect>[1] = {}) {
  const hapta = await connect(options);
  const name = uniqueName("js");
  const session = await hapta.auth.register({ email: `${name}@example.com`, password: PASSWORD, username: name });
  return { hapta, user: session.user as { id: string }, email: `${name}@example.com` };
}

beforeAll(async () => { gateway = await startGateway(); }, 180_000);
afterAll(async () => {
  open.forEach((hapta) => hapta.close());
  await gateway?.stop();
});

describe("records", () => {
  it("creates, reads, lists, updates and deletes, and errors are HaptaErrors with the protocol's code", async () => {
    const { hapta, user } = await signedUp();
    const posts = hapta.records<Post>("posts");
    const created = await posts.create({ author: user.id, text: "hello from js", public: true });
    expect(created.text).toBe("hello from js");
    expect((await posts.get(created.id)).id).toBe(created.id);
    const page = await posts.list({ filter: `id = "${created.id}"` });
    expect(page.items.map((p) => p.id)).toEqual([created.id]);
    const updated = await posts.update(created.id, { text: "edited" }, { version: created.version });
    expect(updated.version).toBe(created.version + 1);
    const stale = await posts.update(created.id, { text: "again" }, { version: created.version }).catch((e) => e);
    expect(stale).toBeInstanceOf(HaptaError);
    expect(stale.code).toBe("CONFLICT");
    await posts.delete(created.id);
    const gone = await posts.get(created.id).catch((e) => e);
    expect([gone.code, gone.message]).toEqual(["NOT_FOUND", `no record ${created.id} in posts`]);
    const bad = await posts.list({ filter: "text ~" }).catch((e) => e);
    expect(bad.code).toBe("BAD_REQUEST");
  });

  it("expands a post's author as the rules show it, in lists and in live events", async () => {
    const { hapta, user } = await signedUp();
    const reader = (await signedUp()).hapta;
    const events: Change<Post>[] = [];
    const stop = await reader.records<Post>("posts").subscribe(
      { filter: `author = "${user.id}"`, expand: ["author"] }, (change) => events.push(change));
    const post = await hapta.records<Post>("posts").create({ author: user.id, text: "with its author", public: true });
    const page = await reader.records<Post & { expand: { author: { id: string; email: string | null } } }>("posts")
      .list({ filter: `id = "${post.id}"`, expand: ["author"] });
    expect(page.items[0].expand.author).toMatchObject({ id: user.id, email: null });   // the email is guarded
    await until(() => events.length === 1);
    expect((events[0].record as any).expand.author.id).toBe(user.id);
    await stop();
  });

  it("searches with @@, best match first, and counts in groups what it may list", async () => {
    const { hapta, user } = await signedUp();
    const posts = hapta.records<Post>("posts");
    const word = uniqueName("zq");
    const once = await posts.create({ author: user.id, text: `${word} cats, then a long tail of other words`, public: true });
    const often = await posts.create({ author: user.id, text: `${word} cats cats cats`, public: false });
    const ranked = await posts.list({ filter: `text @@ "${word} cats"`, sort: "-@rank" });
    expect(ranked.items.map((p) => p.id)).toEqual([often.id, once.id]);
    const counted = await posts.aggregate({ filter: `text @@ "${word}"`, group_by: ["public"], max: ["version"] });
    expect(counted).toEqual({ groups: [{ key: { public: false }, count: 1, max: { version: 1 } },
                                       { key: { public: true }, count: 1, max: { version: 1 } }], more: false });
  });

  it("speaks MessagePack too, with records that look the same as in JSON", async () => {
    const { hapta, user, email } = await signedUp();
    const binary = await connect({ protocol: "msgpack" });
    await binary.auth.login(email, PASSWORD);
    const created = await binary.records<Post>("posts").create({ author: user.id, text: "packed", public: true });
    const same = await hapta.records<Post>("posts").get(created.id);
    expect(created).toEqual(same);
    expect(typeof created.created).toBe("string");
  });
});

describe("realtime", () => {
  it("a snapshot, then every change another client makes, once, in commit order", async () => {
    const reader = await signedUp();
    const writer = await signedUp();
    const tag = uniqueName("feed");
    const first = await writer.hapta.records<Post>("posts").create({ author: writer.user.id, text: `${tag} 0`,
                                                                     public: true });
    const heard: Change<Post>[] = [];
    const stop = await reader.hapta.records<Post>("posts").subscribe(
      { filter: `text ~ "${tag}"`, snapshot: true }, (change) => heard.push(change));
    expect(stop.snapshot!.items.map((p) => p.id)).toEqual([first.id]);
    const made = [];
    for (let i = 1; i <= 3; i++) {
      made.push(await writer.hapta.records<Post>("posts").create({ author: writer.user.id, text: `${tag} ${i}`,
                                                                   public: true }));
    }
    await until(() => heard.length >= 3);
    expect(heard.map((c) => [c.action, c.record.id])).toEqual(made.map((p) => ["create", p.id]));
    expect(heard.every((c, i) => i === 0 || c.pos > heard[i - 1].pos)).toBe(true);
    await stop();
    const after = await writer.hapta.records<Post>("posts").create({ author: writer.user.id, text: `${tag} late`,
                                                                    public: true });
    const marker = await reader.hapta.records<Post>("posts").list({ filter: `id = "${after.id}"` });
    expect(marker.items).toHaveLength(1);
    expect(heard).toHaveLength(3);   // unsubscribed: nothing more came (the reply above came after it would have)
  });

  it("the gateway restarts; the client reconnects, signs in again and loses no change", async () => {
    const reader = await signedUp();
    const states: string[] = [];
    reader.hapta.on("state", (state) => states.push(state));
    const tag = uniqueName("restart");
    const heard: Change<Post>[] = [];
    await reader.hapta.records<Post>("posts").subscribe({ filter: `text ~ "${tag}"` }, (c) => heard.push(c));
    await gateway.restart();
    const writer = await signedUp();   // writes while the reader is still away or just back: both must arrive
    const made = [];
    for (let i = 0; i < 5; i++) {
      made.push(await writer.hapta.records<Post>("posts").create({ author: writer.user.id, text: `${tag} ${i}`,
                                                                   public: true }));
    }
    await until(() => heard.length >= 5, 30_000);
    expect(heard.map((c) => c.record.id)).toEqual(made.map((p) => p.id));
    expect(states).toEqual(["reconnecting", "open"]);
    expect((await reader.hapta.auth.me()).user).toMatchObject({ id: reader.user.id });
    expect(reader.hapta.reconnects).toBe(1);
  }, 60_000);

  it("a post turned private: its comments leave at one position, each handed on once across a restart",
     async () => {
    const reader = await signedUp();
    const writer = await signedUp();
    const post = await writer.hapta.records<Post>("posts").create({ author: writer.user.id, text: "two comments",
                                                                    public: true });
    const heard: Change<any>[] = [];
    await reader.hapta.records("comments").subscribe({ filter: `post = "${post.id}"` }, (c) => heard.push(c));
    const made = [];
    for (let i = 0; i < 2; i++) {
      made.push(await writer.hapta.records<{ id: string }>("comments").create(
        { post: post.id, author: writer.user.id, text: `comment ${i}` } as any));
    }
    await until(() => heard.length >= 2);
    await writer.hapta.records<Post>("posts").update(post.id, { public: false });
    await until(() => heard.length >= 4);
    const hidden = heard.slice(2);
    expect(hidden.map((c) => c.action)).toEqual(["delete", "delete"]);
    expect(new Set(hidden.map((c) => c.record.id))).toEqual(new Set(made.map((c) => c.id)));
    expect(hidden[0].pos).toBe(hidden[1].pos);

    await gateway.restart();   // the resume from that position sends both deletes again: neither is handed on
    await until(() => reader.hapta.reconnects === 1, 30_000);
    await writer.hapta.records<Post>("posts").update(post.id, { public: true });
    await until(() => heard.length >= 6, 30_000);
    expect(heard.slice(4).map((c) => c.action)).toEqual(["create", "create"]);
    expect(heard).toHaveLength(6);
  }, 60_000);

  it("a revoked session signs the client out: it stays open as a guest and may sign in again", async () => {
    const { hapta, email, user } = await signedUp();
    const states: string[] = [];
    const sessions: unknown[] = [];
    hapta.on("state", (state) => states.push(state));
    hapta.on("auth", (session) => sessions.push(session));
    const mine = await hapta.records<Post>("posts").query({ filter: `author = "${user.id}"`, sort: "-created",
                                                            limit: 5 });
    const other = await connect();
    await other.auth.login(email, PASSWORD);
    const listed = (await other.call("auth.sessions")).items as { id: string; current: boolean }[];
    await other.call("auth.revoke", { session: listed.find((s) => !s.current)!.id });
    await until(() => states.includes("open"));   // the gateway closed the socket (1008); a new one took its place
    expect(states).toEqual(["reconnecting", "open"]);
    expect(sessions).toEqual([null]);
    expect(hapta.session).toBeNull();
    expect(await hapta.auth.me()).toEqual({ role: "guest" });
    const read = await hapta.records("posts").list().catch((e) => e);
    expect(read.code).toBe("UNAUTHENTICATED");
    await hapta.auth.login(email, PASSWORD);
    expect((await hapta.auth.me()).user).toMatchObject({ id: user.id });
    expect(hapta.state).toBe("open");
    // the live query, refused while signed out, is asked for again after the sign-in and goes on live
    const post = await hapta.records<Post>("posts").create({ author: user.id, text: "back", public: false });
    await until(() => mine.items.some((p) => p.id === post.id));
  });
});

describe("a revoked session, then no gateway", () => {
  it("the first socket after the revocation opens at once; while none gets through, they back off", async () => {
    const { gate, Gated } = await gated();
    const { hapta, email } = await signedUp({ WebSocket: Gated });
    const other = await connect();
    await other.auth.login(email, PASSWORD);
    const listed = (await other.call("auth.sessions")).items as { id: string; current: boolean }[];
    gate.open = false;   // the next sockets dial nowhere
    const before = gate.sockets.length;
    await other.call("auth.revoke", { session: listed.find((s) => !s.current)!.id });
    await until(() => hapta.session === null && gate.sockets.length > before);
    await new Promise((wait) => setTimeout(wait, 1000));
    expect(gate.sockets.length - before).toBeLessThan(15);   // 50 ms doubling to 500 ms: a handful, not a storm
    expect(hapta.state).toBe("reconnecting");
    gate.open = true;
    await until(() => hapta.state === "open", 5000);
  });
});

describe("functions", () => {
  it("calls a server function by name, as the signed-in user; a refusal is a HaptaError", async () => {
    const folder = mkdtempSync(join(tmpdir(), "hapta-js-functions-"));
    writeFileSync(join(folder, "greetings.py"), [
      "from hapta.functions import Deny, call",
      "",
      '@call(allow="@user.id != null")',
      "def greet(ctx, args):",
      '    return {"hello": args["name"], "user": ctx.user_id}',
      "",
      '@call(allow="")',
      "def refuses(ctx, args):",
      '    raise Deny("not today")',
      "",
    ].join("\n"));
    const served = await startGateway("", [], { functions: folder });
    try {
      const hapta = await Hapta.connect(served.url);
      open.push(hapta);
      const name = uniqueName("fn");
      const session = await hapta.auth.register({ email: `${name}@example.com`, password: PASSWORD, username: name });
      expect(await hapta.functions.call("greet", { name: "ada" })).toEqual({ hello: "ada", user: session.user.id });
      const refused = await hapta.functions.call("refuses").catch((e) => e);
      expect([refused.code, refused.message]).toEqual(["RULE_DENIED", "not today"]);
      expect((await hapta.functions.call("nothere").catch((e) => e)).code).toBe("NOT_FOUND");
    } finally {
      await served.stop();
    }
  }, 120_000);
});

/** A WebSocket class whose sockets the test can cut, and that does not get through again until the test lets it
 * (meanwhile it dials a port nobody listens on): what is written meanwhile is written while the client is away.
 * It keeps every message its sockets sent and heard. */
async function gated() {
  const spare = createServer();
  await new Promise<void>((done) => spare.listen(0, "127.0.0.1", done));
  const nowhere = `ws://127.0.0.1:${(spare.address() as { port: number }).port}/ws`;
  await new Promise((done) => spare.close(done));
  const gate = { open: true, sockets: [] as any[], sent: [] as any[], heard: [] as any[] };
  const Native = (globalThis as any).WebSocket;
  class Gated extends Native {
    constructor(url: string, protocols?: string | string[]) {
      super(gate.open ? url : nowhere, protocols);
      gate.sockets.push(this);
      this.addEventListener("message", (event: { data: unknown }) => {
        if (typeof event.data === "string") gate.heard.push(...[JSON.parse(event.data)].flat());
      });
    }

    send(data: string | Uint8Array): void {
      if (typeof data === "string") gate.sent.push(JSON.parse(data));
      super.send(data);
    }
  }
  return { gate, Gated: Gated as any };
}

describe("live queries", () => {
  /** A writer's posts tagged `tag`, and a reader holding the newest `limit` of them live. */
  async function feed(limit: number, options: Parameters<typeof Hapta.connect>[1] = {}) {
    const writer = await signedUp();
    const reader = await signedUp(options);
    const tag = uniqueName("live");
    const posts = writer.hapta.records<Post>("posts");
    const write = (text: string) => posts.create({ author: writer.user.id, text: `${tag} ${text}`, public: true });
    const made = [];
    for (let i = 0; i < limit + 2; i++) made.push(await write(String(i)));
    const listing = { filter: `text ~ "${tag}"`, sort: "-created" };
    const query = { ...listing, limit };
    const heard: { items: Post[]; ops: LiveOp<Post>[] }[] = [];
    const live = await reader.hapta.records<Post>("posts").query(query, (items, ops) => heard.push({
      items: [...items], ops }));
    const listed = async () => (await reader.hapta.records<Post>("posts").list({ ...listing, per_page: limit })).items;
    return { writer, reader, posts, write, made, live, heard, listed, query, tag };
  }

  /** Every time the items changed, the ops heard turned the items before into the items after. */
  function heardInOrder(heard: { items: Post[]; ops: LiveOp<Post>[] }[]) {
    heard.reduce((before: Post[], { items, ops }) => {
      expect(applyOps(before, ops)).toEqual(items);
      return items;
    }, []);
  }

  it("holds what records.list answers, kept so through another client's creates, updates and deletes",
    async () => {
      const { reader, posts, write, made, live, heard, listed, tag } = await feed(3);
      expect(live.items).toEqual(await listed());
      expect(live.items.map((p) => p.id)).toEqual([made[4].id, made[3].id, made[2].id]);
      expect(heard).toHaveLength(1);   // once at the start
      const items = live.items;

      await posts.delete(made[4].id);   // the newest leaves; the next one enters at the bottom
      await until(() => live.items[0]?.id === made[3].id && live.items.length === 3);
      expect(live.items).toEqual(await listed());
      const newest = await write("newest");
      await until(() => live.items[0]?.id === newest.id);
      const edited = await posts.update(made[2].id, { text: "no longer tagged" });   // leaves the filter
      await until(() => live.items.every((p) => p.id !== edited.id));
      const text = await posts.update(made[3].id, { text: `${newest.text} edited` });
      await until(() => live.items.some((p) => p.version === text.version && p.id === text.id));
      expect(live.items).toEqual(await listed());
      expect(live.items).toBe(items);   // one array, kept current in place
      heardInOrder(heard);
      expect(heard.at(-1)!.ops).toEqual([{ op: "update", id: text.id, record: text }]);

      await live.stop();
      const count = heard.length;
      const kept = [...live.items];
      const marks: Change<Post>[] = [];
      await reader.hapta.records<Post>("posts").subscribe({ filter: `text ~ "${tag}"` }, (c) => marks.push(c));
      await write("after the stop");
      const marker = await write("marker");   // its event comes after any diff of the write before it would have
      await until(() => marks.some((c) => c.record.id === marker.id));
      expect(heard).toHaveLength(count);
      expect(live.items).toEqual(kept);
    });

  it("a dropped socket: meanwhile changes; the resume sends what it holds (have) and ends as records.list",
    async () => {
      const { gate, Gated } = await gated();
      const { reader, posts, write, made, live, heard, listed } = await feed(4, { WebSocket: Gated });
      expect(live.items).toEqual(await listed());
      const held = live.items.map((p) => [p.id, p.version]);

      gate.open = false;
      gate.sockets.at(-1).close(4000);
      await until(() => reader.hapta.state === "reconnecting");
      const asked = gate.sent.length;
      await posts.delete(made[5].id);                                           // held, gone
      const edited = await posts.update(made[3].id, { text: `${made[3].text} edited` });   // held, changed
      const newest = await write("newest");                                     // new
      expect(reader.hapta.state).toBe("reconnecting");   // all of it while the reader was away
      gate.open = true;

      await until(() => reader.hapta.state === "open", 30_000);
      expect(reader.hapta.reconnects).toBe(1);
      expect(live.items).toEqual(await listed());
      expect(live.items.map((p) => p.id)).toEqual([newest.id, made[4].id, made[3].id, made[2].id]);
      expect(live.items[2]).toEqual(edited);
      const resume = gate.sent.slice(asked).find((m) => m.op === "realtime.query");
      expect(resume.args.have).toEqual(held);
      const answer = gate.heard.find((m) => m.id === resume.id && m.ok);
      expect(answer.data.items).toBeUndefined();   // ops: only what changed
      const sent = answer.data.ops.filter((op: LiveOp<Post>) => "record" in op).map((op: any) => op.record.id);
      expect(sent.sort()).toEqual([newest.id, edited.id].sort());
      heardInOrder(heard);

      const later = await write("after the resume");   // and it goes on live
      await until(() => live.items[0]?.id === later.id);
      expect(live.items).toEqual(await listed());
    }, 60_000);

  it("a realtime.reset for the query asks again with what it holds, and goes on live", async () => {
    const { gate, Gated } = await gated();
    const { write, live, heard, listed } = await feed(3, { WebSocket: Gated });
    const first = gate.sent.find((m) => m.op === "realtime.query");
    const sub = gate.heard.find((m) => m.id === first.id).data.sub;
    const asked = gate.sent.length;
    // What the gateway sends when it could not keep the query (a read that failed), as it would arrive
    gate.sockets.at(-1).onmessage({ data: JSON.stringify({ event: "realtime.reset", sub,
                                                           data: { subs: [sub], channels: [] } }) });
    await until(() => gate.heard.some((m) => m.id === gate.sent.at(-1).id));
    const again = gate.sent.slice(asked);
    expect(again.find((m) => m.op === "realtime.unsubscribe").args).toEqual({ sub });
    expect(again.find((m) => m.op === "realtime.query").args.have).toEqual(live.items.map((p) => [p.id, p.version]));
    const newest = await write("after the reset");
    await until(() => live.items[0]?.id === newest.id);
    expect(live.items).toEqual(await listed());
    heardInOrder(heard);
  });
});

describe("sessions", () => {
  it("a stored session is resumed by the next page load, and two tabs refreshing at once stay one session",
    async () => {
      const storage = new MemoryStorage();
      const { hapta: first, user } = await signedUp({ storage });
      const tabs = [await connect({ storage }), await connect({ storage })];
      for (const tab of tabs) expect((await tab.auth.me()).user).toMatchObject({ id: user.id });
      const [a, b] = await Promise.all(tabs.map((tab) => tab.auth.refresh()));
      expect(a.refresh_token).toBe(b.refresh_token);   // one family: the gateway gives a racing tab the same pair
      const sessions = (await first.call("auth.sessions")).items as unknown[];
      expect(sessions).toHaveLength(1);
      for (const tab of tabs) expect((await tab.auth.me()).user).toMatchObject({ id: user.id });
    });

  it("an anon key signs in as anon, and again after a reconnect", async () => {
    const anon = await connect({ apikey: ANON_KEY });
    expect((await anon.auth.me()).role).toBe("anon");
    await gateway.restart();
    await until(() => anon.state === "open" && anon.reconnects === 1, 30_000);
    expect((await anon.auth.me()).role).toBe("anon");
  }, 60_000);

  it("a guest posts, then registers and keeps the post; the stored session is the account's", async () => {
    const storage = new MemoryStorage();
    const hapta = await connect({ storage });
    const guest = await hapta.auth.guest();
    const id = (guest.user as { id: string; anonymous: boolean }).id;
    expect(guest.user).toMatchObject({ anonymous: true, email: null });
    const post = await hapta.records<Post>("posts").create({ author: id, text: "before signing up" });
    const name = uniqueName("guest");
    const account = await hapta.auth.register({ email: `${name}@example.com`, password: PASSWORD });
    expect(account.user).toMatchObject({ id, anonymous: false, email: `${name}@example.com` });
    expect(hapta.session?.refresh_token).toBe(account.refresh_token);
    expect((await hapta.records<Post>("posts").get(post.id)).author).toBe(id);
  });
});

describe("channels", () => {
  it("presence and messages, and members kept right across a restart", async () => {
    const room = `room:${uniqueName("r")}`;
    const carol = await signedUp();
    const dave = await signedUp();
    const channel = carol.hapta.channel(room);
    await channel.join();
    const messages: unknown[] = [];
    channel.on("message", (m) => messages.push(m.data));
    await dave.hapta.channel(room).join();
    await until(() => channel.members.length === 2);
    await dave.hapta.channel(room).send({ typing: true });
    await until(() => messages.length === 1);
    expect(messages).toEqual([{ typing: true }]);
    await gateway.restart();
    await until(() => carol.hapta.state === "open" && dave.hapta.state === "open", 30_000);
    await until(() => channel.members.length === 2 && channel.members.every((m) => m.id !== undefined));
    expect(new Set(channel.members.map((m) => m.user))).toEqual(new Set([carol.user.id, dave.user.id]));
  }, 60_000);
});

describe("files", () => {
  it("uploads with progress, downloads the same bytes, hands out a URL, and a thumbnail's of a declared size", async () => {
    const { hapta, user } = await signedUp();
    const post = await hapta.records<Post>("posts").create({ author: user.id, text: "with a picture", public: true });
    const png = new Uint8Array(600_000);
    png.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);   // a PNG's signature: the type is judged by it
    for (let i = 8; i < png.length; i++) png[i] = i % 251;
    const progress: number[] = [];
    const stored = await hapta.files.upload("posts", post.id, "media", new Blob([png], { type: "image/png" }),
      { name: "cat.png", onProgress: (sent) => progress.push(sent) });
    expect(stored.file).toMatchObject({ name: "cat.png", size: png.length, type: "image/png" });
    expect(progress.at(-1)).toBe(png.length);
    expect(progress.length).toBeGreaterThan(1);
    const back = await hapta.files.download("posts", post.id, "media", "cat.png");
    expect(Buffer.from(back).equals(Buffer.from(png))).toBe(true);
    const url = await hapta.files.url("posts", post.id, "media", "cat.png");
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("image/png");

    // a thumbnail, of a size the field declares (the same user: registrations are limited per address)
    const red = Buffer.from(RED_200_BY_120_PNG, "base64");
    await hapta.files.upload("posts", post.id, "media", new Blob([red], { type: "image/png" }), { name: "red.png" });
    const link = await hapta.files.url("posts", post.id, "media", "red.png", { thumb: "100x100" });
    const answer = await fetch(link);
    expect(answer.status).toBe(200);
    const thumb = new Uint8Array(await answer.arrayBuffer());
    const header = new DataView(thumb.buffer, thumb.byteOffset);   // a PNG's IHDR: width and height at 16 and 20
    expect([header.getUint32(16), header.getUint32(20)]).toEqual([100, 100]);
    const small = await hapta.files.download("posts", post.id, "media", "red.png", { thumb: "100x100" });
    expect(Buffer.from(small).equals(Buffer.from(thumb))).toBe(true);
    const refused = await hapta.files.url("posts", post.id, "media", "red.png", { thumb: "33x33" }).catch((e) => e);
    expect(refused).toBeInstanceOf(HaptaError);
    expect(refused.code).toBe("BAD_REQUEST");
  });
});

describe("a record and its files in one step", () => {
  /** A PNG's signature, then `size - 8` bytes of `seed`: the gateway judges the type by the first bytes. */
  const png = (size: number, seed: number) => {
    const bytes = new Uint8Array(size);
    for (let i = 8; i < size; i++) bytes[i] = (i * seed) % 251;
    bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    return bytes;
  };
  const sha256 = async (bytes: Uint8Array) =>
    Buffer.from(await crypto.subtle.digest("SHA-256", bytes)).toString("hex");

  it("a post with two pictures in one create, progress across both; an update adds one and keeps them; with "
     + "persist, files past outboxFileBytes go straight, and offline fail at once", async () => {
    // the two pictures (401,000 bytes) are more than this outbox keeps: they go straight; the later writes through it
    const { gate, Gated } = await gated();
    const { hapta, user } = await guest({ persist: "memory", outboxFileBytes: 300_000, WebSocket: Gated });
    const posts = hapta.records<Post>("posts");
    const [a, b, c] = [png(1000, 3), png(400_000, 7), png(2000, 11)];
    const progress: [number, number][] = [];
    const post = await posts.create({ author: user.id, text: "two pictures", public: true }, {
      files: { media: [new File([a], "a.png", { type: "image/png" }), new Blob([b], { type: "image/png" })] },
      onProgress: (sent, total) => progress.push([sent, total]),
    });
    expect(post.media.map((f) => [f.name, f.size, f.type])).toEqual([["a.png", 1000, "image/png"],
                                                                     ["file-2.png", 400_000, "image/png"]]);
    expect(post.media.map((f) => f.sha256)).toEqual([await sha256(a), await sha256(b)]);
    expect(progress.every(([, total]) => total === 401_000)).toBe(true);
    expect(progress.at(-1)).toEqual([401_000, 401_000]);
    expect(progress.map(([sent]) => sent)).toEqual([...progress.map(([sent]) => sent)].sort((x, y) => x - y));
    expect(Buffer.from(await hapta.files.download("posts", post.id, "media", "file-2.png")).equals(Buffer.from(b)))
      .toBe(true);

    // an update keeps what the record holds and adds the new file after it
    const more = await posts.update(post.id, { text: "three" }, { files: { media: [{ data: c, name: "c.png" }] } });
    expect(more.media.map((f) => f.name)).toEqual(["a.png", "file-2.png", "c.png"]);
    // ...or keeps only the files its data names
    const fewer = await posts.update(post.id, { media: ["c.png"] as any },
                                     { files: { media: [{ data: a, name: "d.png", type: "image/png" }] } });
    expect(fewer.media.map((f) => f.name)).toEqual(["c.png", "d.png"]);

    // a file of a type the field refuses refuses the write: no record
    const refused = await posts.create({ author: user.id, text: "never stored", public: true }, {
      files: { media: [new File([a], "ok.png", { type: "image/png" }),
                       new File(["plain words"], "notes.txt", { type: "text/plain" })] },
    }).catch((e) => e);
    expect(refused).toBeInstanceOf(HaptaError);
    expect(refused.code).toBe("VALIDATION_FAILED");
    expect((await posts.list({ filter: `author = "${user.id}" && text = "never stored"`, count: true })).total)
      .toBe(0);
    const writes = gate.sent.filter((m) => String(m.op).startsWith("records.") && m.args.idempotency_key);
    expect(writes.map((m) => m.op)).toEqual(["records.create", "records.update", "records.update"]);

    // offline, files past outboxFileBytes are not kept: the write fails at once, and nothing of it waits
    gate.open = false;
    gate.sockets.at(-1).close();
    await until(() => hapta.state === "reconnecting");
    const tooLarge = await posts.create({ author: user.id, text: "too large", public: true },
                                        { files: { media: [new Blob([b], { type: "image/png" })] } }).catch((e) => e);
    expect([tooLarge.code, tooLarge.details]).toEqual(["TOO_LARGE", { size: 400_000, outboxFileBytes: 300_000 }]);
    expect(hapta.outbox.pending()).toEqual([]);
    gate.open = true;
  });

  it("a socket cut in the middle of the upload: after the reconnect the upload resumes where the gateway kept it, "
     + "and the post has the whole picture", async () => {
    const Native = (globalThis as any).WebSocket;
    const cut = { after: 0, chunks: 0, bytes: 0, resumes: [] as any[], received: [] as number[] };
    class Cutting extends Native {
      constructor(...args: any[]) {
        super(...args);
        this.addEventListener("message", (event: { data: unknown }) => {
          if (typeof event.data !== "string") return;
          for (const message of [JSON.parse(event.data)].flat()) {
            if (typeof message.data?.received === "number" && message.data.stream) {
              if (message.id !== undefined) cut.received.push(message.data.received);   // a resume's answer
            }
          }
        });
      }

      send(data: string | Uint8Array): void {
        if (typeof data === "string" && data.includes('"resume"')) cut.resumes.push(JSON.parse(data));
        if (typeof data !== "string" && this.readyState === 1) cut.bytes += data.length - 4;   // what goes out
        super.send(data);
        if (typeof data === "string") return;
        if (++cut.chunks === cut.after) this.close(4000);   // the 4th chunk went out; the socket is gone
      }
    }
    const { hapta, user } = await guest({ WebSocket: Cutting as any });
    const big = png(3_000_000, 17);   // about 12 chunks of 256 KiB
    const progress: number[] = [];
    cut.after = 4;
    const post = await hapta.records<Post>("posts").create({ author: user.id, text: "resumed", public: true },
      { files: { media: [new File([big], "big.png", { type: "image/png" })] },
        onProgress: (sent) => progress.push(sent) });
    expect(hapta.reconnects).toBe(1);
    expect(cut.resumes).toHaveLength(1);
    expect(post.media.map((f) => [f.name, f.size, f.sha256])).toEqual([["big.png", big.length, await sha256(big)]]);
    // the gateway kept some of the first 4 chunks, and only the rest went again
    expect(cut.received).toHaveLength(1);
    expect(cut.received[0]).toBeGreaterThan(0);
    expect(cut.bytes).toBe(4 * 262_144 + big.length - cut.received[0]);
    expect(progress.at(-1)).toBe(big.length);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));   // across the drop, never backwards
    const back = await hapta.files.download("posts", post.id, "media", "big.png");
    expect(await sha256(back)).toBe(await sha256(big));
  }, 30_000);

  it("tokens that expired between the uploads and the create are uploaded once more", async () => {
    // uploads kept 2 s after their finish; the socket holds the create until its tokens have expired
    const brief = await startGateway("file_idle_timeout=2");
    const Native = (globalThis as any).WebSocket;
    let expiry = 0;
    let hold = true;
    const uploads: string[] = [];
    class Holding extends Native {
      constructor(...args: any[]) {
        super(...args);
        this.addEventListener("message", (event: { data: unknown }) => {
          if (typeof event.data !== "string") return;
          for (const message of [JSON.parse(event.data)].flat()) {
            if (message.data?.upload) expiry = Math.max(expiry, message.data.expires_at * 1000);
          }
        });
      }

      send(data: string | Uint8Array): void {
        if (typeof data === "string" && data.includes('"files.upload"')) uploads.push(data);
        if (hold && typeof data === "string" && data.includes('"records.create"')) {
          hold = false;
          // expires_at is in whole seconds (rounded down): a second past it the lease has surely run out
          until(() => Date.now() > expiry + 1000, 10_000).then(() => super.send(data));
          return;
        }
        super.send(data);
      }
    }
    const hapta = await Hapta.connect(brief.url, { WebSocket: Holding as any });
    try {
      const session = await hapta.auth.guest();
      const picture = png(5000, 13);
      const post = await hapta.records<Post>("posts").create(
        { author: (session.user as { id: string }).id, text: "late", public: true },
        { files: { media: [new File([picture], "late.png", { type: "image/png" })] } });
      expect(post.media.map((f) => f.name)).toEqual(["late.png"]);
      expect(post.media[0].sha256).toBe(await sha256(picture));
      expect(uploads).toHaveLength(2);   // the first upload's token expired; it went once more
    } finally {
      hapta.close();
      await brief.stop();
    }
  }, 60_000);
});

/** A 200 x 120 red PNG: something Pillow decodes, small enough to sit here. */
const RED_200_BY_120_PNG =
  "iVBORw0KGgoAAAANSUhEUgAAAMgAAAB4CAIAAAA48Cq8AAABTklEQVR4nO3SQQ3AIADAQEAI/qUgCxNrSJY7BX10nr0HfG29DuCf" +
  "jEXCWCSMRcJYJIxFwlgkjEXCWCSMRcJYJIxFwlgkjEXCWCSMRcJYJIxFwlgkjEXCWCSMRcJYJIxFwlgkjEXCWCSMRcJYJIxFwlgk" +
  "jEXCWCSMRcJYJIxFwlgkjEXCWCSMRcJYJIxFwlgkjEXCWCSMRcJYJIxFwlgkjEXCWCSMRcJYJIxFwlgkjEXCWCSMRcJYJIxFwlgk" +
  "jEXCWCSMRcJYJIxFwlgkjEXCWCSMRcJYJIxFwlgkjEXCWCSMRcJYJIxFwlgkjEXCWCSMRcJYJIxFwlgkjEXCWCSMRcJYJIxFwlgk" +
  "jEXCWCSMRcJYJIxFwlgkjEXCWCSMRcJYJIxFwlgkjEXCWCSMRcJYJIxFwlgkjEXCWCSMRcJYJIxFwlgkjEXCWCSMRcJYJC5eBwH0" +
  "TiqIVQAAAABJRU5ErkJggg==";

describe("admin", () => {
  it("an admin key works through call()", async () => {
    const admin = await connect();
    await admin.call("auth.admin", { key: ADMIN_KEY });
    expect((await admin.auth.me()).role).toBe("admin");
  });
});

describe("batches and idempotent writes", () => {
  it("a post and a comment on it in one batch; a failing op writes nothing and names its index", async () => {
    const { hapta, user } = await signedUp();
    const { results } = await hapta.batch([
      { op: "create", collection: "posts", data: { author: user.id, text: "batched", public: true } },
      { op: "create", collection: "comments", data: { post: { $ref: 0 }, author: user.id, text: "on it" } },
    ]);
    expect(results[1].post).toBe(results[0].id);
    const failed = await hapta.batch([
      { op: "create", collection: "posts", data: { author: user.id, text: "never" } },
      { op: "create", collection: "comments", data: { post: { $ref: 0 }, author: user.id, text: "" } },
    ]).catch((e) => e);
    expect([failed.code, failed.details.index]).toEqual(["VALIDATION_FAILED", 1]);
    const never = await hapta.records<Post>("posts").list({ filter: `author = "${user.id}" && text = "never"` });
    expect(never.items).toHaveLength(0);
    const key = uniqueName("key");
    const posts = hapta.records<Post>("posts");
    const once = await posts.create({ author: user.id, text: "keyed", public: true }, { idempotencyKey: key });
    expect(await posts.create({ author: user.id, text: "keyed", public: true }, { idempotencyKey: key }))
      .toEqual(once);
  });

  it("a write whose socket dropped before its reply is sent again after the reconnect, and posts once",
    async () => {
      const Native = (globalThis as any).WebSocket;
      let drop = false;
      class Dropping extends Native {
        send(data: string | Uint8Array): void {
          super.send(data);
          if (drop && typeof data === "string" && data.includes('"records.create"')) {
            drop = false;
            this.close(4000);   // the request went out; its reply never comes on this socket
          }
        }
      }
      const { hapta, user } = await signedUp({ WebSocket: Dropping as any });
      const tag = uniqueName("dropped");
      drop = true;
      const post = await hapta.records<Post>("posts").create({ author: user.id, text: tag, public: true });
      expect(post.text).toBe(tag);
      expect(hapta.reconnects).toBe(1);
      const found = await hapta.records<Post>("posts").list({ filter: `text = "${tag}"`, count: true });
      expect(found.total).toBe(1);

      const { hapta: plain, user: other } = await signedUp({ WebSocket: Dropping as any, idempotentWrites: false });
      drop = true;
      const lost = await plain.records<Post>("posts").create({ author: other.id, text: tag }).catch((e) => e);
      expect([lost.code, lost.details?.outcome]).toEqual(["UNAVAILABLE", "unknown"]);   // without a key: the app's call
    }, 30_000);
});

describe("offline first (persist)", () => {
  it("writes made while the socket is down show at once, pending, and land once each, in order", async () => {
    const { gate, Gated } = await gated();
    const { hapta, user } = await signedUp({ persist: "memory", WebSocket: Gated });
    const reader = (await signedUp()).hapta;
    const tag = uniqueName("off");
    const posts = hapta.records<Post>("posts");
    const kept = await posts.create({ author: user.id, text: `${tag} kept`, public: true });
    const feed = await posts.query({ filter: `text ~ "${tag}"`, sort: "-created", limit: 10 });
    await until(() => feed.items.length === 1 && !feed.stale);
    const heard: Change<Post>[] = [];
    await posts.subscribe({ filter: `text ~ "${tag} 2"` }, (change) => heard.push(change));
    gate.open = false;
    gate.sockets.at(-1).close();
    await until(() => hapta.state === "reconnecting");
    const sentBefore = gate.sent.length;
    const first = posts.create({ author: user.id, text: `${tag} 1`, public: true });
    await new Promise((wait) => setTimeout(wait, 5));
    const second = posts.create({ author: user.id, text: `${tag} 2`, public: true });
    expect(feed.items.map((p) => [p.text, p.$pending])).toEqual([[`${tag} 2`, true], [`${tag} 1`, true],
                                                                [`${tag} kept`, undefined]]);
    const draft = feed.items[1].id;
    expect(draft).toMatch(/^local-/);
    const edited = posts.update(draft, { text: `${tag} 1 edited` });
    const removed = posts.delete(kept.id);
    expect(feed.items.map((p) => p.text)).toEqual([`${tag} 2`, `${tag} 1 edited`]);
    expect(hapta.outbox.pending().map((w) => w.op)).toEqual(["records.create", "records.create", "records.update",
                                                              "records.delete"]);
    expect(gate.sent.length).toBe(sentBefore);   // nothing went anywhere
    gate.open = true;
    const [one, two] = await Promise.all([first, second]);
    await Promise.all([edited, removed]);
    await until(() => feed.items.length === 2 && feed.items.every((p) => !p.$pending));
    expect(feed.items.map((p) => [p.id, p.text])).toEqual([[two.id, `${tag} 2`], [one.id, `${tag} 1 edited`]]);
    expect(hapta.outbox.idFor(draft)).toBe(one.id);
    // a subscription heard the create at once, under its temporary id; then that id replaced; then the gateway's
    await until(() => heard.length === 3);
    const temp = heard[0].record.id;
    expect(heard.map((c) => [c.action, c.record.id, c.pending, c.replacedBy])).toEqual([
      ["create", temp, true, undefined], ["delete", temp, undefined, two.id], ["create", two.id, undefined, undefined]]);
    const rows = await reader.records<Post>("posts").list({ filter: `text ~ "${tag}"`, sort: "created" });
    expect(rows.items.map((p) => p.text)).toEqual([`${tag} 1 edited`, `${tag} 2`]);
    const writes = gate.sent.filter((m) => String(m.op).startsWith("records.") && m.args.idempotency_key);
    expect(writes).toHaveLength(5);   // each write once, the one made online too
    expect(new Set(writes.map((m) => m.args.idempotency_key)).size).toBe(5);
    expect(hapta.outbox.pending()).toEqual([]);
  });

  it("a write the gateway refuses is rolled back where it showed, and reported", async () => {
    const { hapta, user } = await signedUp({ persist: "memory" });
    const someone = await signedUp();
    const tag = uniqueName("no");
    const posts = hapta.records<Post>("posts");
    const mine = await posts.create({ author: user.id, text: `${tag} mine`, public: true });
    const feed = await posts.query({ filter: `text ~ "${tag}"`, sort: "-created", limit: 10 });
    const heard: Change<Post>[] = [];
    await posts.subscribe({ filter: `text ~ "${tag}"` }, (change) => heard.push(change));
    const events: any[] = [];
    hapta.on("outbox", (event) => events.push(event));
    const refused = posts.create({ author: someone.user.id, text: `${tag} forged`, public: true });
    expect(feed.items.map((p) => p.text)).toEqual([`${tag} forged`, `${tag} mine`]);   // at once, before the gateway
    const error = await refused.catch((e) => e);
    expect(error.code).toBe("FORBIDDEN");
    await until(() => events.length === 1);
    expect(feed.items.map((p) => p.text)).toEqual([`${tag} mine`]);
    expect(events[0]).toMatchObject({ kind: "refused", write: { op: "records.create", user: user.id },
                                      error: { code: "FORBIDDEN" } });
    expect(events[0].rolledBack).toMatchObject([{ action: "create", collection: "posts",
                                                  shown: { text: `${tag} forged` }, restored: null }]);
    expect(heard.map((c) => [c.action, c.pending ?? c.rolledBack])).toEqual([["create", true], ["delete", true]]);
    // an update at a stale version (another client of the same user changed it first): the gateway's version
    // stands, and the app is told both
    const elsewhere = await Hapta.connect(gateway.url);
    open.push(elsewhere);
    await elsewhere.auth.login(hapta.session!.user.email as string, PASSWORD);
    await elsewhere.records<Post>("posts").update(mine.id, { text: `${tag} theirs` });
    await until(() => feed.items[0]?.text === `${tag} theirs`);
    const stale = posts.update(mine.id, { text: `${tag} stale` }, { version: mine.version });
    expect(feed.items[0]).toMatchObject({ text: `${tag} stale`, $pending: true });
    expect((await stale.catch((e) => e)).code).toBe("CONFLICT");
    await until(() => events.length === 2);
    expect(events[1]).toMatchObject({ kind: "conflict", mine: { text: `${tag} stale` },
                                      server: { text: `${tag} theirs`, version: mine.version + 1 } });
    expect(feed.items.map((p) => [p.text, p.$pending])).toEqual([[`${tag} theirs`, undefined]]);
  });
});

describe("offline first: whose writes", () => {
  it("a revoked session keeps its user's writes until they sign in again; another user's sign-in drops them",
    async () => {
      const { gate, Gated } = await gated();
      const { hapta, user, email } = await signedUp({ persist: "memory", WebSocket: Gated });
      const tag = uniqueName("who");
      const posts = hapta.records<Post>("posts");
      const events: any[] = [];
      hapta.on("outbox", (event) => events.push(event));
      const revoke = async () => {
        const other = await connect();
        await other.auth.login(email, PASSWORD);
        const listed = (await other.call("auth.sessions")).items as { id: string; current: boolean }[];
        await other.call("auth.revoke", { session: listed.find((s) => !s.current)!.id });
        other.close();
      };
      // offline, a write; meanwhile the session is revoked: back online the client is signed out, and waits
      gate.open = false;
      gate.sockets.at(-1).close();
      await until(() => hapta.state === "reconnecting");
      const kept = posts.create({ author: user.id, text: `${tag} kept`, public: true });
      await revoke();
      gate.open = true;
      await until(() => hapta.state === "open" && hapta.session === null);
      await new Promise((wait) => setTimeout(wait, 200));
      expect(hapta.outbox.pending().map((w) => [w.op, w.user])).toEqual([["records.create", user.id]]);
      await hapta.auth.login(email, PASSWORD);   // the same user: the write goes
      expect((await kept).text).toBe(`${tag} kept`);
      expect(events).toEqual([]);

      // again, but someone else signs in: the write is dropped, and said so
      gate.open = false;
      gate.sockets.at(-1).close();
      await until(() => hapta.state === "reconnecting");
      const dropped = posts.create({ author: user.id, text: `${tag} dropped`, public: true });
      await revoke();
      gate.open = true;
      await until(() => hapta.state === "open" && hapta.session === null);
      const name = uniqueName("next");
      await hapta.auth.register({ email: `${name}@example.com`, password: PASSWORD, username: name });
      expect((await dropped.catch((e) => e)).code).toBe("UNAUTHENTICATED");
      expect(events.map((e) => [e.kind, e.write.user, e.rolledBack.map((r: any) => r.action)]))
        .toEqual([["dropped", user.id, ["create"]]]);
      expect(hapta.outbox.pending()).toEqual([]);
      const written = await hapta.records<Post>("posts").list({ filter: `text ~ "${tag}"` });
      expect(written.items.map((p) => p.text)).toEqual([`${tag} kept`]);
    });
});

describe("retry_after", () => {
  it("a write refused for now is sent again after retry_after; with retries off the refusal is the caller's",
    async () => {
      const limited = await startGateway('limits={**app.limits, "records.create": Limit(2, per=1)}');
      try {
        const name = uniqueName("l");
        const patient = await Hapta.connect(limited.url);
        open.push(patient);
        const session = await patient.auth.register({ email: `${name}@example.com`, password: PASSWORD,
                                                      username: name });
        const posts = patient.records<Post>("posts");
        const write = (i: number) => posts.create({ author: session.user.id as string, text: `${name} ${i}` });
        const made = await Promise.all([0, 1, 2, 3].map(write));   // 2 a second: two of them wait their turn
        expect(new Set(made.map((p) => p.id)).size).toBe(4);

        const hasty = await Hapta.connect(limited.url, { retry: { attempts: 0 } });
        open.push(hasty);
        await hasty.auth.login(`${name}@example.com`, PASSWORD);
        const results = await Promise.allSettled([4, 5, 6, 7].map((i) => hasty.records<Post>("posts").create({
          author: session.user.id as string, text: `${name} ${i}` })));
        const refused = results.filter((r) => r.status === "rejected").map((r) => (r as PromiseRejectedResult).reason);
        expect(refused.length).toBeGreaterThan(0);
        for (const error of refused) {
          expect(error).toBeInstanceOf(HaptaError);
          expect(error.code).toBe("RATE_LIMITED");
          expect(error.retryAfter).toBeGreaterThan(0);
        }
      } finally {
        await limited.stop();
      }
    }, 60_000);
});
