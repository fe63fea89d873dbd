// Offline first in a real browser: Debian's Chromium through playwright-core, the committed dist/hapta.js with
// persist: "indexeddb", against a real `hapta serve`. A page goes offline as a browser does (DevTools' network
// emulation: requests fail and navigator.onLine is false; the client lets its socket go on "offline"); a "reload"
// while offline is a navigation served from the HTTP cache, as a service worker would serve the app. What the
// gateway holds is read by a second client, from Node; what each page sent is read from its WebSocket frames.
import type { Server } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Hapta } from "../src/hapta";
import { chromiumPath, CHROMIUM_ARGS, launch, noChromium, pageServer } from "./chromium";
import { PASSWORD, startGateway, uniqueName, until, type Gateway } from "./support";

if (!chromiumPath) console.warn(`offline browser tests skipped: ${noChromium}`);

// The app: window.start(url, tag) connects offline first, and keeps a live query of the posts tagged `tag` (the
// newest first) and what the client reports.
const PAGE = `<!doctype html><meta charset="utf-8"><title>offline</title>
<script type="module">
  import { Hapta } from "/dist/hapta.js";
  window.start = async (url, tag) => {
    const hapta = await Hapta.connect(url, { persist: "indexeddb", backoff: { base: 100, cap: 1000 } });
    window.client = hapta;
    window.events = [];
    window.states = [];
    window.firstShown = null;
    hapta.on("outbox", (event) => window.events.push(event));
    hapta.on("state", (state) => window.states.push(state));
    if (hapta.session) {
      window.feed = await hapta.records("posts").query(
        { filter: "text ~ " + JSON.stringify(tag), sort: "-created", limit: 50 },
        (items, ops, state) => {
          if (!window.firstShown) window.firstShown = { items: items.map((p) => ({ ...p })), stale: state.stale };
        });
    }
    return { user: hapta.session?.user?.id ?? null, state: hapta.state };
  };
  window.signUp = async (url, name, password) => {
    const hapta = await Hapta.connect(url, { storage: localStorage });
    await hapta.auth.register({ email: name + "@example.com", password, username: name });
    hapta.close();
  };
  window.guest = async (url) => {
    const hapta = await Hapta.connect(url, { storage: localStorage });
    await hapta.auth.guest();
    hapta.close();
  };
  // a width x height PNG drawn here, as a File (what an <input type=file> gives)
  window.picture = async (width, height, name) => {
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const draw = canvas.getContext("2d");
    draw.fillStyle = "#3a7";
    draw.fillRect(0, 0, width, height);
    const blob = await new Promise((done) => canvas.toBlob(done, "image/png"));
    return new File([blob], name, { type: "image/png" });
  };
  // the natural width of the image at url (a preview: an object URL)
  window.widthOf = (url) => new Promise((done, failed) => {
    const img = new Image();
    img.onload = () => done(img.naturalWidth);
    img.onerror = () => failed(new Error("the image did not load: " + url));
    img.src = url;
  });
  window.shown = () => window.feed.items.map((p) => [p.text, !!p.$pending]);
  window.ready = true;
</script>`;

type Shown = [string, boolean][];

