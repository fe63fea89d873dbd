// The Users page end to end: a real `hapta serve` (the repository's test app on a fresh database) with SMTP_URL
// pointing at a real SMTP server (started by tests/dashboard/test_users.py, which drops each mail it receives into
// MAIL_DIR as JSON), Chromium signed in with the admin key, and the users' own clients (the project's JS client, in
// Node) on the other side. Every account action taken on the page reaches the user as their own flow would: a mail
// whose link works, a session ended under a socket (auth.revoked). Users are named by email or username where ids
// were, with the id on hover. The screenshot users.png goes to $DASHBOARD_SHOTS (docs/dashboard/ for the committed
// one), else a temp folder.
import { createHmac } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Hapta, HaptaError } from "../../clients/js/src/hapta.ts";
import { ADMIN_KEY, ANON_KEY, PASSWORD, startGateway, uniqueName, type Gateway }
  from "../../clients/js/test/support.ts";
import { eventually, findChromium, launch, watch } from "./browser.ts";

const chromiumPath = findChromium();
const MAIL_DIR = process.env.MAIL_DIR;
const why = !chromiumPath ? "no chromium here (apt-get install chromium)"
  : "no SMTP server: run it through tests/dashboard/test_users.py, which starts one (SMTP_URL, MAIL_DIR)";
const SHOTS = process.env.DASHBOARD_SHOTS || join(tmpdir(), "hapta-dashboard-shots");
const SEEN = { timeout: 15_000 };
const NEW_PASSWORD = "a new and longer passphrase";
const THIRD_PASSWORD = "yet another passphrase";

type Json = Record<string, any>;
interface Mail { to: string[]; subject: string; text: string }

/** A mail the SMTP server received for `to` with `subject` in its subject, not taken before. */
const taken = new Set<string>();
async function mailTo(to: string, subject: string): Promise<Mail> {
  let found: Mail | null = null;
  await eventually(() => {
    for (const file of readdirSync(MAIL_DIR!).filter((name) => name.endsWith(".json")).sort()) {
      if (taken.has(file)) continue;
      const mail = JSON.parse(readFileSync(join(MAIL_DIR!, file), "utf8")) as Mail;
      if (mail.to.includes(to) && mail.subject.includes(subject)) {
        taken.add(file);
        found = mail;
        return true;
      }
    }
    return false;
  }, 20_000, `no mail "${subject}" to ${to}`);
  return found!;
}

/** The token of a mail's link (App.mail_link: $public_url/#$action=$token). */
function tokenIn(mail: Mail, action: string): string {
  const found = new RegExp(`#${action}=([A-Za-z0-9_-]+)`).exec(mail.text);
  if (!found) throw new Error(`no ${action} link in: ${mail.text}`);
  return found[1];
}

