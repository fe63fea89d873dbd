// @hapta/client: one WebSocket to a Hapta gateway for auth, records, realtime that resumes, channels and files.
//
//   const hapta = await Hapta.connect("wss://api.example.com/ws", { storage: localStorage });
//   await hapta.auth.login("ada@example.com", "correct horse battery");
//   const stop = await hapta.records<Post>("posts").subscribe({ filter: "public = true", snapshot: true },
//                                                         (change) => render(change));
//
// The socket may drop at any time (a phone in a tunnel, a frozen tab, a gateway restart). The client reconnects
// with exponential backoff and jitter, signs in again (the session's access token while valid, else its refresh
// token, else the anon key), resumes every subscription from the last position it delivered (the gateway replays
// what was missed, rule-checked, in commit order) and joins its channels again, told only who came and went.
// Requests made meanwhile wait for the socket, up to `requestTimeout`. It gives up only when the gateway said not
// to retry: close 1008 (a revoked session, a refused policy). The wire protocol: docs/protocol.md.

import { decode as decodeMsgpack, encode as encodeMsgpack } from "./msgpack.js";

export type Protocol = "json" | "msgpack";
export type State = "connecting" | "open" | "reconnecting" | "closed";
type Json = Record<string, unknown>;

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

export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

interface SocketLike {
  binaryType: string;
  readyState: number;
  protocol: string;
  send(data: string | ArrayBufferLike | Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
}
type SocketConstructor = new (url: string, protocols?: string | string[]) => SocketLike;

export interface ConnectOptions {
  /** Signs in as anon (auth.anon) whenever there is no session. */
  apikey?: string;
  /** Where the session is kept between page loads and shared by tabs (localStorage); memory only without it. */
  storage?: StorageLike;
  storageKey?: string;
  protocol?: Protocol;
  /** A WebSocket implementation where there is no global one (Node 20 without --experimental-websocket). */
  WebSocket?: SocketConstructor;
  /** Milliseconds: the first reconnect delay and the longest (before jitter). */
  backoff?: { base?: number; cap?: number };
  /** Milliseconds a request may wait for the socket and its reply. */
  requestTimeout?: number;
  /** Requests the gateway refused for now (RATE_LIMITED, UNAVAILABLE, TIMEOUT with `retry_after`, and not
   * `details.outcome: "unknown"`: nothing was done; a write with an idempotency key even then) are sent again
   * after `retry_after`, up to `attempts` times while the wait is at most `maxWait` ms; then the error is the
   * caller's. `{attempts: 0}`: never. */
  retry?: { attempts?: number; maxWait?: number };
  /** While signed in as a user, every records.create/update/delete/batch without an idempotencyKey gets a new
   * one, kept across its retries: a write whose socket dropped before the reply (or whose commit's outcome is
   * unknown) is sent again after the reconnect, and the gateway answers it once. Default true. */
  idempotentWrites?: boolean;
}

export interface Session {
  token: string;
  refresh_token: string;
  expires_at: number;
  user: Json;
}

export interface Page<T> {
  items: T[];
  page: number;
  per_page: number;
  next?: string;
  total?: number;
}

/** What records.list takes. `filter` may search declared fields (`text @@ "cats dogs"`); `sort` may then order
 * by how well a record matches that one search: "-@rank" (best first) or "@rank", paged by `page` (not `after`). */
export interface ListOptions {
  filter?: string;
  sort?: string;
  page?: number;
  per_page?: number;
  after?: string;
  fields?: string[];
  count?: boolean;
  /** Relations to embed under `record.expand`: `["author", "post.author"]`. */
  expand?: string[];
}

/** What records.aggregate takes: groups (by up to 3 fields) of what records.list would list for you. */
export interface AggregateOptions {
  filter?: string;
  group_by?: string[];
  /** Count each group's records (default true). */
  count?: boolean;
  sum?: string[];
  avg?: string[];
  min?: string[];
  max?: string[];
  /** Groups answered at most (default 100, 1-1000); `more` says there were others. */
  limit?: number;
}

export interface AggregateGroup {
  key: Record<string, unknown>;
  count?: number;
  sum?: Record<string, number | null>;
  avg?: Record<string, number | null>;
  min?: Record<string, unknown>;
  max?: Record<string, unknown>;
}

export interface Aggregates {
  groups: AggregateGroup[];
  more: boolean;
}

export interface Change<T> {
  action: "create" | "update" | "delete";
  collection: string;
  /** For a delete: the record as it was (only its id when it left the subscriber's view). */
  record: T;
  /** The change's position: ordered by commit, the same on every gateway process. */
  pos: number;
}

export interface SubscribeOptions {
  id?: string;
  filter?: string;
  fields?: string[];
  /** Also answer the first page (`sort`, `per_page`), read at the position the subscription starts from. */
  snapshot?: boolean;
  sort?: string;
  per_page?: number;
  /** Relations embedded under `record.expand` in the snapshot and in create and update events. */
  expand?: string[];
  /** The gateway could not replay what this subscription missed: refetch what you show from it. */
  onReset?: () => void;
}

/** Ends a subscription; `snapshot` is its first page when it was asked for. */
export interface Unsubscribe<T> {
  (): Promise<void>;
  snapshot: Page<T> | null;
}

export interface Member {
  id: string;
  user: string | null;
  role: string;
}

export interface UploadOptions {
  name?: string;
  type?: string;
  onProgress?: (sent: number, size: number) => void;
}

type Handler = (data: any) => void;

/** The delay before reconnect attempt `attempt` (0, 1, ...): doubling from `base` up to `cap`, then "equal
 * jitter" (between half and all of it) so that thousands of clients cut off together do not come back together. */
export function backoffDelay(attempt: number, base: number, cap: number, random: () => number = Math.random): number {
  const ceiling = Math.min(cap, base * 2 ** attempt);
  return ceiling * (0.5 + random() / 2);
}

// Close codes after which reconnecting would be refused again: protocol errors and a policy violation (a revoked
// session, a refused Origin, garbage).
const FINAL_CLOSE_CODES = new Set([1002, 1003, 1008]);
// Sign-in refusals no retry changes: the session is over.
const SESSION_OVER = new Set(["TOKEN_INVALID", "TOKEN_REUSED", "TOKEN_EXPIRED", "UNAUTHENTICATED"]);
const SUBPROTOCOLS: Record<Protocol, string> = { json: "hapta.v1.json", msgpack: "hapta.v1.msgpack" };
// Refusals that say "not now": the request was not served, and retry_after says when to ask again.
const TRY_AGAIN = new Set(["RATE_LIMITED", "UNAVAILABLE", "TIMEOUT"]);

interface Pending {
  op: string;
  args: Json;
  retries: number;
  resolve: (data: any) => void;
  reject: (error: unknown) => void;
  timer: ReturnType<typeof setTimeout>;
  onReply?: (data: any) => void;
  sent: boolean;
}

/** A write the gateway answers once however often it is sent. */
function idempotent(request: Pending): boolean {
  return KEYED_WRITES.has(request.op) && typeof request.args.idempotency_key === "string";
}

interface LiveSubscription {
  args: Json;
  sub: string | null;
  pos: number;
  onChange: (change: Change<any>) => void;
  onReset?: () => void;
}

interface Transfer {
  acked: number;
  changed: () => void;
  error: HaptaError | null;
  chunks: Uint8Array[];
  done: boolean;
}

export interface WriteOptions {
  /** 1-255 characters: a retry with the same key gets the first answer (docs/writes.md). */
  idempotencyKey?: string;
}

/** One write of `Hapta.batch`: `id` and top-level `data` values may be `{ $ref: n }`, the id op n wrote. */
export interface BatchOp {
  op: "create" | "update" | "delete";
  collection: string;
  data?: Json;
  id?: string | { $ref: number };
  version?: number;
}

function keyed(options: WriteOptions): Json {
  return options.idempotencyKey === undefined ? {} : { idempotency_key: options.idempotencyKey };
}

// Writes that take an idempotency_key: sent with one, they may be sent again whatever became of the first.
const KEYED_WRITES = new Set(["records.create", "records.update", "records.delete", "records.batch"]);

function newKey(): string {
  const crypto = (globalThis as any).crypto;
  if (crypto?.randomUUID) return crypto.randomUUID();
  let key = "";
  for (let i = 0; i < 4; i++) key += Math.floor(Math.random() * 2 ** 32).toString(16).padStart(8, "0");
  return key;
}

/** Typed access to one collection: `hapta.records<Post>("posts")`. */
export class Records<T = Json> {
  constructor(private readonly hapta: Hapta, readonly collection: string) {}

