// The request path. A call gets an id and waits in `pending` for its reply, within its deadline. Made while no
// socket is open and signed in again, or refused "for now", it waits in the queue until it may go. When a socket
// drops, what was sent on it and is sure not to run twice goes again after the reconnect; the rest fails with
// outcome "unknown" (it may have been served: only the app can tell).
import { idempotent, mayRetry, takesKey, type RetryPolicy } from "./backoff.js";
import { HaptaError, type Json } from "./errors.js";
import { unserved } from "./transport.js";

/** What sends a request and resolves with its data (or rejects with a HaptaError). */
export interface Caller {
  call<T = any>(op: string, args?: Json, onReply?: (data: any) => void): Promise<T>;
}

/** One request, from its call to its answer: the same object (and args) however often it is sent. */
export interface Request {
  op: string;
  args: Json;
  /** Times it was sent again after a refusal "for now". */
  retries: number;
  resolve: (data: any) => void;
  reject: (error: unknown) => void;
  /** Its deadline: it fails with TIMEOUT, sent or not. */
  timer: ReturnType<typeof setTimeout>;
  /** Runs with the reply's data before the caller hears it. */
  onReply?: (data: any) => void;
  sent: boolean;
  /** Sent once (Requests.attempt): never retried, queued or sent again after a lost socket. */
  once?: boolean;
}

/** The connection, as the request path sees it. */
export interface Link {
  /** Open and signed in again: a request sent now runs as the session it was made under. */
  ready(): boolean;
  /** Closed for good: every call fails at once. */
  closed(): boolean;
  /** A write made now gets an idempotency key (signed in, and ConnectOptions.idempotentWrites). */
  keyWrites(): boolean;
  /** Writes one message to the socket; throws UNAVAILABLE where there is none. */
  send(message: Json): void;
}

export interface RequestOptions {
  /** Milliseconds a request may wait for the socket and its reply. */
  timeout: number;
  retry: RetryPolicy;
}

export class Requests implements Caller {
  private ids = 0;
  private pending = new Map<number, Request>();
  private waiting: Request[] = [];                 // made while no socket was open, or to be sent again

  constructor(private readonly link: Link, private readonly options: RequestOptions) {}

  /** Whether a request made now is sent at once. */
  get ready(): boolean {
    return this.link.ready();
  }

  /** One request; waits for the socket while it reconnects (up to the timeout). Rejects with HaptaError. */
  call<T = any>(op: string, args: Json = {}, onReply?: (data: any) => void): Promise<T> {
    if (this.link.closed()) return Promise.reject(new HaptaError("UNAVAILABLE", "the client is closed"));
    if (takesKey(op) && this.link.keyWrites() && args.idempotency_key === undefined) {
      args = { ...args, idempotency_key: newKey() };   // the same key for every time this request is sent
    }
    return new Promise<T>((resolve, reject) => {
      const request = this.request(op, args, resolve, reject, onReply, 0);
      if (this.link.ready()) this.send(request);
      else this.waiting.push(request);
    });
  }

  /** A request on the socket being restored (signing in, resuming), not queued behind it, and never retried. */
  direct(op: string, args: Json, onReply?: (data: any) => void): Promise<any> {
    return new Promise((resolve, reject) => {
      this.send(this.request(op, args, resolve, reject, onReply, this.options.retry.attempts));
    });
  }

  /** One request on the open, restored socket, sent once: never queued, retried or sent again after a lost
   * socket. Its caller (the outbox) decides what comes next: a lost socket or a deadline rejects with
   * `details.outcome: "unknown"` (it may have been served), no socket with UNAVAILABLE (it was not sent). */
  attempt(op: string, args: Json): Promise<any> {
    if (!this.link.ready()) return Promise.reject(new HaptaError("UNAVAILABLE", "not connected"));
    return new Promise((resolve, reject) => {
      const request = this.request(op, args, resolve, reject, undefined, Infinity);
      request.once = true;
      this.send(request);
    });
  }

