// Live queries (realtime.query): the first `limit` records of a sorted, filtered, rule-checked list, which the
// client holds itself and the gateway keeps current with ordered diffs (realtime.diff). On a new socket, or when
// the gateway says the query must start over (realtime.reset for its sub), the query is asked for again with
// `have`, the ids and versions of the items held, and the answer's ops (or whole items, when those are smaller)
// bring them up to date: a fresh read, not a replay, so it works however long the client was away.
//
// What a query shows (`items`) is what the gateway sent it (its "server" items) with the writes it has not
// confirmed yet laid over it (overlay.ts). An offline client (ConnectOptions.persist) also keeps each query's
// server items in its store: a query made again after a reload shows them at once, marked stale, and is asked for
// with them as `have` when the socket is there, so that only the differences travel.
import { HaptaError, type Json } from "./errors.js";
import { parseFilter, type FilterVars } from "./filter.js";
import { diffItems, effectsOf, overlay, recordKey, shapeOf, type RecordIndex, type Shape, type Write }
  from "./overlay.js";
import type { LiveOp, LiveQuery, LiveQueryListener, QueryOptions } from "./records.js";
import type { Requests } from "./requests.js";
import type { CachedQuery } from "./store.js";

/** The items after `ops`, applied in order as the gateway means them (hapta/protocol/ops.py's `apply`): a new
 * array; `items` is left as it was. Throws when an op names a record that is not held (the items went wrong). */
export function applyOps<T>(items: readonly T[], ops: readonly LiveOp<T>[]): T[] {
  const out = [...items];
  for (const op of ops) {
    if (op.op === "insert") {
      out.splice(op.index, 0, op.record);
      continue;
    }
    const place = out.findIndex((item) => (item as { id?: unknown }).id === op.id);
    if (place < 0) throw new Error(`a live query's ${op.op} names ${op.id}, which it does not hold`);
    if (op.op === "delete") out.splice(place, 1);
    else if (op.op === "update") out[place] = op.record;
    else if (op.op === "move") {
      out.splice(place, 1);
      out.splice(op.index, 0, op.record);
    } else {
      throw new Error(`a live query's op ${(op as { op: unknown }).op} is not one it knows`);
    }
  }
  return out;
}

/** `have` of a resume: the held items' [id, version], in order. A record without a version (a collection that
 * has none) is named with -1, a version no record has: the gateway sends it again. */
function have(items: readonly unknown[], limit: number): [unknown, number][] {
  return items.slice(0, limit).map((item) => {
    const { id, version } = item as { id: unknown; version?: unknown };
    return [id, typeof version === "number" ? version : -1];
  });
}

/** What an offline client gives the live queries: its store's cache, the session's user, and the writes to lay
 * over what they show. */
export interface Offline {
  cached(id: string): Promise<CachedQuery | null>;
  cache(id: string, value: CachedQuery): void;
  /** Who the cache is for now (a user id, or "" for nobody signed in). */
  owner(): string;
  writes(): Write[];
  vars(): FilterVars;
}

// Refusals of a query asked for again on a restored socket that leave the socket usable: the query waits (a
// sign-in asks for it again) instead of the whole restore failing.
const REFUSED = new Set(["UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "BAD_REQUEST", "TOO_LARGE", "TOKEN_EXPIRED",
                         "VALIDATION_FAILED", "RATE_LIMITED"]);

interface Held {
  args: Json;
  /** The gateway's id of it on the current socket; null while it is being asked for. */
  sub: string | null;
  /** The position the items are as of: a diff at or before it is not applied again. */
  pos: number;
  /** The items as the gateway sent them. */
  server: any[];
  /** What it shows: the one array the app holds, changed in place. */
  items: any[];
  onChange?: LiveQueryListener<any>;
  /** Which ask of it is the current one: an answer to an older one (overtaken by a resume) is let go. */
  ask: number;
  started: boolean;
  stopped: boolean;
  /** Its items came from the store and the gateway has not answered yet. */
  stale: boolean;
  shape: Shape;
  /** Landed writes its server items already show (overlay.ts). */
  echoed: Set<string>;
  /** Writes were laid over its server items when it was last shown. */
  overlaid: boolean;
  saving?: ReturnType<typeof setTimeout>;
}

