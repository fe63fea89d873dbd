// The records of one collection as an admin sees them: a filter in the filter language, sort by a column, keyset
// paging, and the rows kept live by a subscription with the same filter; a new record in a form, rows picked for a
// delete together, and the filter's rows exported as CSV or JSON.
import { useEffect, useState } from "preact/hooks";
import type { Change, Page } from "../../../clients/js/src/hapta.ts";
import { describe } from "../gateway.ts";
import { useCall, useHapta, useSettled } from "../hooks.ts";
import type { CollectionInfo, Json, Schema, StoredFile } from "../types.ts";
import { cell, Loading, Problem, when } from "../ui.tsx";
import { RecordPanel } from "./record.tsx";
import { RecordForm } from "./form.tsx";
import { BulkDelete, Export } from "./bulk.tsx";

const PAGE_SIZES = [10, 20, 50, 100];
const MOST_COLUMNS = 8;

export function Records({ detail }: { detail: string }) {
  const schema = useCall((hapta) => hapta.call<Schema>("admin.schema"), []);
  const collections = schema.data?.collections ?? [];
  const chosen = collections.find((c) => c.name === detail) ?? collections[0];
  return (
    <section>
      <Problem error={schema.error} />
      <Loading when={schema.data} failed={schema.error}>
        <div class="tabs" role="tablist">
          {collections.map((c) => (
            <a key={c.name} role="tab" href={`#records/${encodeURIComponent(c.name)}`}
               aria-selected={c === chosen} class={c === chosen ? "current" : undefined}>{c.name}</a>
          ))}
        </div>
        {chosen && <Grid key={chosen.name} collection={chosen} schema={schema.data!} />}
      </Loading>
    </section>
  );
}

/** The columns worth a glance: the id, then the visible fields in declared order. */
function columnsOf(collection: CollectionInfo): string[] {
  const names = collection.fields.filter((f) => !f.hidden).map((f) => f.name);
  return ["id", ...names.filter((n) => n !== "id")].slice(0, MOST_COLUMNS);
}

/** A file field's cell: how many files and their names (the pictures are in the record's panel). */
function fileNames(value: unknown): string {
  const stored = Array.isArray(value) ? (value as StoredFile[]) : [];
  const names = cell(stored.map((f) => f.name).join(", "), 40);
  return stored.length === 0 ? "" : `${stored.length} file${stored.length === 1 ? "" : "s"}: ${names}`;
}

