// The durable outbox (ConnectOptions.persist). Every write of a signed-in user is first kept in the store with its
// idempotency key, then sent; it leaves only when the gateway has answered it:
//
//   kept ──send──▶ answered ok ─────────────────▶ landed: its answer is laid over the views until the
//     ▲                                             gateway's diff shows it, and later writes take the ids
//     │                                             and the version it got
//     ├── RATE_LIMITED, UNAVAILABLE, TIMEOUT, a socket lost before the answer: kept, sent again later with the
//     │   same key (the gateway answers a repeat once)
//     │
//     └── refused (FORBIDDEN, VALIDATION_FAILED, NOT_FOUND, CONFLICT, ...) ──▶ removed and reported ("outbox"),
//         with what the views showed of it: no longer laid over them, which is the rollback. A stale version
//         (CONFLICT with details.version) goes to the app's conflict policy first; by default the gateway's
//         version stands.
//
// Writes go one at a time, in the order they were made, by one tab at a time (the lock "outbox"), and only on a
// socket signed in as the user who made them. Tabs share the store; each keeps a copy of its entries (to lay them
// over its views) and hears from the others what was added, answered or refused.
import { HaptaError, type Json } from "./errors.js";
import type { PendingUpload, Progress } from "./files.js";
import { TEMP_PREFIX, type Write } from "./overlay.js";
import { newKey } from "./requests.js";
import type { OfflineStore, OutboxEntry } from "./store.js";
import type { Tabs } from "./tabs.js";

/** A write of the outbox, as the app is told of it. */
export interface OutboxWrite {
  key: string;
  op: string;
  args: Json;
  /** The user who made it. */
  user: string;
  /** Milliseconds since 1970 when it was made. */
  made: number;
  /** The new files it stores with its record (their bytes are kept with it until it lands). */
  files?: { field: string; name: string; type: string; size: number }[];
}

/** What the views showed of a write that was undone, and what they show again (null: nothing, or not known). */
export interface RolledBack {
  /** The write's key. */
  key: string;
  collection: string;
  id: string;
  action: "create" | "update" | "delete";
  shown: Json | null;
  restored: Json | null;
}

/** Why a write left the outbox unsent or refused: "refused" by the gateway; "conflict", its version was stale
 * and the gateway's stands (`mine` and `server` are both versions); "dropped", another user signed in;
 * "expired", sent long ago without an answer and its idempotency key may be forgotten (see docs/offline.md). */
export interface OutboxEvent {
  kind: "refused" | "conflict" | "dropped" | "expired";
  write: OutboxWrite;
  error: HaptaError;
  rolledBack: RolledBack[];
  /** A conflict: the record as this client made it, and as the gateway has it (null: it could not be read). */
  mine?: Json | null;
  server?: Json | null;
}

/** An update refused for a stale version: `mine` is the data it set, `server` the record the gateway has now. */
export interface Conflict {
  collection: string;
  id: string;
  mine: Json;
  server: Json;
  write: OutboxWrite;
}

/** Decides a conflict: data to write over the gateway's version (sent at once, as a new write), or null for the
 * gateway's version to stand (the write is rolled back and reported). */
export type ConflictPolicy = (conflict: Conflict) => Json | null | undefined | Promise<Json | null | undefined>;

/** The connection, as the outbox sees it. */
export interface OutboxLink {
  /** Open and signed in again: a request sent now runs as the session's user. */
  ready(): boolean;
  /** The user the session is of (null: nobody signed in). */
  user(): string | null;
  /** Sends one request now, once: not queued, not retried, not sent again after a lost socket. */
  attempt(op: string, args: Json): Promise<any>;
  /** The record as the gateway has it now (null where it cannot be read). */
  read(collection: string, id: string): Promise<Json | null>;
  /** The version of the record the client holds from the gateway, if it holds it. */
  version(collection: string, id: string): number | undefined;
  /** Uploads a write's files for the record to come, and answers its args naming them (Files.attach). */
  attach(op: string, args: Json, files: PendingUpload[], onProgress?: Progress): Promise<Json>;
}

