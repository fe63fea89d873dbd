/** An object of the protocol: a request's args, a reply's data, an event's payload, an error's details. */
type Json = Record<string, unknown>;
/** What the gateway answered instead of data: `code` is one of the protocol's error codes. */
export declare class HaptaError extends Error {
    readonly code: string;
    readonly details?: Record<string, unknown>;
    /** Seconds after which trying again makes sense (RATE_LIMITED, UNAVAILABLE, TIMEOUT). */
    readonly retryAfter?: number;
    constructor(code: string, message: string, details?: Record<string, unknown>, retryAfter?: number);
}
/** The delay before reconnect attempt `attempt` (0, 1, ...): doubling from `base` up to `cap`, then "equal
 * jitter" (between half and all of it) so that thousands of clients cut off together do not come back together. */
export declare function backoffDelay(attempt: number, base: number, cap: number, random?: () => number): number;
/** What sends a request and resolves with its data (or rejects with a HaptaError). */
interface Caller {
    call<T = any>(op: string, args?: Json, onReply?: (data: any) => void): Promise<T>;
}
export interface Member {
    id: string;
    /** The user id (null for anon or admin). */
    user: string | null;
    role: string;
    /** Where the channel's pattern names presence fields (App.channels): those fields of the member's users record
     * as this reader may see them (each null where its guard does not hold for the reader), or null where the reader
     * may not view that record (or there is none: anon, admin). Absent in other channels, and in leaves. */
    profile?: Record<string, unknown> | null;
}
type Handler = (data: any) => void;
/** A channel: presence and messages for what is not a record (typing indicators, rooms). */
export declare class Channel {
    private readonly hapta;
    readonly name: string;
    /** Who is there, this connection included, kept right across reconnects. */
    members: Member[];
    version: string | null;
    joined: boolean;
    private handlers;
    constructor(hapta: Caller, name: string);
    join(): Promise<Member[]>;
    send(data: unknown): Promise<void>;
    leave(): Promise<void>;
    /** "message" (`{from, data}`), "presence" (`{action, member}`, after `members` changed) or "left"
     * (`{reason}`: the membership ended with the identity it was joined as). Returns the unsubscriber. */
    on(event: "message" | "presence" | "left", handler: Handler): () => void;
    /** @internal a join's answer: everyone, or (a rejoin with a version) who joined and left since. */
    apply(answer: Json): void;
    /** @internal */
    heard(event: string, data: Json): void;
}
export type Protocol = "json" | "msgpack";
interface SocketLike {
    binaryType: string;
    readyState: number;
    protocol: string;
    send(data: string | ArrayBufferLike | Uint8Array): void;
    close(code?: number, reason?: string): void;
    onopen: ((event: unknown) => void) | null;
    onclose: ((event: {
        code: number;
        reason: string;
    }) => void) | null;
    onerror: ((event: unknown) => void) | null;
    onmessage: ((event: {
        data: unknown;
    }) => void) | null;
}
type SocketConstructor = new (url: string, protocols?: string | string[]) => SocketLike;
/** How a file link is made: its lifetime in seconds, and a thumbnail size the field declares
 * (`FileField(thumbs=...)`, e.g. "100x100"). */
export interface FileLinkOptions {
    expires?: number;
    thumb?: string;
}
export interface UploadOptions {
    name?: string;
    type?: string;
    onProgress?: (sent: number, size: number) => void;
}
/** A file as the gateway stores it in a record's file field. */
export interface HaptaFile {
    name: string;
    size: number;
    type: string;
    sha256: string;
}
/** files.finish's answer: the file as stored; for an upload into a record, the record; for one without a record
 * id, `upload` (a single-use token for the write that takes it) and `expires_at` (seconds since 1970). */
