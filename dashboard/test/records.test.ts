// The Records page's second round end to end: a real `hapta serve` (the repository's test app), Chromium signed in
// with the admin key, and a person on the other side in Node (the project's JS client). A post made in the form
// built from the schema (a picture, its author chosen in the relation picker) reaches that person's subscription;
// a field the gateway refuses is named under its input; rows picked are deleted together, with what failed listed;
// the filter's rows are exported as CSV and JSON; the Collections page draws the relations.
// Screenshots (record-form.png, er.png) go to $DASHBOARD_SHOTS (docs/dashboard/ for the committed set).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, Download, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Hapta, type Change } from "../../clients/js/src/hapta.ts";
import { ADMIN_KEY, PASSWORD, startGateway, uniqueName, until, type Gateway } from "../../clients/js/test/support.ts";
import { eventually, findChromium, launch, watch } from "./browser.ts";
import { picture } from "./picture.ts";

const chromiumPath = findChromium();
const why = "no chromium here (bin/test installs Debian's package where it can: apt-get install chromium)";
const SHOTS = process.env.DASHBOARD_SHOTS || join(tmpdir(), "hapta-dashboard-shots");
const SEEN = { timeout: 15_000 };

type Json = Record<string, any>;

/** RFC 4180 as the export writes it (CRLF, quoted fields with doubled quotes): rows of fields. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (char === '"') quoted = false;
      else field += char;
    } else if (char === '"') quoted = true;
    else if (char === ",") { row.push(field); field = ""; }
    else if (char === "\r" && text[i + 1] === "\n") { row.push(field); rows.push(row); row = []; field = ""; i++; }
    else field += char;
  }
  return rows;
}

describe.skipIf(!chromiumPath)(`the Records page in Chromium${chromiumPath ? "" : ` (skipped: ${why})`}`, () => {
  let gateway: Gateway;
  let context: BrowserContext;
  let page: Page;
  let problems: string[];
  let ann: Hapta;
  let annId: string;
  let annName: string;
  const tag = uniqueName("form");
  const bulk = uniqueName("bulk");
  const exported = uniqueName("export");
  const heard: Change<Json>[] = [];

  async function shot(name: string, of?: string) {
    mkdirSync(SHOTS, { recursive: true });
    const image = of ? await page.locator(of).screenshot() : await page.screenshot({ fullPage: true });
    writeFileSync(join(SHOTS, `${name}.png`), image);
  }

  async function open(hash: string) {
    await page.locator("nav").waitFor();
    await page.evaluate((to) => { location.hash = to; }, hash);
    await page.locator(`#page[data-page="${hash.split("/")[0]}"]`).waitFor();
  }

  async function filterBy(text: string, rows: number) {
    await page.fill("#filter", text);
    await eventually(async () => (await page.locator("tr[data-id]").count()) === rows, 15_000,
                     `not ${rows} rows for ${text}`);
  }

  beforeAll(async () => {
    // every connection here comes from 127.0.0.1, and auth.admin is limited per address
    gateway = await startGateway('limits={**app.limits, "auth.admin": Limit(100, per=60)}');
    // one sign-up: the person whose posts these are, who also listens for what the admin writes
    ann = await Hapta.connect(gateway.url);
    annName = uniqueName("ann");
    const session = await ann.auth.register({ email: `${annName}@example.com`, password: PASSWORD, username: annName });
    annId = session.user.id as string;
    await ann.records<Json>("posts").subscribe({ filter: `author = "${annId}"` }, (change) => heard.push(change));
    context = await launch(chromiumPath!);
    page = context.pages()[0] ?? await context.newPage();
    problems = watch(page);
    await page.goto(gateway.http + "/_/");
    await page.fill("#admin-key", ADMIN_KEY);
    await page.click("#signin button[type=submit]");
    await page.locator("nav").waitFor(SEEN);
  }, 180_000);

  afterAll(async () => {
    ann?.close();
    await context?.close();
    await gateway?.stop();
  });

  it("creates a post in the form: a picture, its author from the picker; a subscribed client hears it", async () => {
    await open("records/posts");
    await page.locator('[data-live="true"]').waitFor(SEEN);
    await page.click('button:text-is("New record")');
    const form = page.locator('[data-new-record="posts"] form[data-form="create"]');
    await form.waitFor(SEEN);
    // an input per writable field, by kind; `likes` is read-only and the system columns are the gateway's
    expect(await form.locator("[data-field]").evaluateAll((all) => all.map((f) => f.getAttribute("data-field"))))
      .toEqual(["author", "text", "public", "media"]);
    await form.locator("#field-text").fill(`${tag} a post from the dashboard`);
    await form.locator("#field-public").check();
    await form.locator('[data-field="author"] .pick-search').fill(annName);
    const pick = form.locator(`[data-pick="${annId}"] button`);
    await pick.waitFor(SEEN);
    expect(await pick.textContent()).toContain(annName);
    await pick.click();
    expect(await form.locator("#field-author").inputValue()).toBe(annId);
    await form.locator("#field-media").setInputFiles({ name: "sea.png", mimeType: "image/png",
                                                       buffer: picture(160, 90) });
    const preview = form.locator('[data-new-file="sea.png"] img[src^="blob:"]');
    await preview.waitFor(SEEN);
    await shot("record-form");
    await form.locator('button[type=submit]:text-is("Create")').click();

    const created = await until(() => heard.find((c) => c.action === "create" && c.record.text.startsWith(tag)),
                                15_000);
    expect(created.record).toMatchObject({ author: annId, public: true, text: `${tag} a post from the dashboard` });
    expect(created.record.media.map((f: Json) => [f.name, f.type])).toEqual([["sea.png", "image/png"]]);
    // the grid shows it and opens it, its picture fetched over the socket
    const panel = page.locator(`[data-record="${created.record.id}"]`);
    await panel.locator('img[src^="blob:"]').waitFor(SEEN);
    await page.locator(`tr[data-id="${created.record.id}"]`).waitFor(SEEN);
  });

  it("edits in the form: the field's thumbnail; a relation the gateway refuses is shown under its input", async () => {
    const post = heard.find((c) => c.action === "create")!.record;
    const panel = page.locator(`[data-record="${post.id}"]`);
    await panel.locator('button:text-is("Edit")').click();
    const form = panel.locator('form[data-form="edit"]');
    // the thumbnail in the field's first declared size (100x100), not the picture
    const thumb = form.locator('[data-file="sea.png"] img[data-thumb="100x100"][src^="blob:"]');
    await thumb.waitFor(SEEN);
    expect(await thumb.evaluate(async (img: HTMLImageElement) => { await img.decode(); return img.naturalWidth; }))
      .toBe(100);
    // a relation to a record that does not exist: the gateway's VALIDATION_FAILED names the field
    await form.locator("#field-author").fill("nosuchuser0000x");
    await form.locator('button[type=submit]:text-is("Save")').click();
    const error = form.locator("#error-author");
    await error.waitFor(SEEN);
    expect(await error.textContent()).toMatch(/^VALIDATION_FAILED: author refers to a record that does not exist/);
    expect(await form.locator(".field-error").count()).toBe(1);
    expect((await ann.records<Json>("posts").get(post.id)).author).toBe(annId);   // nothing written
    // the field corrected, only what changed is sent, at the version read: the person hears the update
    await form.locator("#field-author").fill(annId);
    await form.locator("#field-text").fill(`${tag} edited in the form`);
    await form.locator('button[type=submit]:text-is("Save")').click();
    const update = await until(() => heard.find((c) => c.action === "update" && c.record.id === post.id), 15_000);
    expect(update.record).toMatchObject({ text: `${tag} edited in the form`, version: post.version + 1 });
    expect(update.record.media.map((f: Json) => f.name)).toEqual(["sea.png"]);   // its files kept
    await form.waitFor({ state: "detached", ...SEEN });
  });

  it("deletes the rows picked after a confirm, and lists the one deleted elsewhere meanwhile", async () => {
    const posts: Json[] = [];
    for (let i = 0; i < 5; i++) {
      posts.push(await ann.records<Json>("posts").create({ author: annId, text: `${bulk} ${i}`, public: true }));
    }
    await filterBy(`text ~ "${bulk}"`, 5);
    await page.check("#pick-all");
    await page.click('button:text-is("Delete 5 picked")');
    await page.locator("[data-bulk-confirm]", { hasText: "Delete 5 records?" }).waitFor(SEEN);
    // one of them goes before the admin confirms: its row leaves the grid, it stays picked
    await ann.records("posts").delete(posts[2].id);
    await page.locator(`tr[data-id="${posts[2].id}"]`).waitFor({ state: "detached", ...SEEN });
    await page.click('button:text-is("Yes, delete them")');
    await page.locator(`[data-failed="${posts[2].id}"]`, { hasText: "NOT_FOUND" }).waitFor(SEEN);
    expect(await page.locator("[data-bulk-failed] li").count()).toBe(1);
    await eventually(async () => (await page.locator("tr[data-id]").count()) === 0, 15_000);
    expect((await ann.records("posts").list({ filter: `text ~ "${bulk}"` })).items).toEqual([]);
  });

  it("exports every row of the filter as CSV and as JSON, downloaded by the browser", async () => {
    const texts = [`${exported} plain`, `${exported} with, a comma`, `${exported} says "hi"\nover two lines`];
    for (const text of texts) await ann.records("posts").create({ author: annId, text, public: true });
    await filterBy(`text ~ "${exported}"`, 3);
    const download = async (format: string): Promise<[Download, string]> => {
      const [file] = await Promise.all([page.waitForEvent("download", SEEN), page.click(`.export button:text-is("${format}")`)]);
      return [file, readFileSync((await file.path())!, "utf8")];
    };
    const [csvFile, csv] = await download("CSV");
    expect(csvFile.suggestedFilename()).toMatch(/^posts-.*\.csv$/);
    const [header, ...rows] = parseCsv(csv);
    expect(header.slice(0, 3)).toEqual(["id", "author", "text"]);
    const text = header.indexOf("text");
    expect(rows.map((row) => row[text]).sort()).toEqual([...texts].sort());
    expect(rows.every((row) => row[header.indexOf("author")] === annId)).toBe(true);
    await page.locator("[data-export-note]", { hasText: "3 rows exported" }).waitFor(SEEN);

    const [jsonFile, json] = await download("JSON");
    expect(jsonFile.suggestedFilename()).toMatch(/^posts-.*\.json$/);
    const records = JSON.parse(json) as Json[];
    expect(records.map((r) => r.text).sort()).toEqual([...texts].sort());
    expect(records.map((r) => r.id).sort()).toEqual(rows.map((row) => row[0]).sort());
  });

  it("draws the collections, their relations and rules as a diagram", async () => {
    await open("collections");
    const posts = page.locator('[data-er-collection="posts"]');
    await posts.waitFor(SEEN);
    for (const name of ["users", "posts", "comments", "likes", "messages"]) {
      expect(await page.locator(`[data-er-collection="${name}"]`).count(), name).toBe(1);
    }
    expect(await posts.locator('[data-er-field="author"]').textContent()).toContain("author: → users");
    expect(await posts.locator('[data-er-rule="list"] text').textContent())
      .toBe("list: public = true || author = @user.id");
    expect(await page.locator('[data-er-collection="users"] [data-er-rule="create"] text').textContent())
      .toContain("admins only");
    for (const link of ["posts.author->users", "comments.post->posts", "likes.user->users"]) {
      expect(await page.locator(`[data-er-link="${link}"]`).count(), link).toBe(1);
    }
    await shot("er", "#er");
  });

  it("showed no script error, failed load or refused content", () => {
    expect(problems, problems.slice(0, 5).join("\n")).toEqual([]);
  });
});
