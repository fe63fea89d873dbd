// A real `hapta serve` for the client's tests: the repository's test app (tests/app) on the database in
// DATABASE_URL (bin/test gives one; without it the gateway starts its embedded PostgreSQL), on a port of its own.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, writeFileSync, mkdirSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const PYTHON = join(ROOT, ".venv", "bin", "python");
export const ANON_KEY = "js-test-anon-key";
export const ADMIN_KEY = "js-test-admin-key";
export const PASSWORD = "correct horse battery";

export interface Gateway {
  url: string;
  /** Its HTTP address (the pages of --static, /health, file links). */
  http: string;
  port: number;
  /** What the gateway printed so far (its log). */
  output(): string;
  /** The objects its local file storage holds now (paths under data/files; uploads under way left out). */
  storedFiles(): string[];
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** An app folder: the test app's migrations and rules, and a config.py that may change its App (`changes` is
 * Python keyword arguments for dataclasses.replace, e.g. "access_token_ttl=3"); `folders` adds more of the app's
 * folders by name (`{functions: "/path/to/functions"}`). */
function appFolder(changes: string, folders: Record<string, string>): string {
  const folder = mkdtempSync(join(tmpdir(), "hapta-js-app-"));
  const app = join(ROOT, "tests", "app");
  symlinkSync(join(app, "migrations"), join(folder, "migrations"));
  symlinkSync(join(app, "rules"), join(folder, "rules"));
  for (const [name, path] of Object.entries(folders)) symlinkSync(path, join(folder, name));
  writeFileSync(join(folder, "config.py"), [
    "import dataclasses, runpy",
    "from hapta.config import Limit",
    `app = runpy.run_path(${JSON.stringify(join(app, "config.py"))})["app"]`,
    // a test client sends far more than a person would: the connection's message rate is not under test here
    `app = dataclasses.replace(app, message_rate=None${changes ? ", " + changes : ""})`,
    "",
  ].join("\n"));
  mkdirSync(join(folder, "data"));
  return folder;
}

export async function startGateway(changes = "", args: string[] = [],
                                   folders: Record<string, string> = {}): Promise<Gateway> {
  const folder = appFolder(changes, folders);
  const env = {
    ...process.env,
    HAPTA_ANON_KEY: ANON_KEY,
    HAPTA_ADMIN_KEY: ADMIN_KEY,
    HAPTA_JWT_SECRET: "js-test-secret-" + "x".repeat(40),
    HAPTA_ENV: "development",
    HAPTA_DATA_DIR: join(folder, "data"),
  };
  let child: ChildProcess | null = null;
  let port = 0;
  let printed = "";

  const launch = () => new Promise<number>((ready, failed) => {
    const proc = spawn(PYTHON, ["-m", "hapta", "serve", "--config", join(folder, "config.py"), "--port", String(port),
                                ...args],
                       { cwd: folder, env, stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    let output = "";
    const timer = setTimeout(() => failed(new Error("the gateway did not start:\n" + output)), 120_000);
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      printed += chunk.toString();
      const found = /listening on ws:\/\/[^:]+:(\d+)\/ws/.exec(output);
      if (found) {
        clearTimeout(timer);
        ready(Number(found[1]));
      }
    };
    proc.stdout!.on("data", read);
    proc.stderr!.on("data", read);
    proc.on("exit", (code) => failed(new Error(`the gateway exited (${code}):\n${output}`)));
  });

  const stop = () => new Promise<void>((done) => {
    const proc = child as ChildProcess | null;
    if (!proc || proc.exitCode !== null) return done();
    proc.on("exit", () => done());
    proc.kill("SIGTERM");
  });

  port = await launch();
  return {
    get url() { return `ws://127.0.0.1:${port}/ws`; },
    get http() { return `http://127.0.0.1:${port}`; },
    get port() { return port; },
    output: () => printed,
    storedFiles: () => {
      try {
        return (readdirSync(join(folder, "data", "files"), { recursive: true, withFileTypes: true }) as any[])
          .filter((entry) => entry.isFile() && !join(entry.parentPath ?? entry.path, entry.name).includes(".partial"))
          .map((entry) => join(entry.parentPath ?? entry.path, entry.name));
      } catch {
        return [];   // nothing stored yet
      }
    },
    stop,
    async restart() {
      await stop();
      await launch();   // the same port: clients reconnect to where they were
    },
  };
}

/** A Map standing in for localStorage (shared by the "tabs" of one test). */
export class MemoryStorage {
  private items = new Map<string, string>();
  getItem(key: string) { return this.items.get(key) ?? null; }
  setItem(key: string, value: string) { this.items.set(key, value); }
  removeItem(key: string) { this.items.delete(key); }
}

export function uniqueName(prefix: string): string {
  return prefix + Math.random().toString(36).slice(2, 10);
}

/** Resolves once `condition()` holds (checked every 10 ms), or fails after `ms`: a test waits for what the
 * gateway sends, never for time to pass. */
export function until<T>(condition: () => T | undefined | null | false, ms = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    const check = () => {
      const value = condition();
      if (value) return resolve(value as T);
      if (Date.now() > deadline) return reject(new Error("condition not met in time"));
      setTimeout(check, 10);
    };
    check();
  });
}
