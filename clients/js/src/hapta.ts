// @hapta/client: one WebSocket to a Hapta gateway for auth, records, realtime that resumes, channels and files.
//
//   const hapta = await Hapta.connect("wss://api.example.com/ws", { storage: localStorage });
//   await hapta.auth.login("ada@example.com", "correct horse battery");
//   const stop = await hapta.records<Post>("posts").subscribe({ filter: "public = true", snapshot: true },
//                                                         (change) => render(change));
//   const feed = await hapta.records<Post>("posts").query({ filter: "public = true", sort: "-created", limit: 50 },
//                                                         (items) => render(items));
//
// Offline first (`persist: "indexeddb"`): every write of a signed-in user goes through a durable outbox (outbox.ts)
// and shows at once in the live queries and subscriptions it touches, marked pending (overlay.ts); live queries
// start from what was kept of them (queries.ts); the tabs of an origin share both (tabs.ts, store.ts).
//
// The socket may drop at any time (a phone in a tunnel, a frozen tab, a gateway restart). The client reconnects
// with exponential backoff and jitter, signs in again (the session's access token while valid, else its refresh
// token, else the anon key), resumes every subscription from the last position it delivered (the gateway replays
// what was missed, rule-checked, in commit order), asks for every live query again with the items it holds (the
// answer says what changed) and joins its channels again, told only who came and went.
// Requests made meanwhile wait for the socket, up to `requestTimeout`. It gives up only when the gateway said not
// to retry: close 1008 (a refused policy), but for the close that follows `auth.revoked`: then it is signed out and
// opens a new socket as a guest, where the app may sign in again. The wire protocol: docs/protocol.md.
//
// This module is the facade: it builds the parts (README.md, "How the client is built"), keeps the socket's life
// (open, restore, lost, reconnect), hands each arriving event to the part it is for, and exports the public API.

import { Backoff } from "./backoff.js";
import { Channel, Channels, type Handler } from "./channels.js";
import { HaptaError, type Json } from "./errors.js";
import { Files, uploadsOf, withTokens, type FileLinkOptions, type FileSet, type PendingUpload, type Progress,
         type Uploaded, type UploadOptions } from "./files.js";
import { LiveQueries } from "./queries.js";
import { keyed, Records, type BatchOp, type BatchOptions, type Change, type LiveQuery, type LiveQueryListener,
         type QueryOptions, type SubscribeOptions, type Unsubscribe, type WriteOptions } from "./records.js";
import { takesKey } from "./backoff.js";
import { Outbox, type ConflictPolicy, type OutboxEvent, type OutboxWrite, type RolledBack } from "./outbox.js";
import { effectsOf, recordKey, type Effect } from "./overlay.js";
import { Requests } from "./requests.js";
import { SessionStore, Sessions, type Session, type StorageLike } from "./session.js";
import { IndexedDbStore, MemoryStore, type OfflineStore, type OutboxEntry } from "./store.js";
import { Subscriptions } from "./subscriptions.js";
import { tabsOf, type Tabs } from "./tabs.js";
import { final, Transport, type Protocol, type SocketConstructor } from "./transport.js";

export { backoffDelay } from "./backoff.js";
export { Channel, type Member } from "./channels.js";
export { HaptaError } from "./errors.js";
export type { FileInput, FileLinkOptions, FileSet, HaptaFile, Progress, Uploaded, UploadOptions } from "./files.js";
export type { Conflict, ConflictPolicy, OutboxEvent, OutboxWrite, RolledBack } from "./outbox.js";
export { Records } from "./records.js";
export type { AggregateGroup, AggregateOptions, Aggregates, BatchOp, BatchOptions, BatchPublish, Change,
              FilesOptions, ListOptions, LiveOp, LiveQuery, LiveQueryListener, Page, Pending, QueryOptions,
              SubscribeOptions, Unsubscribe,
              WriteOptions } from "./records.js";
export type { Session, StorageLike } from "./session.js";
export type { Protocol } from "./transport.js";

export type State = "connecting" | "open" | "reconnecting" | "closed";

