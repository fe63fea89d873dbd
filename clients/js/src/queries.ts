// Live queries (realtime.query): the first `limit` records of a sorted, filtered, rule-checked list, which the
// client holds itself and the gateway keeps current with ordered diffs (realtime.diff). On a new socket, or when
// the gateway says the query must start over (realtime.reset for its sub), the query is asked for again with
// `have`, the ids and versions of the items held, and the answer's ops (or whole items, when those are smaller)
// bring them up to date: a fresh read, not a replay, so it works however long the client was away.
import type { Json } from "./errors.js";
import type { LiveOp, LiveQuery, LiveQueryListener, QueryOptions } from "./records.js";
import type { Requests } from "./requests.js";

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

interface Held {
  args: Json;
  /** The gateway's id of it on the current socket; null while it is being asked for. */
  sub: string | null;
  /** The position the items are as of: a diff at or before it is not applied again. */
  pos: number;
  /** The items: the one array the app holds, changed in place. */
  items: any[];
  onChange?: LiveQueryListener<any>;
  /** Which ask of it is the current one: an answer to an older one (overtaken by a resume) is let go. */
  ask: number;
  started: boolean;
  stopped: boolean;
}

export class LiveQueries {
  private live = new Set<Held>();
  private bySub = new Map<string, Held>();
  /** Asking again on the socket being restored, before anything waiting may go. */
  private restoring = false;

  constructor(private readonly requests: Requests) {}

  async query(collection: string, options: QueryOptions, onChange?: LiveQueryListener<any>):
    Promise<LiveQuery<any>> {
    const held: Held = { args: { collection, ...options }, sub: null, pos: 0, items: [], onChange, ask: 0,
                         started: false, stopped: false };
    await this.requests.call("realtime.query", held.args, this.answer(held));
    return {
      get items() { return held.items; },
      stop: () => this.stop(held),
    };
  }

  /** On the socket being restored: every live query again, with what it holds. */
  async resume(): Promise<void> {
    this.bySub.clear();   // the old socket's ids; each query gets one on this socket
    this.restoring = true;
    try {
      for (const held of this.live) {
        held.sub = null;
        const args = { ...held.args, have: have(held.items, held.args.limit as number) };
        await this.requests.direct("realtime.query", args, this.answer(held));
      }
    } finally {
      this.restoring = false;
    }
  }

  /** realtime.diff */
  diffed(sub: string | undefined, data: Json): void {
    const held = sub ? this.bySub.get(sub) : undefined;
    if (!held || (data.pos as number) <= held.pos) return;
    let next: any[];
    try {
      next = applyOps(held.items, data.ops as LiveOp<any>[]);
    } catch {
      this.again(held, false);   // not what the gateway thinks it holds: read it whole
      return;
    }
    held.pos = data.pos as number;
    this.show(held, next, data.ops as LiveOp<any>[]);
  }

  /** realtime.reset: these queries must be asked for again (with what they hold). */
  reset(subs: string[]): void {
    for (const sub of subs) {
      const held = this.bySub.get(sub);
      if (held) this.again(held, true);
    }
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
          next = applyOps(held.items, ops);
        } catch {
          this.again(held, false);
          return;
        }
      } else {
        next = data.items as any[];
        ops = [...held.items.map((item) => ({ op: "delete" as const, id: item.id })),
               ...next.map((record, index) => ({ op: "insert" as const, index, record }))];
      }
      this.show(held, next, ops);
    };
  }

  private show(held: Held, next: any[], ops: LiveOp<any>[]): void {
    held.items.splice(0, held.items.length, ...next);
    if (ops.length === 0 && held.started) return;
    held.started = true;
    try {
      held.onChange?.(held.items, ops);
    } catch (error) {
      queueMicrotask(() => { throw error; });   // the app's own fault, reported as such; the query goes on
    }
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
    const args = keep ? { ...held.args, have: have(held.items, held.args.limit as number) } : held.args;
    this.send("realtime.query", args, this.answer(held));
  }

  private async stop(held: Held): Promise<void> {
    held.stopped = true;
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
