// Debian's Chromium driven by playwright-core (a browser download does not work here; bin/test installs the
// package where it may). Every page the dashboard opens is watched for what a person would see go wrong: script
// errors, failed loads, and anything the Content-Security-Policy refused.
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";

export function findChromium(): string | null {
  try {
    return execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}

/** A browser with a fresh profile of its own (its --user-data-dir). */
export async function launch(executablePath: string): Promise<BrowserContext> {
  const { chromium } = await import("playwright-core");
  const profile = mkdtempSync(join(tmpdir(), "hapta-dashboard-profile-"));
  return chromium.launchPersistentContext(profile, {
    executablePath,
    viewport: { width: 1280, height: 860 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}

/** Problems a page showed in its console or network; the test asserts there are none. */
export function watch(page: Page): string[] {
  const problems: string[] = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (line) => {
    if (line.type() === "error" || /Content Security Policy/i.test(line.text())) problems.push(line.text());
  });
  page.on("response", (response) => {
    if (response.status() >= 400) problems.push(`${response.status()} ${response.url()}`);
  });
  return problems;
}

/** Resolves once `check()` (which may ask the page) holds, checked every 50 ms; fails after `ms` with `what`. A
 * test waits for what the page shows, never for time to pass. */
export async function eventually(check: () => Promise<boolean> | boolean, ms = 15_000,
                                 what = "the page did not get there in time"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(what);
    await new Promise((next) => setTimeout(next, 50));
  }
}