export class LiveQueries {
  private live = new Set<Held>();
  private bySub = new Map<string, Held>();
  /** Asking again on the socket being restored, before anything waiting may go. */
  private restoring = false;

  constructor(private readonly requests: Requests, private readonly offline: Offline | null = null) {}

  async query(collection: string, options: QueryOptions, onChange?: LiveQueryListener<any>):
    Promise<LiveQuery<any>> {
    const held: Held = { args: { collection, ...options }, sub: null, pos: 0, server: [], items: [], onChange,
                         ask: 0, started: false, stopped: false, stale: false, echoed: new Set(), overlaid: false,
                         shape: shapeOf({ collection, ...options }, parseFilter) };
    const handle: LiveQuery<any> = {
      get items() { return held.items; },
      get stale() { return held.stale; },
      stop: () => this.stop(held),
    };
    if (!this.offline) {
      await this.requests.call("realtime.query", held.args, this.answer(held));
      return handle;
    }
    // Offline-first: what the store kept shows at once; the gateway is asked when the socket is there.
    const cached = await this.offline.cached(this.cacheId(held)).catch(() => null);
    this.live.add(held);
    held.stale = true;
    if (cached) {
      held.server = cached.items;
      this.show(held);
    }
    if (this.requests.ready) {
      const asked = this.requests.call("realtime.query", cached ? this.withHave(held) : held.args, this.answer(held));
      if (!cached) {   // online with nothing kept: the first items, as without a store
        try {
          await asked;
        } catch (error) {
          this.live.delete(held);
          throw error;
        }
      } else {
        asked.catch(() => undefined);
      }
    } else if (!cached) {
      this.show(held);   // nothing yet: the app hears it is stale and empty
    }
    return handle;
  }

  /** On the socket being restored: every live query again, with what it holds. One the gateway refuses now (a
   * session that ended) waits to be asked for again after a sign-in (`askUnasked`). */
  async resume(): Promise<void> {
    this.bySub.clear();   // the old socket's ids; each query gets one on this socket
    this.restoring = true;
    try {
      for (const held of this.live) {
        held.sub = null;
        try {
          await this.requests.direct("realtime.query", this.withHave(held), this.answer(held));
        } catch (error) {
          if (!(error instanceof HaptaError) || !REFUSED.has(error.code)) throw error;
        }
      }
    } finally {
      this.restoring = false;
    }
  }

  /** On the open socket: every query that has no sub on it (refused before a sign-in, or made while the socket
   * was being restored), asked for again. */
  askUnasked(): void {
    for (const held of this.live) {
      if (held.sub === null && !held.stopped) this.send("realtime.query", this.withHave(held), this.answer(held));
    }
  }

  /** realtime.diff */
  diffed(sub: string | undefined, data: Json): void {
    const held = sub ? this.bySub.get(sub) : undefined;
    if (!held || (data.pos as number) <= held.pos) return;
    let next: any[];
    try {
      next = applyOps(held.server, data.ops as LiveOp<any>[]);
    } catch {
      this.again(held, false);   // not what the gateway thinks it holds: read it whole
      return;
    }
    held.pos = data.pos as number;
    held.server = next;
    this.show(held, data.ops as LiveOp<any>[]);
  }

  /** realtime.reset: these queries must be asked for again (with what they hold). */
  reset(subs: string[]): void {
    for (const sub of subs) {
      const held = this.bySub.get(sub);
      if (held) this.again(held, true);
    }
  }

  /** The writes laid over the queries changed: each shows them again. */
  rewrite(): void {
    for (const held of this.live) this.show(held);
  }

  /** The records every query holds from the gateway, by collection and id (the newest version of each). */
  index(): RecordIndex {
    const index: RecordIndex = new Map();
    for (const held of this.live) {
      for (const record of held.server) {
        const at = recordKey(held.shape.collection, record.id);
        const known = index.get(at);
        if (!known || Number(record.version) > Number(known.version)) index.set(at, record);
      }
    }
    return index;
  }

