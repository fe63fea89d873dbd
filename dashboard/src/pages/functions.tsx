// The hook workers (hooks.status) and the app's server functions: their runs with outcome, time and log lines,
// and the changes an @on function gave up on, which can be run again.
import { useState } from "preact/hooks";
import { describe } from "../gateway.ts";
import { useCall, useHapta } from "../hooks.ts";
import type { Json } from "../types.ts";
import { cell, JsonView, Loading, Problem, when } from "../ui.tsx";

interface FunctionRow { name: string; triggers: string[]; allow: string | null; timeout: number; admin: boolean;
                        file: string; last_run: { at: unknown; outcome: string | null } | null; dead: number }
interface Run { id: number; trigger: string; started: unknown; finished: unknown; duration_ms: number | null;
                outcome: string | null; message: string | null; logs: unknown[] }
interface Dead { id: number; position: number; change: Json; error: string; at: unknown }

export function Functions({ detail }: { detail: string }) {
  const hooks = useCall((h) => h.call<Json>("hooks.status"), [], 2000);
  const list = useCall((h) => h.call<{ functions: FunctionRow[] }>("functions.list"), [], 2000);
  return (
    <section>
      <h3>Hook workers</h3>
      <Problem error={hooks.error} />
      <Loading when={hooks.data} failed={hooks.error}>
        <div class="figures small" id="hook-workers">
          {Object.entries(hooks.data ?? {}).filter(([, value]) => typeof value !== "object").map(([name, value]) => (
            <div class="figure" key={name}><div class="label">{name}</div><div class="value">{cell(value, 40)}</div></div>
          ))}
        </div>
        <Hooks hooks={(hooks.data?.hooks ?? {}) as Record<string, string[]>} />
      </Loading>
      <h3>Functions</h3>
      <Problem error={list.error} />
      <Loading when={list.data} failed={list.error}>
        <table id="functions">
          <thead><tr><th>name</th><th>triggers</th><th>last run</th><th>dead</th></tr></thead>
          <tbody>
            {list.data?.functions.map((f) => (
              <tr key={f.name} data-function={f.name} class={f.name === detail ? "selected" : undefined}>
                <td><a href={`#functions/${encodeURIComponent(f.name)}`}>{f.name}</a></td>
                <td>{f.triggers.join(" · ")}</td>
                <td>{f.last_run ? `${f.last_run.outcome ?? "running"} ${when(f.last_run.at)}` : "—"}</td>
                <td>{f.dead || ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {list.data?.functions.length === 0 && <p class="muted">This app has no functions.</p>}
      </Loading>
      {detail && <FunctionDetail key={detail} name={detail} />}
    </section>
  );
}

/** Which hooks each collection has (rules/<collection>.py). */
function Hooks({ hooks }: { hooks: Record<string, string[]> }) {
  const entries = Object.entries(hooks);
  if (entries.length === 0) return <p class="muted">No hooks.</p>;
  return (
    <table id="hooks">
      <thead><tr><th>collection</th><th>hooks</th></tr></thead>
      <tbody>
        {entries.map(([collection, names]) => (
          <tr key={collection}><td><code>{collection}</code></td>
            <td>{(Array.isArray(names) ? names : [String(names)]).map((n) => <span class="badge" key={n}>{n}</span>)}</td></tr>
        ))}
      </tbody>
    </table>
  );
}

function FunctionDetail({ name }: { name: string }) {
  const hapta = useHapta();
  // both are read again every 2 s: a change's run, its retries and its dead letter arrive while one looks
  const runs = useCall((h) => h.call<{ runs: Run[] }>("functions.runs", { name }), [name], 2000);
  const dead = useCall((h) => h.call<{ dead: Dead[] }>("functions.dead", { name }), [name], 2000);
  const [retried, setRetried] = useState<string | null>(null);
  const retry = async (id: number) => {
    try {
      const { outcome } = await hapta.call<{ outcome: string }>("functions.retry", { id });
      setRetried(`dead letter ${id}: ${outcome}`);
    } catch (failure) {
      setRetried(`dead letter ${id}: ${describe(failure)}`);
    }
    dead.reload();
  };
  return (
    <div class="detail">
      <h3>{name}: runs</h3>
      <Problem error={runs.error} />
      <Loading when={runs.data} failed={runs.error}>
        <table id="runs">
          <thead><tr><th>started</th><th>trigger</th><th>outcome</th><th>ms</th><th>message and log</th></tr></thead>
          <tbody>
            {runs.data?.runs.map((r) => (
              <tr key={r.id} class={r.outcome && r.outcome !== "ok" ? "bad" : undefined}>
                <td>{when(r.started)}</td><td>{r.trigger}</td><td>{r.outcome ?? "running"}</td>
                <td>{r.duration_ms ?? "—"}</td>
                <td>{r.message && <div>{r.message}</div>}
                  {r.logs.length > 0 && <pre class="log">{r.logs.map((l) => cell(l, 300)).join("\n")}</pre>}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {runs.data?.runs.length === 0 && <p class="muted">No recorded runs.</p>}
      </Loading>
      <h3>{name}: dead letters</h3>
      <Problem error={dead.error} />
      {retried && <p role="status">{retried}</p>}
      <Loading when={dead.data} failed={dead.error}>
        {dead.data?.dead.length === 0 && <p class="muted">None.</p>}
        {dead.data?.dead.map((d) => (
          <article class="card dead" key={d.id}>
            <p>#{d.id} at {when(d.at)} (position {d.position}): <span class="error">{d.error}</span></p>
            <JsonView value={d.change} />
            <button onClick={() => retry(d.id)}>Run again</button>
          </article>
        ))}
      </Loading>
    </div>
  );
}
