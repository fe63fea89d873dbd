// What the Records grid does to many rows at once: delete the rows picked (after a confirm; each its own
// records.delete, so that one refused does not keep the others, and what failed is listed with its reason), and
// export every row of the current filter as CSV or JSON (bounded: export.ts), downloaded from a blob: URL.
import { useState } from "preact/hooks";
import { describe } from "../gateway.ts";
import { useHapta } from "../hooks.ts";
import { allRows, MOST_ROWS, toCsv } from "../export.ts";
import type { Json } from "../types.ts";
import { Problem } from "../ui.tsx";

// Deletes in flight at once: the gateway bounds a connection's requests in flight, and the grid's live rows
// share this connection.
const AT_ONCE = 10;

export function BulkDelete({ collection, picked, onDeleted }: {
  collection: string; picked: string[]; onDeleted: (ids: string[]) => void;
}) {
  const hapta = useHapta();
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [failed, setFailed] = useState<[string, string][]>([]);

  const remove = async () => {
    setBusy(true);
    setFailed([]);
    const done: string[] = [];
    const refused: [string, string][] = [];
    for (let at = 0; at < picked.length; at += AT_ONCE) {
      const some = picked.slice(at, at + AT_ONCE);
      const outcomes = await Promise.allSettled(some.map((id) => hapta.records(collection).delete(id)));
      outcomes.forEach((outcome, i) => {
        if (outcome.status === "fulfilled") done.push(some[i]);
        else refused.push([some[i], describe(outcome.reason)]);
      });
    }
    onDeleted(done);
    setFailed(refused);
    setBusy(false);
    setConfirming(false);
  };

  return (
    <>
      {picked.length > 0 && (confirming ? (
        <span class="confirm" data-bulk-confirm>Delete {picked.length} record{picked.length === 1 ? "" : "s"}?
          <button class="danger" onClick={remove} disabled={busy}>Yes, delete them</button>
          <button onClick={() => setConfirming(false)} disabled={busy}>No</button>
        </span>
      ) : (
        <button class="danger" onClick={() => setConfirming(true)}>Delete {picked.length} picked</button>
      ))}
      {failed.length > 0 && (
        <div class="error" role="alert" data-bulk-failed>
          Not deleted:
          <ul>{failed.map(([id, why]) => <li key={id} data-failed={id}><code>{id}</code>: {why}</li>)}</ul>
        </div>
      )}
    </>
  );
}

export function Export({ collection, filter, sort }: { collection: string; filter: string; sort: string }) {
  const hapta = useHapta();
  const [busy, setBusy] = useState(false);
  const [note, setNote] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const run = async (format: "csv" | "json") => {
    setBusy(true);
    setError(null);
    setNote(null);
    try {
      const { rows, cut } = await allRows((after, perPage) => hapta.records<Json>(collection).list({
        filter: filter || undefined, sort, per_page: perPage, ...(after ? { after } : {}) }));
      const body = format === "csv" ? toCsv(rows) : JSON.stringify(rows, null, 2);
      const blob = new Blob([body], { type: format === "csv" ? "text/csv;charset=utf-8" : "application/json" });
      const url = URL.createObjectURL(blob);
      const link = document.createElement("a");
      link.href = url;
      link.download = `${collection}-${new Date().toISOString().replace(/[:.]/g, "-")}.${format}`;
      link.click();
      // the download has its own copy once it started; the URL is let go a little later
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      setNote(cut ? `${rows.length} rows: cut at ${MOST_ROWS.toLocaleString()}; narrow the filter for the rest`
                  : `${rows.length} row${rows.length === 1 ? "" : "s"} exported`);
    } catch (failure) {
      setError(describe(failure));
    } finally {
      setBusy(false);
    }
  };

  return (
    <span class="export">
      Export <button onClick={() => run("csv")} disabled={busy}>CSV</button>
      <button onClick={() => run("json")} disabled={busy}>JSON</button>
      {note && <span class="muted" data-export-note> {note}</span>}
      <Problem error={error} />
    </span>
  );
}
