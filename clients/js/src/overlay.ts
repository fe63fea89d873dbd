// Optimistic updates: what the live queries show is what the gateway sent them (their "server" items) with the
// writes it has not confirmed yet laid over it, in the order they were made. Nothing here changes the gateway's
// items: a write that is refused simply stops being laid over them, which is the rollback. Pure functions.
//
// A write is pending while it waits in the outbox (or on the wire); once answered it has landed, and its answer
// (the record as the gateway stored it) is laid over a query until the gateway's diff shows it there: then the
// query has "echoed" it and the pending mark goes. Each record a write leaves is marked `$pending: true` (a name
// no column can have, so it never hides a field of the record).
import type { Json } from "./errors.js";
import type { PendingUpload } from "./files.js";
import { comparator, decide, type FilterNode, type FilterVars } from "./filter.js";
import type { LiveOp } from "./records.js";

/** A write as the overlay sees it: an outbox entry, or one that has landed and awaits the gateway's diff. */
export interface Write {
  key: string;
  op: string;
  args: Json;
  /** Milliseconds since 1970 when it was made: a pending create's `created` and `updated`. */
  made: number;
  /** The ids the client gave its creates until the gateway names them: one for records.create, one per create
   * op of a batch (null for the other ops). */
  tempIds?: (string | null)[];
  /** The gateway's answer, once it has landed. */
  answer?: Json;
  /** The new files of a create or update, not uploaded yet or not yet named by an answer; `preview`: a local
   * object URL of a file's bytes, where the page made one. */
  files?: (PendingUpload & { preview?: string })[];
}

/** What one write does to one record. */
export interface Effect {
  key: string;
  collection: string;
  action: "create" | "update" | "delete";
  id: string;
  /** The record as the write leaves it (null: deleted, or an update of a record the client does not hold). */
  record: Json | null;
  /** The record before it, as far as the client knows (null: none, or unknown). */
  before: Json | null;
  /** What the write sets (a create's or update's data). */
  data: Json;
  /** Landed: the gateway answered it (record is its answer). */
  landed: boolean;
}

/** Records by collection and id. */
export type RecordIndex = Map<string, Json>;

export function recordKey(collection: string, id: unknown): string {
  return `${collection}\u0000${String(id)}`;
}

/** The id a temporary id stands for: a pending create is named `local-<uuid>` until the gateway names it. */
export const TEMP_PREFIX = "local-";

export function isTempId(id: unknown): id is string {
  return typeof id === "string" && id.startsWith(TEMP_PREFIX);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** The single writes of a write: itself, or a batch's ops, each with its collection and id resolved (`$ref`s of a
 * batch name the id op n wrote). */
function steps(write: Write): { action: Effect["action"]; collection: string; id: string; data: Json;
                                 answer: Json | undefined }[] {
  const { op, args } = write;
  if (op === "records.create") {
    const id = write.answer ? String(write.answer.id) : write.tempIds?.[0] ?? "";
    return [{ action: "create", collection: String(args.collection), id, data: (args.data ?? {}) as Json,
              answer: write.answer }];
  }
  if (op === "records.update" || op === "records.delete") {
    return [{ action: op === "records.update" ? "update" : "delete", collection: String(args.collection),
              id: String(args.id), data: (args.data ?? {}) as Json, answer: write.answer }];
  }
  if (op !== "records.batch") return [];
  const ops = (args.ops ?? []) as Json[];
  const results = (write.answer?.results ?? []) as Json[];
  const ids: string[] = [];
  const ref = (value: unknown): unknown => {
    if (value && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 1
        && typeof (value as Json).$ref === "number") {
      return ids[(value as Json).$ref as number];
    }
    return value;
  };
  return ops.map((step, n) => {
    const action = step.op as Effect["action"];
    const answer = results[n] as Json | undefined;
    const id = answer ? String(answer.id) : action === "create" ? write.tempIds?.[n] ?? "" : String(ref(step.id));
    ids[n] = id;
    const data = Object.fromEntries(Object.entries((step.data ?? {}) as Json).map(([k, v]) => [k, ref(v)]));
    return { action, collection: String(step.collection), id, data, answer };
  });
}