  /** `expand: ["author", "post.author"]` embeds related records under `record.expand`, as their own rules allow. */
  list(options: ListOptions = {}): Promise<Page<T>> {
    return this.hapta.call("records.list", { collection: this.collection, ...options });
  }

  /** Counts, sums, averages, minima and maxima of what `list` would list for you, in groups:
   * `aggregate({ group_by: ["author"], sum: ["likes"] })`. */
  aggregate(options: AggregateOptions = {}): Promise<Aggregates> {
    return this.hapta.call("records.aggregate", { collection: this.collection, ...options });
  }

  get(id: string, options: { fields?: string[]; expand?: string[] } = {}): Promise<T> {
    return this.hapta.call("records.get", { collection: this.collection, id, ...options });
  }

  /** `idempotencyKey`: the same key again (within 24 h) answers the first answer and writes nothing; without
   * one, a signed-in client makes one per call (ConnectOptions.idempotentWrites), kept across its retries. */
  create(data: Partial<T>, options: WriteOptions = {}): Promise<T> {
    return this.hapta.call("records.create", { collection: this.collection, data, ...keyed(options) });
  }

  update(id: string, data: Partial<T>, options: { version?: number } & WriteOptions = {}): Promise<T> {
    const { version, ...rest } = options;
    return this.hapta.call("records.update", { collection: this.collection, id, data,
                                                ...(version === undefined ? {} : { version }), ...keyed(rest) });
  }

