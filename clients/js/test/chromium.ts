// What the Chromium tests share: Debian's Chromium (or the reason there is none), launched through playwright-core,
// and a static server of the test's own for a page and the committed dist/hapta.js, on an origin of its own.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join, resolve } from "node:path";

const here = resolve(__dirname, "..");

function findChromium(): string | null {
  try {
    return execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}

export const chromiumPath = findChromium();
export const noChromium = "no chromium here (bin/test installs Debian's package where it can: apt-get install chromium)";

export const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                              "--disable-component-update", "--disable-sync", "--no-first-run"];

export async function launch(): Promise<any> {
  const { chromium } = await import("playwright-core");
  return chromium.launch({ executablePath: chromiumPath!, args: CHROMIUM_ARGS });
}

/** Serves `page` at every path but /dist/hapta.js. `cache`: both may be kept an hour (a page that must load while
 * the browser is offline comes from its HTTP cache, as a service worker would serve it). */
export async function pageServer(page: string, cache = false): Promise<[Server, string]> {
  const headers = cache ? { "cache-control": "max-age=3600" } : {};
  const found = createServer((request, response) => {
    if (request.url === "/dist/hapta.js") {
      response.writeHead(200, { "content-type": "text/javascript", ...headers });
      response.end(readFileSync(join(here, "dist", "hapta.js")));
    } else {
      response.writeHead(200, { "content-type": "text/html", ...headers });
      response.end(page);
    }
  });
  await new Promise<void>((done) => found.listen(0, "127.0.0.1", done));
  return [found, `http://127.0.0.1:${(found.address() as { port: number }).port}`];
}