/** The effects of `writes`, in order, on records as `index` holds them (the gateway's, across every live query):
 * a pending update is the record held merged with its data; a landed write is its answer. `index` is left as it
 * was. */
export function effectsOf(writes: readonly Write[], index: RecordIndex): Effect[] {
  const now = new Map(index);
  const out: Effect[] = [];
  for (const write of writes) {
    for (const step of steps(write)) {
      const at = recordKey(step.collection, step.id);
      const before = now.get(at) ?? null;
      let record: Json | null = null;
      if (step.action === "create") {
        record = step.answer ?? { ...step.data, id: step.id, created: iso(write.made), updated: iso(write.made),
                                  ...pendingFiles(write, step.data, null) };
      } else if (step.action === "update") {
        record = step.answer ?? (before ? { ...before, ...step.data, updated: iso(write.made),
                                            ...pendingFiles(write, step.data, before) } : null);
      }
      if (record) now.set(at, record);
      else if (step.action === "delete") now.delete(at);
      out.push({ key: write.key, collection: step.collection, action: step.action, id: step.id, record, before,
                 data: step.data, landed: !!write.answer });
    }
  }
  return out;
}

/** The file fields of a create or update with new files, as shown before the gateway has them: the files it keeps
 * (those its data names, as the record before holds them; without names, all of the record before's), then the
 * new ones, each `{name, size, type, $pending: true}` and `$preview` (an object URL) where there is one. */
function pendingFiles(write: Write, data: Json, before: Json | null): Json {
  if (!write.files?.length) return {};
  const out: Json = {};
  for (const field of new Set(write.files.map((file) => file.field))) {
    const held = ((before?.[field] ?? []) as Json[]);
    const named = data[field];
    const kept = Array.isArray(named)
      ? named.filter((entry) => typeof entry === "string"
                              || (!!entry && typeof entry === "object" && !("upload" in entry)))
        .map((entry) => {
          const name = typeof entry === "string" ? entry : (entry as Json).name;
          return held.find((file) => file.name === name) ?? { name };
        })
      : held;
    out[field] = [...kept, ...write.files.filter((file) => file.field === field).map((file) => ({
      name: file.name, size: file.size, type: file.type, $pending: true,
      ...(file.preview ? { $preview: file.preview } : {}) }))];
  }
  return out;
}

/** What a live query shows: what it is asked for, and how the client guesses ahead of the gateway. */
export interface Shape {
  collection: string;
  limit: number;
  /** Its filter, parsed (null: none; "unparsed": one the client cannot read, so it places nothing new). */
  filter: FilterNode | null | "unparsed";
  compare: (a: Json, b: Json) => number;
}

export function shapeOf(args: Json, parse: (text: string) => FilterNode): Shape {
  let filter: Shape["filter"] = null;
  if (typeof args.filter === "string" && args.filter.trim()) {
    try {
      filter = parse(args.filter);
    } catch {
      filter = "unparsed";
    }
  }
  return { collection: String(args.collection), limit: Number(args.limit), filter,
           compare: comparator(String(args.sort ?? "-created")) };
}

/** A query's items with `effects` laid over `server` (its items as the gateway sent them): a new array. Records
 * a write leaves are copies marked `$pending: true`. A landed write the gateway's items already show (at its
 * version or later; a delete: the record is gone) is "echoed": its key and id go into `echoed` and it is laid over
 * this query no more. */
