// Users: find one by email or username, make one, act on an account (account.tsx), see their sessions (devices),
// end one or all of them, and look at the app through their eyes.
import { useState } from "preact/hooks";
import type { Page } from "../../../clients/js/src/hapta.ts";
import { quoted } from "../filter.ts";
import { describe } from "../gateway.ts";
import { useCall, useHapta, useSettled } from "../hooks.ts";
import type { Json } from "../types.ts";
import { nameOf } from "../names.tsx";
import { Loading, Problem, when } from "../ui.tsx";
import { AccountActions, NewUser } from "./account.tsx";
import { Impersonation } from "./impersonate.tsx";

export function Users({ detail }: { detail: string }) {
  const [typed, setTyped] = useState("");
  const search = useSettled(typed.trim(), 300);
  const found = useCall((hapta) => hapta.records<Json>("users").list({
    filter: search ? `email ~ ${quoted(search)} || username ~ ${quoted(search)}` : undefined,
    sort: "-created", per_page: 50,
  }) as Promise<Page<Json>>, [search]);
  const chosen = detail || null;
  const show = (id: string | null) => { location.hash = id ? `#users/${encodeURIComponent(id)}` : "#users"; };
  return (
    <section class="split">
      <div>
        <NewUser onCreated={(user) => { found.reload(); show(user.id as string); }} />
        <input id="user-search" type="search" placeholder="email or username" value={typed}
               onInput={(e) => setTyped(e.currentTarget.value)} />
        <Problem error={found.error} />
        <Loading when={found.data} failed={found.error}>
          <ul class="list" id="users">
            {found.data?.items.map((user) => (
              <li key={user.id as string} data-user={user.id as string}
                  class={user.id === chosen ? "selected" : undefined}>
                <a href={`#users/${encodeURIComponent(user.id as string)}`}>
                  <strong>{(user.username as string) || "—"}</strong> <span class="muted">{user.email as string}</span>
                </a>
              </li>
            ))}
          </ul>
        </Loading>
      </div>
      {chosen && <UserDetail key={chosen} user={chosen} onDeleted={() => { found.reload(); show(null); }} />}
    </section>
  );
}

interface SessionRow { id: string; created: unknown; last_seen: unknown; expires_at: unknown }

function UserDetail({ user, onDeleted }: { user: string; onDeleted: () => void }) {
  const hapta = useHapta();
  const account = useCall((h) => h.records<Json>("users").get(user) as Promise<Json>, [user]);
  // every 2 s: a device signing in, or a session ending elsewhere, shows without a reload
  const sessions = useCall((h) => h.call<{ items: SessionRow[] }>("auth.sessions", { user }), [user], 2000);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [impersonating, setImpersonating] = useState(false);
  const revoke = async (args: Json) => {
    setError(null);
    try {
      const { revoked } = await hapta.call<{ revoked: number }>("auth.revoke", args);
      setDone(`revoked ${revoked} session${revoked === 1 ? "" : "s"}`);
      sessions.reload();
    } catch (failure) {
      setError(describe(failure));
    }
  };
  const items = sessions.data?.items ?? [];
  return (
    <div class="detail" data-user-detail={user}>
      <h3 title={user}>{account.data ? nameOf(account.data, user) : user}</h3>
      <Problem error={account.error} />
      {account.data && (
        <>
          <p class="muted">
            {account.data.username ? <>username <strong>{account.data.username as string}</strong> · </> : null}
            id <code>{user}</code> · {account.data.verified ? "verified" : <span class="warn">not verified</span>}
            {" "}· created {when(account.data.created)}
          </p>
          <AccountActions user={account.data} onChanged={() => { account.reload(); sessions.reload(); }}
                          onDeleted={onDeleted} />
        </>
      )}
      <h4>Sessions</h4>
      <Problem error={sessions.error ?? error} />
      {done && <p class="ok" role="status">{done}</p>}
      <Loading when={sessions.data} failed={sessions.error}>
        <table id="sessions">
          <thead><tr><th>session</th><th>created</th><th>last seen</th><th>expires</th><th /></tr></thead>
          <tbody>
            {items.map((s) => (
              <tr key={s.id} data-session={s.id}>
                <td><code>{s.id}</code></td><td>{when(s.created)}</td><td>{when(s.last_seen)}</td>
                <td>{when(s.expires_at)}</td>
                <td><button class="danger" onClick={() => revoke({ session: s.id })}>Revoke</button></td>
              </tr>
            ))}
          </tbody>
        </table>
        {items.length === 0 && <p class="muted">No live sessions.</p>}
      </Loading>
      <div class="actions">
        <button class="danger" disabled={items.length === 0} onClick={() => revoke({ user })}>Revoke all</button>
        <button onClick={() => setImpersonating(true)} disabled={impersonating}>Impersonate</button>
      </div>
      {impersonating && <Impersonation user={user} onEnd={() => setImpersonating(false)} />}
    </div>
  );
}
