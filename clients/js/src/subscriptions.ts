// Realtime subscriptions that outlive the socket. Each remembers the last position it delivered; on a new socket it
// is asked for again `since` that position, and the gateway replays what was missed (rule-checked, in commit
// order). A record's change at a position is handed on once, whatever a resume overlapped: the events one change
// caused in other records (a post turned private: its comments) share its position, and a resume from it sends
// them again. When the gateway cannot replay (its log no longer reaches back), the subscription's onReset tells the
// app to refetch.
//
// An offline client's own writes reach the subscriptions they match before the gateway has them (`pending`), and
// are undone there if it refuses them (`rolledBack`); the gateway's own change follows a write it did.
import { HaptaError, type Json } from "./errors.js";
import { decide, parseFilter, type FilterNode, type FilterVars } from "./filter.js";
import type { Effect } from "./overlay.js";
import type { Change, SubscribeOptions, Unsubscribe } from "./records.js";
import type { Requests } from "./requests.js";

// Refusals of a subscription asked for again on a restored socket that leave the socket usable (queries.ts).
const REFUSED = new Set(["UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "BAD_REQUEST", "TOO_LARGE", "TOKEN_EXPIRED",
                         "VALIDATION_FAILED", "RATE_LIMITED"]);

interface LiveSubscription {
  args: Json;
  /** The gateway's id of it on the current socket; null until started there. */
  sub: string | null;
  /** The last position delivered: where a resume starts. */
  pos: number;
  /** The ids of the records delivered at `pos` (several records' events may share it). */
  atPos: Set<unknown>;
  onChange: (change: Change<any>) => void;
  onReset?: () => void;
  /** Its filter, parsed once it is needed (null: none; "unparsed": one the client cannot read). */
  filter?: FilterNode | null | "unparsed";
  /** Temporary ids of pending creates it heard: it hears them replaced (or rolled back). */
  temps?: Set<string>;
}

export class Subscriptions {
  private live = new Set<LiveSubscription>();
  private bySub = new Map<string, LiveSubscription>();

  constructor(private readonly requests: Requests) {}

  async subscribe(collection: string, options: SubscribeOptions,
                  onChange: (change: Change<any>) => void): Promise<Unsubscribe<any>> {
    const { onReset, ...wire } = options;
    const live: LiveSubscription = { args: { collection, ...wire }, sub: null, pos: 0, atPos: new Set(), onChange,
                                    onReset };
    const answer = await this.requests.call("realtime.subscribe", live.args, (data) => this.started(live, data));
    const { snapshot, sort, per_page, ...resume } = live.args;   // a resume wants no page
    live.args = resume;
    this.live.add(live);
    const stop = (async () => {
      this.live.delete(live);
      const sub = live.sub;
      live.sub = null;
      if (sub) {
        this.bySub.delete(sub);
        if (this.requests.ready) await this.requests.call("realtime.unsubscribe", { sub }).catch(() => undefined);
      }
    }) as Unsubscribe<any>;
    stop.snapshot = snapshot ? { items: answer.items, page: answer.page, per_page: answer.per_page,
                                 ...(answer.next ? { next: answer.next } : {}) } : null;
    return stop;
  }

  /** On the socket being restored: every subscription again, from the last position it delivered. */
  async resume(): Promise<void> {
    this.bySub.clear();   // the old socket's ids; each subscription gets one on this socket
    for (const live of this.live) {
      live.sub = null;
      try {
        await this.requests.direct("realtime.subscribe", { ...live.args, since: live.pos },
                                   (data) => this.started(live, data));
      } catch (error) {   // refused now (a session that ended): asked for again after a sign-in
        if (!(error instanceof HaptaError) || !REFUSED.has(error.code)) throw error;
      }
    }
  }