export function overlay(server: readonly Json[], effects: readonly Effect[], shape: Shape, vars: FilterVars,
                        echoed: Set<string>): Json[] {
  const items = [...server];
  const serverAt = new Map(server.map((item) => [String(item.id), item]));
  for (const effect of effects) {
    if (effect.collection !== shape.collection) continue;
    const mark = `${effect.key}\u0000${effect.id}`;
    if (echoed.has(mark)) continue;
    if (effect.landed) {
      const shown = serverAt.get(effect.id);
      const caughtUp = effect.action === "delete" ? !shown
        : !!shown && typeof shown.version === "number" && shown.version >= Number(effect.record?.version);
      if (caughtUp) {
        echoed.add(mark);
        continue;
      }
    }
    const place = items.findIndex((item) => String(item.id) === effect.id);
    if (effect.action === "delete") {
      if (place >= 0) items.splice(place, 1);
      continue;
    }
    const record = effect.record;
    if (!record) continue;   // an update of a record this client holds nowhere
    const matches = shape.filter === null ? true
      : shape.filter === "unparsed" ? "unknown" : decide(shape.filter, record, vars);
    // A record the query held stays where the client cannot tell; a new one enters only where it surely belongs.
    if (matches === "unknown" && place >= 0) {
      items[place] = { ...record, $pending: true };
      continue;
    }
    if (place >= 0) items.splice(place, 1);
    if (matches !== true) continue;
    const marked = { ...record, $pending: true };
    let at = items.findIndex((item) => shape.compare(marked, item) < 0);
    if (at < 0) at = items.length;
    // Past the last record of a full window the gateway may hold others first: only it can tell (a record the
    // query held may stay last).
    if (at >= shape.limit || (at === items.length && place < 0 && server.length >= shape.limit)) continue;
    items.splice(at, 0, marked);
  }
  return items.slice(0, shape.limit);
}

function same(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/** Ops turning `before` into `after` (each a list of records with distinct ids), as the gateway's own diff makes
 * them (hapta/live/window.py): deletes, then each record that is not part of the longest run kept in order
 * inserted or moved after the one before it, then updates in place. */
export function diffItems(before: readonly Json[], after: readonly Json[]): LiveOp<Json>[] {
  const afterIds = new Set(after.map((item) => String(item.id)));
  const ops: LiveOp<Json>[] = before.filter((item) => !afterIds.has(String(item.id)))
    .map((item) => ({ op: "delete" as const, id: String(item.id) }));
  const kept = before.filter((item) => afterIds.has(String(item.id)));
  const oldPlace = new Map(kept.map((item, n) => [String(item.id), n]));
  const oldItem = new Map(kept.map((item) => [String(item.id), item]));
  const staying = new Set(longestRising(after.filter((item) => oldPlace.has(String(item.id)))
    .map((item) => oldPlace.get(String(item.id))!)).map((n) => String(kept[n].id)));
  const current = kept.map((item) => String(item.id));
  const updates: LiveOp<Json>[] = [];
  after.forEach((record, n) => {
    const id = String(record.id);
    if (staying.has(id)) {
      if (!same(oldItem.get(id), record)) updates.push({ op: "update", id, record });
      return;
    }
    if (oldPlace.has(id)) current.splice(current.indexOf(id), 1);
    const index = n === 0 ? 0 : current.indexOf(String(after[n - 1].id)) + 1;
    current.splice(index, 0, id);
    ops.push(oldPlace.has(id) ? { op: "move", id, index, record } : { op: "insert", index, record });
  });
  return [...ops, ...updates];
}

/** The values of a longest strictly increasing subsequence. */
function longestRising(values: number[]): number[] {
  const tails: number[] = [];
  const tailAt: number[] = [];
  const previous: number[] = new Array(values.length).fill(-1);
  values.forEach((value, n) => {
    let low = 0;
    let high = tails.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (tails[middle] < value) low = middle + 1;
      else high = middle;
    }
    tails[low] = value;
    tailAt[low] = n;
    previous[n] = low ? tailAt[low - 1] : -1;
  });
  const out: number[] = [];
  for (let n = tails.length ? tailAt[tails.length - 1] : -1; n !== -1; n = previous[n]) out.push(values[n]);
  return out.reverse();
}
