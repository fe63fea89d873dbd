// Typed access to one collection (`hapta.records<Post>("posts")`), and the shapes of what its ops take and answer.
import type { Json } from "./errors.js";
import type { FileSet, Progress } from "./files.js";
import type { Caller } from "./requests.js";

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
export type LiveOp<T> =
  | { op: "insert"; index: number; record: T }
  | { op: "delete"; id: string }
  | { op: "update"; id: string; record: T }
  | { op: "move"; id: string; index: number; record: T };

/** Hears a live query's items each time they change (and once at the start): `ops` turn the items it held before
 * into `items`. `state.stale`: the items are what an offline client kept from before (ConnectOptions.persist), and
 * the gateway has not answered yet. */
export type LiveQueryListener<T> = (items: Pending<T>[], ops: LiveOp<Pending<T>>[], state: { stale: boolean }) => void;

/** A record as a live query shows it: `$pending` while a write of this client that the gateway has not shown yet
 * made it so (ConnectOptions.persist). */
export type Pending<T> = T & { $pending?: true };

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
  id?: string | { $ref: number };
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

/** A write's `idempotency_key` arg, when the caller gave one. */
export function keyed(options: WriteOptions): Json {
  return options.idempotencyKey === undefined ? {} : { idempotency_key: options.idempotencyKey };
}

/** What a collection asks of the client: requests, and subscriptions and live queries kept across reconnects (the
 * Hapta). */
export interface RecordsClient extends Caller {
  subscribe(collection: string, options: SubscribeOptions, onChange: (change: Change<any>) => void):
    Promise<Unsubscribe<any>>;
  query(collection: string, options: QueryOptions, onChange?: LiveQueryListener<any>): Promise<LiveQuery<any>>;
  /** A create or update with new files (FilesOptions). */
  withFiles(op: "records.create" | "records.update", args: Json, files: FileSet, onProgress?: Progress): Promise<any>;
}

/** Typed access to one collection: `hapta.records<Post>("posts")`. */
export class Records<T = Json> {
  constructor(private readonly hapta: RecordsClient, readonly collection: string) {}

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
  /** `files: {media: [file, ...]}` uploads them first and creates the record with them, all or nothing
   * (FilesOptions). */
  create(data: Partial<T>, options: WriteOptions & FilesOptions = {}): Promise<T> {
    const { files, onProgress, ...rest } = options;
    const args = { collection: this.collection, data, ...keyed(rest) };
    if (files) return this.hapta.withFiles("records.create", args, files, onProgress);
    return this.hapta.call("records.create", args);
  }

  /** `files: {media: [file, ...]}` adds them to the files the record keeps: those `data.media` names (names or
   * file entries), else every file it holds when the update is sent (FilesOptions). */
  update(id: string, data: Partial<T>, options: { version?: number } & WriteOptions & FilesOptions = {}): Promise<T> {
    const { version, files, onProgress, ...rest } = options;
    const args = { collection: this.collection, id, data, ...(version === undefined ? {} : { version }),
                   ...keyed(rest) };
    if (files) return this.hapta.withFiles("records.update", args, files, onProgress);
    return this.hapta.call("records.update", args);
  }

  delete(id: string, options: WriteOptions = {}): Promise<{ id: string }> {
    return this.hapta.call("records.delete", { collection: this.collection, id, ...keyed(options) });
  }

  /** Hear every change to the collection (or to one record, `id`) that matches `filter` and that you may view,
   * across reconnects: each once, in commit order. Resolves once the gateway has started it. */
  subscribe(options: SubscribeOptions, onChange: (change: Change<T>) => void): Promise<Unsubscribe<T>> {
    return this.hapta.subscribe(this.collection, options, onChange as (change: Change<any>) => void);
  }

  /** The first `limit` records `list` would list for you (`filter`, `sort`, `fields`, `expand`), kept current
   * across reconnects: `items` is always what `list` would answer now, and `onChange` hears each change (with the
   * ops that made it) and the items once at the start. Resolves once the first items are there. */
  query(options: QueryOptions, onChange?: LiveQueryListener<T>): Promise<LiveQuery<T>> {
    return this.hapta.query(this.collection, options, onChange as LiveQueryListener<any> | undefined);
  }
}
