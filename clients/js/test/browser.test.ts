// @hapta/client in a real browser: Debian's Chromium, driven by playwright-core, against a real `hapta serve`.
// The page loads the committed dist/hapta.js as a plain ES module (no build step), from a static server of the
// test's own. Where no Chromium is installed, these tests say they are skipped and why; they never pass without
// running.
import type { Server } from "node:http";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { crc32, deflateSync } from "node:zlib";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromiumPath, launch, noChromium as why, pageServer } from "./chromium";
import { PASSWORD, ROOT, startGateway, uniqueName, until, type Gateway } from "./support";

if (!chromiumPath) console.warn(`browser tests skipped: ${why}`);

/** A real PNG (a colour gradient), so that the screenshot shows a picture. */
function picture(width: number, height: number): Buffer {
  const rows = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 3);
    for (let x = 0; x < width; x++) row.set([x % 256, (y * 2) % 256, 180], 1 + x * 3);
    rows.push(row);
  }
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type), data]);
    const framed = Buffer.alloc(8 + data.length + 4);
    framed.writeUInt32BE(data.length, 0);
    body.copy(framed, 4);
    framed.writeUInt32BE(crc32(body), 8 + data.length);
    return framed;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);   // 8-bit RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", header),
                        chunk("IDAT", deflateSync(Buffer.concat(rows))), chunk("IEND", Buffer.alloc(0))]);
}

const PAGE = `<!doctype html><meta charset="utf-8"><title>hapta</title>
<script type="module">
  import * as client from "/dist/hapta.js";
  window.hapta = client;
  window.ready = true;
</script>`;

