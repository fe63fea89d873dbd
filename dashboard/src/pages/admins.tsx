// Admins: the people who may sign in here, who is signed in now, and a new account, a deleted one or a new second
// factor. A new factor's secret is shown once, here, to be handed to its owner; the gateway keeps no way to show it
// again.
import { useState } from "preact/hooks";
import { describe } from "../gateway.ts";
import { useCall, useHapta } from "../hooks.ts";
import { Loading, Problem, when } from "../ui.tsx";

interface AdminRow { email: string; created: unknown; last_sign_in: unknown; totp: boolean; sessions: number }
interface Factor { secret: string; uri: string }

export function Admins(_: { detail: string }) {
  const hapta = useHapta();
  const admins = useCall((h) => h.call<{ items: AdminRow[]; you: string | null }>("admins.list"), []);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [factor, setFactor] = useState<{ email: string; factor: Factor } | null>(null);
  const [confirming, setConfirming] = useState<string | null>(null);

  const act = async (work: () => Promise<string>) => {
    setError(null);
    setDone(null);
    try {
      setDone(await work());
      admins.reload();
    } catch (failure) {
      setError(describe(failure));
    }
  };
  const remove = (email: string) => act(async () => {
    setConfirming(null);
    await hapta.call("admins.delete", { email });
    return `deleted ${email}`;
  });
  const reset = (email: string) => act(async () => {
    setFactor({ email, factor: await hapta.call<Factor>("admins.totp.reset", { email }) });
    return `new second factor for ${email}; their other sessions ended`;
  });

  const items = admins.data?.items ?? [];
  const you = admins.data?.you ?? null;
  return (
    <section>
      <p id="signed-in-as">
        {admins.data === undefined ? "" : you ? <>Signed in as <strong>{you}</strong></>
          : <>Signed in with the <strong>admin key</strong> (no account)</>}
      </p>
      <Problem error={admins.error ?? error} />
      {done && <p class="ok" role="status">{done}</p>}
      {factor && <FactorShown {...factor} onDone={() => setFactor(null)} />}
      <Loading when={admins.data} failed={admins.error}>
        <table id="admins">
          <thead>
            <tr><th>email</th><th>second factor</th><th>live sessions</th><th>last sign-in</th><th>created</th><th /></tr>
          </thead>
          <tbody>
            {items.map((a) => (
              <tr key={a.email} data-admin={a.email} class={a.email === you ? "selected" : undefined}>
                <td>{a.email}{a.email === you && <span class="badge ok">you</span>}</td>
                <td>{a.totp ? "yes" : <span class="badge warn">none</span>}</td>
                <td>{a.sessions}</td><td>{when(a.last_sign_in)}</td><td>{when(a.created)}</td>
                <td><div class="actions">
                  <button onClick={() => reset(a.email)}>Reset second factor</button>
                  {confirming === a.email ? (
                    <span class="confirm">Delete {a.email}?
                      <button class="danger" onClick={() => remove(a.email)}>Yes, delete</button>
                      <button onClick={() => setConfirming(null)}>No</button>
                    </span>
                  ) : (
                    // the gateway refuses these two as well; the buttons say so before anyone asks
                    <button class="danger" disabled={a.email === you || items.length < 2}
                            title={a.email === you ? "another admin can delete your account"
                              : items.length < 2 ? "the last admin account stays" : undefined}
                            onClick={() => setConfirming(a.email)}>Delete</button>
                  )}
                </div></td>
              </tr>
            ))}
          </tbody>
        </table>
        {items.length === 0 && <p class="muted">No admin accounts yet: create one below, or with
          <code> hapta admin create --email …</code></p>}
      </Loading>
      <CreateAdmin onCreated={(email, made) => {
        if (made) setFactor({ email, factor: made });
        setDone(`created ${email}`);
        admins.reload();
      }} />
    </section>
  );
}

function CreateAdmin({ onCreated }: { onCreated: (email: string, factor: Factor | null) => void }) {
  const hapta = useHapta();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [totp, setTotp] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    try {
      const made = await hapta.call<{ email: string; totp: Factor | null }>("admins.create", { email, password, totp });
      setEmail("");
      setPassword("");
      onCreated(made.email, made.totp);
    } catch (failure) {
      setError(describe(failure));
    }
  };
  return (
    <form id="admin-create" class="panel" onSubmit={submit}>
      <h3>New admin</h3>
      <div class="actions">
        <input id="new-admin-email" type="email" placeholder="email" autocomplete="off" value={email} required
               onInput={(e) => setEmail(e.currentTarget.value)} />
        <input id="new-admin-password" type="password" placeholder="password (12 characters or more)"
               autocomplete="new-password" value={password} required
               onInput={(e) => setPassword(e.currentTarget.value)} />
        <label><input type="checkbox" checked={totp} onChange={(e) => setTotp(e.currentTarget.checked)} /> second
          factor (production requires it)</label>
        <button type="submit" class="primary">Create</button>
      </div>
      <Problem error={error} />
    </form>
  );
}

/** A factor's secret, shown this once: to be added to its owner's authenticator app. */
function FactorShown({ email, factor, onDone }: { email: string; factor: Factor; onDone: () => void }) {
  return (
    <div class="factor" id="factor" data-for={email}>
      <p>Second factor of <strong>{email}</strong>: add it to their authenticator app now. It is not shown again.</p>
      <p>Secret: <code id="factor-secret">{factor.secret}</code></p>
      <p>URI: <code id="factor-uri">{factor.uri}</code></p>
      <button onClick={onDone}>Done</button>
    </div>
  );
}
