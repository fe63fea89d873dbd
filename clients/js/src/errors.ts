// What the gateway answers instead of data (HaptaError), and the one shape every module passes around (Json).

/** An object of the protocol: a request's args, a reply's data, an event's payload, an error's details. */
export type Json = Record<string, unknown>;

/** What the gateway answered instead of data: `code` is one of the protocol's error codes. */
export class HaptaError extends Error {
  readonly code: string;
  readonly details?: Record<string, unknown>;
  /** Seconds after which trying again makes sense (RATE_LIMITED, UNAVAILABLE, TIMEOUT). */
  readonly retryAfter?: number;

  constructor(code: string, message: string, details?: Record<string, unknown>, retryAfter?: number) {
    super(message);
    this.name = "HaptaError";
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
  }
}
