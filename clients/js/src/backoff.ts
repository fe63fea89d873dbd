// When to try again, and whether to. A lost socket is opened again after a delay that doubles, with jitter; a
// request the gateway refused "for now" is sent again after its retry_after, when nothing was done (or the gateway
// answers a repeat of it once: a write with an idempotency key).
import type { HaptaError, Json } from "./errors.js";

/** The delay before reconnect attempt `attempt` (0, 1, ...): doubling from `base` up to `cap`, then "equal
 * jitter" (between half and all of it) so that thousands of clients cut off together do not come back together. */
export function backoffDelay(attempt: number, base: number, cap: number, random: () => number = Math.random): number {
  const ceiling = Math.min(cap, base * 2 ** attempt);
  return ceiling * (0.5 + random() / 2);
}

/** The delays between one client's reconnect attempts: from `base` again once a socket is open and restored. */
export class Backoff {
  private attempt = 0;

  constructor(private readonly base: number, private readonly cap: number) {}

  next(): number {
    return backoffDelay(this.attempt++, this.base, this.cap);
  }

  reset(): void {
    this.attempt = 0;
  }
}

// Refusals that say "not now": the request was not served, and retry_after says when to ask again.
const TRY_AGAIN = new Set(["RATE_LIMITED", "UNAVAILABLE", "TIMEOUT"]);
// Writes that take an idempotency_key: sent with one, they may be sent again whatever became of the first.
const KEYED_WRITES = new Set(["records.create", "records.update", "records.delete", "records.batch"]);

/** An op that takes an idempotency_key. */
export function takesKey(op: string): boolean {
  return KEYED_WRITES.has(op);
}

/** A write the gateway answers once however often it is sent. */
export function idempotent(request: { op: string; args: Json }): boolean {
  return KEYED_WRITES.has(request.op) && typeof request.args.idempotency_key === "string";
}

/** How often, and after how long a wait at most, a request refused for now is sent again (ConnectOptions.retry). */
export interface RetryPolicy {
  attempts: number;
  /** Milliseconds. */
  maxWait: number;
}

/** The gateway said "not now" and did nothing: ask again after retry_after, within the limits. */
export function mayRetry(policy: RetryPolicy, request: { op: string; args: Json; retries: number },
                         error: HaptaError): boolean {
  return TRY_AGAIN.has(error.code) && error.retryAfter !== undefined && request.retries < policy.attempts
    && error.retryAfter * 1000 <= policy.maxWait && (error.details?.outcome !== "unknown" || idempotent(request));
}