  delete(id: string, options: WriteOptions = {}): Promise<{ id: string }> {
    return this.hapta.call("records.delete", { collection: this.collection, id, ...keyed(options) });
  }

  /** Hear every change to the collection (or to one record, `id`) that matches `filter` and that you may view,
   * across reconnects: each once, in commit order. Resolves once the gateway has started it. */
  subscribe(options: SubscribeOptions, onChange: (change: Change<T>) => void): Promise<Unsubscribe<T>> {
    return this.hapta.subscribe(this.collection, options, onChange as (change: Change<any>) => void);
  }
}

/** A channel: presence and messages for what is not a record (typing indicators, rooms). */
export class Channel {
  /** Who is there, this connection included, kept right across reconnects. */
  members: Member[] = [];
  version: string | null = null;
  joined = false;
  private handlers: { message: Handler[]; presence: Handler[]; left: Handler[] } =
    { message: [], presence: [], left: [] };

  constructor(private readonly hapta: Hapta, readonly name: string) {}

  async join(): Promise<Member[]> {
    const answer = await this.hapta.call("channels.join", { channel: this.name });
    this.joined = true;
    this.apply(answer);
    return this.members;
  }

  send(data: unknown): Promise<void> {
    return this.hapta.call("channels.publish", { channel: this.name, data });
  }

  async leave(): Promise<void> {
    this.joined = false;
    await this.hapta.call("channels.leave", { channel: this.name });
  }

  /** "message" (`{from, data}`), "presence" (`{action, member}`, after `members` changed) or "left"
   * (`{reason}`: the membership ended with the identity it was joined as). Returns the unsubscriber. */
  on(event: "message" | "presence" | "left", handler: Handler): () => void {
    this.handlers[event].push(handler);
    return () => { this.handlers[event] = this.handlers[event].filter((h) => h !== handler); };
  }

  /** @internal a join's answer: everyone, or (a rejoin with a version) who joined and left since. */
  apply(answer: Json): void {
    if (Array.isArray(answer.members)) {
      this.members = answer.members as Member[];
    } else {
      const left = new Set((answer.left as Member[]).map((m) => m.id));
      const kept = this.members.filter((m) => !left.has(m.id));
      const known = new Set(kept.map((m) => m.id));
      this.members = [...kept, ...(answer.joined as Member[]).filter((m) => !known.has(m.id))];
    }
    this.version = (answer.version as string) ?? null;
  }

  /** @internal */
  heard(event: string, data: Json): void {
    if (event === "channels.presence") {
      const member = data.member as Member;
      this.members = this.members.filter((m) => m.id !== member.id);
      if (data.action === "join") this.members.push(member);
      this.handlers.presence.forEach((h) => h(data));
    } else if (event === "channels.message") {
      this.handlers.message.forEach((h) => h(data));
    } else if (event === "channels.left") {
      this.joined = false;
      this.handlers.left.forEach((h) => h(data));
    }
  }
}

export class Hapta {
  state: State = "connecting";
  session: Session | null = null;
  /** Sockets opened after the first. */
  reconnects = 0;

