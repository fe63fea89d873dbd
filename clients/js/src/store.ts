// Where an offline client keeps what must outlive the page: the outbox (writes the gateway has not answered), the
// live queries' last items, and whose they are. IndexedDB in a browser (one database per gateway URL, shared by the
// tabs of the origin); memory elsewhere (tests, or an app that wants optimistic writes without keeping them).
import type { Json } from "./errors.js";
import type { PendingUpload } from "./files.js";

/** A write in the outbox, as stored. */
export interface OutboxEntry {
  /** Its place in the outbox, given by the store when it is added: writes go in this order. */
  seq?: number;
  /** Its idempotency key (a UUID made here), also in `args.idempotency_key`. */
  key: string;
  /** The user who made it: it is sent only on a socket signed in as them. */
  user: string;
  op: string;
  /** As sent. Rewritten (the gateway's ids for temporary ones, a version) only before it is first sent. */
  args: Json;
  /** Milliseconds since 1970 when it was made. */
  made: number;
  /** When it was first sent in a way that may have been done (not refused "for now"): the gateway keeps the
   * key's answer for 24 hours from the commit, so from no earlier than this. */
  sentAt?: number;
  /** The temporary ids of its creates (`local-<uuid>`), one per create op (null for others). */
  tempIds?: (string | null)[];
  /** Takes its `version` from the answer to this earlier write of the same record (key). */
  follows?: string;
  /** The new files of a create or update, their bytes kept with it (Blobs in IndexedDB): uploaded when it is sent,
   * and named in its data as the uploads' tokens (then `args` holds the tokens). */
  files?: PendingUpload[];
}

/** A live query's items as the gateway last sent them. */
export interface CachedQuery {
  items: Json[];
  pos: number;
  /** Milliseconds since 1970 when they were kept. */
  at: number;
}

export interface OfflineStore {
  /** Every entry, in order. */
  entries(): Promise<OutboxEntry[]>;
  /** Adds an entry at the end; its seq. */
  add(entry: OutboxEntry): Promise<number>;
  /** Writes entries that are there (by seq) again, changed. */
  put(entries: OutboxEntry[]): Promise<void>;
  remove(seqs: number[]): Promise<void>;
  cached(id: string): Promise<CachedQuery | null>;
  cache(id: string, value: CachedQuery): Promise<void>;
  /** Forgets every cached query, and says whose the cache is from now on. */
  clearCache(owner: string | null): Promise<void>;
  /** Whose the cached queries are (a user id; null: nobody signed in; undefined: never said). */
  owner(): Promise<string | null | undefined>;
}

const clone = <T>(value: T): T => JSON.parse(JSON.stringify(value));

/** A copy of an entry to keep: its files' bytes (Blobs, which JSON would empty) are shared, not copied; they never
 * change. */
function cloneEntry(entry: OutboxEntry): OutboxEntry {
  const { files, ...rest } = entry;
  const copy = clone(rest) as OutboxEntry;
  if (files) copy.files = files.map(({ field, name, type, size, data }) => ({ field, name, type, size, data }));
  return copy;
}

/** The store of one page, in memory. */
export class MemoryStore implements OfflineStore {
  private outbox: OutboxEntry[] = [];
  private seq = 0;
  private queries = new Map<string, CachedQuery>();
  private whose: string | null | undefined = undefined;

  async entries() { return this.outbox.map(cloneEntry); }

  async add(entry: OutboxEntry) {
    const seq = ++this.seq;
    this.outbox.push(cloneEntry({ ...entry, seq }));
    return seq;
  }

  async put(entries: OutboxEntry[]) {
    for (const entry of entries) {
      const at = this.outbox.findIndex((e) => e.seq === entry.seq);
      if (at >= 0) this.outbox[at] = cloneEntry(entry);
    }
  }

  async remove(seqs: number[]) { this.outbox = this.outbox.filter((e) => !seqs.includes(e.seq!)); }
  async cached(id: string) { return this.queries.has(id) ? clone(this.queries.get(id)!) : null; }
  async cache(id: string, value: CachedQuery) { this.queries.set(id, clone(value)); }

  async clearCache(owner: string | null) {
    this.queries.clear();
    this.whose = owner;
  }

  async owner() { return this.whose; }
}

const OUTBOX = "outbox";
const QUERIES = "queries";
const META = "meta";

function done<T>(request: any): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result as T);
    request.onerror = () => reject(request.error);
  });
}

/** The store in IndexedDB: database `name`, shared by every tab of the origin. */
export class IndexedDbStore implements OfflineStore {
  private constructor(private readonly db: any) {}

  static async open(name: string): Promise<IndexedDbStore> {
    const factory = (globalThis as any).indexedDB;
    if (!factory) throw new Error('persist: "indexeddb" needs IndexedDB (a browser); use persist: "memory" here');
    const request = factory.open(name, 1);
    request.onupgradeneeded = () => {
      const db = request.result;
      db.createObjectStore(OUTBOX, { keyPath: "seq", autoIncrement: true });
      db.createObjectStore(QUERIES);
      db.createObjectStore(META);
    };
    const db = await done<any>(request);
    // Another tab with a newer version of this client may need to upgrade: let it.
    db.onversionchange = () => db.close();
    return new IndexedDbStore(db);
  }

  /** Runs `body` in one transaction over `stores`; resolves once it has committed. */
  private run<T>(stores: string[], mode: "readonly" | "readwrite",
                 body: (tx: any) => Promise<T> | T): Promise<T> {
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction(stores, mode);
      let result: T;
      Promise.resolve(body(tx)).then((value) => { result = value; }, reject);
      tx.oncomplete = () => resolve(result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error("the IndexedDB transaction was aborted"));
    });
  }

  entries() {
    return this.run([OUTBOX], "readonly", (tx) => done<OutboxEntry[]>(tx.objectStore(OUTBOX).getAll()));
  }

  add(entry: OutboxEntry) {
    const { seq, ...stored } = cloneEntry(entry);
    return this.run([OUTBOX], "readwrite", (tx) => done<number>(tx.objectStore(OUTBOX).add(stored)));
  }

  put(entries: OutboxEntry[]) {
    return this.run([OUTBOX], "readwrite", (tx) => {
      const outbox = tx.objectStore(OUTBOX);
      for (const entry of entries) outbox.put(cloneEntry(entry));
    });
  }

  remove(seqs: number[]) {
    return this.run([OUTBOX], "readwrite", (tx) => {
      for (const seq of seqs) tx.objectStore(OUTBOX).delete(seq);
    });
  }

  async cached(id: string) {
    return (await this.run([QUERIES], "readonly", (tx) => done<CachedQuery | undefined>(tx.objectStore(QUERIES)
      .get(id)))) ?? null;
  }

  cache(id: string, value: CachedQuery) {
    return this.run([QUERIES], "readwrite", (tx) => { tx.objectStore(QUERIES).put(clone(value), id); });
  }

  clearCache(owner: string | null) {
    return this.run([QUERIES, META], "readwrite", (tx) => {
      tx.objectStore(QUERIES).clear();
      tx.objectStore(META).put(owner, "owner");
    });
  }

  owner() {   // a key never written reads as undefined; null is stored as null
    return this.run([META], "readonly", (tx) => done<string | null | undefined>(tx.objectStore(META).get("owner")));
  }
}
