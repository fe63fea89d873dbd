// The React example app (examples/react-feed) as people use it: its committed dist/ served by `hapta serve --static`
// of the test app, two people in Chromium, a post with a picture (in one step; the feed shows its thumbnail), a like,
// a comment, who is online, a refused post, and the offline banner while the gateway restarts. Skipped, saying why, where there is no Chromium.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32, deflateSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PASSWORD, ROOT, startGateway, uniqueName, type Gateway } from "../../js/test/support";

function findChromium(): string | null {
  try {
    return execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}

const chromiumPath = findChromium();

/** A real width x height PNG (a colour gradient), as a camera's picture would be: larger than the feed shows it. */
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
const why = "no chromium here (bin/test installs Debian's package where it can: apt-get install chromium)";

describe.skipIf(!chromiumPath)(`the React example in Chromium${chromiumPath ? "" : ` (skipped: ${why})`}`, () => {
  let example: Gateway;
  let browser: any;

  beforeAll(async () => {
    const { chromium } = await import("playwright-core");
    [example, browser] = await Promise.all([
      startGateway("", ["--static", join(ROOT, "examples", "react-feed", "dist")]),
      chromium.launch({
        executablePath: chromiumPath!,
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"],
      }),
    ]);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await example?.stop();
  });

  it("two people: a post with a picture, a like, a comment, who is online, a refused post, offline and back",
    async () => {
    let outage = false;
    const people = [];
    for (const who of ["ann", "ben"]) {
      const context = await browser.newContext({ viewport: { width: 800, height: 900 } });
      const page = await context.newPage();
      const problems: string[] = [];
      page.on("pageerror", (error: Error) => problems.push(error.message));
      page.on("console", (line: any) => {   // a socket refused while the gateway is down is the point, then
        if (line.type() === "error" && !(outage && /WebSocket|Failed to load resource/.test(line.text()))) {
          problems.push(line.text());
        }
      });
      page.on("response", (response: any) => {
        if (response.status() >= 400) problems.push(`${response.status()} ${response.url()}`);
      });
      const sent: any[] = [];   // what the page sends on its sockets
      page.on("websocket", (socket: any) => socket.on("framesent", ({ payload }: { payload: string | Buffer }) => {
        if (typeof payload === "string") sent.push(...[JSON.parse(payload)].flat());
      }));
      await page.goto(example.http + "/");
      const name = uniqueName(who);
      await page.fill("#email", `${name}@example.com`);
      await page.fill("#password", PASSWORD);
      await page.fill("#username", name);
      await page.click("#signup");
      await page.waitForSelector("#compose");
      people.push({ context, page, problems, name, sent });
    }
    const [ann, ben] = people;

    // who is online: each sees the other by username (the "online" channel's presence profile)
    await ann.page.locator(".online", { hasText: ben.name }).waitFor();
    await ben.page.locator(".online", { hasText: ann.name }).waitFor();

    // ann posts with a picture; ben's feed (a live query, newest first) shows it at the top, with her name
    const words = `hello from react ${uniqueName("")}`;
    await ann.page.fill("#text", words);
    await ann.page.setInputFiles("#picture", { name: "hello.png", mimeType: "image/png", buffer: picture(800, 400) });
    await ann.page.click("#compose button[type=submit]");
    const post = ben.page.locator(".post", { hasText: words });
    await post.waitFor();
    expect(await ben.page.locator(".post").first().textContent()).toContain(words);
    expect(await post.locator(".meta").textContent()).toContain(ann.name);
    await ann.page.locator("#text", { hasText: "" }).waitFor();
    expect(await ann.page.locator("#text").inputValue()).toBe("");
    // in one step: the picture uploaded for a post still to be made, then the post naming it
    const ops = ann.sent.filter((m) => m.op === "files.upload" || m.op === "records.create").map((m) => m.op === "files.upload"
      ? ["files.upload", "id" in m.args] : ["records.create", m.args.data.media]);
    expect(ops).toEqual([["files.upload", false], ["records.create", [{ upload: expect.any(String) }]]]);
    // the feed shows the picture's thumbnail (480 wide, as the demo declares), not the 800 x 400 original
    const img = post.locator("img.picture");
    await img.waitFor();
    await img.evaluate((element: any) => element.decode());
    expect(await img.evaluate((element: any) => [element.naturalWidth, element.naturalHeight])).toEqual([480, 240]);

    // ben likes it: the count (kept by the demo's rules hook) changes on both screens
    await post.locator("button.like").click();
    await post.locator("button.like.liked .likes", { hasText: "1" }).waitFor();
    await ann.page.locator(".post", { hasText: words }).locator(".likes", { hasText: "1" }).waitFor();

    // ben comments; ann, with the comments open, sees it arrive
    await ann.page.locator(".post", { hasText: words }).locator("button.toggle").click();
    await post.locator("button.toggle").click();
    await post.locator(".comments input").fill("nice one");
    await post.locator(".comments button").click();
    await ann.page.locator(".comments li", { hasText: "nice one" }).waitFor();
    expect(await ann.page.locator(".comments li", { hasText: "nice one" }).textContent()).toContain(ben.name);

    // a post the rules refuse (over 280 characters): its message under the composer, the text kept
    await ben.page.fill("#text", "y".repeat(300));
    await ben.page.click("#compose button[type=submit]");
    await ben.page.locator("#compose-error", { hasText: "280" }).waitFor();
    expect(await ben.page.locator("#text").inputValue()).toHaveLength(300);

    // the gateway goes away: the banner shows; it comes back: the banner goes, and the feed is live again
    outage = true;
    await example.stop();
    await ann.page.locator(".banner.offline", { hasText: "reconnecting" }).waitFor();
    await ann.page.screenshot().then((shot: Buffer) => writeFileSync(join(tmpdir(), "hapta-react-feed-offline.png"),
                                                                     shot));
    await example.restart();
    await ann.page.locator(".banner.offline").waitFor({ state: "detached", timeout: 30_000 });
    await ben.page.locator(".banner.offline").waitFor({ state: "detached", timeout: 30_000 });
    outage = false;
    const again = `back again ${uniqueName("")}`;
    await ben.page.fill("#text", again);
    await ben.page.click("#compose button[type=submit]");
    await ann.page.locator(".post", { hasText: again }).waitFor();

    const shot = await ann.page.screenshot();
    expect(shot.length).toBeGreaterThan(10_000);
    writeFileSync(join(tmpdir(), "hapta-react-feed.png"), shot);
    for (const { problems } of people) expect(problems, problems.slice(0, 5).join("\n")).toEqual([]);
    for (const { context } of people) await context.close();
  }, 120_000);
});