  readonly auth = {
    /** Signs in at once (a Session), or, where the app requires verified emails, answers `{check_mail: true}`
     * whether or not the address had an account: the mail says what to do next. */
    register: async (fields: { email: string; password: string; username?: string; [field: string]: unknown }):
      Promise<Session | { check_mail: true }> => {
      const answer = await this.call<Session | { check_mail: true }>("auth.register", fields);
      if ("token" in answer) this.setSession(answer);
      return answer;
    },
    login: (identity: string, password: string) => this.signIn("auth.login", { identity, password }),
    /** A guest account (no email or password yet); `register` on this client later makes it an account. */
    guest: () => this.signIn("auth.guest", {}),
    /** Mails a six-digit sign-in code; `otp` signs in with it. */
    otpRequest: (email: string): Promise<Json> => this.call("auth.otp.request", { email }),
    otp: (email: string, code: string) => this.signIn("auth.otp", { email, code }),
    /** The second factor after a sign-in that failed with MFA_REQUIRED (`error.details.challenge`). */
    mfaVerify: (challenge: string, code: string) => this.signIn("auth.mfa.verify", { challenge, code }),
    mfaEnroll: (): Promise<{ secret: string; uri: string }> => this.call("auth.mfa.enroll"),
    mfaConfirm: (code: string): Promise<{ recovery_codes: string[] }> => this.call("auth.mfa.confirm", { code }),
    /** Removes the second factor with a current code or a recovery code. */
    mfaDisable: (code: string): Promise<Json> => this.call("auth.mfa.disable", { code }),
    verifyRequest: (): Promise<Json> => this.call("auth.verify.request"),
    /** Verifies the email of a mailed link. Signed in to that account here, or with its `password`, it only
     * verifies; otherwise it claims the address: an unverified account is taken over (`taken_over: true`). */
    verify: (token: string, password?: string): Promise<{ verified: true; taken_over?: true }> =>
      this.call("auth.verify", password === undefined ? { token } : { token, password }),
    resetRequest: (email: string): Promise<Json> => this.call("auth.reset.request", { email }),
    reset: (token: string, password: string): Promise<Json> => this.call("auth.reset", { token, password }),
    /** Mails a link to the new address; asks the current password (an account without one: a fresh sign-in). */
    changeEmail: (email: string, password?: string): Promise<Json> =>
      this.call("auth.email.change", password === undefined ? { email } : { email, password }),
    /** A new password; `old` is the current one (an account without one: within 10 minutes of signing in). */
    changePassword: (newPassword: string, old?: string): Promise<Json> =>
      this.call("auth.password", old === undefined ? { new: newPassword } : { new: newPassword, old }),
    confirmEmail: (token: string): Promise<Json> => this.call("auth.email.confirm", { token }),
    logout: async (): Promise<void> => {
      await this.call("auth.logout");
      this.setSession(null);
    },
    refresh: (): Promise<Session> => this.refresh(),
    me: (): Promise<Json> => this.call("auth.me"),
    anon: (apikey: string): Promise<Json> => {
      this.apikey = apikey;
      return this.call("auth.anon", { apikey });
    },
    /** Starts an OAuth2 sign-in: open `url` in a browser; `session` resolves when the provider sent it back. */
    oauth2: async (provider: string): Promise<{ url: string; state: string; session: Promise<Session> }> => {
      const session = new Promise<Session>((resolve, reject) => this.oauthWaiters.push({ resolve, reject }));
      const answer = await this.call("auth.oauth2", { provider });
      return { ...answer, session };
    },
  };

  readonly files = {
    upload: (collection: string, id: string, field: string, data: Blob | Uint8Array | ArrayBuffer,
             options: UploadOptions = {}) => this.upload(collection, id, field, data, options),
    download: (collection: string, id: string, field: string, name: string): Promise<Uint8Array> =>
      this.download(collection, id, field, name),
    url: async (collection: string, id: string, field: string, name: string, expires?: number): Promise<string> =>
      (await this.call("files.url", { collection, id, field, name, ...(expires ? { expires } : {}) })).url,
  };

  private socket: SocketLike | null = null;
  private readonly protocol: Protocol;
  private readonly Socket: SocketConstructor;
  private readonly storageKey: string;
  private readonly base: number;
  private readonly cap: number;
  private readonly requestTimeout: number;
  private readonly attempts: number;
  private readonly maxWait: number;
  private readonly idempotentWrites: boolean;
  private apikey: string | undefined;
  private ids = 0;
  private pending = new Map<number, Pending>();
  private waiting: Pending[] = [];                 // made while no socket was open
  private live = new Set<LiveSubscription>();
  private bySub = new Map<string, LiveSubscription>();
  private channels = new Map<string, Channel>();
  private transfers = new Map<number, Transfer>();
  private handlers = new Map<string, Handler[]>();
  private oauthWaiters: { resolve: (s: Session) => void; reject: (e: unknown) => void }[] = [];
  private refreshing: Promise<Session> | null = null;
  private closing = false;
  private attempt = 0;

  private constructor(readonly url: string, private readonly options: ConnectOptions) {
    this.protocol = options.protocol ?? "json";
    const Socket = options.WebSocket ?? (globalThis as any).WebSocket;
    if (!Socket) throw new Error("no WebSocket here: pass one as options.WebSocket");
    this.Socket = Socket;
    this.storageKey = options.storageKey ?? "hapta.session";
    this.base = options.backoff?.base ?? 250;
    this.cap = options.backoff?.cap ?? 15_000;
    this.requestTimeout = options.requestTimeout ?? 30_000;
    this.attempts = options.retry?.attempts ?? 3;
    this.maxWait = options.retry?.maxWait ?? 10_000;
    this.idempotentWrites = options.idempotentWrites ?? true;
    this.apikey = options.apikey;
    this.session = this.storedSession();
  }