export interface Uploaded {
    file: HaptaFile;
    record?: Json;
    upload?: string;
    expires_at?: number;
}
/** A file to store with a write: a File (its name and type), a Blob, or bytes with the name and type to give. */
export type FileInput = Blob | {
    data: Blob | Uint8Array | ArrayBuffer;
    name?: string;
    type?: string;
};
/** The new files of a write, by file field: `{media: [file, ...]}`. */
export type FileSet = Record<string, FileInput[]>;
/** Bytes sent so far, of all the files of a write. */
export type Progress = (sent: number, total: number) => void;
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
    /** The change's position: ordered by commit, the same on every gateway process. A change this client made
     * ahead of the gateway (`pending` or `rolledBack`) carries the position of the last one delivered. */
    pos: number;
    /** A write of this client that the gateway has not confirmed yet (ConnectOptions.persist); the gateway's own
     * change follows once it has done it. */
    pending?: true;
    /** Undoes a pending change the gateway refused: the record as it was before (a delete: only its id). */
    rolledBack?: true;
    /** A record created here under a temporary id (`local-...`) that the gateway has now created under this id: the
     * temporary one is deleted (the gateway's own create of it comes as any change does). */
    replacedBy?: string;
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
/** What a live query takes (realtime.query): the first `limit` records of what `list` would list for you with
 * this `filter` and `sort`, kept current. `fields`, when given, must include `id` and `version`. */
export interface QueryOptions {
    /** records.list's sort, required (ties broken by id); not by `@rank`. */
    sort: string;
    /** 1-500: how many of the first records are held. */
    limit: number;
    /** records.list's filter, without `@@`. */
    filter?: string;
    fields?: string[];
    /** Relations embedded under `record.expand`, as in `list`. */
    expand?: string[];
}
/** One step of a live query's diff, applied in order to the items held: `move` takes the record out, then puts
 * it at `index` of the list without it. */
export type LiveOp<T> = {
    op: "insert";
    index: number;
    record: T;
} | {
    op: "delete";
    id: string;
} | {
    op: "update";
    id: string;
    record: T;
} | {
    op: "move";
    id: string;
    index: number;
    record: T;
};
/** Hears a live query's items each time they change (and once at the start): `ops` turn the items it held before
 * into `items`. `state.stale`: the items are what an offline client kept from before (ConnectOptions.persist), and
 * the gateway has not answered yet. */
export type LiveQueryListener<T> = (items: Pending<T>[], ops: LiveOp<Pending<T>>[], state: {
    stale: boolean;
}) => void;
/** A record as a live query shows it: `$pending` while a write of this client that the gateway has not shown yet
 * made it so (ConnectOptions.persist). */
export type Pending<T> = T & {
    $pending?: true;
};
/** A live query, kept across reconnects. */
export interface LiveQuery<T> {
    /** The current items, in order: one array, changed in place (copy it where a framework wants a new one). */
    readonly items: Pending<T>[];
    /** The items are what an offline client kept from before, and the gateway has not answered yet. */
    readonly stale: boolean;
    /** Ends it. */
    stop(): Promise<void>;
}
export interface WriteOptions {
    /** 1-255 characters: a retry with the same key gets the first answer (docs/writes.md). */
    idempotencyKey?: string;
}
/** A create or update with new files, stored with the record in one step: `files` by file field
 * (`{media: [file, ...]}`; a File's name and type, or `{data, name?, type?}`), uploaded first, then the write names
 * them. `onProgress(sent, total)`: bytes sent of all of them. An update keeps the files the record holds (or those
 * its data names in the field) and adds these after them. */
export interface FilesOptions {
    files?: FileSet;
    onProgress?: Progress;
}
/** One write of `Hapta.batch`: `id` and top-level `data` values may be `{ $ref: n }`, the id op n wrote. */
export interface BatchOp {
    op: "create" | "update" | "delete";
    collection: string;
    data?: Json;
    id?: string | {
        $ref: number;
    };
    version?: number;
}
/** A channel message `Hapta.batch` sends only if it commits, after its record changes (as channels.publish). */
export interface BatchPublish {
    channel: string;
    data?: Json;
}
/** `Hapta.batch`'s options: `publish` (at most 16) goes out only if the batch commits. */
export interface BatchOptions extends WriteOptions {
    atomic?: boolean;
    publish?: BatchPublish[];
}
/** What a collection asks of the client: requests, and subscriptions and live queries kept across reconnects (the
 * Hapta). */
