// The configured rate limits, and for one user id or client address typed in, how much of each they have left.
import { useState } from "preact/hooks";
import { useCall } from "../hooks.ts";
import { Loading, Problem } from "../ui.tsx";

/** `reset` is seconds until the bucket holds its full burst again. */
function seconds(value: number): string {
  return value < 90 ? `${Math.ceil(value)} s` : `${Math.ceil(value / 60)} min`;
}

interface LimitRow { name: string; rate: number; per: number; burst: number | null; remaining: number | null;
                     reset: number | null }

export function Limits() {
  const [kind, setKind] = useState<"user" | "address">("user");
  const [typed, setTyped] = useState("");
  const [asked, setAsked] = useState<{ user?: string; address?: string }>({});
  const limits = useCall((h) => h.call<{ limits: LimitRow[] }>("admin.limits", asked), [asked.user, asked.address]);
  const whose = asked.user ? `user ${asked.user}` : asked.address ? `address ${asked.address}` : null;
  return (
    <section>
      <form class="inline" id="standing" onSubmit={(e) => {
        e.preventDefault();
        setAsked(typed.trim() ? { [kind]: typed.trim() } : {});
      }}>
        <select value={kind} onChange={(e) => setKind(e.currentTarget.value as "user" | "address")}>
          <option value="user">user id</option>
          <option value="address">address</option>
        </select>
        <input id="standing-of" value={typed} placeholder={kind === "user" ? "a user id" : "e.g. 203.0.113.7"}
               onInput={(e) => setTyped(e.currentTarget.value)} />
        <button type="submit">Show standing</button>
      </form>
      <Problem error={limits.error} />
      <Loading when={limits.data} failed={limits.error}>
        <table id="limits">
          <thead><tr><th>limit</th><th>rate</th><th>burst</th>
            {whose && <><th>remaining</th><th>full again</th></>}</tr></thead>
          <tbody>
            {limits.data?.limits.map((l) => (
              <tr key={l.name} data-limit={l.name}
                  class={l.remaining !== null && l.remaining < (l.burst ?? l.rate) ? "used" : undefined}>
                <td><code>{l.name}</code></td><td>{l.rate} per {l.per} s</td><td>{l.burst ?? l.rate}</td>
                {whose && <><td>{l.remaining ?? "—"}</td><td>{l.reset ? `in ${seconds(l.reset)}` : "—"}</td></>}
              </tr>
            ))}
          </tbody>
        </table>
      </Loading>
      {whose && <p class="muted">Standing of {whose}.</p>}
    </section>
  );
}