  /** Opens the socket and signs in again as the stored session (or the anon key). */
  static async connect(url: string, options: ConnectOptions = {}): Promise<Hapta> {
    const hapta = new Hapta(url, options);
    try {
      await hapta.open();
    } catch (error) {
      hapta.close();   // no client, no reconnects behind the app's back
      throw error;
    }
    return hapta;
  }

  /** "state" (the State), "auth" (the Session or null), "reset" (`{subs, channels}`: refetch), or any gateway
   * event by name ("auth.revoked", ...). Returns the unsubscriber. */
  on(event: string, handler: Handler): () => void {
    const list = this.handlers.get(event) ?? [];
    list.push(handler);
    this.handlers.set(event, list);
    return () => this.handlers.set(event, (this.handlers.get(event) ?? []).filter((h) => h !== handler));
  }

  records<T = Json>(collection: string): Records<T> {
    return new Records<T>(this, collection);
  }

  /** Up to App.batch_max writes in one transaction: all of them or none; a failure is the failing op's own
   * HaptaError with `details.index`. Answers each op's result, in order. */
  batch(ops: BatchOp[], options: { atomic?: boolean } & WriteOptions = {}): Promise<{ results: Json[] }> {
    const { atomic, ...rest } = options;
    return this.call("records.batch", { ops, ...(atomic === undefined ? {} : { atomic }), ...keyed(rest) });
  }

  channel(name: string): Channel {
    let channel = this.channels.get(name);
    if (!channel) {
      channel = new Channel(this, name);
      this.channels.set(name, channel);
    }
    return channel;
  }

  /** One request; waits for the socket while it reconnects (up to requestTimeout). Rejects with HaptaError. */
  call<T = any>(op: string, args: Json = {}, onReply?: (data: any) => void): Promise<T> {
    if (this.state === "closed") return Promise.reject(new HaptaError("UNAVAILABLE", "the client is closed"));
    if (KEYED_WRITES.has(op) && this.idempotentWrites && this.session && args.idempotency_key === undefined) {
      args = { ...args, idempotency_key: newKey() };   // the same key for every time this request is sent
    }
    return new Promise<T>((resolve, reject) => {
      const request: Pending = {
        op, args, resolve, reject, onReply, sent: false, retries: 0,
        timer: setTimeout(() => this.expire(request), this.requestTimeout),
      };
      if (this.state === "open") this.send(request);
      else this.waiting.push(request);
    });
  }

  close(): void {
    this.closing = true;
    this.setState("closed");
    this.socket?.close(1000);
    this.failAll(new HaptaError("UNAVAILABLE", "the client is closed"));
  }

  // ---- realtime ----

  /** @internal Records.subscribe */
  async subscribe(collection: string, options: SubscribeOptions, onChange: (change: Change<any>) => void) {
    const { onReset, ...wire } = options;
    const live: LiveSubscription = { args: { collection, ...wire }, sub: null, pos: 0, onChange, onReset };
    const answer = await this.call("realtime.subscribe", live.args, (data) => this.started(live, data));
    const { snapshot, sort, per_page, ...resume } = live.args;   // a resume wants no page
    live.args = resume;
    this.live.add(live);
    const stop = (async () => {
      this.live.delete(live);
      const sub = live.sub;
      live.sub = null;
      if (sub) {
        this.bySub.delete(sub);
        if (this.state === "open") await this.call("realtime.unsubscribe", { sub }).catch(() => undefined);
      }
    }) as Unsubscribe<any>;
    stop.snapshot = snapshot ? { items: answer.items, page: answer.page, per_page: answer.per_page,
                                 ...(answer.next ? { next: answer.next } : {}) } : null;
    return stop;
  }

  private started(live: LiveSubscription, answer: Json): void {
    live.sub = answer.sub as string;
    live.pos = answer.pos as number;   // where it starts: its own position when resumed, the head when reset
    this.bySub.set(live.sub, live);
  }

  // ---- the socket ----

  private open(): Promise<void> {
    return new Promise((resolve, reject) => {
      let socket: SocketLike;
      try {
        socket = new this.Socket(this.url, [SUBPROTOCOLS[this.protocol]]);
      } catch (error) {
        reject(error);
        return;
      }
      socket.binaryType = "arraybuffer";
      let opened = false;
      socket.onopen = () => {
        opened = true;
        this.socket = socket;
        this.restore().then(() => {
          this.attempt = 0;
          this.setState("open");
          const waiting = this.waiting;
          this.waiting = [];
          waiting.forEach((request) => this.send(request));
          resolve();
        }, (error) => {
          socket.close(1000);
          reject(error);
        });
      };
      socket.onmessage = (event) => this.received(event.data);
      let ended = false;
      const end = async (code: number) => {
        if (ended) return;
        ended = true;
        if (this.socket === socket) this.socket = null;
        if (!opened && await this.refusing()) {   // up, but it will not take this page: retrying cannot help
          const refused = new HaptaError("FORBIDDEN", "the gateway refused the connection: is this page's origin "
            + "in App.origins?");
          this.closing = true;
          this.setState("closed");
          this.failAll(refused);
          reject(refused);
          return;
        }
        if (!opened) reject(new HaptaError("UNAVAILABLE", `could not connect (${code})`));
        this.lost(code, opened);
      };
      // A browser follows a failed connection's error with a close; some WebSockets (Node's) end at the error.
      socket.onerror = () => { if (!opened) end(1006); };
      socket.onclose = (event) => end(event.code);
    });
  }