export interface OutboxListener {
  /** The writes to lay over the views changed. */
  changed(): void;
  /** A write was made, here or in another tab. */
  added(entry: OutboxEntry): void;
  /** A write landed (here or in another tab): `ids` are the gateway's ids for its temporary ones. */
  landed(write: Write, ids: [string, string][]): void;
  /** What the views show of these writes, about to be undone. */
  undoing(entries: OutboxEntry[]): RolledBack[];
  report(event: OutboxEvent): void;
}

export interface OutboxOptions {
  conflict?: ConflictPolicy;
  /** Milliseconds after its first sending that a write whose outcome is unknown is no longer sent again: the
   * gateway keeps an idempotency key's answer 24 hours (less a margin for clocks). */
  keyLife: number;
  /** Milliseconds a landed write stays laid over the views while their gateway diffs have not shown it. */
  grace: number;
}

// Refusals "for now": nothing was done, or (outcome unknown) the same key makes sending again safe.
const FOR_NOW = new Set(["RATE_LIMITED", "UNAVAILABLE", "TIMEOUT", "TOKEN_EXPIRED", "UNAUTHENTICATED"]);

/** What becomes of a write the gateway did not answer with data: sent again later ("retry"), given to the
 * conflict policy ("conflict": a stale version), or removed ("refused"). */
export function classify(error: unknown): "retry" | "conflict" | "refused" {
  if (!(error instanceof HaptaError)) return "refused";
  if (FOR_NOW.has(error.code)) return "retry";
  if (error.code === "CONFLICT" && typeof error.details?.version === "number") return "conflict";
  return "refused";
}

function uncertain(error: unknown): boolean {
  return error instanceof HaptaError && error.details?.outcome === "unknown";
}

function asWrite(entry: OutboxEntry): OutboxWrite {
  const files = entry.files?.map(({ field, name, type, size }) => ({ field, name, type, size }));
  return { key: entry.key, op: entry.op, args: entry.args, user: entry.user, made: entry.made,
           ...(files ? { files } : {}) };
}

/** Whether a refusal is of the upload tokens a write named: they expired before it reached the gateway. */
function tokensRefused(error: unknown): boolean {
  return error instanceof HaptaError && error.code === "TOKEN_INVALID";
}

const isRef = (value: unknown) => !!value && typeof value === "object" && !Array.isArray(value);

/** `args` with the ids of `ids` (temporary → the gateway's) swapped where a write names a record: its `id`, the
 * top-level values of its `data`, and the same in each op of a batch. The same object when none was there. */
export function replaceIds(args: Json, ids: Map<string, string>): Json {
  let swapped = false;
  const swap = (value: unknown) => {
    if (typeof value === "string" && ids.has(value)) {
      swapped = true;
      return ids.get(value);
    }
    return value;
  };
  const data = (value: unknown) => isRef(value)
    ? Object.fromEntries(Object.entries(value as Json).map(([k, v]) => [k, swap(v)])) : value;
  const out: Json = { ...args };
  if ("id" in out) out.id = swap(out.id);
  if ("data" in out) out.data = data(out.data);
  if (Array.isArray(out.ops)) {
    out.ops = (out.ops as Json[]).map((op) => ({ ...op, ...("id" in op ? { id: swap(op.id) } : {}),
                                                  ...("data" in op ? { data: data(op.data) } : {}) }));
  }
  return swapped ? out : args;
}

/** Whether `write` names any of `ids` (temporary ids). */
function names(write: OutboxEntry, ids: Set<string>): boolean {
  const hit = (value: unknown) => typeof value === "string" && ids.has(value);
  const inData = (value: unknown) => isRef(value) && Object.values(value as Json).some(hit);
  const { args } = write;
  return hit(args.id) || inData(args.data)
    || (Array.isArray(args.ops) && (args.ops as Json[]).some((op) => hit(op.id) || inData(op.data)));
}

