// The dashboard end to end: a real `hapta serve` (the repository's test app on a fresh database) serves it at /_/,
// Chromium signs in with the admin key and uses every page, and clients of the project's JS client (in Node) are
// the people on the other side: their posts are browsed and edited, their sessions revoked, their connections seen.
// Screenshots of each page go to $DASHBOARD_SHOTS (docs/dashboard/ for the committed set), else a temp folder.
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Hapta, HaptaError, type Change } from "../../clients/js/src/hapta.ts";
import { ADMIN_KEY, ANON_KEY, PASSWORD, startGateway, uniqueName, until, type Gateway }
  from "../../clients/js/test/support.ts";
import { eventually, findChromium, launch, watch } from "./browser.ts";
import { picture } from "./picture.ts";

const chromiumPath = findChromium();
const why = "no chromium here (bin/test installs Debian's package where it can: apt-get install chromium)";
const SHOTS = process.env.DASHBOARD_SHOTS || join(tmpdir(), "hapta-dashboard-shots");
// A person's wait: long enough for a 2 s poll to come round twice, short enough to fail a broken page quickly.
const SEEN = { timeout: 15_000 };

type Json = Record<string, any>;

interface Person { hapta: Hapta; id: string; name: string }

describe.skipIf(!chromiumPath)(`the dashboard in Chromium${chromiumPath ? "" : ` (skipped: ${why})`}`, () => {
  let gateway: Gateway;
  let context: BrowserContext;
  let page: Page;
  let problems: string[];
  let ann: Person;
  let ben: Person;
  let annPost: Json;
  let benSecret: Json;
  const tag = uniqueName("dash");
  const bulk = uniqueName("bulk");   // 25 posts: three pages of 10
  const clients: Hapta[] = [];

  async function person(prefix: string): Promise<Person> {
    const hapta = await Hapta.connect(gateway.url);
    clients.push(hapta);
    const name = uniqueName(prefix);
    const session = await hapta.auth.register({ email: `${name}@example.com`, password: PASSWORD, username: name });
    return { hapta, id: session.user.id as string, name };
  }

  async function shot(name: string) {
    mkdirSync(SHOTS, { recursive: true });
    writeFileSync(join(SHOTS, `${name}.png`), await page.screenshot({ fullPage: true }));
  }

  async function open(hash: string) {
    await page.locator("nav").waitFor();
    await page.evaluate((to) => { location.hash = to; }, hash);
    await page.locator(`#page[data-page="${hash.split("/")[0]}"]`).waitFor();
  }

  beforeAll(async () => {
    // Signing in as admin is limited to 5 a minute per address, and every connection of this test comes from
    // 127.0.0.1: the dashboard, its impersonating connection and the checks below sign in more often than that.
    // A failed @on run is retried quickly here: the dead letter it becomes is on the Workers & functions page.
    gateway = await startGateway('limits={**app.limits, "auth.admin": Limit(100, per=60)}, function_retries=(0.1,)',
                                 [], { functions: join(__dirname, "functions") });
    // older than the posts below, so that those are the first page by `-created`
    const dora = await person("dora");
    for (let i = 0; i < 25; i++) {   // past records.create's burst the client waits out RATE_LIMITED by itself
      await dora.hapta.records("posts").create({ author: dora.id, text: `${bulk} ${String(i).padStart(2, "0")}`,
                                                 public: true });
    }
    ann = await person("ann");
    ben = await person("ben");
    annPost = await ann.hapta.records("posts").create({ author: ann.id, text: `${tag} sunrise over the bay`,
                                                        public: true });
    await ann.hapta.files.upload("posts", annPost.id, "media", picture(240, 120),
                                 { name: "bay.png", type: "image/png" });
    for (let i = 0; i < 3; i++) {
      await ann.hapta.records("posts").create({ author: ann.id, text: `${tag} note ${i}`, public: true });
    }
    benSecret = await ben.hapta.records("posts").create({ author: ben.id, text: `${tag} ben's private draft`,
                                                          public: false });
    context = await launch(chromiumPath!);
    page = context.pages()[0] ?? await context.newPage();
    problems = watch(page);
  }, 180_000);

  afterAll(async () => {
    for (const hapta of clients) hapta.close();
    await context?.close();
    await gateway?.stop();
  });

  it("is served at /_/ with a policy that allows nothing inline", async () => {
    const response = await page.goto(gateway.http + "/_/");
    expect(response!.status()).toBe(200);
    const policy = response!.headers()["content-security-policy"];
    expect(policy).toContain("script-src 'self'");
    expect(policy).toContain("style-src 'self'");
    expect(response!.headers()["x-frame-options"]).toBe("DENY");
    await page.locator("#admin-key").waitFor();
  });

  it("refuses a wrong key, with the gateway's error, and signs in with the admin key", async () => {
    for (const [attempt, wrong] of [[1, "not-the-key"], [2, ANON_KEY]] as const) {
      await page.fill("#admin-key", wrong);
      await page.click("#signin button[type=submit]");
      await page.locator(`#signin .error[data-attempt="${attempt}"]`, { hasText: "INVALID_CREDENTIALS" }).waitFor(SEEN);
    }
    await page.fill("#admin-key", ADMIN_KEY);
    await page.click("#signin button[type=submit]");
    await page.locator("nav").waitFor(SEEN);
    // the key is in memory only: nothing in storage, nothing in the address
    expect(await page.evaluate(() => [localStorage.length, sessionStorage.length, location.href]))
      .toEqual([0, 0, gateway.http + "/_/"]);
  });

  it("Overview: figures of admin.metrics, drawn as they are polled", async () => {
    await open("overview");
    // a rate needs two samples: the messages/s figure gets a number once the second poll has answered
    await page.locator('[data-figure="Messages/s"] .value', { hasText: /\d/ }).waitFor(SEEN);
    // and a line once there are two rates (three samples)
    await page.locator('[data-figure="Messages/s"] polyline').waitFor({ state: "attached", ...SEEN });
    await shot("overview");
  });

  it("Collections: fields with their flags, and each op's rule", async () => {
    await open("collections");
    const users = page.locator('[data-collection="users"]');
    await users.waitFor(SEEN);
    expect(await users.textContent()).toContain("hidden");        // password_hash
    expect(await users.textContent()).toContain("guarded: id = @user.id");
    const posts = page.locator('[data-collection="posts"]');
    expect(await posts.textContent()).toContain("public = true || author = @user.id");
    expect(await page.locator('[data-collection="users"] .rule.admins').count()).toBeGreaterThan(0);   // create
    await shot("collections");
  });

  it("Records: browse posts, a filter typo shows the parser's error, a picture is previewed", async () => {
    await open("records/posts");
    await page.locator(`tr[data-id="${annPost.id}"]`).waitFor(SEEN);
    await page.fill("#filter", "text = ");
    await page.locator("#filter-error .error", { hasText: "BAD_REQUEST" }).waitFor(SEEN);
    await page.fill("#filter", `text ~ "${tag}"`);
    await page.locator("#filter-error .error").waitFor({ state: "detached", ...SEEN });
    await eventually(async () => (await page.locator("tr[data-id]").count()) === 5, 15_000);   // ann's 4, ben's draft
    await page.locator('[data-live="true"]').waitFor(SEEN);
    await page.click(`tr[data-id="${annPost.id}"]`);
    const preview = page.locator(`[data-record="${annPost.id}"] img[src^="blob:"]`);
    await preview.waitFor(SEEN);
    expect(await preview.evaluate(async (img: HTMLImageElement) => { await img.decode(); return img.naturalWidth; }))
      .toBe(240);
    await shot("records");
  });

  it("Records: sort by a column, page with the keyset cursor", async () => {
    const headers = await page.locator("table.grid th").allTextContents();
    const at = headers.findIndex((h) => h.startsWith("text")) + 1;
    const texts = () => page.locator(`tr[data-id] td:nth-child(${at})`).allTextContents();
    const column = page.locator("th button", { hasText: /^text/ });
    await column.click();   // ascending
    await page.locator("th button", { hasText: "text ▲" }).waitFor(SEEN);
    await eventually(async () => { const t = await texts(); return t.length === 5 && t[0].includes("ben's"); }, 15_000);
    await column.click();   // descending
    await eventually(async () => { const t = await texts(); return t.length === 5 && t[0].includes("sunrise"); }, 15_000);
    // ten a page: three pages, each after the last one's `next`, and back
    await page.fill("#filter", `text ~ "${bulk}"`);
    await page.selectOption("#per-page", "10");
    const next = page.locator(".pager button", { hasText: "Next" });
    // every record once, in the column's order (descending), across the pages
    const order = Array.from({ length: 25 }, (_, i) => `${bulk} ${String(24 - i).padStart(2, "0")}`);
    const same = (a: string[], b: string[]) => JSON.stringify(a) === JSON.stringify(b);
    for (const [number, start] of [[1, 0], [2, 10], [3, 20]]) {
      await eventually(async () => same(await texts(), order.slice(start, start + 10)), 15_000);
      expect(await page.locator(".pager").textContent()).toContain(`page ${number}`);
      if (number < 3) await next.click();
    }
    expect(await next.isDisabled()).toBe(true);
    await page.locator(".pager button", { hasText: "Previous" }).click();
    await eventually(async () => same(await texts(), order.slice(10, 20)), 15_000);
    await page.selectOption("#per-page", "20");
    await page.fill("#filter", `text ~ "${tag}"`);
    await eventually(async () => (await texts()).length === 5, 15_000);
  });

  it("Records: an edit in the grid reaches a client subscribed to that record; new rows arrive live", async () => {
    const heard: Change<Json>[] = [];
    const stop = await ann.hapta.records("posts").subscribe({ id: annPost.id }, (change) => heard.push(change));
    await page.click(`tr[data-id="${annPost.id}"]`);
    await page.click(`[data-record="${annPost.id}"] button:text-is("Edit")`);
    await page.click(`[data-record="${annPost.id}"] [role=tab]:text-is("JSON")`);   // the form's JSON view
    const draft = JSON.parse(await page.inputValue("#record-edit"));
    expect(draft).toMatchObject({ text: annPost.text, public: true });
    await page.fill("#record-edit", JSON.stringify({ ...draft, text: `${tag} sunset over the bay` }, null, 2));
    await page.click(`[data-record="${annPost.id}"] button:text-is("Save")`);
    const update = await until(() => heard.find((c) => c.action === "update"), 10_000);
    expect(update.record.text).toBe(`${tag} sunset over the bay`);
    await page.locator(`tr[data-id="${annPost.id}"]`, { hasText: "sunset" }).waitFor(SEEN);
    await stop();

    // written elsewhere, seen here: the grid's subscription has the same filter as its page
    const fresh = await ann.hapta.records("posts").create({ author: ann.id, text: `${tag} just posted`,
                                                          public: true });
    await page.locator(`tr.fresh[data-id="${fresh.id}"]`).waitFor(SEEN);
    await ann.hapta.records("posts").update(fresh.id, { text: `${tag} just posted, edited` });
    await page.locator(`tr[data-id="${fresh.id}"]`, { hasText: "edited" }).waitFor(SEEN);
    await ann.hapta.records("posts").delete(fresh.id);
    await page.locator(`tr[data-id="${fresh.id}"]`).waitFor({ state: "detached", ...SEEN });
  });

  it("Records: an edit begun before someone else's change is refused (CONFLICT), not written over it", async () => {
    const panel = page.locator(`[data-record="${annPost.id}"]`);
    await page.click(`tr[data-id="${annPost.id}"]`);
    await panel.locator("button", { hasText: /^Edit$/ }).click();
    await panel.locator("[role=tab]", { hasText: /^JSON$/ }).click();
    const draft = JSON.parse(await page.inputValue("#record-edit"));
    await ann.hapta.records("posts").update(annPost.id, { text: `${tag} sunset, by ann` });   // meanwhile
    await panel.locator(".warn", { hasText: "Changed by someone else" }).waitFor(SEEN);   // it arrived live
    await page.fill("#record-edit", JSON.stringify({ ...draft, text: `${tag} the admin's version` }));
    await panel.locator("button", { hasText: /^Save$/ }).click();
    await panel.locator(".error", { hasText: "CONFLICT" }).waitFor(SEEN);
    expect((await ann.hapta.records("posts").get(annPost.id)).text).toBe(`${tag} sunset, by ann`);
    await panel.locator("button", { hasText: /^Cancel$/ }).click();
  });

  it("Records: a delete asks first, then removes the record", async () => {
    const doomed = await ann.hapta.records("posts").create({ author: ann.id, text: `${tag} to be deleted`,
                                                           public: true });
    const row = page.locator(`tr[data-id="${doomed.id}"]`);
    await row.waitFor(SEEN);
    await row.click();
    const panel = page.locator(`[data-record="${doomed.id}"]`);
    await panel.locator("button", { hasText: /^Delete$/ }).click();
    await panel.locator(".confirm button", { hasText: "No" }).click();
    expect(await row.count()).toBe(1);   // nothing happened
    await panel.locator("button", { hasText: /^Delete$/ }).click();
    await panel.locator(".confirm button", { hasText: "Yes, delete" }).click();
    await row.waitFor({ state: "detached", ...SEEN });
    await expect(ann.hapta.records("posts").get(doomed.id)).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("Users: impersonating shows what that user sees, on a connection of its own", async () => {
    await open("users");
    // what is typed is a value, never more of the filter: this finds nobody (and is no error)
    await page.locator("#users li").first().waitFor(SEEN);
    await page.fill("#user-search", 'nobody" || email != "');
    await eventually(async () => (await page.locator("#users li").count()) === 0);
    expect(await page.locator("#page .error").count()).toBe(0);
    await page.fill("#user-search", ben.name);
    await eventually(async () => (await page.locator("#users li").count()) === 1);   // the search found him alone
    await page.locator(`[data-user="${ben.id}"] a`).click();
    await page.locator(`[data-user-detail="${ben.id}"] #sessions tr[data-session]`).waitFor(SEEN);
    await page.click(`[data-user-detail="${ben.id}"] button:text-is("Impersonate")`);
    const view = page.locator(`[data-impersonating="${ben.id}"]`);
    await view.locator("#their-records tr", { hasText: "ben's private draft" }).waitFor(SEEN);   // his own, private
    await shot("users");
    // impersonating is a session of ben's (15 minutes, no refresh): listed while it lasts, ended with the view
    const sessions = page.locator(`[data-user-detail="${ben.id}"] #sessions tr[data-session]`);
    await eventually(async () => (await sessions.count()) === 2);
    await view.locator("button", { hasText: "End impersonation" }).click();
    await view.waitFor({ state: "detached" });
    await eventually(async () => (await sessions.count()) === 1);
    // the dashboard's own connection is still the admin's
    await page.fill("#user-search", ann.name);
    await page.locator(`[data-user="${ann.id}"]`).waitFor(SEEN);
  });

  it("Users: revoking a session from the Users page reaches that user's client as auth.revoked", async () => {
    const revoked = new Promise<Json>((done) => ann.hapta.on("auth.revoked", done));
    await page.fill("#user-search", ann.name);
    await eventually(async () => (await page.locator("#users li").count()) === 1);
    await page.locator(`[data-user="${ann.id}"] a`).click();
    const sessions = page.locator(`[data-user-detail="${ann.id}"] #sessions tr[data-session]`);
    await sessions.first().waitFor(SEEN);
    expect(await sessions.count()).toBe(1);
    await sessions.first().locator("button", { hasText: "Revoke" }).click();
    expect(await revoked).toMatchObject({ reason: "revoked by an admin" });
    await page.locator(`[data-user-detail="${ann.id}"] [role=status]`, { hasText: "revoked 1 session" }).waitFor(SEEN);
    await eventually(async () => (await sessions.count()) === 0, 15_000);

    // all of a user's sessions at once
    const benRevoked = new Promise<Json>((done) => ben.hapta.on("auth.revoked", done));
    await page.fill("#user-search", ben.name);
    await eventually(async () => (await page.locator("#users li").count()) === 1);
    await page.locator(`[data-user="${ben.id}"] a`).click();
    const his = page.locator(`[data-user-detail="${ben.id}"]`);
    await his.locator("#sessions tr[data-session]").first().waitFor(SEEN);
    await his.locator("button", { hasText: "Revoke all" }).click();
    expect(await benRevoked).toMatchObject({ reason: "revoked by an admin" });
    await his.locator("#sessions tr[data-session]").first().waitFor({ state: "detached", ...SEEN });
  });

  it("Live: a new connection, and the channel it joins, appear", async () => {
    await open("live");
    await page.locator("#connections tbody tr").first().waitFor(SEEN);
    const carl = await person("carl");
    await carl.hapta.channel(`room:${tag}`).join();
    await page.locator("#connections tr", { hasText: carl.id }).waitFor(SEEN);
    await page.locator(`[data-channel="room:${tag}"]`, { hasText: carl.id }).waitFor(SEEN);
    await shot("live");
  });

  it("Limits: the configured limits, and one address's standing", async () => {
    await open("limits");
    await page.locator('tr[data-limit="records.create"]').waitFor(SEEN);
    // every person of this test registered from 127.0.0.1: auth.register (10 an hour per address) shows it
    await page.selectOption("#standing select", "address");
    await page.fill("#standing-of", "127.0.0.1");
    await page.click("#standing button[type=submit]");
    const register = page.locator('tr.used[data-limit="auth.register"]');
    await register.waitFor(SEEN);
    const remaining = Number(await register.locator("td:nth-child(4)").textContent());
    expect(remaining).toBeLessThanOrEqual(10 - 4);   // ann, ben, carl, dora
    expect(await register.locator("td:nth-child(5)").textContent()).toMatch(/^in \d+ (s|min)$/);
    await shot("limits");
  });

  it("Workers & functions: the hook workers, a function's runs with their logs, a dead letter run again", async () => {
    const fay = await person("fay");
    const messages = fay.hapta.records("messages");
    const fine = await messages.create({ sender: fay.id, recipient: ben.id, text: "hello ben" });
    const bad = await messages.create({ sender: fay.id, recipient: ben.id, text: "an undeliverable one" });
    await open("functions");
    await page.locator("#hook-workers .figure").first().waitFor(SEEN);
    const row = page.locator("#functions tr[data-function]", { hasText: "deliver" });
    await row.waitFor(SEEN);
    await row.locator("a").click();
    const runs = page.locator("#runs tbody tr");
    // the good message's run with its log line, and the bad one's failures
    await page.locator("#runs tr", { hasText: `delivering message ${fine.id}` }).waitFor(SEEN);
    await page.locator("#runs tr.bad", { hasText: "the recipient's inbox is closed" }).first().waitFor(SEEN);
    // after its retry, the bad one is a dead letter, and its two runs are listed beside the good one's
    await page.locator(".dead", { hasText: bad.id }).waitFor(SEEN);
    await runs.nth(2).waitFor(SEEN);
    await shot("functions");
    await page.locator(".dead", { hasText: bad.id }).locator("button", { hasText: "Run again" }).click();
    await page.locator("[role=status]", { hasText: "failed" }).waitFor(SEEN);   // it is still undeliverable
  });

  it("nothing on any page failed or was refused by the policy", () => {
    expect(problems, problems.slice(0, 5).join("\n")).toEqual([]);
  });

  // (after the check above: a browser logs the refused reconnects while the gateway is down)
  it("after a gateway restart it signs in again with the key it holds, and the grid is live again", async () => {
    await open("records/posts");
    await page.fill("#filter", `text ~ "${tag}"`);
    await page.locator('[data-live="true"]').waitFor(SEEN);
    await gateway.restart();
    await page.locator('[data-live="true"]').waitFor({ timeout: 30_000 });   // a new connection, signed in as admin
    const eve = await person("eve");
    const post = await eve.hapta.records("posts").create({ author: eve.id, text: `${tag} after the restart`,
                                                          public: true });
    await page.locator(`tr[data-id="${post.id}"]`).waitFor(SEEN);
    expect(await page.locator("#admin-key").count()).toBe(0);   // nobody was asked for the key again
    expect(await page.inputValue("#filter")).toBe(`text ~ "${tag}"`);   // and what was typed is still there
  }, 60_000);
});

describe("for anyone but an admin", () => {
  let gateway: Gateway;
  beforeAll(async () => { gateway = await startGateway(); }, 120_000);
  afterAll(async () => { await gateway?.stop(); });

  // Every op a page draws from: none of them answers a non-admin.
  const OPS: [string, Json][] = [
    ["admin.schema", {}], ["admin.connections", {}], ["admin.channels", {}], ["admin.limits", {}],
    ["admin.metrics", {}], ["hooks.status", {}], ["rules.status", {}], ["functions.status", {}],
    ["functions.list", {}], ["functions.runs", { name: "x" }], ["functions.dead", { name: "x" }], ["functions.retry", { id: 1 }], ["auth.impersonate", { user: "x" }],
    ["auth.sessions", { user: "someone-else" }], ["admin.limits", { user: "someone-else" }],
    ["admin.backups", {}], ["admin.backup", {}], ["admin.backup.download", { name: "x.tar" }],
    ["admin.backup.delete", { name: "x.tar" }], ["admin.backup.restore", { name: "x.tar", confirm: "x.tar" }],
    ["admin.settings", {}], ["admin.mail.test", { to: "a@example.com" }], ["admin.sql", { sql: "SELECT 1" }],
    ["admin.log", {}],
  ];

  for (const who of ["anon", "user"] as const) {
    it(`an ${who} gets FORBIDDEN from every admin op`, async () => {
      const hapta = await Hapta.connect(gateway.url, who === "anon" ? { apikey: ANON_KEY } : {});
      try {
        if (who === "user") await hapta.auth.register({ email: `${uniqueName("nu")}@example.com`, password: PASSWORD });
        for (const [op, args] of OPS) {
          const refused = await hapta.call(op, args).then(() => null, (error: HaptaError) => error);
          expect(refused?.code, `${op} as ${who}`).toBe("FORBIDDEN");
        }
      } finally {
        hapta.close();
      }
    });
  }
});
