// What a hook holds open on the gateway (a live query, a channel membership) as an external store for React's
// useSyncExternalStore: started when the first component listens, stopped when the last one has stopped listening
// and a moment has passed. That moment is what makes it StrictMode-safe: React mounts, unmounts and mounts again in
// one go, and the second mount finds the query still running rather than asking the gateway twice. Creating one
// starts nothing (React may render and throw away), so only listening costs a request.

/** Starts the work and answers how to stop it; `set` hands React each new state. */
export type Start<S> = (set: (next: S) => void, get: () => S) => () => void;

export class Held<S> {
  private listeners = new Set<() => void>();
  private stopper: (() => void) | null = null;
  private lingering: ReturnType<typeof setTimeout> | null = null;

  /** `linger`: milliseconds the work outlives its last listener (a remount within it keeps it). */
  constructor(private state: S, private readonly start: Start<S>, private readonly linger = 0) {}

  /** The current state: the same object until it changes (what useSyncExternalStore asks of a snapshot). */
  readonly get = (): S => this.state;

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    if (this.lingering !== null) {
      clearTimeout(this.lingering);
      this.lingering = null;
    } else if (this.stopper === null) {
      this.stopper = () => undefined;   // started: a `set` during start must not start it again
      this.stopper = this.start(this.set, this.get);
    }
    return () => {
      if (!this.listeners.delete(listener) || this.listeners.size > 0 || this.stopper === null) return;
      this.lingering = setTimeout(() => {
        this.lingering = null;
        const stop = this.stopper;
        this.stopper = null;
        stop?.();
      }, this.linger);
    };
  };

  /** Whether its work runs (between the first listener and the end of the linger after the last). */
  get running(): boolean {
    return this.stopper !== null;
  }

  private readonly set = (next: S): void => {
    if (next === this.state) return;
    this.state = next;
    for (const listener of [...this.listeners]) listener();
  };
}