  private lost(code: number, wasOpen: boolean): void {
    // Requests sent on the lost socket: at 1001 (the gateway shutting down) those without a reply were not served
    // and go again, as do writes with an idempotency key (the gateway answers a repeat with the first answer);
    // otherwise whether they ran is unknown and only the app can tell (read it back).
    for (const request of this.pending.values()) {
      if (code === 1001 || idempotent(request)) {
        request.sent = false;
        this.waiting.push(request);
      } else {
        clearTimeout(request.timer);
        request.reject(new HaptaError("UNAVAILABLE", "the connection was lost before the reply: the request may or "
          + "may not have been served", { outcome: "unknown" }));
      }
    }
    this.pending.clear();
    for (const transfer of this.transfers.values()) {
      transfer.error = new HaptaError("UNAVAILABLE", "the connection was lost during the transfer");
      transfer.changed();
    }
    this.transfers.clear();
    if (this.closing) return;
    if (FINAL_CLOSE_CODES.has(code) && wasOpen) {
      this.setState("closed");
      this.failAll(new HaptaError("UNAVAILABLE", `the gateway closed the connection (${code}); not retrying`));
      return;
    }
    if (this.state !== "reconnecting") this.setState("reconnecting");
    const delay = backoffDelay(this.attempt++, this.base, this.cap);
    setTimeout(() => {
      if (this.closing) return;
      this.open().then(() => { this.reconnects++; }, () => undefined);   // a failed open closes: lost() again
    }, delay);
  }

  /** A browser cannot read why a handshake failed (a refused Origin is HTTP 403): if the gateway answers
   * /health, it is up and refusing; if not, it is down (retry). Where there is no fetch, assume down. */
  private async refusing(): Promise<boolean> {
    if (typeof fetch !== "function" || typeof (globalThis as any).document === "undefined") return false;
    const health = this.url.replace(/^ws/, "http").replace(/\/ws(\?.*)?$/, "/health");
    try {
      await fetch(health, { mode: "no-cors", cache: "no-store" });   // an opaque answer is still an answer
      return true;
    } catch {
      return false;
    }
  }

  /** Sign in again, resume every subscription from its position, join every channel again: before anything
   * waiting is sent, so that it runs as the same principal as before. */
  private async restore(): Promise<void> {
    if (this.session) {
      try {
        if (this.session.expires_at > Date.now() / 1000 + 5) {
          await this.direct("auth.resume", { token: this.session.token });
        } else {
          await this.refresh(true);
        }
      } catch (error) {
        if (!(error instanceof HaptaError) || !SESSION_OVER.has(error.code)) throw error;
        this.setSession(null);   // over: go on as a guest (or anon); the app hears "auth" with null
      }
    }
    if (!this.session && this.apikey) await this.direct("auth.anon", { apikey: this.apikey });
    this.bySub.clear();   // the old socket's ids; each subscription gets one on this socket
    for (const live of this.live) {
      await this.direct("realtime.subscribe", { ...live.args, since: live.pos }, (data) => this.started(live, data));
    }
    for (const channel of this.channels.values()) {
      if (!channel.joined) continue;
      channel.apply(await this.direct("channels.join", { channel: channel.name, version: channel.version }));
    }
  }

  /** A request on the socket being restored, not queued behind it. */
  private direct(op: string, args: Json, onReply?: (data: any) => void): Promise<any> {
    return new Promise((resolve, reject) => {
      const request: Pending = {
        op, args, resolve, reject, onReply, sent: false, retries: this.attempts,   // restoring: no retries
        timer: setTimeout(() => this.expire(request), this.requestTimeout),
      };
      this.send(request);
    });
  }

  private send(request: Pending): void {
    const id = ++this.ids;
    request.sent = true;
    this.pending.set(id, request);
    this.write({ id, op: request.op, args: request.args });
  }

  private write(message: unknown): void {
    const socket = this.socket;
    if (!socket) throw new HaptaError("UNAVAILABLE", "not connected");
    socket.send(this.protocol === "json" ? JSON.stringify(message) : encodeMsgpack(message));
  }