/** Whether `write` writes the record `collection`/`id`. */
function touches(write: Write, collection: unknown, id: unknown): boolean {
  const { op, args } = write;
  if (op === "records.create") return args.collection === collection && write.tempIds?.[0] === id;
  if (op === "records.update" || op === "records.delete") return args.collection === collection && args.id === id;
  if (op !== "records.batch") return false;
  return ((args.ops ?? []) as Json[]).some((step, n) => step.collection === collection
    && (step.id === id || write.tempIds?.[n] === id));
}

/** The version the gateway's `answer` to `write` gave the record `collection`/`id` (undefined: none). */
function versionIn(write: Write, answer: Json, collection: unknown, id: unknown): number | undefined {
  const records = write.op === "records.batch"
    ? ((answer.results ?? []) as Json[]).filter((_, n) => ((write.args.ops as Json[])[n] ?? {}).collection
      === collection)
    : write.args.collection === collection ? [answer] : [];
  const found = records.find((record) => record && record.id === id);
  return typeof found?.version === "number" ? found.version : undefined;
}

/** The gateway's ids for a write's temporary ones, from its answer. */
function idsIn(write: Write, answer: Json): [string, string][] {
  const results = write.op === "records.batch" ? (answer.results ?? []) as Json[] : [answer];
  return (write.tempIds ?? []).flatMap((temp, n) => temp && results[n]?.id !== undefined
    ? [[temp, String(results[n].id)] as [string, string]] : []);
}

function errorOf(wire: Json): HaptaError {
  return new HaptaError(String(wire.code), String(wire.message), wire.details as Json | undefined,
                        wire.retryAfter as number | undefined);
}

function wireOf(error: HaptaError): Json {
  return { code: error.code, message: error.message, details: error.details, retryAfter: error.retryAfter };
}

export class Outbox {
  /** The store's entries as this tab last read them, then those it is still storing. */
  private mirror: OutboxEntry[] = [];
  /** Answered writes, laid over the views until their diffs show them (or `grace` passes). */
  private landed: Write[] = [];
  /** Temporary ids whose creates landed, and the gateway's ids for them. */
  private ids = new Map<string, string>();
  /** The app's promises of the writes made in this tab, by key. */
  private waiters = new Map<string, { resolve: (data: any) => void; reject: (error: unknown) => void }>();
  private flushing = false;
  private again = false;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private delay = 0;
  private closed = false;
  /** Progress listeners of the writes with files made in this tab, by key. */
  private progress = new Map<string, Progress>();
  /** Writes whose expired tokens were uploaded again since their last try that reached no answer: a second
   * TOKEN_INVALID in a row is a refusal. */
  private uploadedAgain = new Set<string>();
  /** Object URLs of the pending files' bytes (for previews), by write key. */
  private previews = new Map<string, string[]>();

  constructor(private readonly store: OfflineStore, private readonly tabs: Tabs, private readonly link: OutboxLink,
              private readonly listener: OutboxListener, private readonly options: OutboxOptions) {}

  /** Reads what the store holds, and starts hearing the other tabs. */
  async load(): Promise<void> {
    await this.reload();
    this.tabs.listen((message) => this.heard(message));
  }

  /** The writes to lay over the views, in order: those answered but not yet shown by the gateway, then the
   * outbox. */
  writes(): Write[] {
    return [...this.landed, ...this.mirror.map((entry) => entry.files ? this.previewed(entry) : entry)];
  }