  /** The socket is open and restored: send what waited for it. */
  flush(): void {
    const waiting = this.waiting;
    this.waiting = [];
    waiting.forEach((request) => this.send(request));
  }

  /** A reply: its request is answered, or, refused for now and within the retry policy, sent again later. */
  reply(message: Json): void {
    const request = this.pending.get(message.id as number);
    if (!request) return;
    this.pending.delete(message.id as number);
    if (message.ok) {
      clearTimeout(request.timer);
      request.onReply?.(message.data);
      request.resolve(message.data);
      return;
    }
    const error = (message.error ?? {}) as Json;
    const refused = new HaptaError(String(error.code ?? "INTERNAL"), String(error.message ?? ""),
      error.details as Json | undefined, error.retry_after as number | undefined);
    if (mayRetry(this.options.retry, request, refused)) {   // within its own deadline: expire() still ends it
      request.retries++;
      request.sent = false;
      this.waiting.push(request);
      setTimeout(() => {
        if (!this.link.ready() || !this.waiting.includes(request)) return;   // expired, or the reconnect sends it
        this.waiting = this.waiting.filter((r) => r !== request);
        this.send(request);
      }, refused.retryAfter! * 1000);
      return;
    }
    clearTimeout(request.timer);
    request.reject(refused);
  }

  /** The socket closed with `code`. Requests sent on it: at 1001 (the gateway shutting down) those without a reply
   * were not served and go again, as do writes with an idempotency key (the gateway answers a repeat with the first
   * answer); otherwise whether they ran is unknown and only the app can tell (read it back). */
  lost(code: number): void {
    for (const request of this.pending.values()) {
      if (request.once) {
        clearTimeout(request.timer);
        request.reject(new HaptaError("UNAVAILABLE", "the connection was lost before the reply",
                                      unserved(code) ? undefined : { outcome: "unknown" }));
      } else if (unserved(code) || idempotent(request)) {
        request.sent = false;
        this.waiting.push(request);
      } else {
        clearTimeout(request.timer);
        request.reject(new HaptaError("UNAVAILABLE", "the connection was lost before the reply: the request may or "
          + "may not have been served", { outcome: "unknown" }));
      }
    }
    this.pending.clear();
  }

  /** Every request, sent or waiting, fails with `error`. */
  failAll(error: HaptaError): void {
    for (const request of [...this.waiting, ...this.pending.values()]) {
      clearTimeout(request.timer);
      request.reject(error);
    }
    this.waiting = [];
    this.pending.clear();
  }

  private request(op: string, args: Json, resolve: (data: any) => void, reject: (error: unknown) => void,
                  onReply: ((data: any) => void) | undefined, retries: number): Request {
    const request: Request = {
      op, args, resolve, reject, onReply, sent: false, retries,
      timer: setTimeout(() => this.expire(request), this.options.timeout),
    };
    return request;
  }

  private send(request: Request): void {
    const id = ++this.ids;
    request.sent = true;
    this.pending.set(id, request);
    try {
      this.link.send({ id, op: request.op, args: request.args });
    } catch (error) {
      if (!request.once) throw error;
      this.pending.delete(id);   // not written: not sent
      clearTimeout(request.timer);
      request.reject(error);
    }
  }

  private expire(request: Request): void {
    this.waiting = this.waiting.filter((r) => r !== request);
    for (const [id, r] of this.pending) if (r === request) this.pending.delete(id);
    request.reject(new HaptaError("TIMEOUT", `no answer to ${request.op} within ${this.options.timeout} ms`,
                                  request.once ? { outcome: "unknown" } : undefined));
  }
}

/** A new idempotency key: a UUID where there is crypto.randomUUID, else 128 random bits in hex. */
export function newKey(): string {
  const crypto = (globalThis as any).crypto;
  if (crypto?.randomUUID) return crypto.randomUUID();
  let key = "";
  for (let i = 0; i < 4; i++) key += Math.floor(Math.random() * 2 ** 32).toString(16).padStart(8, "0");
  return key;
}