  /** The gateway said "not now" and did nothing: ask again after retry_after, within the limits. */
  private mayRetry(request: Pending, error: HaptaError): boolean {
    return TRY_AGAIN.has(error.code) && error.retryAfter !== undefined && request.retries < this.attempts
      && error.retryAfter * 1000 <= this.maxWait && (error.details?.outcome !== "unknown" || idempotent(request));
  }

  private expire(request: Pending): void {
    this.waiting = this.waiting.filter((r) => r !== request);
    for (const [id, r] of this.pending) if (r === request) this.pending.delete(id);
    request.reject(new HaptaError("TIMEOUT", `no answer to ${request.op} within ${this.requestTimeout} ms`));
  }

  private failAll(error: HaptaError): void {
    for (const request of [...this.waiting, ...this.pending.values()]) {
      clearTimeout(request.timer);
      request.reject(error);
    }
    this.waiting = [];
    this.pending.clear();
  }

  private received(data: unknown): void {
    let messages: unknown;
    if (typeof data === "string") {
      messages = JSON.parse(data);
    } else {
      const bytes = new Uint8Array(data as ArrayBuffer);
      if (this.protocol === "json") {   // a download chunk: a 4-byte stream number, then bytes
        const stream = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0);
        this.chunk(stream, bytes.subarray(4));
        return;
      }
      messages = decodeMsgpack(bytes);
    }
    for (const message of Array.isArray(messages) ? messages : [messages]) this.dispatch(message as Json);
  }

  private dispatch(message: Json): void {
    if (message.op === "files.chunk") {
      this.chunk(message.stream as number, message.data as Uint8Array);
      return;
    }
    if (typeof message.event === "string") {
      this.event(message.event, message.sub as string | undefined, (message.data ?? {}) as Json);
      return;
    }
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
    if (this.mayRetry(request, refused)) {   // within its own deadline: expire() still ends it
      request.retries++;
      request.sent = false;
      this.waiting.push(request);
      setTimeout(() => {
        if (this.state !== "open" || !this.waiting.includes(request)) return;   // expired, or the reconnect sends it
        this.waiting = this.waiting.filter((r) => r !== request);
        this.send(request);
      }, refused.retryAfter! * 1000);
      return;
    }
    clearTimeout(request.timer);
    request.reject(refused);
  }

  private event(name: string, sub: string | undefined, data: Json): void {
    if (name === "records.change") {
      const live = sub ? this.bySub.get(sub) : undefined;
      if (live && (data.pos as number) > live.pos) {   // each position once, whatever a resume overlapped
        live.pos = data.pos as number;
        live.onChange(data as unknown as Change<any>);
      }
      return;
    }
    if (name === "realtime.reset") {
      for (const id of (data.subs as string[]) ?? []) this.bySub.get(id)?.onReset?.();
      for (const channel of (data.channels as string[]) ?? []) {
        const joined = this.channels.get(channel);
        if (joined?.joined) joined.join().catch(() => undefined);   // learn again who is there
      }
      this.emit("reset", data);
      return;
    }
    if (name.startsWith("channels.")) this.channels.get(data.channel as string)?.heard(name, data);
    else if (name === "auth.expiring") this.refresh().catch(() => undefined);   // in-band, before it lapses
    else if (name === "auth.oauth2") {
      const waiters = this.oauthWaiters;
      this.oauthWaiters = [];
      if (data.error) waiters.forEach((w) => w.reject(new HaptaError(String((data.error as Json).code),
        String((data.error as Json).message))));
      else {
        this.setSession(data as unknown as Session);
        waiters.forEach((w) => w.resolve(data as unknown as Session));
      }
    } else if (name === "files.ack" || name === "files.error" || name === "files.end") {
      const transfer = this.transfers.get(data.stream as number);
      if (transfer) {
        if (name === "files.ack") transfer.acked = data.received as number;
        if (data.error) {
          const error = data.error as Json;
          transfer.error = new HaptaError(String(error.code), String(error.message), error.details as Json);
        }
        if (name === "files.end") transfer.done = true;
        transfer.changed();
      }
    }
    if (name === "auth.revoked") this.setSession(null);
    this.emit(name, data);
  }

  private emit(event: string, data: unknown): void {
    for (const handler of this.handlers.get(event) ?? []) handler(data);
  }

  private setState(state: State): void {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", state);
  }

  // ---- sessions ----

  private async signIn(op: string, args: Json): Promise<Session> {
    const session = await this.call<Session>(op, args);
    this.setSession(session);
    return session;
  }

  private setSession(session: Session | null): void {
    this.session = session;
    const storage = this.options.storage;
    if (storage) {
      if (session) storage.setItem(this.storageKey, JSON.stringify(session));
      else storage.removeItem(this.storageKey);
    }
    this.emit("auth", session);
  }

