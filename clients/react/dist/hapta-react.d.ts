import type { FilesOptions, Hapta, HaptaError, LiveQuery, Member, QueryOptions, Session, State, WriteOptions } from "@hapta/client";
import type { ReactElement, ReactNode } from "react";
export interface HaptaProviderProps {
    /** A connected client (`await Hapta.connect(url, options)`): the hooks below use it, and never close it. */
    client: Hapta;
    children?: ReactNode;
}
/** Makes `client` the one the hooks below it use. */
export declare function HaptaProvider({ client, children }: HaptaProviderProps): ReactElement;
/** The client of the nearest HaptaProvider (for what the hooks do not cover: `useHapta().files.upload(...)`). */
export declare function useHapta(): Hapta;
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
/** The live query a useQuery asks for: its defaults filled in, and only what was given. */
export declare function queryOptions(options?: UseQueryOptions): QueryOptions;
/** Stands for a query by what it asks, not by the identity of the options object (a new one each render). */
export declare function queryKey(collection: string, options: QueryOptions): string;
/** useRecord's query: the record of this id, if the reader may see it (a filter value is a JSON string). */
export declare function recordOptions(id: string, options?: {
    expand?: string[];
    fields?: string[];
}): QueryOptions;
/** Whether any item is marked pending. @hapta/client 0.1 marks none (every item is what the gateway answered), so
 * this is false there; a client whose live queries say it, with a boolean `pending` or an `isPending(item)` on the
 * LiveQuery, is followed. Items' own fields are never read for it: a record may have a field of that name. */
export declare function pendingOf<T>(query: LiveQuery<T> | null, items: readonly T[]): boolean;
/** A live query's items as React state, kept current while the component is mounted; `collection` null or
 * undefined: none (status "idle"). The query starts when the component mounts and stops when it unmounts (a
 * remount at once, as StrictMode does, keeps it). */
export declare function useQuery<T = Record<string, unknown>>(collection: string | null | undefined, options?: UseQueryOptions): QueryResult<T>;
/** One record, kept current (a live query of its id): `record` is null while loading and when there is none the
 * reader may see (deleted, or hidden by the rules), and changes as it changes. `id` null or undefined: none. */
export declare function useRecord<T = Record<string, unknown>>(collection: string, id: string | null | undefined, options?: {
    expand?: string[];
    fields?: string[];
}): RecordResult<T>;
/** The session signed in as (`session.user` is the users record), or null: re-renders on every sign-in, sign-out,
 * token refresh and revocation (the client's "auth" event). */
export declare function useSession(): Session | null;
/** The socket's state: "open", "reconnecting" while it is away (requests wait, live queries and channels come back
 * by themselves), "connecting", or "closed" for good. What an offline banner shows. */
export declare function useConnectionState(): State;
export type ChannelStatus = "joining" | "joined" | "left" | "error";
/** A message of the channel: `from` is the member who sent it (`{id, user, role}`; "server" for a function's). */
export interface ChannelMessage<D = unknown> {
    from: Member;
    data: D;
}
export interface ChannelResult<D = unknown> {
    /** Who is there, this connection included; `member.profile` carries the fields of their users record the channel
     * shows (where its pattern names presence fields), as you may see them. */
    members: Member[];
    /** The messages heard since the component mounted, the last `keep` of them, oldest first. */
    messages: ChannelMessage<D>[];
    /** Sends `data` to the other members (they hear it; you do not). */
    send: (data: D) => Promise<void>;
    /** "joining", "joined", "left" (the membership ended with the identity it was joined as: a sign-out, another
     * user; a sign-in joins again), or "error" (refused: `error`). */
    status: ChannelStatus;
    error: HaptaError | null;
}
/** The last `keep` of `messages` and `message` (a new array; `keep` 0: none are kept). */
export declare function keepLast<M>(messages: readonly M[], message: M, keep: number): M[];
/** Joins channel `name` while the component is mounted (`name` null: none) and answers who is there, the messages
 * heard (the last `keep`, 50 by default) and `send`. Kept right across reconnects: the client joins again with its
 * version and is told who came and went. */
export declare function useChannel<D = unknown>(name: string | null | undefined, options?: {
    keep?: number;
}): ChannelResult<D>;
export type MutationStatus = "idle" | "pending" | "success" | "error";
export interface MutationResult {
    /** Creates a record of `collection`; resolves to it, or to undefined when refused (then `error` says why).
     * `files: {media: [file]}` stores files with it in one step (`onProgress(sent, total)` hears their bytes). */
    create: <T = Record<string, unknown>>(collection: string, data: Partial<T>, options?: WriteOptions & FilesOptions) => Promise<T | undefined>;
    /** Updates fields of a record; `version`: only if it is still at that version (else CONFLICT); `files` adds
     * files to those it keeps. */
    update: <T = Record<string, unknown>>(collection: string, id: string, data: Partial<T>, options?: {
        version?: number;
    } & WriteOptions & FilesOptions) => Promise<T | undefined>;
    delete: (collection: string, id: string, options?: WriteOptions) => Promise<{
        id: string;
    } | undefined>;
    /** The last write's: "idle" before any, "pending" while it is on its way, "success" or "error". */
    status: MutationStatus;
    /** Why the last write was refused (`error.code`: RULE_DENIED, FORBIDDEN, RATE_LIMITED, ...). */
    error: HaptaError | null;
    /** Back to "idle", the error forgotten. */
    reset: () => void;
}
/** Writes through the client, each call's outcome in `status` and `error` (the last call's, when several overlap).
 * The functions never reject: a refusal resolves to undefined and is `error`. */
export declare function useMutation(): MutationResult;
export {};