  /** An entry with files, each with an object URL of its bytes where the page can make one (made once per write,
   * let go when the write leaves). */
  private previewed(entry: OutboxEntry): Write {
    const make = (globalThis as any).URL?.createObjectURL;
    if (typeof make !== "function") return entry;
    let urls = this.previews.get(entry.key);
    if (!urls) {
      urls = entry.files!.map((file) => URL.createObjectURL(file.data instanceof Blob ? file.data
        : new Blob([file.data as BlobPart], { type: file.type })));
      this.previews.set(entry.key, urls);
    }
    const shown = urls;
    return { ...entry, files: entry.files!.map((file, n) => ({ ...file, preview: shown[n] })) };
  }

  /** Lets go of the previews of writes no longer in the outbox (a landed write shows the gateway's files). */
  private forgetPreviews(): void {
    const keys = new Set(this.mirror.map((entry) => entry.key));
    for (const [key, urls] of this.previews) {
      if (keys.has(key)) continue;
      urls.forEach((url) => URL.revokeObjectURL(url));
      this.previews.delete(key);
    }
  }

  /** The writes waiting to be sent or answered, in order. */
  pending(): OutboxWrite[] {
    return this.mirror.map(asWrite);
  }

  /** The gateway's id for a temporary one, once its create has landed (in this page's life). */
  idFor(id: string): string | undefined {
    return this.ids.get(id);
  }

  /** Keeps a write of the signed-in user, lays it over the views at once, and sends it when it may. Resolves with
   * the gateway's answer once it landed; rejects with the refusal. */
  add(op: string, args: Json, files?: PendingUpload[], onProgress?: Progress): Promise<any> {
    const user = this.link.user();
    if (!user) return Promise.reject(new HaptaError("UNAUTHENTICATED", "the outbox keeps the writes of a user"));
    const key = typeof args.idempotency_key === "string" ? args.idempotency_key : newKey();
    const entry: OutboxEntry = { key, user, op, args: replaceIds({ ...args, idempotency_key: key }, this.ids),
                                 made: Date.now() };
    if (files?.length) entry.files = files;
    if (onProgress) this.progress.set(key, onProgress);
    if (op === "records.create") entry.tempIds = [TEMP_PREFIX + newKey()];
    if (op === "records.batch") {
      entry.tempIds = ((args.ops ?? []) as Json[]).map((step) => step.op === "create" ? TEMP_PREFIX + newKey() : null);
    }
    if (op === "records.update" && entry.args.version === undefined) this.version(entry);
    const promise = new Promise<any>((resolve, reject) => this.waiters.set(key, { resolve, reject }));
    promise.catch(() => undefined);   // a refusal is reported ("outbox"); an app that did not wait is not faulted
    this.mirror.push(entry);
    this.listener.added(entry);
    this.listener.changed();
    this.store.add(entry).then((seq) => {
      entry.seq = seq;
      this.tabs.post({ type: "added", entry });
      this.flush();
    }, (error) => {   // not kept, so not made: undone at once
      this.mirror = this.mirror.filter((e) => e !== entry);
      this.waiters.get(key)?.reject(error);
      this.waiters.delete(key);
      this.listener.changed();
    });
    return promise;
  }

  /** An update that names no version is made against the one the client shows: an earlier write of the record
   * still in the outbox gives it its version when it lands; else the version held. */
  private version(entry: OutboxEntry): void {
    const { collection, id } = entry.args;
    const earlier = [...this.mirror].reverse().find((write) => touches(write, collection, id));
    if (earlier) {
      entry.follows = earlier.key;
      return;
    }
    const versions = [this.link.version(String(collection), String(id)),
                      ...this.landed.filter((write) => touches(write, collection, id))
                        .map((write) => versionIn(write, write.answer!, collection, id))]
      .filter((version): version is number => version !== undefined);
    if (versions.length) entry.args = { ...entry.args, version: Math.max(...versions) };
  }

  /** Sends what waits, in order, while the socket is open and signed in as its user; one tab at a time. */
  flush(): void {
    if (this.closed) return;
    if (this.flushing) {
      this.again = true;
      return;
    }
    this.flushing = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.tabs.exclusive("outbox", () => this.sendAll()).catch(() => undefined).finally(() => {
      this.flushing = false;
      if (this.again) {
        this.again = false;
        this.flush();
      }
    });
  }

