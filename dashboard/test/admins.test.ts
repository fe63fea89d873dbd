// Admin accounts end to end: `hapta admin create` makes an account on the database of a real `hapta serve`, Chromium
// signs in at /_/ with its email, password and a TOTP code (computed here, RFC 6238, with node:crypto), reloads go
// on without signing in again (and are no sign-in attempts: the per-address limit still has room for exactly the
// rest), the Admins page lists, creates, resets and deletes, and signing out ends the session on the gateway.
// Needs DATABASE_URL (the command must reach the gateway's database; tests/dashboard/test_admins.py gives one).
import { spawnSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Hapta, HaptaError } from "../../clients/js/src/hapta.ts";
import { ADMIN_KEY, ANON_KEY, PASSWORD, ROOT, startGateway, uniqueName, type Gateway }
  from "../../clients/js/test/support.ts";
import { eventually, findChromium, launch, watch } from "./browser.ts";

const chromiumPath = findChromium();
const database = process.env.DATABASE_URL;
const why = !chromiumPath ? "no chromium here (apt-get install chromium)"
  : "no DATABASE_URL: `hapta admin create` must reach the gateway's database";
const SHOTS = process.env.DASHBOARD_SHOTS || join(tmpdir(), "hapta-dashboard-shots");
const SEEN = { timeout: 15_000 };

/** RFC 4648 base32, as a TOTP secret is written. */
function base32(text: string): Buffer {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const char of text.replace(/=+$/, "")) bits += alphabet.indexOf(char).toString(2).padStart(5, "0");
  const bytes = bits.match(/.{8}/g) ?? [];
  return Buffer.from(bytes.map((byte) => parseInt(byte, 2)));
}

/** RFC 6238 TOTP (HMAC-SHA1, 6 digits, 30 s steps) for the step `offset` steps from now: what an authenticator app
 * shows. */
function totp(secret: string, offset = 0): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30) + offset));
  const mac = createHmac("sha1", base32(secret)).update(counter).digest();
  const at = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(at) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

/** `hapta admin ...` on the gateway's database; its stdout (a failure throws with its stderr). */
function hapta(...args: string[]): string {
  const done = spawnSync(join(ROOT, ".venv", "bin", "python"), ["-m", "hapta", "admin", ...args, "--config",
                                                                 join(ROOT, "tests", "app", "config.py")], {
    input: PASSWORD + "\n", encoding: "utf8", timeout: 90_000,
    env: { ...process.env, HAPTA_ANON_KEY: ANON_KEY, HAPTA_ADMIN_KEY: ADMIN_KEY,
           HAPTA_JWT_SECRET: "js-test-secret-" + "x".repeat(40), HAPTA_ENV: "development" },
  });
  if (done.status !== 0) throw new Error(`hapta admin ${args.join(" ")} failed:\n${done.stderr}`);
  return done.stdout;
}

function secretIn(output: string): string {
  const found = /^ {2}secret: ([A-Z2-7]+)$/m.exec(output);
  if (!found) throw new Error(`no secret in:\n${output}`);
  return found[1];
}

async function refusal(call: Promise<unknown>): Promise<string | undefined> {
  return call.then(() => undefined, (error: HaptaError) => error.code);
}

