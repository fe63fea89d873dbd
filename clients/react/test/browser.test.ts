// @hapta/react in a real browser: Debian's Chromium, driven by playwright-core, against a real `hapta serve` of the
// repository's test app (clients/js/test/support.ts starts it). The page (page.tsx, bundled here by esbuild with
// React's development build) renders the hooks in StrictMode. Where no Chromium is installed, these tests say they
// are skipped and why; they never pass without running.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PASSWORD, startGateway, uniqueName, type Gateway } from "../../js/test/support";

const here = resolve(__dirname, "..");

function findChromium(): string | null {
  try {
    return execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}

const chromiumPath = findChromium();
const why = "no chromium here (bin/test installs Debian's package where it can: apt-get install chromium)";
if (!chromiumPath) console.warn(`browser tests skipped: ${why}`);

export async function launchChromium(): Promise<any> {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: chromiumPath!,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}

/** Collects what went wrong in a page: errors thrown, console errors, failed requests. */
export function watch(page: any): string[] {
  const problems: string[] = [];
  page.on("pageerror", (error: Error) => problems.push(error.message));
  page.on("console", (line: any) => {
    if (line.type() === "error") problems.push(line.text());
  });
  return problems;
}

describe.skipIf(!chromiumPath)(`the hooks in Chromium${chromiumPath ? "" : ` (skipped: ${why})`}`, () => {
  let gateway: Gateway;
  let server: Server;
  let origin = "";
  let browser: any;
  let bundle = "";

  beforeAll(async () => {
    const out = mkdtempSync(join(tmpdir(), "hapta-react-page-"));
    try {
      await build({
        entryPoints: [join(here, "test", "page.tsx")],
        outfile: join(out, "page.js"),
        bundle: true,
        format: "esm",
        target: "es2022",
        jsx: "automatic",
        define: { "process.env.NODE_ENV": '"development"' },   // StrictMode mounts twice in development only
        logLevel: "silent",
      });
      bundle = readFileSync(join(out, "page.js"), "utf8");
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    server = createServer((request, response) => {
      if (request.url === "/page.js") {
        response.writeHead(200, { "content-type": "text/javascript" });
        response.end(bundle);
      } else {
        response.writeHead(200, { "content-type": "text/html" });
        response.end('<!doctype html><meta charset="utf-8"><title>hooks</title><div id="root"></div>'
                     + '<script type="module" src="/page.js"></script>');
      }
    });
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    [gateway, browser] = await Promise.all([startGateway(), launchChromium()]);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    server?.close();
    await gateway?.stop();
  });

  it("a live list, a record, a channel's members with their profiles and a refused write, in StrictMode",
    async () => {
      const context = await browser.newContext();
      const page = await context.newPage();
      const problems = watch(page);
      await page.goto(origin + "/");
      await page.waitForFunction(() => (window as any).ready);
      const tag = uniqueName("tag");
      const room = `profiles:${uniqueName("r")}`;
      const ann = uniqueName("ann");
      const ben = uniqueName("ben");

      // ben writes from a client of his own; ann's page shows it through the hooks
      const seed = await page.evaluate(async ({ url, ann, ben, tag, room, password }) => {
        const { Hapta } = window as any;
        const writer = await Hapta.connect(url);
        const benSession = await writer.auth.register({ email: `${ben}@example.com`, password, username: ben });
        const first = await writer.records("posts").create({ author: benSession.user.id, text: `${tag} one`,
                                                            public: true });
        const client = await Hapta.connect(url, { storage: localStorage });
        await client.auth.register({ email: `${ann}@example.com`, password, username: ann });
        Object.assign(window as any, { writer, client, benId: benSession.user.id });
        (window as any).sent.length = 0;
        (window as any).mount(client, { tag, id: first.id, room });
        return { id: first.id };
      }, { url: gateway.url, ann, ben, tag, room, password: PASSWORD });

      await page.locator("#feed[data-status=ready] li", { hasText: `${tag} one` }).waitFor();
      await page.locator("#one", { hasText: `${tag} one by ${ben}` }).waitFor();
      await page.locator("#who", { hasText: `${ann} (open)` }).waitFor();
      await page.locator("#room[data-status=joined]").waitFor();
      // StrictMode mounted every effect twice: the gateway was asked once for each query and the channel
      await page.waitForTimeout(200);
      const asked = await page.evaluate(() => (window as any).sent.slice());
      expect(asked.filter((op: string) => op === "realtime.query")).toHaveLength(2);   // the feed and the record
      expect(asked.filter((op: string) => op === "channels.join")).toHaveLength(1);
      expect(asked).not.toContain("realtime.unsubscribe");
      expect(asked).not.toContain("channels.leave");

      // the list follows another client's writes: a new post on top, an edit in place, a delete, the window of 3
      await page.evaluate(async ({ tag }) => {
        const { writer, benId } = window as any;
        for (const n of ["two", "three", "four"]) {
          await writer.records("posts").create({ author: benId, text: `${tag} ${n}`, public: true });
        }
      }, { tag });
      await page.locator("#feed li").first().filter({ hasText: `${tag} four` }).waitFor();
      expect(await page.locator("#feed li").allTextContents()).toEqual([`${tag} four`, `${tag} three`,
                                                                        `${tag} two`]);
      await page.evaluate(async ({ tag, id }) => {
        const { writer } = window as any;
        const top = (await writer.records("posts").list({ filter: `text = "${tag} three"` })).items[0];
        await writer.records("posts").update(top.id, { text: `${tag} three, edited` });
        await writer.records("posts").update(id, { text: `${tag} one, edited` });
      }, { tag, id: seed.id });
      await page.locator("#feed li", { hasText: `${tag} three, edited` }).waitFor();
      // the record hook follows its record
      await page.locator("#one", { hasText: `${tag} one, edited by ${ben}` }).waitFor();
      await page.evaluate(async ({ tag, id }) => {
        const { writer } = window as any;
        const four = (await writer.records("posts").list({ filter: `text = "${tag} four"` })).items[0];
        await writer.records("posts").delete(four.id);
        await writer.records("posts").update(id, { public: false });   // out of ann's sight
      }, { tag, id: seed.id });
      await page.locator("#one", { hasText: "none" }).waitFor();
      await page.locator("#feed li").first().filter({ hasText: `${tag} three, edited` }).waitFor();
      expect(await page.locator("#feed li").allTextContents()).toEqual([`${tag} three, edited`, `${tag} two`]);
      expect(await page.locator("#feed").getAttribute("data-pending")).toBe("false");

      // the channel: ben joins; ann sees him by his username, his email hidden from her, hers shown to her
      await page.evaluate(async ({ room }) => {
        const { writer } = window as any;
        await writer.channel(room).join();
      }, { room });
      await page.locator("#room .member", { hasText: ben }).waitFor();
      expect((await page.locator("#room .member", { hasText: ben }).textContent())!.trim()).toBe(`${ben} (hidden)`);
      expect((await page.locator("#room .member", { hasText: ann }).textContent())!.trim())
        .toBe(`${ann} ${ann}@example.com`);
      // messages both ways
      await page.evaluate(async ({ room }) => {
        const { writer } = window as any;
        const channel = writer.channel(room);
        (window as any).benHeard = [];
        channel.on("message", (message: any) => (window as any).benHeard.push(message.data));
        await channel.send("hi ann");
      }, { room });
      await page.locator("#room .message", { hasText: "hi ann" }).waitFor();
      await page.click("#say");
      await page.waitForFunction(() => (window as any).benHeard.includes("hello from the hook"));
      // he leaves; she sees it
      await page.evaluate(async ({ room }) => { await (window as any).writer.channel(room).leave(); }, { room });
      await page.locator("#room .member", { hasText: ben }).waitFor({ state: "detached" });

      // a write the rules refuse shows its error; a good one clears it
      await page.click("#too-long");
      await page.locator("#mutation[data-status=error]", { hasText: "RULE_DENIED" }).waitFor();
      await page.click("#fine");
      await page.locator("#mutation[data-status=success]").waitFor({ state: "attached" });   // empty: no size
      expect(await page.locator("#mutation").textContent()).toBe("");

      // unmounted: the queries end and the channel is left
      (await page.evaluate(() => { (window as any).sent.length = 0; (window as any).unmount(); }));
      await page.waitForFunction(() => (window as any).sent.includes("channels.leave"));
      await page.waitForFunction(() => (window as any).sent.filter((op: string) => op === "realtime.unsubscribe")
        .length === 2);
      expect(problems).toEqual([]);
      await page.evaluate(() => { (window as any).writer.close(); (window as any).client.close(); });
      await context.close();
    }, 90_000);
});
