// The browser half of bench/first_render.py (run by it; not on its own): Debian's Chromium through playwright-core
// (clients/js's node_modules), a page of its own that loads the committed clients/js/dist/hapta.js and, as soon as
// it runs, connects with persist "indexeddb" and makes one live query. Every load is a new page of one browser
// context (one origin: one IndexedDB, one localStorage session), as a reload is.
//
//   node bench/first_render.mjs '{"url": "ws://...", "email": "...", "password": "...", "filter": "...",
//                                 "limit": 500, "rounds": 3, "blocked": true}'
//
// One JSON line out per load: {case, round, script, connected, first, stale, open, answer, items, error}; times are
// performance.now() of the page (ms from the navigation's start): `script` the page's module (hapta.js imported)
// began to run, `connected` Hapta.connect resolved (the store open, the outbox read), `first` the first callback
// with `limit` items, `stale` whether it was shown from the cache, `open` the client's state "open" (the socket's
// first answer: the session resumed), `answer` the first callback the gateway's answer made (stale false) with
// `limit` items.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const js = resolve(dirname(fileURLToPath(import.meta.url)), "..", "clients", "js");
const { chromium } = createRequire(join(js, "package.json"))("playwright-core");
const options = JSON.parse(process.argv[2]);

const PAGE = `<!doctype html><meta charset="utf-8"><title>first render</title>
<script type="module">
  import { Hapta } from "/dist/hapta.js";
  const script = performance.now();
  const params = new URLSearchParams(location.search);
  window.login = async (url, email, password) => {
    const hapta = await Hapta.connect(url, { storage: localStorage });
    await hapta.auth.login(email, password);
    hapta.close();
  };
  window.result = null;
  if (params.get("run")) {
    const url = params.get("url"), limit = Number(params.get("limit"));
    const result = { script, connected: null, first: null, stale: null, open: null, answer: null, items: 0,
                     error: null };
    window.result = result;
    const hapta = await Hapta.connect(url, { persist: "indexeddb", storage: localStorage });
    window.client = hapta;
    result.connected = performance.now();
    hapta.on("state", (state) => { if (state === "open" && result.open === null) result.open = performance.now(); });
    if (!hapta.session) result.error = "not signed in";
    else {
      hapta.records("posts").query({ filter: params.get("filter"), sort: "-created", limit }, (items, ops, state) => {
        const now = performance.now();
        result.items = Math.max(result.items, items.length);
        if (items.length < limit) return;
        if (result.first === null) { result.first = now; result.stale = state.stale; }
        if (!state.stale && result.answer === null) result.answer = now;
      }).catch((error) => { result.error = String(error && error.message || error); });
    }
  }
  window.ready = true;
</script>`;

const server = createServer((request, response) => {
  const headers = { "cache-control": "max-age=3600" };
  if (request.url === "/dist/hapta.js") {
    response.writeHead(200, { "content-type": "text/javascript", ...headers });
    response.end(readFileSync(join(js, "dist", "hapta.js")));
  } else {
    response.writeHead(200, { "content-type": "text/html", ...headers });
    response.end(PAGE);
  }
});
await new Promise((done) => server.listen(0, "127.0.0.1", done));
const origin = `http://127.0.0.1:${server.address().port}`;

const executablePath = execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim();
const browser = await chromium.launch({
  executablePath,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const context = await browser.newContext();
const wait = (ms) => new Promise((done) => setTimeout(done, ms));
const runUrl = `${origin}/?run=1&url=${encodeURIComponent(options.url)}&filter=${encodeURIComponent(options.filter)}`
  + `&limit=${options.limit}`;
let current = null;

async function fresh() {
  if (current) await current.close();
  current = await context.newPage();
  current.on("pageerror", (error) => process.stderr.write(`page error: ${error.message}\n`));
  return current;
}

/** One load of the app: `cleared` first deletes the IndexedDB databases of the origin (nothing cached), `blocked`
 * answers the page's WebSocket with a close (the socket never opens). */
async function load(name, round, { cleared = false, blocked = false } = {}) {
  let page = await fresh();
  if (cleared) {
    await page.goto(origin + "/");
    await page.waitForFunction(() => window.ready);
    await page.evaluate(async () => {
      for (const { name } of await indexedDB.databases()) {
        await new Promise((done, failed) => {
          const request = indexedDB.deleteDatabase(name);
          request.onsuccess = done; request.onerror = failed; request.onblocked = done;
        });
      }
    });
    page = await fresh();
  }
  if (blocked) await page.routeWebSocket(/\/ws/, (socket) => socket.close());
  await page.goto(runUrl);
  const done = blocked ? "window.result && window.result.first !== null"
                       : "window.result && window.result.answer !== null";
  await page.waitForFunction(done, undefined, { timeout: 60_000 }).catch(() => {});
  const result = await page.evaluate(() => window.result) ?? { error: "the page never started" };
  if (!blocked) await wait(1500);   // the items the gateway sent reach the store before the next load
  process.stdout.write(JSON.stringify({ case: name, round, ...result }) + "\n");
}

try {
  const first = await fresh();
  await first.goto(origin + "/");
  await first.waitForFunction(() => window.ready);
  await first.evaluate(({ url, email, password }) => window.login(url, email, password), options);
  for (let round = 1; round <= options.rounds; round++) {
    const cases = [["uncached", { cleared: true }], ["cached", {}]];
    if (options.blocked) cases.push(["cached, socket blocked", { blocked: true }]);
    if (round % 2 === 0) cases.reverse();
    for (const [name, how] of cases) await load(name, round, how);
  }
} finally {
  await browser.close();
  server.close();
}