  /** A user signed in: the writes of anyone else are dropped, reported; then theirs go. */
  async signedIn(user: string): Promise<void> {
    await this.tabs.exclusive("outbox", async () => {
      const others = (await this.reload()).filter((entry) => entry.user !== user);
      if (others.length) {
        await this.settle("dropped", others, new HaptaError("UNAUTHENTICATED", "another user signed in: a write "
          + "is sent only as the user who made it"));
      }
    });
    this.flush();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
  }

  private async sendAll(): Promise<void> {
    while (!this.closed && this.link.ready()) {
      const user = this.link.user();
      const entry = (await this.reload())[0];
      if (!user || !entry || entry.user !== user) return;
      if (entry.sentAt !== undefined && Date.now() - entry.sentAt > this.options.keyLife) {
        await this.settle("expired", [entry], new HaptaError("UNAVAILABLE", "sent more than a day ago without an "
          + "answer: its idempotency key may be forgotten, so it was not sent again (read back whether it was done)",
          { outcome: "unknown" }));
        continue;
      }
      const first = entry.sentAt === undefined;
      let answer: Json;
      try {
        if (first) {   // kept before it goes: a page that dies now leaves a write that may have been done
          entry.args = replaceIds(entry.args, this.ids);   // a create it names that landed before it was kept
          if (entry.follows !== undefined) this.followLanded(entry);
          // Its files go first (a refusal of one refuses the write); the write then names their tokens.
          if (entry.files) entry.args = await this.link.attach(entry.op, entry.args, entry.files,
                                                               this.progress.get(entry.key));
          entry.sentAt = Date.now();
          await this.store.put([entry]);
        }
        answer = await this.link.attempt(entry.op, entry.args);
      } catch (error) {
        if (entry.files && tokensRefused(error) && !this.uploadedAgain.has(entry.key)) {
          // Its tokens expired before it reached the gateway (nothing was done): its files go once more.
          this.uploadedAgain.add(entry.key);
          try {
            entry.args = await this.link.attach(entry.op, entry.args, entry.files, this.progress.get(entry.key));
            await this.store.put([entry]);
            continue;
          } catch (again) {
            error = again;
          }
        }
        const outcome = classify(error);
        if (outcome === "retry") {
          this.uploadedAgain.delete(entry.key);   // no answer: the next TOKEN_INVALID may be one of expiry again
          if (first && !uncertain(error)) {   // surely not done: the key's day has not begun
            delete entry.sentAt;
            await this.store.put([entry]);
          }
          if (this.link.ready()) this.retryLater(error as HaptaError);   // else the reconnect flushes
          return;
        }
        if (outcome === "conflict" && entry.op === "records.update") await this.conflicted(entry, error as HaptaError);
        else await this.refused(outcome === "conflict" ? "conflict" : "refused", entry, error as HaptaError);
        continue;
      }
      this.delay = 0;
      this.uploadedAgain.delete(entry.key);
      await this.answered(entry, answer);
    }
  }

  /** A write to take its version from an earlier one that landed before it was stored (made while that one was on
   * the wire): the version that one's answer gave, if this tab still has it; else none (the last write wins). */
  private followLanded(entry: OutboxEntry): void {
    const earlier = this.landed.find((write) => write.key === entry.follows);
    const version = earlier ? versionIn(earlier, earlier.answer!, entry.args.collection, entry.args.id) : undefined;
    entry.args = { ...entry.args };
    if (version === undefined) delete entry.args.version;
    else entry.args.version = version;
    delete entry.follows;
  }