  /** On the open socket: every subscription that has no sub on it (refused before a sign-in), asked for again
   * from its position. */
  askUnasked(): void {
    for (const live of this.live) {
      if (live.sub !== null || !this.requests.ready) continue;
      this.requests.call("realtime.subscribe", { ...live.args, since: live.pos }, (data) => this.started(live, data))
        .catch(() => undefined);
    }
  }

  /** Effects of this client's writes the gateway has not confirmed (`rolledBack` false), or that it refused
   * (`rolledBack` true): each subscription they match hears them as changes. */
  optimistic(effects: Effect[], vars: FilterVars, rolledBack: boolean): void {
    for (const live of this.live) {
      for (const effect of effects) {
        const change = this.changeOf(live, effect, vars, rolledBack);
        if (!change) continue;
        try {
          live.onChange(change);
        } catch (error) {
          queueMicrotask(() => { throw error; });
        }
      }
    }
  }

  /** Creates of this client landed: `ids` (temporary → the gateway's) by collection. Each subscription that heard
   * one pending hears its temporary id deleted, `replacedBy` the gateway's (whose own create comes as any change
   * does). */
  replaced(ids: { collection: string; temp: string; id: string }[]): void {
    for (const live of this.live) {
      for (const { collection, temp, id } of ids) {
        if (!live.temps?.delete(temp)) continue;
        try {
          live.onChange({ action: "delete", collection, record: { id: temp }, pos: live.pos, replacedBy: id });
        } catch (error) {
          queueMicrotask(() => { throw error; });
        }
      }
    }
  }

  private changeOf(live: LiveSubscription, effect: Effect, vars: FilterVars, rolledBack: boolean):
    Change<any> | null {
    const { args } = live;
    if (args.collection !== effect.collection || (args.id !== undefined && args.id !== effect.id)) return null;
    const shown = effect.record ?? (effect.action === "update" ? { ...effect.data, id: effect.id } : null)
      ?? effect.before ?? { id: effect.id };
    if (live.filter === undefined) {
      live.filter = null;
      if (typeof args.filter === "string" && args.filter.trim()) {
        try {
          live.filter = parseFilter(args.filter);
        } catch {
          live.filter = "unparsed";
        }
      }
    }
    if (live.filter === "unparsed") return null;
    if (live.filter && decide(live.filter, shown, vars) !== true) return null;
    const base = { collection: effect.collection, pos: live.pos };
    if (!rolledBack) {
      if (effect.action === "create") (live.temps ??= new Set()).add(effect.id);
      return { ...base, action: effect.action, record: { ...shown, $pending: true }, pending: true };
    }
    if (effect.action === "create") {
      if (!live.temps?.delete(effect.id)) return null;
      return { ...base, action: "delete", record: { id: effect.id }, rolledBack: true };
    }
    if (!effect.before) return null;   // what it was is not known here: the app reads it again if it must
    return { ...base, action: effect.action === "delete" ? "create" : "update", record: effect.before,
             rolledBack: true };
  }

  /** records.change */
  changed(sub: string | undefined, data: Json): void {
    const live = sub ? this.bySub.get(sub) : undefined;
    if (!live) return;
    const pos = data.pos as number;
    const id = (data.record as { id?: unknown } | undefined)?.id;
    if (pos < live.pos || (pos === live.pos && live.atPos.has(id))) return;   // already handed on
    if (pos > live.pos) {
      live.pos = pos;
      live.atPos = new Set();
    }
    live.atPos.add(id);
    live.onChange(data as unknown as Change<any>);
  }

  /** realtime.reset: what these subscriptions missed cannot be replayed. */
  reset(subs: string[]): void {
    for (const id of subs) this.bySub.get(id)?.onReset?.();
  }

  private started(live: LiveSubscription, answer: Json): void {
    live.sub = answer.sub as string;
    const pos = answer.pos as number;   // where it starts: its own position when resumed, the head when reset
    if (pos !== live.pos) live.atPos = new Set();
    live.pos = pos;
    this.bySub.set(live.sub, live);
  }
}