function Grid({ collection, schema }: { collection: CollectionInfo; schema: Schema }) {
  const hapta = useHapta();
  const name = collection.name;
  const [typed, setTyped] = useState("");
  const filter = useSettled(typed.trim(), 300);
  const [sort, setSort] = useState("-created");
  const [perPage, setPerPage] = useState(20);
  // `after` of each page before this one, for one query: another filter, sort or page size starts at page 1 (a
  // cursor is a position in one order; it means nothing in another).
  const query = JSON.stringify([filter, sort, perPage]);
  const [paging, setPaging] = useState<{ query: string; cursors: string[] }>({ query, cursors: [] });
  const cursors = paging.query === query ? paging.cursors : [];
  const setCursors = (change: (now: string[]) => string[]) => setPaging({ query, cursors: change(cursors) });
  const after = cursors.at(-1);
  const [rows, setRows] = useState<Json[]>([]);
  const [fresh, setFresh] = useState<Set<string>>(new Set());
  const [selected, setSelected] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  // Rows ticked for a delete together, on this page of this query: another page starts with none. A picked row
  // deleted elsewhere meanwhile stays picked, and its delete is listed as failed (NOT_FOUND), not silently dropped.
  const [picks, setPicks] = useState<{ at: string; ids: Set<string> }>({ at: "", ids: new Set() });
  const pageKey = JSON.stringify([query, after ?? ""]);
  const picked = picks.at === pageKey ? picks.ids : new Set<string>();
  const setPicked = (change: Set<string> | ((now: Set<string>) => Set<string>)) =>
    setPicks((now) => {
      const ids = now.at === pageKey ? now.ids : new Set<string>();
      return { at: pageKey, ids: typeof change === "function" ? change(ids) : change };
    });

  const page = useCall((h) => h.records(name).list({ filter: filter || undefined, sort, per_page: perPage,
                                                    ...(after ? { after } : {}) }) as Promise<Page<Json>>,
                       [name, filter, sort, perPage, after]);
  useEffect(() => { if (page.data) setRows(page.data.items); }, [page.data]);

  // Live: the same filter as the page, so that only rows this view would show arrive.
  const [live, setLive] = useState<string | null>(null);
  useEffect(() => {
    let stop: (() => Promise<void>) | null = null;
    let ended = false;
    setLive(null);   // until this subscription (on this connection, with this filter) is confirmed
    const heard = (change: Change<Json>) => {
      const id = change.record.id as string;
      setRows((shown) => {
        if (change.action === "delete") return shown.filter((r) => r.id !== id);
        if (shown.some((r) => r.id === id)) return shown.map((r) => (r.id === id ? change.record : r));
        return change.action === "create" && !after ? [change.record, ...shown] : shown;
      });
      setFresh((marked) => new Set(marked).add(id));
    };
    hapta.records<Json>(name).subscribe({ filter: filter || undefined }, heard).then(
      (unsubscribe) => {
        if (ended) unsubscribe().catch(() => undefined);
        else { stop = unsubscribe; setLive("live"); }
      },
      (error) => setLive(`not live: ${describe(error)}`));
    return () => {
      ended = true;
      stop?.().catch(() => undefined);
    };
  }, [hapta, name, filter, after]);

  const columns = columnsOf(collection);
  const files = new Set(collection.fields.filter((f) => f.file).map((f) => f.name));
  // timestamps in the reader's own time (the exact value in the cell's tooltip and the record's JSON)
  const times = new Set(collection.fields.filter((f) => f.kind === "timestamp").map((f) => f.name));
  const sortBy = (column: string) => setSort((now) => (now === column ? `-${column}` : column));
  const arrow = (column: string) => (sort === column ? " ▲" : sort === `-${column}` ? " ▼" : "");
  const record = rows.find((r) => r.id === selected) ?? null;
  return (
    <div class="records" data-records={name}>
      <div class="filter">
        <label for="filter">Filter</label>
        <input id="filter" placeholder={'e.g. public = true && text ~ "hello"'} value={typed} spellcheck={false}
               onInput={(e) => setTyped(e.currentTarget.value)} aria-describedby="filter-error" />
        <span class={`badge ${live === "live" ? "ok" : ""}`} data-live={live === "live"}>{live ?? "…"}</span>
      </div>
      <div id="filter-error"><Problem error={page.error} /></div>
      <div class="bulk">
        <button onClick={() => { setCreating(true); setSelected(null); }} disabled={creating}>New record</button>
        <Export collection={name} filter={filter} sort={sort} />
        <BulkDelete collection={name} picked={[...picked]}
                    onDeleted={(ids) => {
                      setRows((shown) => shown.filter((r) => !ids.includes(r.id as string)));
                      setPicked((now) => new Set([...now].filter((id) => !ids.includes(id))));
                    }} />
      </div>
      {creating && (
        <aside class="panel" data-new-record={name}>
          <header><h3>New record in {name}</h3></header>
          <RecordForm collection={collection} schema={schema} record={null} onCancel={() => setCreating(false)}
                      onSaved={(saved) => {
                        setCreating(false);
                        // it also arrives live (when the filter shows it): keep one row of it
                        setRows((shown) => [saved, ...shown.filter((r) => r.id !== saved.id)]);
                        setSelected(saved.id as string);
                      }} />
        </aside>
      )}
      <table class="grid">
        <thead>
          <tr><th class="pick">
            <input type="checkbox" aria-label="pick every row shown" id="pick-all"
                   checked={rows.length > 0 && rows.every((r) => picked.has(r.id as string))}
                   onChange={(e) => setPicked(e.currentTarget.checked ? new Set(rows.map((r) => r.id as string))
                                                                       : new Set())} />
          </th>{columns.map((c) => (
            <th key={c}><button class="link" onClick={() => sortBy(c)} title="sort">{c}{arrow(c)}</button></th>
          ))}</tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={row.id as string} data-id={row.id as string} onClick={() => setSelected(row.id as string)}
                class={[row.id === selected ? "selected" : "", fresh.has(row.id as string) ? "fresh" : ""].join(" ")}>
              <td class="pick" onClick={(e) => e.stopPropagation()}>
                <input type="checkbox" aria-label={`pick ${row.id as string}`} checked={picked.has(row.id as string)}
                       onChange={(e) => {
                         const on = e.currentTarget.checked;
                         setPicked((now) => {
                           const next = new Set(now);
                           if (on) next.add(row.id as string);
                           else next.delete(row.id as string);
                           return next;
                         });
                       }} />
              </td>
              {columns.map((c) => (
                <td key={c} title={times.has(c) ? String(row[c]) : undefined}>
                  {files.has(c) ? fileNames(row[c]) : times.has(c) ? when(row[c]) : cell(row[c])}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      {page.data && rows.length === 0 && <p class="muted">No records.</p>}
      <div class="pager">
        <button disabled={cursors.length === 0} onClick={() => setCursors((c) => c.slice(0, -1))}>← Previous</button>
        <span class="muted">page {cursors.length + 1}</span>
        <button disabled={!page.data?.next} onClick={() => setCursors((c) => [...c, page.data!.next!])}>Next →</button>
        <label>
          <select id="per-page" value={perPage} onChange={(e) => setPerPage(Number(e.currentTarget.value))}>
            {PAGE_SIZES.map((n) => <option key={n} value={n}>{n}</option>)}
          </select> a page
        </label>
      </div>
      {record && (
        <RecordPanel key={record.id as string} collection={collection} schema={schema} record={record}
                     onClose={() => setSelected(null)}
                     onSaved={(saved) => setRows((shown) => shown.map((r) => (r.id === saved.id ? saved : r)))}
                     onDeleted={(id) => { setRows((shown) => shown.filter((r) => r.id !== id)); setSelected(null); }} />
      )}
    </div>
  );
}
