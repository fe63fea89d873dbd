// The request log (admin.logs: every process's, in PostgreSQL) filtered by op, collection, who, address and
// outcome, its requests over time (admin.logs.chart: answered and failed per bucket), one request's row in full;
// and beside it this process's recent warnings and errors (admin.warnings). Polled every 2 s (warnings every 5 s).
// A row names what a request did, never what it carried: the gateway keeps no args, bodies or tokens.
import { useState } from "preact/hooks";
import { useCall, useSettled } from "../hooks.ts";
import { Loading, Problem, when } from "../ui.tsx";

interface RequestRow { id: number; at: number; op: string; collection: string | null; principal: string; role: string;
                       address: string | null; code: string; duration_ms: number; pos: number | null }
interface Page { enabled: boolean; items: RequestRow[]; next: number | null }
interface Bucket { at: number; ok: number; errors: number }
interface Chart { bucket: number; since: number; until: number; buckets: Bucket[] }
interface Warning { at: number; level: string; logger: string; message: string; exception?: string }

// The spans the chart and the list cover, each with a bucket that gives the chart 30 to 60 bars.
const SPANS = [
  { key: "15m", label: "last 15 minutes", seconds: 900, bucket: 30 },
  { key: "1h", label: "last hour", seconds: 3600, bucket: 60 },
  { key: "24h", label: "last 24 hours", seconds: 86400, bucket: 1800 },
  { key: "7d", label: "last 7 days", seconds: 7 * 86400, bucket: 4 * 3600 },
] as const;

const FIELDS = [
  { key: "op", label: "op", hint: "records.create" },
  { key: "collection", label: "collection", hint: "posts" },
  { key: "principal", label: "who", hint: "a user id, admin key" },
  { key: "address", label: "address", hint: "203.0.113.7" },
  { key: "code", label: "code", hint: "NOT_FOUND" },
] as const;

type Typed = Record<(typeof FIELDS)[number]["key"], string>;

/** Only what was typed: an empty box filters nothing. */
function asked(typed: Typed, outcome: string): Record<string, string> {
  const filter: Record<string, string> = {};
  for (const { key } of FIELDS) if (typed[key].trim()) filter[key] = typed[key].trim();
  if (outcome) filter.outcome = outcome;
  return filter;
}