/** The current code of a TOTP secret (RFC 6238: SHA-1, 30 s, six digits), as an authenticator app shows it. */
function totp(secret: string): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const bits = [...secret.replace(/=+$/, "")].map((c) => alphabet.indexOf(c).toString(2).padStart(5, "0")).join("");
  const key = Buffer.from(bits.match(/.{8}/g)!.map((byte) => parseInt(byte, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30_000)));
  const hash = createHmac("sha1", key).update(counter).digest();
  const at = hash[hash.length - 1] & 15;
  return String((hash.readUInt32BE(at) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

const runs = Boolean(chromiumPath && MAIL_DIR);

describe.skipIf(!runs)(`the Users page in Chromium${runs ? "" : ` (skipped: ${why})`}`, () => {
  let gateway: Gateway;
  let admin: Hapta;
  let context: BrowserContext;
  let page: Page;
  let problems: string[];
  const sent: string[] = [];   // what the dashboard sent on its sockets
  const clients: Hapta[] = [];
  const ann = { email: `${uniqueName("ann")}@example.com`, username: uniqueName("ann"), id: "" };
  const bo = { email: `${uniqueName("bo")}@example.com`, id: "" };   // no username
  const cy = { email: `${uniqueName("cy")}@example.com`, id: "" };
  const posts: Record<string, string> = {};

  async function signIn(email: string, password: string): Promise<Hapta> {
    const hapta = await Hapta.connect(gateway.url);
    clients.push(hapta);
    await hapta.auth.login(email, password);
    return hapta;
  }

  const revoked = (hapta: Hapta) => new Promise<Json>((done) => hapta.on("auth.revoked", done));

  async function open(hash: string) {
    await page.locator("nav").waitFor();
    await page.evaluate((to) => { location.hash = to; }, hash);
    await page.locator(`#page[data-page="${hash.split("/")[0]}"]`).waitFor();
  }

  /** The account's part of the Users page, opened. */
  async function account(id: string) {
    await open(`users/${id}`);
    const detail = page.locator(`[data-user-detail="${id}"]`);
    await detail.locator(`[data-account="${id}"]`).waitFor(SEEN);
    return detail;
  }

  async function createOnPage(fields: { email: string; username?: string; password?: string }): Promise<string> {
    await open("users");
    await page.click("#new-user");
    await page.fill('#new-user-form [name="email"]', fields.email);
    if (fields.username) await page.fill('#new-user-form [name="username"]', fields.username);
    if (fields.password) await page.fill('#new-user-form [name="password"]', fields.password);
    await page.click('#new-user-form button[type="submit"]');
    await page.locator("[role=status]", { hasText: `created ${fields.email}` }).waitFor(SEEN);
    const detail = page.locator("[data-user-detail]");
    await detail.locator("h3", { hasText: fields.email }).waitFor(SEEN);   // shown by its name, the id on hover
    return (await detail.getAttribute("data-user-detail"))!;
  }

  beforeAll(async () => {
    // every client of this test signs in from 127.0.0.1: more often than the per-address limits allow
    gateway = await startGateway('limits={**app.limits, "auth.admin": Limit(100, per=60), ' +
                                 '"auth.login": Limit(100, per=60), "auth.login:identity": Limit(100, per=60)}');
    admin = await Hapta.connect(gateway.url);
    clients.push(admin);
    await admin.call("auth.admin", { key: ADMIN_KEY });
    context = await launch(chromiumPath!);
    page = context.pages()[0] ?? await context.newPage();
    problems = watch(page);
    page.on("websocket", (socket) => socket.on("framesent", (frame) => sent.push(String(frame.payload))));
    await page.goto(gateway.http + "/_/");
    await page.fill("#admin-key", ADMIN_KEY);
    await page.click("#signin button[type=submit]");
    await page.locator("nav").waitFor(SEEN);
  }, 180_000);

  afterAll(async () => {
    for (const hapta of clients) hapta.close();
    await context?.close();
    await gateway?.stop();
  });

  it("New user with a password: the account signs in with it", async () => {
    ann.id = await createOnPage({ email: ann.email, username: ann.username, password: PASSWORD });
    const hers = await signIn(ann.username, PASSWORD);
    expect(((await hers.auth.me()).user as Json).id).toBe(ann.id);
    posts.ann = (await hers.records("posts").create({ author: ann.id, text: "ann's post", public: true })).id as string;
  });

  it("New user without a password: a mail reaches them through SMTP, and its link sets the password", async () => {
    bo.id = await createOnPage({ email: bo.email });
    const mail = await mailTo(bo.email, "account");
    const guest = await Hapta.connect(gateway.url);
    clients.push(guest);
    await guest.auth.reset(tokenIn(mail, "reset"), NEW_PASSWORD);
    const his = await signIn(bo.email, NEW_PASSWORD);
    expect(((await his.auth.me()).user as Json).verified).toBe(true);   // the link proved the address
    posts.bo = (await his.records("posts").create({ author: bo.id, text: "bo's post", public: true })).id as string;
  });

  it("Set password: the user's sessions end (auth.revoked) and the new one signs in", async () => {
    const hers = await signIn(ann.email, PASSWORD);
    const ended = revoked(hers);
    const detail = await account(ann.id);
    await detail.locator("#set-password input").fill(NEW_PASSWORD);
    await detail.locator("#set-password button", { hasText: "Set password" }).click();
    expect(await ended).toMatchObject({ reason: "password set by an admin" });
    await detail.locator("[role=status]", { hasText: /password set; [12] sessions? ended/ }).waitFor(SEEN);
    await expect(signIn(ann.email, PASSWORD)).rejects.toMatchObject({ code: "INVALID_CREDENTIALS" });
    await signIn(ann.email, NEW_PASSWORD);
  });

  it("Send verification mail: its link verifies the email; Mark verified", async () => {
    const detail = await account(ann.id);
    await detail.locator(".warn", { hasText: "not verified" }).waitFor(SEEN);
    await detail.locator("button", { hasText: "Send verification mail" }).click();
    await detail.locator("[role=status]", { hasText: "a verification mail is on its way" }).waitFor(SEEN);
    const hers = await signIn(ann.email, NEW_PASSWORD);
    expect(await hers.auth.verify(tokenIn(await mailTo(ann.email, "Confirm"), "verify"))).toEqual({ verified: true });

    cy.id = ((await admin.call<Json>("auth.user.create", { email: cy.email, password: PASSWORD })).user).id;
    const his = await account(cy.id);
    await his.locator("button", { hasText: "Mark verified" }).click();
    await his.locator("[role=status]", { hasText: "the email is verified" }).waitFor(SEEN);
    await his.locator("p.muted", { hasText: "· verified ·" }).waitFor(SEEN);
    expect((await admin.records("users").get(cy.id)).verified).toBe(true);
    expect(await his.locator("button", { hasText: "Mark verified" }).isDisabled()).toBe(true);
  });

  it("Send reset mail: the mail's link sets a new password and ends the sessions", async () => {
    const hers = await signIn(ann.email, NEW_PASSWORD);
    const ended = revoked(hers);
    const detail = await account(ann.id);
    await detail.locator("button", { hasText: "Send reset mail" }).click();
    await detail.locator("[role=status]", { hasText: `a reset mail is on its way to ${ann.email}` }).waitFor(SEEN);
    const mail = await mailTo(ann.email, "Reset");
    await admin.auth.reset(tokenIn(mail, "reset"), THIRD_PASSWORD);   // (any socket may follow a link)
    expect(await ended).toMatchObject({ reason: "password reset" });
    await signIn(ann.email, THIRD_PASSWORD);
  });

  it("Remove second factor: the factor is gone, the owner is mailed, the sessions end", async () => {
    const hers = await signIn(ann.email, THIRD_PASSWORD);
    const { secret } = await hers.auth.mfaEnroll();
    await hers.auth.mfaConfirm(totp(secret));
    await expect(signIn(ann.email, THIRD_PASSWORD)).rejects.toMatchObject({ code: "MFA_REQUIRED" });
    const ended = revoked(hers);
    const detail = await account(ann.id);
    await detail.locator("button", { hasText: "Remove second factor" }).click();
    expect(await ended).toMatchObject({ reason: "second factor removed by an admin" });
    await detail.locator("[role=status]", { hasText: "second factor removed" }).waitFor(SEEN);
    await mailTo(ann.email, "second factor");
    await signIn(ann.email, THIRD_PASSWORD);   // no second factor asked
  });

  it("Revoke all: every session of the user hears auth.revoked", async () => {
    const hers = await signIn(ann.email, THIRD_PASSWORD);
    const ended = revoked(hers);
    const detail = await account(ann.id);
    await detail.locator("#sessions tr[data-session]").first().waitFor(SEEN);
    await detail.locator("button", { hasText: "Revoke all" }).click();
    expect(await ended).toMatchObject({ reason: "revoked by an admin" });
    await detail.locator("#sessions tr[data-session]").first().waitFor({ state: "detached", ...SEEN });
  });

  it("Impersonate: the panel names the user (by email: this one has no username)", async () => {
    const detail = await account(bo.id);
    await detail.locator("h3", { hasText: bo.email }).waitFor(SEEN);
    expect(await detail.locator("h3").getAttribute("title")).toBe(bo.id);
    await detail.locator("button", { hasText: "Impersonate" }).click();
    const view = page.locator(`[data-impersonating="${bo.id}"]`);
    const named = view.locator(`#impersonated [title="${bo.id}"]`);
    await named.waitFor(SEEN);
    expect(await named.textContent()).toBe(bo.email);
    await view.locator("#their-records tr", { hasText: "bo's post" }).waitFor(SEEN);
    mkdirSync(SHOTS, { recursive: true });
    writeFileSync(join(SHOTS, "users.png"), await page.screenshot({ fullPage: true }));
    await view.locator("button", { hasText: "End impersonation" }).click();
    await view.waitFor({ state: "detached" });
  });

  it("Records: authors by email, the id on hover, named in one request", async () => {
    const his = await signIn(cy.email, PASSWORD);
    posts.cy = (await his.records("posts").create({ author: cy.id, text: "cy's post", public: true })).id as string;
    const before = sent.length;
    await open("records/posts");
    for (const [who, post] of [[ann, posts.ann], [bo, posts.bo], [cy, posts.cy]] as const) {
      const author = page.locator(`tr[data-id="${post}"] [title="${who.id}"]`);
      await author.waitFor(SEEN);
      await eventually(async () => (await author.textContent()) === who.email);
    }
    const asked = sent.slice(before).filter((frame) => frame.includes('"users"') && frame.includes("id in ["));
    expect(asked.length).toBe(1);   // the three authors in one records.list
    for (const who of [ann, bo, cy]) expect(asked[0]).toContain(who.id);
  });

  it("Live: a connected user by email, the id on hover", async () => {
    await signIn(bo.email, NEW_PASSWORD);
    await open("live");
    const named = page.locator(`#connections tr [title="${bo.id}"]`).first();
    await named.waitFor(SEEN);
    await eventually(async () => (await named.textContent()) === bo.email);
  });

  it("Delete user: says what goes with it, ends the sessions and takes the user's records", async () => {
    const his = await signIn(cy.email, PASSWORD);
    const ended = revoked(his);
    const detail = await account(cy.id);
    await detail.locator("button", { hasText: "Delete user" }).click();
    const confirm = page.locator("#delete-user");
    await confirm.locator("p", { hasText: "posts.author" }).waitFor(SEEN);   // from the schema's relations
    expect(await confirm.textContent()).toContain("ON DELETE CASCADE");
    await confirm.locator("button", { hasText: "Yes, delete" }).click();
    expect(await ended).toMatchObject({ reason: "user deleted" });
    await page.locator("[data-user-detail]").waitFor({ state: "detached", ...SEEN });
    await expect(admin.records("users").get(cy.id)).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(admin.records("posts").get(posts.cy)).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("the new ops answer FORBIDDEN to a user and to the anon key", async () => {
    const user = await signIn(bo.email, NEW_PASSWORD);
    const anon = await Hapta.connect(gateway.url, { apikey: ANON_KEY });
    clients.push(anon);
    const ops: [string, Json][] = [
      ["auth.user.create", { email: "x@example.com" }], ["auth.user.password", { user: ann.id, password: "x" }],
      ["auth.user.reset", { user: ann.id }], ["auth.user.verify", { user: ann.id }],
      ["auth.user.verify.request", { user: ann.id }], ["auth.mfa.reset", { user: ann.id }],
    ];
    for (const hapta of [user, anon]) {
      for (const [op, args] of ops) {
        const refused = await hapta.call(op, args).then(() => null, (error: HaptaError) => error);
        expect(refused?.code, op).toBe("FORBIDDEN");
      }
    }
  });

  it("nothing on the page failed or was refused by the policy", () => {
    expect(problems, problems.slice(0, 5).join("\n")).toEqual([]);
  });
});
