// The Backups, Settings and SQL pages end to end: a real `hapta serve` (the repository's test app on a fresh
// database) serves the dashboard at /_/, Chromium signs in with the admin key, starts a backup, sees it listed and
// downloads it; reads the settings (no secret anywhere in the page) and sends a test mail; runs SQL that reads, and
// a write that is refused until the switch is ticked for it. Screenshots go to $DASHBOARD_SHOTS (docs/dashboard/
// for the committed set), else a temp folder.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_KEY, startGateway, uniqueName, type Gateway } from "../../clients/js/test/support.ts";
import { findChromium, launch, watch } from "./browser.ts";

const chromiumPath = findChromium();
const why = "no chromium here (bin/test installs Debian's package where it can: apt-get install chromium)";
const SHOTS = process.env.DASHBOARD_SHOTS || join(tmpdir(), "hapta-dashboard-shots");
const SEEN = { timeout: 15_000 };
// A backup runs pg_dump: longer than a page's poll, well within this.
const BACKED_UP = { timeout: 60_000 };

describe.skipIf(!chromiumPath)(`the operations pages in Chromium${chromiumPath ? "" : ` (skipped: ${why})`}`, () => {
  let gateway: Gateway;
  let context: BrowserContext;
  let page: Page;
  let problems: string[];
  const backup = `${uniqueName("dash")}.tar`;
  const table = uniqueName("dash_sql").replace(/[^a-z0-9_]/gi, "_");

  async function shot(name: string) {
    mkdirSync(SHOTS, { recursive: true });
    writeFileSync(join(SHOTS, `${name}.png`), await page.screenshot({ fullPage: true }));
  }

  async function open(hash: string) {
    await page.locator("nav").waitFor();
    await page.evaluate((to) => { location.hash = to; }, hash);
    await page.locator(`#page[data-page="${hash}"]`).waitFor();
  }

  beforeAll(async () => {
    gateway = await startGateway();
    context = await launch(chromiumPath!);
    page = context.pages()[0] ?? await context.newPage();
    problems = watch(page);
  }, 180_000);

  afterAll(async () => {
    await context?.close();
    await gateway?.stop();
  });

  it("signs in with the admin key", async () => {
    await page.goto(gateway.http + "/_/");
    await page.fill("#admin-key", ADMIN_KEY);
    await page.click("#signin button[type=submit]");
    await page.locator("nav").waitFor(SEEN);
  });

  it("Backups: one started, listed when done, and downloaded", async () => {
    await open("backups");
    await page.locator("#backup-jobs").waitFor(SEEN);
    await page.fill("#backup-target", backup);
    await page.click("#backup-start button[type=submit]");
    await page.locator('[data-job="backup"]', { hasText: "done" }).waitFor(BACKED_UP);
    const row = page.locator(`tr[data-backup="${backup}"]`);
    await row.waitFor(SEEN);
    const [download] = await Promise.all([page.waitForEvent("download"), row.locator("button.download").click()]);
    expect(download.suggestedFilename()).toBe(backup);
    const bytes = readFileSync((await download.path())!);
    expect(bytes.length).toBeGreaterThan(1024);
    expect(bytes.subarray(257, 262).toString()).toBe("ustar");   // a tar archive, as written
    await page.locator("#backups-said", { hasText: `downloaded ${backup}` }).waitFor(SEEN);
    expect(await page.locator(`tr[data-backup="${backup}"] button.restore`).count()).toBe(1);   // development
    await shot("backups");
  });

  it("Settings: where each came from, no secret in the page; a test mail goes out", async () => {
    await open("settings");
    await page.locator('tr[data-setting="HAPTA_JWT_SECRET"]').waitFor(SEEN);
    expect(await page.locator('tr[data-setting="HAPTA_ENV"]').textContent()).toContain("env");
    const html = await page.content();
    const secrets = [ADMIN_KEY, "js-test-secret-" + "x".repeat(40)];
    const password = process.env.DATABASE_URL ? new URL(process.env.DATABASE_URL).password : "";
    if (password) secrets.push(decodeURIComponent(password));
    for (const secret of secrets) expect(html.includes(secret), "a secret in the page").toBe(false);
    await page.fill("#mail-to", "someone@example.com");
    await page.click("#mail-test button[type=submit]");
    await page.locator('#mail-outcome[data-sent="true"]').waitFor(SEEN);
    await shot("settings");
  });

  it("SQL: a read in a grid; a write refused until switched on, for that statement only", async () => {
    await open("sql");
    await page.fill("#sql", "SELECT 1 AS one, 'two'::text AS two");
    await page.click("#sql-run");
    await page.locator("#sql-result th", { hasText: "one" }).waitFor(SEEN);
    expect(await page.locator("#sql-result th", { hasText: "two" }).textContent()).toContain("text");

    await page.fill("#sql", `CREATE TABLE ${table} (n int)`);
    await page.click("#sql-run");
    await page.locator("#sql-error", { hasText: "cannot execute CREATE TABLE in a read-only transaction" })
      .waitFor(SEEN);
    await page.check("#sql-write");
    await page.click("#sql-run");
    await page.locator("#sql-status", { hasText: "CREATE TABLE" }).waitFor(SEEN);
    expect(await page.isChecked("#sql-write")).toBe(false);   // the switch held for one statement

    await page.fill("#sql", `INSERT INTO ${table} VALUES (1)`);
    await page.click("#sql-run");
    await page.locator("#sql-error", { hasText: "read-only transaction" }).waitFor(SEEN);
    await page.fill("#sql", `SELECT count(*) AS rows FROM ${table}`);
    await page.click("#sql-run");
    await page.locator("#sql-result td", { hasText: "0" }).waitFor(SEEN);
    await page.locator("#admin-log td", { hasText: "admin key" }).first().waitFor(SEEN);
    await shot("sql");
  });

  it("showed no script error, failed load or policy refusal", () => {
    expect(problems).toEqual([]);
  });
});
