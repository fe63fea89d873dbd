// The other tabs of this origin: a channel to tell them what changed (BroadcastChannel), and a lock that one tab
// holds at a time (Web Locks). Where either is missing (Node, an old browser, persist: "memory") this page is the
// only tab: messages go nowhere and the lock is this page's own.
import type { Json } from "./errors.js";

export interface Tabs {
  /** Tells every other tab (never this one). */
  post(message: Json): void;
  /** Hears what other tabs post. */
  listen(handler: (message: Json) => void): void;
  /** Runs `body` while holding the lock `name`, across tabs: one at a time. */
  exclusive<T>(name: string, body: () => Promise<T>): Promise<T>;
  close(): void;
}

/** This page's lock, where there are no Web Locks: a queue of holders. */
class LocalLocks {
  private tails = new Map<string, Promise<unknown>>();

  exclusive<T>(name: string, body: () => Promise<T>): Promise<T> {
    const before = this.tails.get(name) ?? Promise.resolve();
    const run = before.then(body, body);
    const tail = run.catch(() => undefined);
    this.tails.set(name, tail);
    tail.then(() => { if (this.tails.get(name) === tail) this.tails.delete(name); });
    return run;
  }
}

/** The tabs of this origin under `name`, or, with `shared` false, this page alone. */
export function tabsOf(name: string, shared: boolean): Tabs {
  const Channel = shared ? (globalThis as any).BroadcastChannel : undefined;
  const locks = shared ? (globalThis as any).navigator?.locks : undefined;
  const channel = Channel ? new Channel(name) : null;
  const local = new LocalLocks();
  const handlers: ((message: Json) => void)[] = [];
  if (channel) channel.onmessage = (event: { data: Json }) => handlers.forEach((handler) => handler(event.data));
  return {
    post: (message) => channel?.postMessage(message),
    listen: (handler) => { handlers.push(handler); },
    exclusive: (lock, body) => locks ? locks.request(`${name} ${lock}`, body) : local.exclusive(lock, body),
    close: () => channel?.close(),
  };
}
