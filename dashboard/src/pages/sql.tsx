// SQL against the app's database: each statement in its own READ ONLY transaction with a short statement_timeout,
// unless "allow writes" is ticked, which holds for that one statement only (it is unticked after each). The
// answer is a bounded grid; an error is PostgreSQL's own words. Every statement is in the admin log, shown below.
import { useState } from "preact/hooks";
import { HaptaError } from "../gateway.ts";
import { useCall, useHapta } from "../hooks.ts";
import { cell, Loading, Problem, when } from "../ui.tsx";

interface Answer { columns: { name: string; type: string }[]; rows: unknown[][]; rows_count: number | null;
                   cut: boolean; status: string; write: boolean; ms: number }
interface Logged { id: number; at: number; admin: string; address: string | null; action: string;
                   detail: Record<string, unknown> }

export function Sql() {
  const hapta = useHapta();
  const [text, setText] = useState("SELECT now()");
  const [write, setWrite] = useState(false);
  const [answer, setAnswer] = useState<Answer | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [running, setRunning] = useState(false);
  const log = useCall((h) => h.call<{ items: Logged[] }>("admin.log", { limit: 20 }), []);
  const run = async () => {
    setRunning(true);
    setError(null);
    try {
      setAnswer(await hapta.call<Answer>("admin.sql", { sql: text, write }));
    } catch (failure) {
      setAnswer(null);
      const details = failure instanceof HaptaError ? failure.details as Record<string, unknown> | undefined : undefined;
      const extra = [details?.detail && `DETAIL: ${details.detail}`, details?.hint && `HINT: ${details.hint}`]
        .filter(Boolean).join("\n");
      setError(failure instanceof HaptaError
        ? `${failure.message}${details?.sqlstate ? ` (SQLSTATE ${details.sqlstate})` : ""}${extra ? "\n" + extra : ""}`
        : String(failure));
    }
    setWrite(false);   // the switch is for one statement: the next one reads only again
    setRunning(false);
    log.reload();
  };
  return (
    <section>
      <form id="sql-form" onSubmit={(e) => { e.preventDefault(); run(); }}>
        <textarea id="sql" rows={6} value={text} spellcheck={false} onInput={(e) => setText(e.currentTarget.value)}
                  onKeyDown={(e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); } }} />
        <div class="actions">
          <button type="submit" class="primary" id="sql-run" disabled={running || !text.trim()}>Run</button>
          <label class={write ? "confirm" : undefined}><input type="checkbox" id="sql-write" checked={write}
            onChange={(e) => setWrite(e.currentTarget.checked)} /> allow writes for this statement</label>
          <span class="muted">Read-only and stopped after a few seconds unless ticked; recorded with your name.</span>
        </div>
      </form>
      {error && <p class="error" id="sql-error" role="alert">{error}</p>}
      {answer && <>
        <p id="sql-status" class="muted">{answer.status}{answer.cut ? " (cut off: more rows than shown)" : ""} ·
          {" "}{answer.ms} ms{answer.write ? " · write" : " · read-only"}</p>
        {answer.columns.length > 0 && <div class="scroll"><table id="sql-result">
          <thead><tr>{answer.columns.map((c, i) => <th key={i}>{c.name} <span class="badge">{c.type}</span></th>)}</tr></thead>
          <tbody>{answer.rows.map((row, r) => <tr key={r}>{row.map((v, i) => <td key={i}>{cell(v, 120)}</td>)}</tr>)}</tbody>
        </table></div>}
      </>}
      <h3>Admin log</h3>
      <Problem error={log.error} />
      <Loading when={log.data} failed={log.error}>
        <table id="admin-log">
          <thead><tr><th>at</th><th>admin</th><th>address</th><th>action</th><th>detail</th></tr></thead>
          <tbody>{log.data?.items.map((l) => (
            <tr key={l.id}><td>{when(l.at)}</td><td>{l.admin}</td><td>{l.address ?? "—"}</td><td>{l.action}</td>
              <td><code>{cell(l.detail, 160)}</code></td></tr>))}</tbody>
        </table>
      </Loading>
    </section>
  );
}