  /** A query's answer, as its reply is read (before any diff after it): the items, or ops from those held. */
  private answer(held: Held): (data: Json) => void {
    const ask = ++held.ask;
    return (data) => {
      if (held.stopped || ask !== held.ask) {   // stopped meanwhile, or a later ask of it is the one that counts
        this.unsubscribe(data.sub as string);
        return;
      }
      held.sub = data.sub as string;
      held.pos = data.pos as number;
      this.bySub.set(held.sub, held);
      this.live.add(held);
      let ops = data.ops as LiveOp<any>[] | undefined;
      let next: any[];
      if (ops) {
        try {
          next = applyOps(held.server, ops);
        } catch {
          this.again(held, false);
          return;
        }
      } else {
        next = data.items as any[];
        ops = [...held.server.map((item) => ({ op: "delete" as const, id: item.id })),
               ...next.map((record, index) => ({ op: "insert" as const, index, record }))];
      }
      held.server = next;
      const wasStale = held.stale;
      held.stale = false;
      this.show(held, ops, wasStale);
    };
  }

  /** Shows what the query holds now: its server items with the writes laid over them. `ops` (the gateway's, from
   * the items shown before) are handed on as they are where no write is laid over it, before or now; else the
   * ops are made from what was shown. */
  private show(held: Held, ops?: LiveOp<any>[], changedState = false): void {
    const fromGateway = ops !== undefined;
    const writes = this.offline?.writes() ?? [];
    let next: any[] = held.server;
    if (writes.length) {
      const effects = effectsOf(writes, this.index()).filter((e) => e.collection === held.shape.collection);
      if (effects.length) next = overlay(held.server, effects, held.shape, this.offline!.vars(), held.echoed);
    }
    const overlaid = next !== held.server;
    if (!ops || overlaid || held.overlaid) ops = diffItems(held.items, next);
    held.overlaid = overlaid;
    held.items.splice(0, held.items.length, ...next);
    if (ops.length || !held.started || changedState) this.tell(held, ops);
    if (fromGateway) this.save(held);
  }

  private tell(held: Held, ops: LiveOp<any>[]): void {
    held.started = true;
    try {
      held.onChange?.(held.items, ops, { stale: held.stale });
    } catch (error) {
      queueMicrotask(() => { throw error; });   // the app's own fault, reported as such; the query goes on
    }
  }

  /** Keeps the server items in the store (an offline client), a little after the last change. */
  private save(held: Held): void {
    const offline = this.offline;
    if (!offline) return;
    clearTimeout(held.saving);
    const owner = offline.owner();
    held.saving = setTimeout(() => {
      // Items read for someone who has signed out since are theirs: never kept under whoever came next.
      if (held.stopped || held.stale || offline.owner() !== owner) return;
      offline.cache(this.cacheId(held), { items: held.server, pos: held.pos, at: Date.now() });
    }, 100);
  }

  private cacheId(held: Held): string {
    return `${this.offline!.owner()}\u0000${JSON.stringify(held.args)}`;
  }

  private withHave(held: Held): Json {
    return { ...held.args, have: have(held.server, held.args.limit as number) };
  }

  /** Ask again on this socket, with what it holds (`keep`), or for the whole items (what it holds went wrong);
   * while the socket is down, the resume asks anyway. The gateway's old sub for it is ended. */
  private again(held: Held, keep: boolean): void {
    const old = held.sub;
    held.sub = null;
    if (old) {
      this.bySub.delete(old);
      this.unsubscribe(old);
    }
    this.send("realtime.query", keep ? this.withHave(held) : held.args, this.answer(held));
  }

  private async stop(held: Held): Promise<void> {
    held.stopped = true;
    clearTimeout(held.saving);
    this.live.delete(held);
    const sub = held.sub;
    held.sub = null;
    if (sub) {
      this.bySub.delete(sub);
      if (this.requests.ready) await this.requests.call("realtime.unsubscribe", { sub }).catch(() => undefined);
    }
  }

  private unsubscribe(sub: string): void {
    this.send("realtime.unsubscribe", { sub });
  }

  /** A request of the queries' own, on the socket there is: the one being restored, or the open one. With none,
   * nothing: the next socket's resume asks for every query anyway. */
  private send(op: string, args: Json, onReply?: (data: any) => void): void {
    if (this.restoring) this.requests.direct(op, args, onReply).catch(() => undefined);
    else if (this.requests.ready) this.requests.call(op, args, onReply).catch(() => undefined);
  }
}