export function Logs() {
  const [typed, setTyped] = useState<Typed>({ op: "", collection: "", principal: "", address: "", code: "" });
  const [outcome, setOutcome] = useState("");
  const [spanKey, setSpanKey] = useState<string>("1h");
  const [older, setOlder] = useState<number[]>([]);   // the `before` of each page we went back through
  const [chosen, setChosen] = useState<RequestRow | null>(null);
  const span = SPANS.find((s) => s.key === spanKey)!;
  // settled as text: an equal string is the same value, so a redraw does not start the wait again
  const key = useSettled(JSON.stringify([asked(typed, outcome), spanKey]), 300);
  const filter: Record<string, string> = JSON.parse(key)[0];
  const before = older.at(-1);
  const rows = useCall((h) => h.call<Page>("admin.logs", {
    ...filter, since: Date.now() / 1000 - span.seconds, ...(before ? { before } : {}), limit: 50,
  }), [key, before], before ? 0 : 2000);   // an older page holds still; the newest follows what comes in
  const chart = useCall((h) => h.call<Chart>("admin.logs.chart", {
    ...filter, since: Date.now() / 1000 - span.seconds, bucket: span.bucket,
  }), [key], 2000);
  const warnings = useCall((h) => h.call<{ process: string; warnings: Warning[] }>("admin.warnings", { limit: 50 }),
                           [], 5000);
  const change = (field: keyof Typed, value: string) => {
    setTyped({ ...typed, [field]: value });
    setOlder([]);
  };
  return (
    <div class="logs">
      <section>
        <form class="log-filter" id="log-filter" onSubmit={(e) => e.preventDefault()}>
          {FIELDS.map(({ key, label, hint }) => (
            <label key={key}>{label}
              <input id={`log-${key}`} value={typed[key]} placeholder={hint}
                     onInput={(e) => change(key, e.currentTarget.value)} />
            </label>
          ))}
          <label>outcome
            <select id="log-outcome" value={outcome} onChange={(e) => { setOutcome(e.currentTarget.value); setOlder([]); }}>
              <option value="">all</option><option value="ok">ok</option><option value="error">errors</option>
            </select>
          </label>
          <label>when
            <select id="log-span" value={spanKey} onChange={(e) => { setSpanKey(e.currentTarget.value); setOlder([]); }}>
              {SPANS.map((s) => <option key={s.key} value={s.key}>{s.label}</option>)}
            </select>
          </label>
        </form>
        <Problem error={chart.error} />
        {chart.data && <Bars chart={chart.data} />}
        <Problem error={rows.error} />
        <Loading when={rows.data} failed={rows.error}>
          {rows.data && !rows.data.enabled && (
            <p class="warn">The request log is off (<code>App.request_log.enabled</code>): no new rows are kept.</p>
          )}
          <table class="grid" id="requests">
            <thead><tr><th>time</th><th>op</th><th>collection</th><th>who</th><th>address</th><th>code</th>
              <th>ms</th><th>pos</th></tr></thead>
            <tbody>
              {rows.data?.items.map((r) => (
                <tr key={r.id} data-request={r.id} data-op={r.op} onClick={() => setChosen(r)}
                    class={[r.code !== "OK" && "bad", chosen?.id === r.id && "selected"].filter(Boolean).join(" ")
                           || undefined}>
                  <td class="time">{moment(r.at)}</td><td><code>{r.op}</code></td><td>{r.collection ?? "—"}</td>
                  <td><code>{r.principal}</code></td><td>{r.address ?? "—"}</td><td>{r.code}</td>
                  <td>{r.duration_ms.toFixed(1)}</td><td>{r.pos ?? "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {rows.data?.items.length === 0 && <p class="muted">No request matches.</p>}
          <div class="pager">
            <button disabled={older.length === 0} onClick={() => setOlder(older.slice(0, -1))}>Newer</button>
            <button id="log-older" disabled={!rows.data?.next}
                    onClick={() => rows.data?.next && setOlder([...older, rows.data.next])}>Older</button>
          </div>
        </Loading>
        {chosen && (
          <div class="panel" id="request-detail">
            <header><h4>Request {chosen.id}</h4><button class="link" onClick={() => setChosen(null)}>close</button></header>
            <dl class="facts">
              <dt>time</dt><dd>{when(chosen.at)}</dd>
              <dt>op</dt><dd><code>{chosen.op}</code></dd>
              <dt>collection</dt><dd>{chosen.collection ?? "—"}</dd>
              <dt>who</dt><dd><code>{chosen.principal}</code> ({chosen.role})</dd>
              <dt>address</dt><dd>{chosen.address ?? "—"}</dd>
              <dt>outcome</dt><dd class={chosen.code === "OK" ? "ok" : "error"}>{chosen.code}</dd>
              <dt>duration</dt><dd>{chosen.duration_ms.toFixed(2)} ms</dd>
              <dt>position</dt><dd>{chosen.pos ?? "—"}</dd>
            </dl>
          </div>
        )}
      </section>
      <aside>
        <h3>Warnings and errors {warnings.data && <span class="muted">of process {warnings.data.process}</span>}</h3>
        <Problem error={warnings.error} />
        <Loading when={warnings.data} failed={warnings.error}>
          {warnings.data?.warnings.length === 0 && <p class="muted">None since this process started.</p>}
          <ul class="list" id="warnings">
            {warnings.data?.warnings.map((w, i) => (
              <li key={`${w.at}-${i}`} data-level={w.level}>
                <div><span class={w.level === "WARNING" ? "badge" : "badge bad"}>{w.level}</span>
                  <span class="muted">{when(w.at)} · {w.logger}</span></div>
                <div class="message">{w.message}</div>
                {w.exception && <details><summary>traceback</summary><pre class="log">{w.exception}</pre></details>}
              </li>
            ))}
          </ul>
        </Loading>
      </aside>
    </div>
  );
}

/** A row's time: the time of day within the last day, else the date and time. */
function moment(at: number): string {
  const date = new Date(at * 1000);
  return Date.now() - date.getTime() < 86_400_000 ? date.toLocaleTimeString() : date.toLocaleString();
}

/** Requests per bucket as stacked bars, answered below and failed on top, from `since` to `until` (SVG attributes,
 * no style attributes: the CSP holds). */
function Bars({ chart, width = 720, height = 110 }: { chart: Chart; width?: number; height?: number }) {
  const count = Math.max(1, Math.ceil((chart.until - chart.since) / chart.bucket));
  const first = Math.floor(chart.since / chart.bucket) * chart.bucket;
  const top = Math.max(1, ...chart.buckets.map((b) => b.ok + b.errors));
  const slot = width / (count + 1);
  const scale = (n: number) => (n / top) * (height - 14);
  const total = chart.buckets.reduce((sum, b) => [sum[0] + b.ok, sum[1] + b.errors], [0, 0]);
  return (
    <figure class="chart">
      <svg id="requests-chart" width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img"
           aria-label={`${total[0]} answered, ${total[1]} failed; at most ${top} per ${chart.bucket} s`}>
        {chart.buckets.map((b) => {
          const x = ((b.at - first) / chart.bucket) * slot;
          const ok = scale(b.ok), bad = scale(b.errors);
          return (
            <g key={b.at} data-at={b.at} data-ok={b.ok} data-errors={b.errors}>
              <title>{`${when(b.at)}: ${b.ok} ok, ${b.errors} errors`}</title>
              <rect class="bar-ok" x={x} y={height - ok} width={Math.max(1, slot - 1)} height={ok} />
              <rect class="bar-error" x={x} y={height - ok - bad} width={Math.max(1, slot - 1)} height={bad} />
            </g>
          );
        })}
      </svg>
      <figcaption class="muted">
        <span id="chart-ok">{total[0]}</span> answered, <span id="chart-errors">{total[1]}</span> failed, per
        {" "}{chart.bucket < 120 ? `${chart.bucket} s` : `${chart.bucket / 60} min`}; up to {top} in one
      </figcaption>
    </figure>
  );
}