interface RecordsClient extends Caller {
    subscribe(collection: string, options: SubscribeOptions, onChange: (change: Change<any>) => void): Promise<Unsubscribe<any>>;
    query(collection: string, options: QueryOptions, onChange?: LiveQueryListener<any>): Promise<LiveQuery<any>>;
    /** A create or update with new files (FilesOptions). */
    withFiles(op: "records.create" | "records.update", args: Json, files: FileSet, onProgress?: Progress): Promise<any>;
}
/** Typed access to one collection: `hapta.records<Post>("posts")`. */
export declare class Records<T = Json> {
    private readonly hapta;
    readonly collection: string;
    constructor(hapta: RecordsClient, collection: string);
    /** `expand: ["author", "post.author"]` embeds related records under `record.expand`, as their own rules allow. */
    list(options?: ListOptions): Promise<Page<T>>;
    /** Counts, sums, averages, minima and maxima of what `list` would list for you, in groups:
     * `aggregate({ group_by: ["author"], sum: ["likes"] })`. */
    aggregate(options?: AggregateOptions): Promise<Aggregates>;
    get(id: string, options?: {
        fields?: string[];
        expand?: string[];
    }): Promise<T>;
    /** `idempotencyKey`: the same key again (within 24 h) answers the first answer and writes nothing; without
     * one, a signed-in client makes one per call (ConnectOptions.idempotentWrites), kept across its retries. */
    /** `files: {media: [file, ...]}` uploads them first and creates the record with them, all or nothing
     * (FilesOptions). */
    create(data: Partial<T>, options?: WriteOptions & FilesOptions): Promise<T>;
    /** `files: {media: [file, ...]}` adds them to the files the record keeps: those `data.media` names (names or
     * file entries), else every file it holds when the update is sent (FilesOptions). */
    update(id: string, data: Partial<T>, options?: {
        version?: number;
    } & WriteOptions & FilesOptions): Promise<T>;
    delete(id: string, options?: WriteOptions): Promise<{
        id: string;
    }>;
    /** Hear every change to the collection (or to one record, `id`) that matches `filter` and that you may view,
     * across reconnects: each once, in commit order. Resolves once the gateway has started it. */
    subscribe(options: SubscribeOptions, onChange: (change: Change<T>) => void): Promise<Unsubscribe<T>>;
    /** The first `limit` records `list` would list for you (`filter`, `sort`, `fields`, `expand`), kept current
     * across reconnects: `items` is always what `list` would answer now, and `onChange` hears each change (with the
     * ops that made it) and the items once at the start. Resolves once the first items are there. */
    query(options: QueryOptions, onChange?: LiveQueryListener<T>): Promise<LiveQuery<T>>;
}
/** A write of the outbox, as the app is told of it. */
export interface OutboxWrite {
    key: string;
    op: string;
    args: Json;
    /** The user who made it. */
    user: string;
    /** Milliseconds since 1970 when it was made. */
    made: number;
    /** The new files it stores with its record (their bytes are kept with it until it lands). */
    files?: {
        field: string;
        name: string;
        type: string;
        size: number;
    }[];
}
/** What the views showed of a write that was undone, and what they show again (null: nothing, or not known). */
export interface RolledBack {
    /** The write's key. */
    key: string;
    collection: string;
    id: string;
    action: "create" | "update" | "delete";
    shown: Json | null;
    restored: Json | null;
}
/** Why a write left the outbox unsent or refused: "refused" by the gateway; "conflict", its version was stale
 * and the gateway's stands (`mine` and `server` are both versions); "dropped", another user signed in;
 * "expired", sent long ago without an answer and its idempotency key may be forgotten (see docs/offline.md). */
export interface OutboxEvent {
    kind: "refused" | "conflict" | "dropped" | "expired";
    write: OutboxWrite;
    error: HaptaError;
    rolledBack: RolledBack[];
    /** A conflict: the record as this client made it, and as the gateway has it (null: it could not be read). */
    mine?: Json | null;
    server?: Json | null;
}
/** An update refused for a stale version: `mine` is the data it set, `server` the record the gateway has now. */
export interface Conflict {
    collection: string;
    id: string;
    mine: Json;
    server: Json;
    write: OutboxWrite;
}
/** Decides a conflict: data to write over the gateway's version (sent at once, as a new write), or null for the
 * gateway's version to stand (the write is rolled back and reported). */