describe.skipIf(!chromiumPath)(`in Chromium${chromiumPath ? "" : ` (skipped: ${why})`}`, () => {
  let gateway: Gateway;
  let shortTokens: Gateway;
  let guarded: Gateway;   // App.origins: only `origin`'s pages
  let server: Server;
  let elsewhere: Server;
  let origin = "";
  let foreign = "";
  let browser: any;

  beforeAll(async () => {
    [server, origin] = await pageServer(PAGE);
    [elsewhere, foreign] = await pageServer(PAGE);
    [gateway, shortTokens, guarded] = await Promise.all([
      startGateway(),
      // short-lived access tokens; uploads no write took are let go 5 s after their finish, swept every 0.5 s
      startGateway("access_token_ttl=4, file_idle_timeout=5, file_sweep_interval=0.5"),
      startGateway(`origins=(${JSON.stringify(origin)},)`)]);
    browser = await launch();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    server?.close();
    elsewhere?.close();
    await Promise.all([gateway?.stop(), shortTokens?.stop(), guarded?.stop()]);
  });

  /** A fresh browser profile (its own localStorage) with the page loaded; `tabs` pages share it. */
  async function tabs(count = 1, at = origin) {
    const context = await browser.newContext();
    const pages = [];
    for (let i = 0; i < count; i++) {
      const page = await context.newPage();
      await page.goto(at + "/");
      await page.waitForFunction(() => (window as any).ready);
      pages.push(page);
    }
    return { context, pages };
  }

  it("signs up, lists, and hears another client's change live", async () => {
    const { context, pages: [page] } = await tabs();
    const name = uniqueName("b");
    const result = await page.evaluate(async ({ url, name, password }) => {
      const { Hapta } = (window as any).hapta;
      const hapta = await Hapta.connect(url, { storage: localStorage });
      const session = await hapta.auth.register({ email: `${name}@example.com`, password, username: name });
      const heard: unknown[] = [];
      (window as any).heard = heard;
      (window as any).client = hapta;
      await hapta.records("posts").subscribe({ filter: `text ~ "${name}"` }, (change: any) => heard.push(change));
      const page = await hapta.records("posts").list({ filter: `text ~ "${name}"` });
      return { user: session.user.id, items: page.items.length, stored: !!localStorage.getItem("hapta.session") };
    }, { url: gateway.url, name, password: PASSWORD });
    expect(result).toMatchObject({ items: 0, stored: true });

    const other = await page.evaluate(async ({ url, name, password }) => {
      const { Hapta } = (window as any).hapta;
      const writer = await Hapta.connect(url);
      const session = await writer.auth.register({ email: `w${name}@example.com`, password, username: `w${name}` });
      const post = await writer.records("posts").create({ author: session.user.id, text: `${name} live`,
                                                          public: true });
      writer.close();
      return post.id;
    }, { url: gateway.url, name, password: PASSWORD });
    await page.waitForFunction((id: string) => (window as any).heard.some((c: any) => c.record.id === id), other);
    await context.close();
  });

  it("the gateway restarts; the page resumes and loses no change", async () => {
    const { context, pages: [page] } = await tabs();
    const name = uniqueName("r");
    await page.evaluate(async ({ url, name, password }) => {
      const { Hapta } = (window as any).hapta;
      const hapta = await Hapta.connect(url, { storage: localStorage, backoff: { base: 100, cap: 1000 } });
      await hapta.auth.register({ email: `${name}@example.com`, password, username: name });
      (window as any).heard = [];
      (window as any).states = [];
      hapta.on("state", (s: string) => (window as any).states.push(s));
      await hapta.records("posts").subscribe({ filter: `text ~ "${name}"` },
                                             (c: any) => (window as any).heard.push(c.record.text));
    }, { url: gateway.url, name, password: PASSWORD });
    await gateway.restart();
    const written = await page.evaluate(async ({ url, name, password }) => {
      const { Hapta } = (window as any).hapta;
      const writer = await Hapta.connect(url);
      const session = await writer.auth.register({ email: `w${name}@example.com`, password, username: `w${name}` });
      const texts = [];
      for (let i = 0; i < 5; i++) {
        texts.push((await writer.records("posts").create({ author: session.user.id, text: `${name} ${i}`,
                                                           public: true })).text);
      }
      writer.close();
      return texts;
    }, { url: gateway.url, name, password: PASSWORD });
    await page.waitForFunction((n: number) => (window as any).heard.length >= n, written.length, { timeout: 30_000 });
    expect(await page.evaluate(() => (window as any).heard)).toEqual(written);
    expect(await page.evaluate(() => (window as any).states)).toEqual(["reconnecting", "open"]);
    await context.close();
  }, 60_000);

  it("two tabs refresh the token at once and stay in one session", async () => {
    const { context, pages: [first, second] } = await tabs(2);
    const name = uniqueName("t");
    await first.evaluate(async ({ url, name, password }) => {
      const { Hapta } = (window as any).hapta;
      const hapta = await Hapta.connect(url, { storage: localStorage });
      await hapta.auth.register({ email: `${name}@example.com`, password, username: name });
      (window as any).client = hapta;
    }, { url: gateway.url, name, password: PASSWORD });
    await second.evaluate(async ({ url }) => {
      const { Hapta } = (window as any).hapta;
      (window as any).client = await Hapta.connect(url, { storage: localStorage });   // the stored session
    }, { url: gateway.url });
    const refreshed = await Promise.all([first, second].map((page) => page.evaluate(async () => {
      const session = await (window as any).client.auth.refresh();
      return session.refresh_token;
    })));
    expect(refreshed[0]).toBe(refreshed[1]);   // one tab refreshed (Web Locks), the other took its tokens
    const after = await Promise.all([first, second].map((page) => page.evaluate(async () => {
      const hapta = (window as any).client;
      return { me: (await hapta.auth.me()).user.id, sessions: (await hapta.call("auth.sessions")).items.length };
    })));
    expect(after[0]).toEqual(after[1]);
    expect(after[0].sessions).toBe(1);
    await context.close();
  });

  it("uploads a file with progress", async () => {
    const { context, pages: [page] } = await tabs();
    const name = uniqueName("f");
    const result = await page.evaluate(async ({ url, name, password }) => {
      const { Hapta } = (window as any).hapta;
      const hapta = await Hapta.connect(url);
      const session = await hapta.auth.register({ email: `${name}@example.com`, password, username: name });
      const post = await hapta.records("posts").create({ author: session.user.id, text: "a picture", public: true });
      const bytes = new Uint8Array(700_000);
      bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      const progress: number[] = [];
      const stored = await hapta.files.upload("posts", post.id, "media", new Blob([bytes], { type: "image/png" }),
                                              { name: "cat.png", onProgress: (sent: number) => progress.push(sent) });
      const back = await hapta.files.download("posts", post.id, "media", "cat.png");
      return { file: stored.file, steps: progress.length, last: progress.at(-1), same: back.length === bytes.length };
    }, { url: gateway.url, name, password: PASSWORD });
    expect(result.file).toMatchObject({ name: "cat.png", size: 700_000, type: "image/png" });
    expect(result.steps).toBeGreaterThan(1);
    expect(result.last).toBe(700_000);
    expect(result.same).toBe(true);
    await context.close();
  });

  it("a post with two pictures in one step, the second of a type the field refuses: no record, neither kept",
    async () => {
      const { context, pages: [page] } = await tabs();
      const tag = uniqueName("two");
      const result = await page.evaluate(async ({ url, tag }) => {
        const { Hapta } = (window as any).hapta;
        const hapta = await Hapta.connect(url);
        const session = await hapta.auth.guest();   // registrations per address are few
        const canvas = document.createElement("canvas");
        canvas.width = 80;
        canvas.height = 60;
        const picture = await new Promise<Blob>((done) => canvas.toBlob((blob) => done(blob!), "image/png"));
        const progress: number[][] = [];
        const refused = await hapta.records("posts").create({ author: session.user.id, text: tag, public: true }, {
          files: { media: [new File([picture], "first.png", { type: "image/png" }),
                           new File(["not a picture"], "second.txt", { type: "text/plain" })] },
          onProgress: (sent: number, total: number) => progress.push([sent, total]),
        }).catch((error: any) => ({ code: error.code, details: error.details }));
        const found = await hapta.records("posts").list({ filter: `text = "${tag}"`, count: true });
        return { refused, total: found.total, progress, size: picture.size };
      }, { url: shortTokens.url, tag });
      expect(result.refused).toMatchObject({ code: "VALIDATION_FAILED" });
      expect(result.total).toBe(0);
      // the first picture went up and waits for a write that never names it; the gateway lets it go
      expect(result.progress.at(-1)).toEqual([result.size, result.size + "not a picture".length]);
      expect(shortTokens.storedFiles()).toHaveLength(1);
      await until(() => shortTokens.storedFiles().length === 0, 20_000);
      await context.close();
    }, 40_000);

  it("an access token that expires is refreshed in place, on auth.expiring", async () => {
    const { context, pages: [page] } = await tabs();
    const name = uniqueName("e");
    const result = await page.evaluate(async ({ url, name, password }) => {
      const { Hapta } = (window as any).hapta;
      const hapta = await Hapta.connect(url, { storage: localStorage });
      const first = await hapta.auth.register({ email: `${name}@example.com`, password, username: name });
      const sessions: any[] = [];
      hapta.on("auth", (s: any) => sessions.push(s));
      await new Promise<void>((done) => hapta.on("auth", () => done()));   // the refresh auth.expiring caused
      await new Promise((wait) => setTimeout(wait, Math.max(0, first.expires_at * 1000 - Date.now() + 500)));
      const me = await hapta.auth.me();   // after the first token's expiry: still signed in
      return { refreshed: sessions[0].token !== first.token, me: me.user.id, user: first.user.id,
               state: hapta.state };
    }, { url: shortTokens.url, name, password: PASSWORD });
    expect(result.refreshed).toBe(true);
    expect(result.me).toBe(result.user);
    expect(result.state).toBe("open");
    await context.close();
  }, 30_000);

  it("a page whose origin the gateway refuses is told so at once, and not retried; allowed pages fetch files",
    async () => {
      const { context, pages: [page] } = await tabs(1, foreign);
      const refused = await page.evaluate(async ({ url }) => {
        const { Hapta } = (window as any).hapta;
        const started = Date.now();
        try {
          await Hapta.connect(url);
          return null;
        } catch (error: any) {
          return { code: error.code, message: error.message, ms: Date.now() - started };
        }
      }, { url: guarded.url });
      expect(refused).toMatchObject({ code: "FORBIDDEN" });
      expect(refused!.message).toContain("origin");
      expect(guarded.output().match(/refused a WebSocket from origin/g)).toHaveLength(1);
      await context.close();

      const allowed = await tabs(1, origin);
      const name = uniqueName("o");
      const fetched = await allowed.pages[0].evaluate(async ({ url, name, password }) => {
        const { Hapta } = (window as any).hapta;
        const hapta = await Hapta.connect(url);
        const session = await hapta.auth.register({ email: `${name}@example.com`, password, username: name });
        const post = await hapta.records("posts").create({ author: session.user.id, text: "cors", public: true });
        const bytes = new Uint8Array(1000);
        bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
        await hapta.files.upload("posts", post.id, "media", bytes, { name: "a.png", type: "image/png" });
        const link = await hapta.files.url("posts", post.id, "media", "a.png");
        const response = await fetch(link);   // cross-origin: readable only with the gateway's CORS headers
        return { status: response.status, size: (await response.arrayBuffer()).byteLength };
      }, { url: guarded.url, name, password: PASSWORD });
      expect(fetched).toEqual({ status: 200, size: 1000 });
      await allowed.context.close();
    }, 60_000);

  it("the example app: two people, a post with a picture, live, a comment and a typing indicator", async () => {
    const example = await startGateway("", ["--static", join(ROOT, "examples", "web-feed")]);
    try {
      const people = [];
      for (const who of ["ann", "ben"]) {
        const context = await browser.newContext({ viewport: { width: 800, height: 900 } });
        const page = await context.newPage();
        const problems: string[] = [];
        page.on("pageerror", (error: Error) => problems.push(error.message));
        page.on("console", (line: any) => {   // failed loads are judged below, by what failed
          if (line.type() === "error" && !line.text().startsWith("Failed to load resource")) problems.push(line.text());
        });
        page.on("response", (response: any) => {
          // Pictures of other tests' posts live in their gateways' data folders: those links are 404 here.
          if (response.status() >= 400 && !new URL(response.url()).pathname.startsWith("/files/")) {
            problems.push(`${response.status()} ${response.url()}`);
          }
        });
        await page.goto(example.http + "/");
        await page.waitForFunction(() => (window as any).feedReady);
        await page.fill("#email", `${uniqueName(who)}@example.com`);
        await page.fill("#password", PASSWORD);
        await page.click("#signup");
        await page.waitForSelector("#feed-area:not([hidden])");
        await page.waitForSelector("#account", { state: "hidden" });
        people.push({ context, page, problems });
      }
      const [ann, ben] = people;
      const png = picture(240, 120);
      const words = `hello from the example ${uniqueName("")}`;
      await ann.page.fill("#text", words);
      await ann.page.setInputFiles("#picture", { name: "hello.png", mimeType: "image/png", buffer: png });
      await ann.page.click("#compose button[type=submit]");
      // ben's feed (a live query, newest first) shows it live, at the top, with its picture (its files.url link,
      // from the gateway's own origin)
      const post = ben.page.locator(".post", { hasText: words });
      await post.waitFor();
      expect(await ben.page.locator(".post").first().textContent()).toContain(words);
      // (an img is drawn at once; its src is set when the files.url reply arrives)
      await post.locator("img[src]").waitFor();
      expect(await post.locator("img").getAttribute("src")).toContain("/files/");
      await post.locator("img").evaluate((img: any) => img.decode());   // the picture, as uploaded, shown
      expect(await post.locator("img").evaluate((img: any) => img.naturalWidth)).toBe(240);
      // a comment from ben reaches ann's open comments
      await ann.page.locator(".post", { hasText: words }).locator("button").click();
      await post.locator("button").click();
      await post.locator(".comments input").fill("nice one");
      await post.locator(".comments button").click();
      await ann.page.locator(".comments li", { hasText: "nice one" }).waitFor();
      // ben types; ann sees it
      await ben.page.type("#text", "typing");
      await ann.page.locator("#typing", { hasText: "is typing" }).waitFor();
      const shot = await ann.page.screenshot();
      expect(shot.length).toBeGreaterThan(10_000);
      writeFileSync(join(tmpdir(), "hapta-web-feed.png"), shot);
      for (const { problems } of people) expect(problems, problems.slice(0, 5).join("\n")).toEqual([]);
      for (const { context } of people) await context.close();
    } finally {
      await example.stop();
    }
  }, 90_000);
});
