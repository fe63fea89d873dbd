// The Logs page end to end: a real `hapta serve` (the test app on a fresh database), a person using the app through
// the project's JS client, and Chromium signed in with the admin key: the requests just made are listed, filtered by
// who made them and by outcome, counted in the chart, shown one in full; the gateway's own warnings beside them.
// The screenshot goes to $DASHBOARD_SHOTS (docs/dashboard/ for the committed one), else a temp folder.
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Hapta, HaptaError } from "../../clients/js/src/hapta.ts";
import { ADMIN_KEY, PASSWORD, startGateway, uniqueName, type Gateway } from "../../clients/js/test/support.ts";
import { eventually, findChromium, launch, watch } from "./browser.ts";

const chromiumPath = findChromium();
const why = "no chromium here (bin/test installs Debian's package where it can: apt-get install chromium)";
const SHOTS = process.env.DASHBOARD_SHOTS || join(tmpdir(), "hapta-dashboard-shots");
const SEEN = { timeout: 15_000 };

describe.skipIf(!chromiumPath)(`the Logs page in Chromium${chromiumPath ? "" : ` (skipped: ${why})`}`, () => {
  let gateway: Gateway;
  let context: BrowserContext;
  let page: Page;
  let problems: string[];
  let person: Hapta;
  let admin: Hapta;
  let id: string;
  let token: string;
  const text = uniqueName("a post body the log never keeps ");

  beforeAll(async () => {
    gateway = await startGateway('limits={**app.limits, "auth.admin": Limit(100, per=60)}');
    person = await Hapta.connect(gateway.url);
    const name = uniqueName("lena");
    const session = await person.auth.register({ email: `${name}@example.com`, password: PASSWORD, username: name });
    id = session.user.id as string;
    token = session.token as string;
    for (let i = 0; i < 3; i++) await person.records("posts").create({ author: id, text: `${text} ${i}`, public: true });
    for (let i = 0; i < 2; i++) {
      await expect(person.records("posts").get("no-such-post")).rejects.toBeInstanceOf(HaptaError);
    }
    // a warning of the gateway's own: a backup to S3 that is not configured fails in the background
    admin = await Hapta.connect(gateway.url);
    await admin.call("auth.admin", { key: ADMIN_KEY });
    await admin.call("admin.backup", { target: "s3://nowhere/backup.tar" });
    context = await launch(chromiumPath!);
    page = context.pages()[0] ?? await context.newPage();
    problems = watch(page);
  }, 180_000);

  afterAll(async () => {
    person?.close();
    admin?.close();
    await context?.close();
    await gateway?.stop();
  });

  it("signs in with the admin key and opens the Logs page from the nav", async () => {
    await page.goto(gateway.http + "/_/");
    await page.fill("#admin-key", ADMIN_KEY);
    await page.click("#signin button[type=submit]");
    await page.locator("nav a", { hasText: "Logs" }).click(SEEN);
    await page.locator('#page[data-page="logs"]').waitFor(SEEN);
  });

  it("lists the requests just made, filtered by who made them, with the chart counting them", async () => {
    await page.fill("#log-principal", id);
    const creates = page.locator('#requests tr[data-op="records.create"]');
    // the three creates, and every row that person's: the filter reached the gateway
    const whose = page.locator("#requests tbody td:nth-child(4)");
    await eventually(async () => await creates.count() === 3 && (await whose.allTextContents()).every((w) => w === id),
                     15_000, "the person's three creates were not listed alone");
    expect(await creates.first().locator("td:nth-child(3)").textContent()).toBe("posts");
    await page.locator("#requests tr.bad", { hasText: "NOT_FOUND" }).nth(1).waitFor(SEEN);
    await eventually(async () => await page.locator("#chart-ok").textContent() === "3"
                     && await page.locator("#chart-errors").textContent() === "2", 15_000,
                     "the chart did not count 3 answered and 2 failed");
    await page.locator("#requests-chart rect.bar-error").first().waitFor({ state: "attached", ...SEEN });
  });

  it("narrows to the failures, and shows one request in full", async () => {
    await page.selectOption("#log-outcome", "error");
    await eventually(async () => (await page.locator("#requests tbody tr").allTextContents()).length === 2
                     && await page.locator('#requests tr[data-op="records.create"]').count() === 0, 15_000,
                     "the outcome filter did not leave the two failures");
    await page.locator("#requests tbody tr").first().click();
    const detail = page.locator("#request-detail");
    await detail.waitFor(SEEN);
    expect(await detail.textContent()).toContain("NOT_FOUND");
    expect(await detail.textContent()).toContain("records.get");
    await page.selectOption("#log-outcome", "");
  });

  it("shows the gateway's warnings beside the requests", async () => {
    await page.locator("#warnings li", { hasText: "backup to s3://nowhere/backup.tar failed" }).waitFor(SEEN);
    await page.fill("#log-principal", "");
    await page.locator('#requests tr[data-op="admin.backup"]', { hasText: "admin key" }).waitFor(SEEN);
    mkdirSync(SHOTS, { recursive: true });
    await page.locator("#requests tr[data-op='records.create']").first().click();
    writeFileSync(join(SHOTS, "logs.png"), await page.screenshot({ fullPage: true }));
  });

  it("nothing secret is on the page, and nothing failed or was refused by the policy", async () => {
    const shown = await page.locator("body").textContent();
    for (const secret of [PASSWORD, token, text]) expect(shown).not.toContain(secret);
    expect(problems, problems.slice(0, 5).join("\n")).toEqual([]);
  });
});
