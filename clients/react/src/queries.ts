// useQuery and useRecord: a live query of @hapta/client (records(name).query) as React state. The gateway keeps its
// items equal to what `list` would answer the reader, across reconnects; each diff it sends is one new `items`
// array (records that did not change keep their identity, so memoised rows skip rendering).
import type { HaptaError, LiveQuery, QueryOptions } from "@hapta/client";
import { useMemo, useSyncExternalStore } from "react";
import { useHapta } from "./context.js";
import { Held } from "./held.js";

export type QueryStatus = "idle" | "loading" | "ready" | "error";

/** What useQuery takes: `list`'s filter, sort and expand, and how many of the first records to hold. */
export interface UseQueryOptions {
  /** records.list's filter (without `@@`). */
  filter?: string;
  /** records.list's sort (ties broken by id); default "-created", the newest first. */
  sort?: string;
  /** 1-500: how many of the first records are held; default 50. */
  limit?: number;
  /** Relations embedded under `record.expand`: `["author"]`. */
  expand?: string[];
  /** Only these fields (must include `id` and `version`). */
  fields?: string[];
}

export interface QueryResult<T> {
  /** The first `limit` records the reader may see, in order: a new array on every change. */
  items: T[];
  /** "loading" until the first items are there; "idle" without a collection; "error": see `error`. */
  status: QueryStatus;
  /** Whether the client marks any item as pending (a write not yet confirmed): see pendingOf. */
  pending: boolean;
  /** Why the query was refused (BAD_REQUEST for a filter, FORBIDDEN, ...). */
  error: HaptaError | null;
}

export interface RecordResult<T> {
  /** The record as the reader may see it now; null while loading, or when there is none they may see. */
  record: T | null;
  status: QueryStatus;
  pending: boolean;
  error: HaptaError | null;
}

const NONE: never[] = [];
const IDLE: QueryResult<never> = { items: NONE, status: "idle", pending: false, error: null };
const LOADING: QueryResult<never> = { items: NONE, status: "loading", pending: false, error: null };

/** The live query a useQuery asks for: its defaults filled in, and only what was given. */
export function queryOptions(options: UseQueryOptions = {}): QueryOptions {
  const asked: QueryOptions = { sort: options.sort ?? "-created", limit: options.limit ?? 50 };
  if (options.filter !== undefined && options.filter.trim() !== "") asked.filter = options.filter;
  if (options.expand !== undefined) asked.expand = options.expand;
  if (options.fields !== undefined) asked.fields = options.fields;
  return asked;
}

/** Stands for a query by what it asks, not by the identity of the options object (a new one each render). */
export function queryKey(collection: string, options: QueryOptions): string {
  return JSON.stringify([collection, options.sort, options.limit, options.filter ?? null, options.expand ?? null,
                         options.fields ?? null]);
}

/** useRecord's query: the record of this id, if the reader may see it (a filter value is a JSON string). */
export function recordOptions(id: string, options: { expand?: string[]; fields?: string[] } = {}): QueryOptions {
  return queryOptions({ filter: `id = ${JSON.stringify(id)}`, sort: "id", limit: 1, ...options });
}

/** Whether any item is marked pending. @hapta/client 0.1 marks none (every item is what the gateway answered), so
 * this is false there; a client whose live queries say it, with a boolean `pending` or an `isPending(item)` on the
 * LiveQuery, is followed. Items' own fields are never read for it: a record may have a field of that name. */
export function pendingOf<T>(query: LiveQuery<T> | null, items: readonly T[]): boolean {
  const marks = query as unknown as { pending?: unknown; isPending?: unknown } | null;
  if (!marks) return false;
  if (typeof marks.pending === "boolean") return marks.pending;
  if (typeof marks.isPending === "function") return items.some((item) => (marks.isPending as (i: T) => boolean)(item));
  // @hapta/client with `persist`: a record shown before the gateway confirmed this client's write of it
  return items.some((item) => (item as { $pending?: unknown } | null)?.$pending === true);
}

/** A live query's items as React state, kept current while the component is mounted; `collection` null or
 * undefined: none (status "idle"). The query starts when the component mounts and stops when it unmounts (a
 * remount at once, as StrictMode does, keeps it). */
export function useQuery<T = Record<string, unknown>>(collection: string | null | undefined,
                                                      options: UseQueryOptions = {}): QueryResult<T> {
  const client = useHapta();
  const asked = queryOptions(options);
  const key = collection ? queryKey(collection, asked) : "";
  const held = useMemo(() => {
    if (!collection) return new Held<QueryResult<T>>(IDLE, () => () => undefined);
    return new Held<QueryResult<T>>(LOADING, (set, get) => {
      let query: LiveQuery<T> | null = null;
      let stopped = false;
      const shown = (items: T[]) =>
        set({ items: [...items], status: "ready", pending: pendingOf(query, items), error: null });
      client.records<T>(collection).query(asked, (items) => { if (!stopped) shown(items); }).then((started) => {
        query = started;
        if (stopped) started.stop().catch(() => undefined);
        else if (pendingOf(started, started.items) !== get().pending) shown(started.items);
      }, (error: HaptaError) => {
        if (!stopped) set({ items: NONE, status: "error", pending: false, error });
      });
      return () => {
        stopped = true;
        query?.stop().catch(() => undefined);
      };
    });
    // `asked` is what `key` says: a new options object each render is the same query
  }, [client, key]);
  return useSyncExternalStore(held.subscribe, held.get, held.get);
}

/** One record, kept current (a live query of its id): `record` is null while loading and when there is none the
 * reader may see (deleted, or hidden by the rules), and changes as it changes. `id` null or undefined: none. */
export function useRecord<T = Record<string, unknown>>(collection: string, id: string | null | undefined,
                                                       options: { expand?: string[]; fields?: string[] } = {}):
  RecordResult<T> {
  const asked = id ? recordOptions(id, options) : {};
  const { items, status, pending, error } = useQuery<T>(id ? collection : null, asked);
  return { record: items[0] ?? null, status, pending, error };
}