describe.skipIf(!chromiumPath || !database)(`admin accounts in Chromium${chromiumPath && database ? "" : ` (skipped: ${why})`}`, () => {
  let gateway: Gateway;
  let context: BrowserContext;
  let page: Page;
  let problems: string[];
  let secret: string;
  const me = `${uniqueName("ops")}@example.com`;
  const colleague = `${uniqueName("col")}@example.com`;
  const clients: Hapta[] = [];
  const frames: { sent: boolean; message: Record<string, any> }[] = [];

  function heard(sent: boolean, payload: string | Buffer) {
    if (typeof payload !== "string") return;
    for (const message of [JSON.parse(payload)].flat()) frames.push({ sent, message });
  }

  async function guest(): Promise<Hapta> {
    const client = await Hapta.connect(gateway.url, { retry: { attempts: 0 } });
    clients.push(client);
    return client;
  }

  async function shot(name: string) {
    mkdirSync(SHOTS, { recursive: true });
    writeFileSync(join(SHOTS, `${name}.png`), await page.screenshot({ fullPage: true }));
  }

  beforeAll(async () => {
    // a session of 65 s: the gateway's auth.expiring (60 s before the end) comes 5 s after each renewal
    gateway = await startGateway("sessions=dataclasses.replace(app.sessions, admin_idle_timeout=65)");
    secret = secretIn(hapta("create", "--email", me, "--password-stdin"));
    hapta("create", "--email", colleague, "--password-stdin");
    context = await launch(chromiumPath!);
    page = context.pages()[0] ?? await context.newPage();
    problems = watch(page);
    page.on("websocket", (socket) => {   // what goes over the dashboard's sockets, message by message
      socket.on("framesent", (frame) => heard(true, frame.payload));
      socket.on("framereceived", (frame) => heard(false, frame.payload));
    });
  }, 180_000);

  afterAll(async () => {
    for (const client of clients) client.close();
    await context?.close();
    await gateway?.stop();
  });

  it("signs in with the email, password and code of an account the command made", async () => {
    await page.goto(gateway.http + "/_/");
    await page.fill("#admin-email", me);
    await page.fill("#admin-password", PASSWORD + " typo");
    await page.fill("#admin-code", totp(secret));
    await page.click("#signin-account button[type=submit]");   // sign-in attempt 1 of 5 from this address
    await page.locator('#signin-account .error[data-attempt="1"]', { hasText: "INVALID_CREDENTIALS" }).waitFor(SEEN);
    await page.fill("#admin-password", PASSWORD);
    await page.click("#signin-account button[type=submit]");   // attempt 2
    await page.locator("nav #who", { hasText: me }).waitFor(SEEN);
    // the session token in this tab's sessionStorage, nothing in localStorage or the address
    expect(await page.evaluate(() => [localStorage.length, Object.keys(sessionStorage), location.href]))
      .toEqual([0, ["hapta.admin.session"], gateway.http + "/_/"]);
  });

  it("a reload goes on signed in, without a sign-in attempt", async () => {
    await page.evaluate(() => { location.hash = "admins"; });
    for (let reload = 0; reload < 6; reload++) {
      await page.reload();
      await page.locator("nav #who", { hasText: me }).waitFor(SEEN);
      await page.locator("#signed-in-as", { hasText: me }).waitFor(SEEN);   // admin ops answer on the resumed session
      expect(await page.locator("#admin-email").count()).toBe(0);
    }
    // Two attempts so far: had the six reloads counted, the limit (5 a minute per address) would be spent. Exactly
    // three more fit, the next does not.
    const other = await guest();
    for (let attempt = 3; attempt <= 5; attempt++) {
      expect(await refusal(other.call("auth.admin.signin", { email: me, password: "wrong " + attempt })),
             `attempt ${attempt}`).toBe("INVALID_CREDENTIALS");
    }
    expect(await refusal(other.call("auth.admin.signin", { email: me, password: PASSWORD }))).toBe("RATE_LIMITED");
  });

  it("while the page is open, its session is renewed before it ends", async () => {
    const from = frames.length;
    const seen = () => frames.slice(from);
    await eventually(() => seen().some((f) => !f.sent && f.message.event === "auth.expiring"), 20_000,
                     "no auth.expiring from the gateway");
    const notice = seen().find((f) => f.message.event === "auth.expiring")!.message;
    await eventually(() => seen().some((f) => f.sent && f.message.op === "auth.admin.resume"), 5_000,
                     "the page did not renew its session");
    const asked = seen().find((f) => f.sent && f.message.op === "auth.admin.resume")!.message;
    await eventually(() => seen().some((f) => !f.sent && f.message.id === asked.id), 5_000);
    const renewed = seen().find((f) => !f.sent && f.message.id === asked.id)!.message;
    expect(renewed.ok).toBe(true);
    expect(renewed.data.expires_at).toBeGreaterThan(notice.data.expires_at);
    await page.locator("#signed-in-as", { hasText: me }).waitFor(SEEN);
  });

  it("Admins: who is signed in, a new account with its factor shown once, a factor reset, a delete", async () => {
    await page.locator(`#admins tr[data-admin="${me}"] .badge`, { hasText: "you" }).waitFor(SEEN);
    await page.locator(`#admins tr[data-admin="${colleague}"]`).waitFor(SEEN);
    expect(await page.locator(`#admins tr[data-admin="${me}"] button.danger`).isDisabled()).toBe(true);   // yourself
    const added = `${uniqueName("new")}@example.com`;
    await page.fill("#new-admin-email", added);
    await page.fill("#new-admin-password", PASSWORD);
    await page.click("#admin-create button[type=submit]");
    await page.locator(`#factor[data-for="${added}"]`).waitFor(SEEN);
    const shown = await page.textContent("#factor-secret");
    expect(shown).toMatch(/^[A-Z2-7]{32}$/);
    expect(await page.textContent("#factor-uri")).toContain(`secret=${shown}`);
    await page.locator(`#admins tr[data-admin="${added}"]`).waitFor(SEEN);
    await shot("admins");
    // a new factor for the colleague; the secret shown is theirs now
    await page.locator(`#admins tr[data-admin="${colleague}"] button`, { hasText: "Reset second factor" }).click();
    await page.locator(`#factor[data-for="${colleague}"]`).waitFor(SEEN);
    // delete the colleague, after being asked
    const row = page.locator(`#admins tr[data-admin="${colleague}"]`);
    await row.locator("button.danger", { hasText: "Delete" }).click();
    await row.locator("button", { hasText: "Yes, delete" }).click();
    await page.locator("[role=status]", { hasText: `deleted ${colleague}` }).waitFor(SEEN);
    await row.waitFor({ state: "detached", ...SEEN });
  });

  it("signing out ends the session on the gateway, and a reload then asks again", async () => {
    const token = await page.evaluate(() => sessionStorage.getItem("hapta.admin.session"));
    expect(token).toBeTruthy();
    const resumed = await guest();   // a second connection on the session, as the impersonation view opens
    await resumed.call("auth.admin.resume", { token });
    const revoked = new Promise((heard) => resumed.on("auth.revoked", heard));
    await page.click("#signout");
    await page.locator("#admin-email").waitFor(SEEN);
    expect(await revoked).toEqual({ reason: "signed out" });
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    expect(await refusal((await guest()).call("auth.admin.resume", { token }))).toBe("TOKEN_INVALID");
    await page.reload();
    await page.locator("#admin-email").waitFor(SEEN);
  });

  it("nothing on any page failed or was refused by the policy", () => {
    // the one refused sign-in is a reply on the socket, not a page error
    expect(problems, problems.slice(0, 5).join("\n")).toEqual([]);
  });

  for (const who of ["anon", "user"] as const) {
    it(`an ${who} gets FORBIDDEN from the Admins page's ops`, async () => {
      const client = await Hapta.connect(gateway.url, who === "anon" ? { apikey: ANON_KEY } : {});
      clients.push(client);
      if (who === "user") await client.auth.register({ email: `${uniqueName("nu")}@example.com`, password: PASSWORD });
      for (const [op, args] of [["admins.list", {}], ["admins.create", { email: "x@example.com", password: PASSWORD }],
                                ["admins.delete", { email: me }], ["admins.totp.reset", { email: me }]] as const) {
        expect(await refusal(client.call(op, args)), `${op} as ${who}`).toBe("FORBIDDEN");
      }
    });
  }
});