  private retryLater(error: HaptaError): void {
    this.delay = error.retryAfter !== undefined ? error.retryAfter * 1000
      : Math.min(30_000, Math.max(1_000, this.delay * 2));
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.flush(), this.delay);
  }

  /** It landed: later writes get the ids and the version it was given; it is laid over the views until their
   * diffs show it. */
  private async answered(entry: OutboxEntry, answer: Json): Promise<void> {
    const ids = new Map(idsIn(entry, answer));
    const later = (await this.store.entries()).filter((e) => e.seq! > entry.seq!);
    const changed: OutboxEntry[] = [];
    for (const e of later) {
      let touched = false;
      if (ids.size && e.sentAt === undefined) {
        const args = replaceIds(e.args, ids);
        touched = args !== e.args;
        e.args = args;
      }
      if (e.follows === entry.key) {
        e.args = { ...e.args };
        const version = versionIn(entry, answer, e.args.collection, e.args.id);
        if (version === undefined) delete e.args.version;
        else e.args.version = version;
        delete e.follows;
        touched = true;
      }
      if (touched) changed.push(e);
    }
    if (changed.length) await this.store.put(changed);
    await this.store.remove([entry.seq!]);
    const write: Write = { key: entry.key, op: entry.op, args: entry.args, made: entry.made, tempIds: entry.tempIds,
                           answer };
    this.tabs.post({ type: "landed", write, ids: [...ids] });
    await this.landedHere(write, [...ids]);
  }

  private async landedHere(write: Write, ids: [string, string][]): Promise<void> {
    ids.forEach(([temp, id]) => this.ids.set(temp, id));
    this.listener.landed(write, ids);
    if (!this.landed.some((w) => w.key === write.key)) {
      this.landed.push(write);
      setTimeout(() => {
        this.landed = this.landed.filter((w) => w !== write);
        this.listener.changed();
      }, this.options.grace);
    }
    await this.reload();
    this.listener.changed();
    this.waiters.get(write.key)?.resolve(write.answer);
    this.waiters.delete(write.key);
    this.progress.delete(write.key);
  }

  /** Refused: it leaves, and so do later writes that name a record only it would have created; later updates
   * that were to take its version take the one it was made against. */
  private async refused(kind: OutboxEvent["kind"], entry: OutboxEntry, error: HaptaError,
                        extra: { server?: Json | null } = {}): Promise<void> {
    const later = (await this.store.entries()).filter((e) => e.seq! > entry.seq!);
    const doomedIds = new Set((entry.tempIds ?? []).filter((id): id is string => !!id));
    const doomed: OutboxEntry[] = [];
    const changed: OutboxEntry[] = [];
    for (const e of later) {
      if (doomedIds.size && names(e, doomedIds)) {
        doomed.push(e);
        (e.tempIds ?? []).forEach((id) => id && doomedIds.add(id));
      } else if (e.follows === entry.key) {
        e.args = { ...e.args };
        if (entry.args.version === undefined) delete e.args.version;
        else e.args.version = entry.args.version;
        delete e.follows;
        changed.push(e);
      }
    }
    if (changed.length) await this.store.put(changed);
    await this.settle(kind, [entry, ...doomed], error, extra);
  }

  /** A stale version: the app's policy decides; by default (or when the record cannot be read) the gateway's
   * version stands. */
  private async conflicted(entry: OutboxEntry, error: HaptaError): Promise<void> {
    const collection = String(entry.args.collection);
    const id = String(entry.args.id);
    const server = await this.link.read(collection, id).catch(() => null);
    let decided: Json | null | undefined = null;
    if (server && this.options.conflict) {
      try {
        decided = await this.options.conflict({ collection, id, mine: (entry.args.data ?? {}) as Json, server,
                                                write: asWrite(entry) });
      } catch {
        decided = null;   // a policy that fails decides nothing: the gateway's version stands
      }
    }
    if (!decided || !server) {
      await this.refused("conflict", entry, error, { server });
      return;
    }
    const key = newKey();
    const replaced: OutboxEntry = { ...entry, key, args: { ...entry.args, data: decided, version: server.version,
                                                           idempotency_key: key } };
    delete replaced.sentAt;
    const followers = (await this.store.entries()).filter((e) => e.follows === entry.key)
      .map((e) => ({ ...e, follows: key }));
    await this.store.put([replaced, ...followers]);
    this.tabs.post({ type: "replaced", from: entry.key, to: key });
    this.replacedHere(entry.key, key);
    await this.reload();
    this.listener.changed();
  }

  private replacedHere(from: string, to: string): void {
    const waiter = this.waiters.get(from);
    this.waiters.delete(from);
    if (waiter) this.waiters.set(to, waiter);
  }

  /** Writes leave unsent or refused: what the views showed of them is undone, each is reported (here and in every
   * other tab) and its promise rejected. The first is the one `error` is about; the rest could only follow it. */
  private async settle(kind: OutboxEvent["kind"], entries: OutboxEntry[], error: HaptaError,
                       extra: { server?: Json | null } = {}): Promise<void> {
    await this.store.remove(entries.map((e) => e.seq!));
    const follow = new HaptaError("NOT_FOUND", `it named a record that an earlier write was to create, and that `
      + `write was ${kind}`);
    const errors = entries.map((entry, n) => {
      if (kind === "dropped" && entry.sentAt !== undefined) {   // sent before, its answer lost: it may have been done
        return new HaptaError(error.code, `${error.message} (it was sent once, and may have been done)`,
                              { outcome: "unknown" });
      }
      return n === 0 || kind === "dropped" ? error : follow;
    });
    this.tabs.post({ type: "settled", kind, entries, errors: errors.map(wireOf), extra });
    await this.settledHere(kind, entries, errors, extra);
  }

  private async settledHere(kind: OutboxEvent["kind"], entries: OutboxEntry[], errors: HaptaError[],
                            extra: { server?: Json | null }): Promise<void> {
    const rolledBack = this.listener.undoing(entries);
    const keys = new Set(entries.map((e) => e.key));
    this.mirror = this.mirror.filter((e) => !keys.has(e.key));
    this.listener.changed();
    entries.forEach((entry, n) => {
      const undone = rolledBack.filter((item) => item.key === entry.key);
      const mine = undone.find((item) => item.id === entry.args.id)?.shown ?? null;
      const event: OutboxEvent = { kind: n === 0 || kind === "dropped" ? kind : "refused", write: asWrite(entry),
        error: errors[n], rolledBack: undone,
        ...(n === 0 && kind === "conflict" ? { mine, server: extra.server ?? null } : {}) };
      this.listener.report(event);
      this.waiters.get(entry.key)?.reject(errors[n]);
      this.waiters.delete(entry.key);
      this.progress.delete(entry.key);
      this.uploadedAgain.delete(entry.key);
    });
    await this.reload();
  }

  /** Another tab told what it did. */
  private heard(message: Json): void {
    if (this.closed) return;
    if (message.type === "added") {
      this.reload().then(() => {
        this.listener.added(message.entry as OutboxEntry);
        this.listener.changed();
      });
    } else if (message.type === "landed") {
      this.landedHere(message.write as Write, message.ids as [string, string][]);
    } else if (message.type === "settled") {
      this.settledHere(message.kind as OutboxEvent["kind"], message.entries as OutboxEntry[],
                       (message.errors as Json[]).map(errorOf), message.extra as { server?: Json | null });
    } else if (message.type === "replaced") {
      this.replacedHere(String(message.from), String(message.to));
      this.reload().then(() => this.listener.changed());
    }
  }

  /** The store's entries, now; the copy this tab lays over its views follows them (with those it is still
   * storing after). */
  private async reload(): Promise<OutboxEntry[]> {
    const stored = await this.store.entries();
    const keys = new Set(stored.map((e) => e.key));
    this.mirror = [...stored, ...this.mirror.filter((e) => e.seq === undefined && !keys.has(e.key))];
    this.forgetPreviews();
    return stored;
  }
}
