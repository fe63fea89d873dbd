// Realtime subscriptions that outlive the socket. Each remembers the last position it delivered; on a new socket it
// is asked for again `since` that position, and the gateway replays what was missed (rule-checked, in commit
// order). A record's change at a position is handed on once, whatever a resume overlapped: the events one change
// caused in other records (a post turned private: its comments) share its position, and a resume from it sends
// them again. When the gateway cannot replay (its log no longer reaches back), the subscription's onReset tells the
// app to refetch.
import type { Json } from "./errors.js";
import type { Change, SubscribeOptions, Unsubscribe } from "./records.js";
import type { Requests } from "./requests.js";

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
      await this.requests.direct("realtime.subscribe", { ...live.args, since: live.pos },
                                 (data) => this.started(live, data));
    }
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