export interface ConnectOptions {
  /** Signs in as anon (auth.anon) whenever there is no session. */
  apikey?: string;
  /** Where the session is kept between page loads and shared by tabs (localStorage); memory only without it. With
   * `persist: "indexeddb"` it is localStorage unless given. */
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
  /** Offline first (docs/offline.md). `"indexeddb"`: every write of a signed-in user is kept in IndexedDB with its
   * idempotency key before it is sent, and leaves only when the gateway answered it (refusals are reported as the
   * event "outbox"); writes show at once in the live queries and subscriptions they touch, marked pending; live
   * queries start from their items kept from before (stale) and are brought up to date with `have`; the tabs of the
   * origin share all of it. `connect` resolves without waiting for the socket. `"memory"`: the same, kept by this
   * page only. */
  persist?: "indexeddb" | "memory";
  /** Bytes of new files a write may keep in the outbox with it (ConnectOptions.persist; default 25 MB, the demo's
   * largest file). A write with more is not kept: it goes straight to the gateway when the client is online, and
   * while it is not it fails at once with TOO_LARGE (`details: {size, outboxFileBytes}`). */
  outboxFileBytes?: number;
  /** What an outbox update refused for a stale version becomes: by default the gateway's version stands (the
   * write is rolled back and reported with both versions); a policy may answer data to write over it instead. */
  conflict?: ConflictPolicy;
}

// The gateway keeps an idempotency key's answer 24 hours from the write's commit; a write first sent longer ago than
// this (an hour less, for clocks) whose outcome is unknown is not sent again (docs/offline.md).
const KEY_LIFE = 23 * 3600_000;
// How long a landed write stays laid over the live queries when no diff of theirs shows it (one the client placed
// where the gateway would not: a filter through a relation, a window that moved meanwhile).
const LANDED_GRACE = 15_000;
// The bytes of new files a write keeps in the outbox by default (ConnectOptions.outboxFileBytes).
const OUTBOX_FILE_BYTES = 25 * 1024 * 1024;
// How often an update with files that read the record's files (and so its version) tries again when the record
// changed between that read and the update.
const FILE_UPDATE_TRIES = 3;

export class Hapta {
  state: State = "connecting";
  /** Sockets opened after the first. */
  reconnects = 0;