describe.skipIf(!chromiumPath)(`offline first, in Chromium${chromiumPath ? "" : ` (skipped: ${noChromium})`}`, () => {
  let gateway: Gateway;
  let server: Server;
  let origin = "";
  let browser: any;
  let reader: Hapta;
  let problems: string[] = [];

  beforeAll(async () => {
    [server, origin] = await pageServer(PAGE, true);
    gateway = await startGateway();
    browser = await launch();
    reader = await Hapta.connect(gateway.url, { backoff: { base: 50, cap: 500 } });
    const name = uniqueName("reader");
    await reader.auth.register({ email: `${name}@example.com`, password: PASSWORD, username: name });
  }, 180_000);

  beforeEach(() => { problems = []; });
  afterEach(() => { expect(problems).toEqual([]); });

  afterAll(async () => {
    reader?.close();
    await browser?.close();
    server?.close();
    await gateway?.stop();
  });

  /** A page of `context` at the app, loaded `offline` or not, that records every write it sends (by idempotency
   * key) into `sent`. */
  async function open(context: any, sent: string[] = [], offline = false) {
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    if (offline) await network(cdp, false);
    page.on("websocket", (socket: any) => socket.on("framesent", ({ payload }: { payload: string | Buffer }) => {
      if (typeof payload !== "string") return;
      for (const message of [JSON.parse(payload)].flat()) {
        if (String(message.op).startsWith("records.") && message.args?.idempotency_key) {
          sent.push(message.args.idempotency_key);
        }
      }
    }));
    page.on("pageerror", (error: Error) => problems.push(error.message));
    await page.goto(origin + "/");
    await page.waitForFunction(() => (window as any).ready);
    return { page, sent, cdp };
  }

  /** Cuts (or gives back) the page's network, as DevTools' "Offline" does. */
  async function network(cdp: any, online: boolean) {
    await cdp.send("Network.enable");
    await cdp.send("Network.emulateNetworkConditions", { offline: !online, latency: 0, downloadThroughput: -1,
                                                         uploadThroughput: -1 });
  }

  /** The texts of the posts tagged `tag` the gateway holds, oldest first (with how often each is there). */
  async function rows(tag: string): Promise<string[]> {
    const page = await reader.records<{ text: string }>("posts").list({ filter: `text ~ "${tag}"`, sort: "created",
                                                                        per_page: 200 });
    return page.items.map((p) => p.text);
  }

  /** Starts the app on `page`, signed up as a new user when `signUp`. */
  async function start(page: any, tag: string, signUp = false) {
    if (signUp) {
      const name = uniqueName("off");
      await page.evaluate(({ url, name, password }: any) => (window as any).signUp(url, name, password),
                          { url: gateway.url, name, password: PASSWORD });
    }
    return page.evaluate(({ url, tag }: any) => (window as any).start(url, tag), { url: gateway.url, tag });
  }

  const shown = (page: any): Promise<Shown> => page.evaluate(() => (window as any).shown());
  const settled = (page: any) => page.waitForFunction(() => (window as any).client.outbox.pending().length === 0
    && (window as any).feed.items.every((p: any) => !p.$pending), undefined, { timeout: 30_000 });

  it("offline: creates, edits and deletes show at once; a reload while offline shows them and the kept items; back "
     + "online each lands once, in order, and the pending marks clear", async () => {
    const context = await browser.newContext();
    const tag = uniqueName("o");
    const first = await open(context);
    const { user } = await start(first.page, tag, true);
    expect(user).toBeTruthy();
    await first.page.evaluate(async (tag: string) => {
      const posts = (window as any).client.records("posts");
      const author = (window as any).client.session.user.id;
      await posts.create({ author, text: `${tag} kept`, public: true });
      await new Promise((wait) => setTimeout(wait, 5));
      await posts.create({ author, text: `${tag} doomed`, public: true });
    }, tag);
    await first.page.waitForFunction(() => (window as any).feed.items.length === 2);
    await new Promise((wait) => setTimeout(wait, 300));   // the kept items reach the store

    await network(first.cdp, false);
    await first.page.waitForFunction(() => (window as any).client.state !== "open");
    const madeOffline = await first.page.evaluate(async (tag: string) => {
      const hapta = (window as any).client;
      const posts = hapta.records("posts");
      const author = hapta.session.user.id;
      const byText = (text: string) => (window as any).feed.items.find((p: any) => p.text === text);
      posts.create({ author, text: `${tag} a`, public: true });
      await new Promise((wait) => setTimeout(wait, 5));
      posts.create({ author, text: `${tag} b`, public: true });
      posts.update(byText(`${tag} a`).id, { text: `${tag} a, edited offline` });   // its create is pending too
      posts.update(byText(`${tag} kept`).id, { text: `${tag} kept, edited offline` });
      posts.delete(byText(`${tag} doomed`).id);
      return { shown: (window as any).shown(), pending: hapta.outbox.pending().map((w: any) => w.op) };
    }, tag);
    expect(madeOffline.shown).toEqual([[`${tag} b`, true], [`${tag} a, edited offline`, true],
                                       [`${tag} kept, edited offline`, true]]);
    expect(madeOffline.pending).toEqual(["records.create", "records.create", "records.update", "records.update",
                                         "records.delete"]);
    expect(await rows(tag)).toEqual([`${tag} kept`, `${tag} doomed`]);   // the gateway has none of it

    // A reload, still offline: the page comes from the HTTP cache; the client from IndexedDB.
    await first.page.close();
    const again = await open(context, first.sent, true);
    const restarted = await start(again.page, tag);
    expect(restarted.state).not.toBe("open");
    const firstShown = await again.page.evaluate(() => (window as any).firstShown);
    expect(firstShown.stale).toBe(true);
    expect(firstShown.items.map((p: any) => [p.text, !!p.$pending])).toEqual(madeOffline.shown);
    expect(await again.page.evaluate(() => (window as any).feed.stale)).toBe(true);
    expect(await again.page.evaluate(() => (window as any).client.outbox.pending().length)).toBe(5);

    await network(again.cdp, true);
    await settled(again.page);
    expect(await shown(again.page)).toEqual([[`${tag} b`, false], [`${tag} a, edited offline`, false],
                                             [`${tag} kept, edited offline`, false]]);
    expect(await again.page.evaluate(() => (window as any).feed.stale)).toBe(false);
    expect(await rows(tag)).toEqual([`${tag} kept, edited offline`, `${tag} a, edited offline`, `${tag} b`]);
    expect(first.sent).toHaveLength(2 + 5);   // the two made online, then each offline write once
    expect(new Set(first.sent).size).toBe(first.sent.length);
    expect(await again.page.evaluate(() => (window as any).events)).toEqual([]);
    await context.close();
  }, 90_000);

  it("a post with a picture made offline shows at once with a preview, survives a reload while offline, and lands "
     + "once with its file when back online", async () => {
    const context = await browser.newContext();
    const tag = uniqueName("p");
    const first = await open(context);
    // a guest account: registrations per address are few, and a guest has an outbox as any user
    await first.page.evaluate((url: string) => (window as any).guest(url), gateway.url);
    await start(first.page, tag);
    await network(first.cdp, false);
    await first.page.waitForFunction(() => (window as any).client.state !== "open");
    const made = await first.page.evaluate(async (tag: string) => {
      const hapta = (window as any).client;
      const file = await (window as any).picture(64, 48, "pic.png");
      (window as any).landed = hapta.records("posts").create(
        { author: hapta.session.user.id, text: `${tag} with a picture`, public: true },
        { files: { media: [file] } }).then((post: any) => post.media.map((f: any) => f.name));
      const [post] = (window as any).feed.items;
      const [media] = post.media;
      return { text: post.text, pending: post.$pending, media: { name: media.name, size: media.size,
               type: media.type, pending: media.$pending }, previewWidth: await (window as any).widthOf(media.$preview),
               bytes: [...new Uint8Array(await file.arrayBuffer())], files: hapta.outbox.pending()[0].files };
    }, tag);
    expect(made).toMatchObject({ text: `${tag} with a picture`, pending: true,
                                 media: { name: "pic.png", type: "image/png", pending: true }, previewWidth: 64 });
    expect(made.media.size).toBe(made.bytes.length);
    expect(made.files).toEqual([{ field: "media", name: "pic.png", type: "image/png", size: made.bytes.length }]);

    // a reload while offline: the write and its picture come back from IndexedDB
    await first.page.close();
    const again = await open(context, first.sent, true);
    const uploads: string[] = [];
    again.page.on("websocket", (socket: any) => socket.on("framesent", ({ payload }: { payload: string | Buffer }) => {
      if (typeof payload === "string" && payload.includes('"files.upload"')) uploads.push(payload);
    }));
    await start(again.page, tag);
    const reloaded = await again.page.evaluate(async () => {
      const [post] = (window as any).firstShown.items;
      return { text: post.text, pending: post.$pending, media: post.media.map((f: any) => [f.name, f.$pending]),
               previewWidth: await (window as any).widthOf(post.media[0].$preview) };
    });
    expect(reloaded).toEqual({ text: `${tag} with a picture`, pending: true, media: [["pic.png", true]],
                               previewWidth: 64 });
    expect(await rows(tag)).toEqual([]);

    await network(again.cdp, true);
    await settled(again.page);
    const [post] = (await reader.records<any>("posts").list({ filter: `text ~ "${tag}"` })).items;
    expect(await rows(tag)).toEqual([`${tag} with a picture`]);
    expect(post.media.map((f: any) => [f.name, f.size, f.type])).toEqual([["pic.png", made.bytes.length,
                                                                           "image/png"]]);
    const stored = await reader.files.download("posts", post.id, "media", "pic.png");
    expect([...stored]).toEqual(made.bytes);
    expect(uploads).toHaveLength(1);
    expect(first.sent).toHaveLength(1);   // the create, once
    const shownNow = await again.page.evaluate(() => (window as any).feed.items.map((p: any) => ({
      pending: !!p.$pending, media: p.media.map((f: any) => [f.name, !!f.$pending, !!f.$preview]) })));
    expect(shownNow).toEqual([{ pending: false, media: [["pic.png", false, false]] }]);
    expect(await again.page.evaluate(() => (window as any).events)).toEqual([]);
    await context.close();
  }, 90_000);

  it("signing out forgets the kept queries", async () => {
    const context = await browser.newContext();
    const tag = uniqueName("s");
    const first = await open(context);
    await start(first.page, tag, true);
    await first.page.evaluate(async (tag: string) => {
      const hapta = (window as any).client;
      await hapta.records("posts").create({ author: hapta.session.user.id, text: `${tag} private`, public: false });
    }, tag);
    await first.page.waitForFunction(() => (window as any).feed.items.length === 1);
    await new Promise((wait) => setTimeout(wait, 300));   // kept
    const kept = await open(context, [], true);
    await start(kept.page, tag);
    expect((await kept.page.evaluate(() => (window as any).firstShown)).items.map((p: any) => p.text))
      .toEqual([`${tag} private`]);
    await kept.page.close();

    await first.page.evaluate(() => (window as any).client.auth.logout());
    await new Promise((wait) => setTimeout(wait, 300));   // (a save the live query had planned would come by now)
    const stored = await first.page.evaluate((url: string) => new Promise((resolve, reject) => {
      const request = indexedDB.open(`hapta ${url}`);
      request.onerror = () => reject(request.error);
      request.onsuccess = () => {
        const count = request.result.transaction("queries").objectStore("queries").count();
        count.onsuccess = () => resolve(count.result);
      };
    }), gateway.url);
    expect(stored).toBe(0);
    await context.close();
  }, 60_000);

  it("a write the rules refuse after coming back is rolled back and reported; the others land", async () => {
    const context = await browser.newContext();
    const tag = uniqueName("r");
    const { page, cdp } = await open(context);
    await start(page, tag, true);
    await network(cdp, false);
    await page.waitForFunction(() => (window as any).client.state !== "open");
    const shownOffline = await page.evaluate(async ({ tag, someone }: any) => {
      const hapta = (window as any).client;
      const posts = hapta.records("posts");
      posts.create({ author: hapta.session.user.id, text: `${tag} mine`, public: true });
      await new Promise((wait) => setTimeout(wait, 5));
      (window as any).forged = posts.create({ author: someone, text: `${tag} forged`, public: true })
        .catch((error: any) => error.code);
      return (window as any).shown();
    }, { tag, someone: (reader.session!.user as { id: string }).id });
    expect(shownOffline).toEqual([[`${tag} forged`, true], [`${tag} mine`, true]]);
    await network(cdp, true);
    await settled(page);
    expect(await page.evaluate(() => (window as any).forged)).toBe("FORBIDDEN");
    expect(await shown(page)).toEqual([[`${tag} mine`, false]]);
    const events = await page.evaluate(() => (window as any).events.map((e: any) => ({
      kind: e.kind, op: e.write.op, code: e.error.code, rolledBack: e.rolledBack.map((r: any) => [r.action,
                                                                                                  r.shown.text]) })));
    expect(events).toEqual([{ kind: "refused", op: "records.create", code: "FORBIDDEN",
                              rolledBack: [["create", `${tag} forged`]] }]);
    expect(await rows(tag)).toEqual([`${tag} mine`]);
    await context.close();
  }, 60_000);

  it("two tabs, one offline outbox: each shows the other's writes before the gateway has them; no write is sent "
     + "twice", async () => {
    const context = await browser.newContext();
    const tag = uniqueName("t");
    const sent: string[] = [];
    const one = await open(context, sent);
    await start(one.page, tag, true);
    const two = await open(context, sent);
    await start(two.page, tag);   // the same user: the session the tabs share
    for (const tab of [one, two]) await network(tab.cdp, false);
    for (const tab of [one, two]) await tab.page.waitForFunction(() => (window as any).client.state !== "open");
    const write = (tab: typeof one, text: string) => tab.page.evaluate(async (text: string) => {
      const hapta = (window as any).client;
      hapta.records("posts").create({ author: hapta.session.user.id, text, public: true });
      await new Promise((wait) => setTimeout(wait, 5));
    }, text);
    await write(one, `${tag} 1`);
    await write(one, `${tag} 2`);
    await two.page.waitForFunction((n: number) => (window as any).feed.items.length === n, 2);
    expect(await shown(two.page)).toEqual([[`${tag} 2`, true], [`${tag} 1`, true]]);
    await write(two, `${tag} 3`);
    await one.page.waitForFunction((n: number) => (window as any).feed.items.length === n, 3);
    expect(await shown(one.page)).toEqual([[`${tag} 3`, true], [`${tag} 2`, true], [`${tag} 1`, true]]);
    expect(await rows(tag)).toEqual([]);   // all of it before the gateway
    expect(sent).toEqual([]);
    await Promise.all([one, two].map((tab) => network(tab.cdp, true)));
    await Promise.all([settled(one.page), settled(two.page)]);
    const done = [[`${tag} 3`, false], [`${tag} 2`, false], [`${tag} 1`, false]];
    expect(await shown(one.page)).toEqual(done);
    expect(await shown(two.page)).toEqual(done);
    expect(await rows(tag)).toEqual([`${tag} 1`, `${tag} 2`, `${tag} 3`]);
    expect(sent).toHaveLength(3);
    expect(new Set(sent).size).toBe(3);
    await context.close();
  }, 60_000);

  it("the gateway restarts while the outbox is being sent: nothing is lost, nothing is written twice", async () => {
    const context = await browser.newContext();
    const tag = uniqueName("g");
    const { page, cdp, sent } = await open(context);
    await start(page, tag, true);
    await network(cdp, false);
    await page.waitForFunction(() => (window as any).client.state !== "open");
    const count = 40;   // past the demo's records.create limit (20 at once): some wait for retry_after too
    await page.evaluate(async ({ tag, count }: any) => {
      const hapta = (window as any).client;
      for (let n = 0; n < count; n++) {
        hapta.records("posts").create({ author: hapta.session.user.id, text: `${tag} ${n}`, public: true });
      }
      await new Promise((wait) => setTimeout(wait, 50));
    }, { tag, count });
    expect(await page.evaluate(() => (window as any).client.outbox.pending().length)).toBe(count);
    await network(cdp, true);
    await until(() => sent.length >= 5, 20_000);   // under way
    const landedBefore = (await rows(tag)).length;
    await gateway.restart();
    expect(landedBefore).toBeLessThan(count);
    await settled(page);
    const written = await rows(tag);
    expect(written).toEqual(Array.from({ length: count }, (_, n) => `${tag} ${n}`));
    expect(new Set(sent).size).toBe(count);   // a key may go twice (the restart cut its answer): done once
    expect(await page.evaluate(() => (window as any).events)).toEqual([]);
    await context.close();
  }, 120_000);

  it("a browser restart: the writes made offline are still there, and go once it is back online", async () => {
    const profile = mkdtempSync(join(tmpdir(), "hapta-offline-profile-"));
    const { chromium } = await import("playwright-core");
    const persistent = () => chromium.launchPersistentContext(profile, { executablePath: chromiumPath!,
                                                                         args: CHROMIUM_ARGS });
    const tag = uniqueName("b");
    try {
      let context = await persistent();
      const before = await open(context);
      await start(before.page, tag, true);
      await network(before.cdp, false);
      await before.page.waitForFunction(() => (window as any).client.state !== "open");
      await before.page.evaluate(async (tag: string) => {
        const hapta = (window as any).client;
        hapta.records("posts").create({ author: hapta.session.user.id, text: `${tag} across`, public: true });
        await new Promise((wait) => setTimeout(wait, 100));
      }, tag);
      await context.close();

      context = await persistent();
      const after = await open(context, [], true);
      await start(after.page, tag);
      expect(await shown(after.page)).toEqual([[`${tag} across`, true]]);
      expect(await rows(tag)).toEqual([]);
      await network(after.cdp, true);
      await settled(after.page);
      expect(await rows(tag)).toEqual([`${tag} across`]);
      await context.close();
    } finally {
      rmSync(profile, { recursive: true, force: true });
    }
  }, 90_000);
});