  private storedSession(): Session | null {
    const stored = this.options.storage?.getItem(this.storageKey);
    if (!stored) return null;
    try {
      return JSON.parse(stored) as Session;
    } catch {
      return null;
    }
  }

  /** Roll the session's tokens, once at a time in this tab and, where Web Locks exist, across every tab of this
   * origin: a tab that waited finds the tokens another tab just got (in shared storage) and takes them instead
   * of spending a refresh token that is already spent. */
  private refresh(restoring = false): Promise<Session> {
    if (this.refreshing) return this.refreshing;
    const run = async (): Promise<Session> => {
      const current = this.session;
      if (!current) throw new HaptaError("UNAUTHENTICATED", "no session to refresh");
      const stored = this.storedSession();
      const call = restoring ? this.direct.bind(this) : this.call.bind(this);
      if (stored && stored.refresh_token !== current.refresh_token && stored.expires_at > Date.now() / 1000 + 5) {
        await call("auth.resume", { token: stored.token });   // another tab refreshed: its tokens are ours
        this.setSession(stored);
        return stored;
      }
      const session = await call("auth.refresh", { refresh_token: current.refresh_token }) as Session;
      this.setSession(session);
      return session;
    };
    const locks = (globalThis as any).navigator?.locks;
    const flight: Promise<Session> = locks && this.options.storage
      ? locks.request(`${this.storageKey}.refresh`, run) : run();
    this.refreshing = flight.finally(() => { this.refreshing = null; });
    return this.refreshing;
  }

  // ---- files ----

  private async upload(collection: string, id: string, field: string, data: Blob | Uint8Array | ArrayBuffer,
                       options: UploadOptions): Promise<{ file: Json; record: Json }> {
    // Bytes are cut as they are; a Blob (a File from an <input>) is read a chunk at a time, never whole.
    const bytes = data instanceof Uint8Array ? data : data instanceof ArrayBuffer ? new Uint8Array(data) : null;
    const blob = bytes ? null : data as Blob;
    const piece = async (start: number, end: number) =>
      bytes ? bytes.subarray(start, end) : new Uint8Array(await blob!.slice(start, end).arrayBuffer());
    const name = options.name ?? ((data as File).name || "file");
    const type = options.type ?? (blob?.type || "application/octet-stream");
    const size = bytes ? bytes.length : blob!.size;
    const started = await this.call("files.upload", { collection, id, field, name, size, type });
    const { stream, chunk_size: chunkSize, window } = started as { stream: number; chunk_size: number;
                                                                   window: number };
    const transfer = this.track(stream);
    try {
      let sent = 0;
      while (sent < size) {
        while (sent - transfer.acked >= window && !transfer.error) await this.changed(transfer);
        if (transfer.error) throw transfer.error;
        const chunk = await piece(sent, Math.min(size, sent + chunkSize));
        this.sendChunk(stream, chunk);
        sent += chunk.length;
        options.onProgress?.(Math.min(sent, transfer.acked || sent), size);
      }
      while (transfer.acked < size && !transfer.error) await this.changed(transfer);
      if (transfer.error) throw transfer.error;
      options.onProgress?.(size, size);
      return await this.call("files.finish", { stream });
    } finally {
      this.transfers.delete(stream);
    }
  }

  private sendChunk(stream: number, piece: Uint8Array): void {
    if (this.protocol === "msgpack") {
      this.write({ op: "files.chunk", stream, data: piece });
      return;
    }
    const frame = new Uint8Array(4 + piece.length);
    new DataView(frame.buffer).setUint32(0, stream);
    frame.set(piece, 4);
    this.socket?.send(frame);
  }

  private async download(collection: string, id: string, field: string, name: string): Promise<Uint8Array> {
    let transfer: Transfer | null = null;
    const answer = await this.call("files.download", { collection, id, field, name },
                                   (data) => { transfer = this.track(data.stream); });
    const tracked = transfer as unknown as Transfer;
    try {
      while (!tracked.done && !tracked.error) await this.changed(tracked);
      if (tracked.error) throw tracked.error;
      const whole = new Uint8Array(answer.length);
      let at = 0;
      for (const chunk of tracked.chunks) {
        whole.set(chunk, at);
        at += chunk.length;
      }
      return whole;
    } finally {
      this.transfers.delete(answer.stream);
    }
  }

  private track(stream: number): Transfer {
    const transfer: Transfer = { acked: 0, changed: () => undefined, error: null, chunks: [], done: false };
    this.transfers.set(stream, transfer);
    return transfer;
  }

  private changed(transfer: Transfer): Promise<void> {
    return new Promise((resolve) => { transfer.changed = resolve; });
  }

  private chunk(stream: number, data: Uint8Array): void {
    const transfer = this.transfers.get(stream);
    if (!transfer) return;
    transfer.chunks.push(data.slice());
    transfer.changed();
  }
}