export type ConflictPolicy = (conflict: Conflict) => Json | null | undefined | Promise<Json | null | undefined>;
export interface StorageLike {
    getItem(key: string): string | null;
    setItem(key: string, value: string): void;
    removeItem(key: string): void;
}
export interface Session {
    token: string;
    refresh_token: string;
    expires_at: number;
    user: Json;
}
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
    backoff?: {
        base?: number;
        cap?: number;
    };
    /** Milliseconds a request may wait for the socket and its reply. */
    requestTimeout?: number;
    /** Requests the gateway refused for now (RATE_LIMITED, UNAVAILABLE, TIMEOUT with `retry_after`, and not
     * `details.outcome: "unknown"`: nothing was done; a write with an idempotency key even then) are sent again
     * after `retry_after`, up to `attempts` times while the wait is at most `maxWait` ms; then the error is the
     * caller's. `{attempts: 0}`: never. */
    retry?: {
        attempts?: number;
        maxWait?: number;
    };
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
export declare class Hapta {
    readonly url: string;
    private readonly options;
    state: State;
    /** Sockets opened after the first. */
    reconnects: number;
    readonly auth: {
        /** Signs in at once (a Session), or, where the app requires verified emails, answers `{check_mail: true}`
         * whether or not the address had an account: the mail says what to do next. */
        register: (fields: {
            email: string;
            password: string;
            username?: string;
            [field: string]: unknown;
        }) => Promise<Session | {
            check_mail: true;
        }>;
        login: (identity: string, password: string) => Promise<Session>;
        /** A guest account (no email or password yet); `register` on this client later makes it an account. */
        guest: () => Promise<Session>;
        /** Mails a six-digit sign-in code; `otp` signs in with it. */
        otpRequest: (email: string) => Promise<Json>;
        otp: (email: string, code: string) => Promise<Session>;
        /** The second factor after a sign-in that failed with MFA_REQUIRED (`error.details.challenge`). */
        mfaVerify: (challenge: string, code: string) => Promise<Session>;
        mfaEnroll: () => Promise<{
            secret: string;
            uri: string;
        }>;
        mfaConfirm: (code: string) => Promise<{
            recovery_codes: string[];
        }>;
        /** Removes the second factor with a current code or a recovery code. */
        mfaDisable: (code: string) => Promise<Json>;
        verifyRequest: () => Promise<Json>;
        /** Verifies the email of a mailed link. Signed in to that account here, or with its `password`, it only
         * verifies; otherwise it claims the address: an unverified account is taken over (`taken_over: true`). */
        verify: (token: string, password?: string) => Promise<{
            verified: true;
            taken_over?: true;
        }>;
        resetRequest: (email: string) => Promise<Json>;
        reset: (token: string, password: string) => Promise<Json>;
        /** Mails a link to the new address; asks the current password (an account without one: a fresh sign-in). */
        changeEmail: (email: string, password?: string) => Promise<Json>;
        /** A new password; `old` is the current one (an account without one: within 10 minutes of signing in). */
        changePassword: (newPassword: string, old?: string) => Promise<Json>;
        confirmEmail: (token: string) => Promise<Json>;
        logout: () => Promise<void>;
        refresh: () => Promise<Session>;
        me: () => Promise<Json>;
        anon: (apikey: string) => Promise<Json>;
        /** Starts an OAuth2 sign-in: open `url` in a browser; `session` resolves when the provider sent it back. */
        oauth2: (provider: string) => Promise<{
            url: string;
            state: string;
            session: Promise<Session>;
        }>;
    };
    readonly functions: {
        /** Calls the app's server function `name` (functions/*.py, `@call`): its return value. */
        call: <T = any>(name: string, args?: unknown) => Promise<T>;
    };
    /** The offline outbox (ConnectOptions.persist); empty without one. */
    readonly outbox: {
        /** The writes waiting for the gateway (of every tab of the origin), in the order they go. */
        pending: () => OutboxWrite[];
        /** The gateway's id of a record created offline, for the temporary one (`local-...`) it showed under, once its
         * create has landed (while this page lives). */
        idFor: (id: string) => string | undefined;
    };
    readonly files: {
        /** Streams a file into the record `id`'s field (answers `{file, record}`), or, with `id` null, for a record
         * still to be written: `{file, upload, expires_at}`, `upload` a single-use token the write names in the field
         * (`{media: [{upload}]}`) within `expires_at`. `records(c).create(data, {files})` does both in one call. */
        upload: (collection: string, id: string | null, field: string, data: Blob | Uint8Array | ArrayBuffer, options?: UploadOptions) => Promise<Uploaded>;
        download: (collection: string, id: string, field: string, name: string, options?: {
            thumb?: string;
        }) => Promise<Uint8Array>;
        /** The bytes of a download stream another op answers with, as files.download does (admin.backup.download). */
        streamed: (op: string, args?: Json) => Promise<Uint8Array>;
        url: (collection: string, id: string, field: string, name: string, options?: number | FileLinkOptions) => Promise<string>;
    };
    private readonly transport;
    private readonly backoff;
    private readonly requests;
    private readonly sessions;
    private readonly subscriptions;
    private readonly liveQueries;
    private readonly channels;
    private readonly transfers;
    private handlers;
    private closing;
    /** A socket was opened and restored before: the next is a reconnect. */
    private hadSocket;
    private reconnectTimer;
    /** The gateway said `auth.revoked`: the close (1008) that follows is no reason to stop. */
    private revoked;
    private store;
    private tabs;
    private queue;
    /** Whose the kept live queries are: the user signed in (null: nobody). */
    private owner;
    /** The browser's "offline" and "online": the socket is let go at once, and opened again at once. */
    private readonly network;
    private constructor();
    /** Where there is a browser's window (with navigator.onLine), hear when it goes offline and online. */
    private listenToNetwork;
    /** Opens the socket and signs in again as the stored session (or the anon key). With `persist`, resolves once
     * what was kept is loaded, without waiting for the socket: it opens, and opens again, meanwhile. */
    static connect(url: string, options?: ConnectOptions): Promise<Hapta>;
    /** The session signed in as; null: a guest, or anon with the apikey. */
    get session(): Session | null;
    set session(session: Session | null);
    /** "state" (the State), "auth" (the Session or null), "reset" (`{subs, channels}`: refetch), "outbox" (an
     * OutboxEvent: a write that left the outbox unsent or refused, and what was rolled back), or any gateway event
     * by name ("auth.revoked", ...). Returns the unsubscriber. */
    on(event: string, handler: Handler): () => void;
    records<T = Json>(collection: string): Records<T>;
    /** Up to App.batch_max writes in one transaction: all of them or none; a failure is the failing op's own
     * HaptaError with `details.index`. Answers each op's result, in order. `publish`: up to 16 channel messages
     * (channels this connection joined) sent only if the batch commits, after its record changes; a refused one
     * refuses the batch with `details.publish`. */
    batch(ops: BatchOp[], options?: BatchOptions): Promise<{
        results: Json[];
    }>;
    channel(name: string): Channel;
    /** One request; waits for the socket while it reconnects (up to requestTimeout). Rejects with HaptaError. With
     * `persist`, a write of a signed-in user goes through the outbox instead: it resolves when the gateway has done
     * it, however long that takes, and rejects if it refuses it. */
    call<T = any>(op: string, args?: Json, onReply?: (data: any) => void): Promise<T>;
    /** @internal Records.create and .update with `files`: through the outbox with their bytes when it keeps them
     * (persist, a user, within outboxFileBytes), else uploaded now and then written. */
    withFiles(op: "records.create" | "records.update", args: Json, files: FileSet, onProgress?: Progress): Promise<any>;
    /** Uploads the files, then the write naming them. Tokens that expired before the write arrived (TOKEN_INVALID)
     * are uploaded once more; an update that read the record's files at a version that changed before it arrived
     * reads them again. */
    private sendWithFiles;
    close(): void;
    /** @internal Records.subscribe */
    subscribe(collection: string, options: SubscribeOptions, onChange: (change: Change<any>) => void): Promise<Unsubscribe<any>>;
    /** @internal Records.query */
    query(collection: string, options: QueryOptions, onChange?: LiveQueryListener<any>): Promise<LiveQuery<any>>;
    /** Opens the store, reads the outbox, and forgets the kept queries if they are someone else's. */
    private loadOffline;
    private userId;
    private vars;
    /** What `entries` do to the records the live queries hold, after the writes before them. */
    private effects;
    /** Writes about to leave unsent or refused: the subscriptions hear them undone; the event says what the views
     * showed of them and show again. */
    private undoing;
    /** The session changed (a sign-in, a refresh, a sign-out): the app hears it; the kept queries are forgotten when
     * it is no longer theirs; after a sign-in the writes of anyone else are dropped, the user's go, and queries and
     * subscriptions refused before are asked for again. */
    private signedIn;
    private open;
    /** Sign in again, resume every subscription from its position and every live query from what it holds, join
     * every channel again: before anything waiting is sent, so that it runs as the same principal as before. */
    private restore;
    private lost;
    private reconnect;
    /** The browser says it is online again: no need to wait out the backoff. */
    private reconnectNow;
    private received;
    /** A gateway event, to the part it is for; then to the app's handlers of it. */
    private event;
    private emit;
    private setState;
}
export {};