  readonly auth = {
    /** Signs in at once (a Session), or, where the app requires verified emails, answers `{check_mail: true}`
     * whether or not the address had an account: the mail says what to do next. */
    register: async (fields: { email: string; password: string; username?: string; [field: string]: unknown }):
      Promise<Session | { check_mail: true }> => {
      const answer = await this.call<Session | { check_mail: true }>("auth.register", fields);
      if ("token" in answer) this.sessions.set(answer);
      return answer;
    },
    login: (identity: string, password: string) => this.sessions.signIn("auth.login", { identity, password }),
    /** A guest account (no email or password yet); `register` on this client later makes it an account. */
    guest: () => this.sessions.signIn("auth.guest", {}),
    /** Mails a six-digit sign-in code; `otp` signs in with it. */
    otpRequest: (email: string): Promise<Json> => this.call("auth.otp.request", { email }),
    otp: (email: string, code: string) => this.sessions.signIn("auth.otp", { email, code }),
    /** The second factor after a sign-in that failed with MFA_REQUIRED (`error.details.challenge`). */
    mfaVerify: (challenge: string, code: string) => this.sessions.signIn("auth.mfa.verify", { challenge, code }),
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
      this.sessions.set(null);
    },
    refresh: (): Promise<Session> => this.sessions.refresh(),
    me: (): Promise<Json> => this.call("auth.me"),
    anon: (apikey: string): Promise<Json> => {
      this.sessions.apikey = apikey;
      return this.call("auth.anon", { apikey });
    },
    /** Starts an OAuth2 sign-in: open `url` in a browser; `session` resolves when the provider sent it back. */
    oauth2: (provider: string): Promise<{ url: string; state: string; session: Promise<Session> }> =>
      this.sessions.oauth2(provider),
  };

  readonly functions = {
    /** Calls the app's server function `name` (functions/*.py, `@call`): its return value. */
    call: <T = any>(name: string, args?: unknown): Promise<T> =>
      this.call<T>("functions.call", args === undefined ? { name } : { name, args: args as any }),
  };

  /** The offline outbox (ConnectOptions.persist); empty without one. */
  readonly outbox = {
    /** The writes waiting for the gateway (of every tab of the origin), in the order they go. */
    pending: (): OutboxWrite[] => this.queue?.pending() ?? [],
    /** The gateway's id of a record created offline, for the temporary one (`local-...`) it showed under, once its
     * create has landed (while this page lives). */
    idFor: (id: string): string | undefined => this.queue?.idFor(id),
  };

  readonly files = {
    /** Streams a file into the record `id`'s field (answers `{file, record}`), or, with `id` null, for a record
     * still to be written: `{file, upload, expires_at}`, `upload` a single-use token the write names in the field
     * (`{media: [{upload}]}`) within `expires_at`. `records(c).create(data, {files})` does both in one call. */
    upload: (collection: string, id: string | null, field: string, data: Blob | Uint8Array | ArrayBuffer,
             options: UploadOptions = {}): Promise<Uploaded> =>
      this.transfers.upload(collection, id, field, data, options),
    download: (collection: string, id: string, field: string, name: string,
               options: { thumb?: string } = {}): Promise<Uint8Array> =>
      this.transfers.download(collection, id, field, name, options),
    /** The bytes of a download stream another op answers with, as files.download does (admin.backup.download). */
    streamed: (op: string, args: Json = {}): Promise<Uint8Array> => this.transfers.streamed(op, args),
    url: (collection: string, id: string, field: string, name: string,
          options?: number | FileLinkOptions): Promise<string> =>
      this.transfers.url(collection, id, field, name, options),
  };

  private readonly transport: Transport;
  private readonly backoff: Backoff;
  private readonly requests: Requests;
  private readonly sessions: Sessions;
  private readonly subscriptions: Subscriptions;
  private readonly liveQueries: LiveQueries;
  private readonly channels: Channels;
  private readonly transfers: Files;
  private handlers = new Map<string, Handler[]>();
  private closing = false;
  /** A socket was opened and restored before: the next is a reconnect. */
  private hadSocket = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  /** The gateway said `auth.revoked`: the close (1008) that follows is no reason to stop. */
  private revoked = false;
  // Offline first (ConnectOptions.persist):
  private store: OfflineStore | null = null;
  private tabs: Tabs | null = null;
  private queue: Outbox | null = null;
  /** Whose the kept live queries are: the user signed in (null: nobody). */
  private owner: string | null = null;

  /** The browser's "offline" and "online": the socket is let go at once, and opened again at once. */
  private readonly network = {
    offline: () => { if (this.state === "open" || this.state === "connecting") this.transport.drop(); },
    online: () => this.reconnectNow(),
  };

  private constructor(readonly url: string, private readonly options: ConnectOptions) {
    if (options.persist === "indexeddb" && !options.storage) {
      options = { ...options, storage: (globalThis as any).localStorage };
    }
    this.transport = new Transport(url, options.protocol ?? "json", options.WebSocket);
    this.backoff = new Backoff(options.backoff?.base ?? 250, options.backoff?.cap ?? 15_000);
    const idempotentWrites = options.idempotentWrites ?? true;
    this.requests = new Requests({
      ready: () => this.state === "open",
      closed: () => this.state === "closed",
      keyWrites: () => idempotentWrites && !!this.session,
      send: (message) => this.transport.send(message),
    }, {
      timeout: options.requestTimeout ?? 30_000,
      retry: { attempts: options.retry?.attempts ?? 3, maxWait: options.retry?.maxWait ?? 10_000 },
    });
    this.sessions = new Sessions(new SessionStore(options.storage, options.storageKey ?? "hapta.session"),
                                 this.requests, options.apikey, (session) => this.signedIn(session));
    this.subscriptions = new Subscriptions(this.requests);
    this.liveQueries = new LiveQueries(this.requests, options.persist ? {
      cached: (id) => this.store ? this.store.cached(id) : Promise.resolve(null),
      cache: (id, value) => { this.store?.cache(id, value).catch(() => undefined); },
      owner: () => this.owner ?? "",
      writes: () => this.queue?.writes() ?? [],
      vars: () => ({ user: this.session?.user ?? null }),
    } : null);
    this.channels = new Channels(this, this.requests);
    this.transfers = new Files(this.requests, this.transport);
    this.listenToNetwork(true);
  }

  /** Where there is a browser's window (with navigator.onLine), hear when it goes offline and online. */
  private listenToNetwork(on: boolean): void {
    const scope = globalThis as any;
    if (typeof scope.addEventListener !== "function" || typeof scope.navigator?.onLine !== "boolean") return;
    for (const name of ["offline", "online"] as const) {
      if (on) scope.addEventListener(name, this.network[name]);
      else scope.removeEventListener(name, this.network[name]);
    }
  }

  /** Opens the socket and signs in again as the stored session (or the anon key). With `persist`, resolves once
   * what was kept is loaded, without waiting for the socket: it opens, and opens again, meanwhile. */
  static async connect(url: string, options: ConnectOptions = {}): Promise<Hapta> {
    const hapta = new Hapta(url, options);
    try {
      if (options.persist) {
        await hapta.loadOffline(options.persist);
        hapta.open().catch(() => undefined);   // a failed open reconnects (lost)
        return hapta;
      }
      await hapta.open();
    } catch (error) {
      hapta.close();   // no client, no reconnects behind the app's back
      throw error;
    }
    return hapta;
  }

  /** The session signed in as; null: a guest, or anon with the apikey. */
  get session(): Session | null {
    return this.sessions.current;
  }

  set session(session: Session | null) {
    this.sessions.current = session;
  }

  /** "state" (the State), "auth" (the Session or null), "reset" (`{subs, channels}`: refetch), "outbox" (an
   * OutboxEvent: a write that left the outbox unsent or refused, and what was rolled back), or any gateway event
   * by name ("auth.revoked", ...). Returns the unsubscriber. */
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
   * HaptaError with `details.index`. Answers each op's result, in order. `publish`: up to 16 channel messages
   * (channels this connection joined) sent only if the batch commits, after its record changes; a refused one
   * refuses the batch with `details.publish`. */
  batch(ops: BatchOp[], options: BatchOptions = {}): Promise<{ results: Json[] }> {
    const { atomic, publish, ...rest } = options;
    return this.call("records.batch", {
      ops, ...(atomic === undefined ? {} : { atomic }), ...(publish === undefined ? {} : { publish }), ...keyed(rest),
    });
  }

  channel(name: string): Channel {
    return this.channels.get(name);
  }

  /** One request; waits for the socket while it reconnects (up to requestTimeout). Rejects with HaptaError. With
   * `persist`, a write of a signed-in user goes through the outbox instead: it resolves when the gateway has done
   * it, however long that takes, and rejects if it refuses it. */
  call<T = any>(op: string, args: Json = {}, onReply?: (data: any) => void): Promise<T> {
    if (this.queue && takesKey(op) && this.session?.user?.id !== undefined) return this.queue.add(op, args);
    return this.requests.call<T>(op, args, onReply);
  }

  /** @internal Records.create and .update with `files`: through the outbox with their bytes when it keeps them
   * (persist, a user, within outboxFileBytes), else uploaded now and then written. */
  withFiles(op: "records.create" | "records.update", args: Json, files: FileSet, onProgress?: Progress):
    Promise<any> {
    const uploads = uploadsOf(files);
    if (this.queue && this.session?.user?.id !== undefined) {
      const size = uploads.reduce((sum, upload) => sum + upload.size, 0);
      const most = this.options.outboxFileBytes ?? OUTBOX_FILE_BYTES;
      if (size <= most) return this.queue.add(op, args, uploads, onProgress);
      if (this.state !== "open") {
        return Promise.reject(new HaptaError("TOO_LARGE", `the write's files (${size} bytes) are more than the `
          + `outbox keeps (outboxFileBytes, ${most}), and the client is offline: it was not kept`,
          { size, outboxFileBytes: most }));
      }
    }
    return this.sendWithFiles(op, args, uploads, onProgress);
  }

  /** Uploads the files, then the write naming them. Tokens that expired before the write arrived (TOKEN_INVALID)
   * are uploaded once more; an update that read the record's files at a version that changed before it arrived
   * reads them again. */
  private async sendWithFiles(op: string, args: Json, uploads: PendingUpload[], onProgress?: Progress):
    Promise<any> {
    let tokens = await this.transfers.uploadAll(args, uploads, onProgress);
    let uploadedAgain = false;
    for (let tries = 1; ; tries++) {
      const sent = withTokens(await this.transfers.kept(op, args, uploads), uploads, tokens);
      try {
        return await this.requests.call(op, sent);
      } catch (error) {
        if (!(error instanceof HaptaError)) throw error;
        if (error.code === "TOKEN_INVALID" && !uploadedAgain) {
          uploadedAgain = true;
          tokens = await this.transfers.uploadAll(args, uploads, onProgress);
          continue;
        }
        const readStale = args.version === undefined && sent.version !== undefined && error.code === "CONFLICT"
          && typeof error.details?.version === "number";
        if (!readStale || tries >= FILE_UPDATE_TRIES) throw error;
      }
    }
  }

  close(): void {
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    this.setState("closed");
    this.transport.close(1000);
    this.requests.failAll(new HaptaError("UNAVAILABLE", "the client is closed"));
    this.queue?.close();
    this.tabs?.close();
    this.listenToNetwork(false);
  }

  /** @internal Records.subscribe */
  subscribe(collection: string, options: SubscribeOptions,
            onChange: (change: Change<any>) => void): Promise<Unsubscribe<any>> {
    return this.subscriptions.subscribe(collection, options, onChange);
  }

  /** @internal Records.query */
  query(collection: string, options: QueryOptions, onChange?: LiveQueryListener<any>): Promise<LiveQuery<any>> {
    return this.liveQueries.query(collection, options, onChange);
  }

  // ---- offline first ----

  /** Opens the store, reads the outbox, and forgets the kept queries if they are someone else's. */
  private async loadOffline(persist: "indexeddb" | "memory"): Promise<void> {
    const name = `hapta ${this.url}`;
    const store = persist === "memory" ? new MemoryStore() : await IndexedDbStore.open(name);
    this.store = store;
    this.tabs = tabsOf(name, persist === "indexeddb");
    this.queue = new Outbox(store, this.tabs, {
      ready: () => this.state === "open",
      user: () => this.userId(),
      attempt: (op, args) => this.requests.attempt(op, args),
      read: (collection, id) => this.requests.call("records.get", { collection, id }).catch(() => null),
      version: (collection, id) => {
        const held = this.liveQueries.index().get(recordKey(collection, id));
        return typeof held?.version === "number" ? held.version : undefined;
      },
      attach: (op, args, files, onProgress) => this.transfers.attach(op, args, files, onProgress),
    }, {
      changed: () => this.liveQueries.rewrite(),
      added: (entry) => this.subscriptions.optimistic(this.effects([entry]), this.vars(), false),
      landed: (write, ids) => this.subscriptions.replaced(ids.map(([temp, id]) => {
        const at = (write.tempIds ?? []).indexOf(temp);
        const collection = write.op === "records.batch" ? (write.args.ops as Json[])[at]?.collection
          : write.args.collection;
        return { collection: String(collection), temp, id };
      })),
      undoing: (entries) => this.undoing(entries),
      report: (event: OutboxEvent) => this.emit("outbox", event),
    }, { conflict: this.options.conflict, keyLife: KEY_LIFE, grace: LANDED_GRACE });
    await this.queue.load();
    this.owner = this.userId();
    if (await store.owner() !== this.owner) await store.clearCache(this.owner);
    if (this.owner) this.queue.signedIn(this.owner).catch(() => undefined);
  }

  private userId(): string | null {
    const id = this.session?.user?.id;
    return id === undefined || id === null ? null : String(id);
  }

  private vars() {
    return { user: this.session?.user ?? null };
  }

  /** What `entries` do to the records the live queries hold, after the writes before them. */
  private effects(entries: OutboxEntry[]): Effect[] {
    const keys = new Set(entries.map((entry) => entry.key));
    const writes = this.queue!.writes().filter((write) => !keys.has(write.key));
    return effectsOf([...writes, ...entries], this.liveQueries.index()).filter((effect) => keys.has(effect.key));
  }

  /** Writes about to leave unsent or refused: the subscriptions hear them undone; the event says what the views
   * showed of them and show again. */
  private undoing(entries: OutboxEntry[]): RolledBack[] {
    const effects = this.effects(entries);
    this.subscriptions.optimistic(effects, this.vars(), true);
    const index = this.liveQueries.index();
    return effects.map((effect) => ({ key: effect.key, collection: effect.collection, id: effect.id,
                                      action: effect.action, shown: effect.record,
                                      restored: index.get(recordKey(effect.collection, effect.id)) ?? null }));
  }

  /** The session changed (a sign-in, a refresh, a sign-out): the app hears it; the kept queries are forgotten when
   * it is no longer theirs; after a sign-in the writes of anyone else are dropped, the user's go, and queries and
   * subscriptions refused before are asked for again. */
  private signedIn(session: Session | null): void {
    this.emit("auth", session);
    if (session && this.state === "open") {
      this.liveQueries.askUnasked();
      this.subscriptions.askUnasked();
    }
    if (!this.store) return;
    const user = this.userId();
    if (user !== this.owner) {
      this.owner = user;
      this.store.clearCache(user).catch(() => undefined);
    }
    if (user) this.queue?.signedIn(user).catch(() => undefined);
  }

  // ---- the socket's life ----

  private open(): Promise<void> {
    // An attempt made while the browser is offline fails for that alone, whatever /health answers later.
    const online = (globalThis as any).navigator?.onLine !== false;
    return new Promise((resolve, reject) => {
      try {
        this.transport.open({
          opened: (socket) => {
            this.restore().then(() => {
              this.backoff.reset();
              if (this.hadSocket) this.reconnects++;
              this.hadSocket = true;
              this.setState("open");
              this.requests.flush();
              this.liveQueries.askUnasked();
              this.subscriptions.askUnasked();
              this.queue?.flush();
              resolve();
            }, (error) => {
              socket.close(1000);
              reject(error);
            });
          },
          message: (message) => this.received(message),
          chunk: (stream, data) => this.transfers.chunk(stream, data),
          ended: async (code, opened) => {
            // Up, but it will not take this page: retrying cannot help.
            if (!opened && online && await this.transport.refusing()) {
              const refused = new HaptaError("FORBIDDEN", "the gateway refused the connection: is this page's origin "
                + "in App.origins?");
              this.closing = true;
              this.setState("closed");
              this.requests.failAll(refused);
              reject(refused);
              return;
            }
            if (!opened) reject(new HaptaError("UNAVAILABLE", `could not connect (${code})`));
            this.lost(code, opened);
          },
        });
      } catch (error) {
        reject(error);
      }
    });
  }

  /** Sign in again, resume every subscription from its position and every live query from what it holds, join
   * every channel again: before anything waiting is sent, so that it runs as the same principal as before. */
  private async restore(): Promise<void> {
    await this.sessions.restore();
    await this.subscriptions.resume();
    await this.liveQueries.resume();
    await this.channels.rejoin();
  }

  private lost(code: number, wasOpen: boolean): void {
    this.requests.lost(code);
    this.transfers.lost();
    if (this.closing) return;
    const revoked = this.revoked;   // the close that follows auth.revoked: once, at once; later ones back off
    this.revoked = false;
    if (final(code) && wasOpen && !revoked) {
      this.setState("closed");
      this.requests.failAll(new HaptaError("UNAVAILABLE", `the gateway closed the connection (${code}); not retrying`));
      return;
    }
    if (this.state !== "reconnecting") this.setState("reconnecting");
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.reconnect(), revoked ? 0 : this.backoff.next());
  }

  private reconnect(): void {
    this.reconnectTimer = undefined;
    if (this.closing) return;
    this.open().catch(() => undefined);   // a failed open closes: lost() again
  }

  /** The browser says it is online again: no need to wait out the backoff. */
  private reconnectNow(): void {
    if (this.state !== "reconnecting" || this.reconnectTimer === undefined) return;
    clearTimeout(this.reconnectTimer);
    this.reconnect();
  }

  private received(message: Json): void {
    if (typeof message.event === "string") {
      this.event(message.event, message.sub as string | undefined, (message.data ?? {}) as Json);
    } else {
      this.requests.reply(message);
    }
  }

  /** A gateway event, to the part it is for; then to the app's handlers of it. */
  private event(name: string, sub: string | undefined, data: Json): void {
    if (name === "records.change") {
      this.subscriptions.changed(sub, data);
      return;
    }
    if (name === "realtime.diff") {
      this.liveQueries.diffed(sub, data);
      return;
    }
    if (name === "realtime.reset") {
      this.subscriptions.reset((data.subs as string[]) ?? []);
      this.liveQueries.reset((data.subs as string[]) ?? []);
      this.channels.reset((data.channels as string[]) ?? []);
      this.emit("reset", data);
      return;
    }
    if (name.startsWith("channels.")) this.channels.heard(name, data);
    else if (name === "auth.expiring") this.sessions.expiring();   // in-band, before it lapses
    else if (name === "auth.oauth2") this.sessions.oauth2Answered(data);
    else if (name.startsWith("files.")) this.transfers.heard(name, data);
    if (name === "auth.revoked") {   // signed out; the gateway closes this socket next (1008): open another
      this.revoked = true;
      this.sessions.set(null);
    }
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
}
