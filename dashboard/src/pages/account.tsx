// What an admin does to an account from the Users page: make one, set its password or mail a reset link, verify its
// email or mail a link for it, remove its second factor, delete it. Each is one admin-only op of the gateway
// (docs/protocol.md, auth.user.*), the same account code as the user's own flow: mails go out through the
// gateway's outbox (SMTP_URL), and what ends sessions closes their sockets with auth.revoked.
import { useState } from "preact/hooks";
import { describe } from "../gateway.ts";
import { useCall, useHapta } from "../hooks.ts";
import type { Json, Schema } from "../types.ts";
import { Problem } from "../ui.tsx";

/** A form that makes an account: with a password, or without one and a mail to choose it. */
export function NewUser({ onCreated }: { onCreated: (user: Json) => void }) {
  const hapta = useHapta();
  const [open, setOpen] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  if (!open) {
    return (
      <div class="actions">
        <button id="new-user" onClick={() => { setOpen(true); setDone(null); }}>New user</button>
        {done && <span class="ok" role="status">{done}</span>}
      </div>
    );
  }
  const submit = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const text = (name: string) => String(form.get(name) ?? "").trim();
    setError(null);
    try {
      const { user, mailed } = await hapta.call<{ user: Json; mailed: boolean }>("auth.user.create", {
        email: text("email"),
        ...(text("username") ? { username: text("username") } : {}),
        ...(form.get("password") ? { password: String(form.get("password")) } : {}),
        verified: form.get("verified") === "on",
      });
      setOpen(false);
      setDone(`created ${user.email as string}${mailed ? ": a mail to choose a password is on its way" : ""}`);
      onCreated(user);
    } catch (failure) {
      setError(describe(failure));
    }
  };
  return (
    <form id="new-user-form" class="panel stacked" onSubmit={submit}>
      <label>Email <input name="email" type="email" required autocomplete="off" /></label>
      <label>Username <input name="username" autocomplete="off" placeholder="optional" /></label>
      <label>Password <input name="password" type="password" autocomplete="new-password"
                             placeholder="empty: mail a link to choose one" /></label>
      <label class="check"><input name="verified" type="checkbox" /> the email is verified</label>
      <Problem error={error} />
      <div class="actions">
        <button class="primary" type="submit">Create</button>
        <button type="button" onClick={() => setOpen(false)}>Cancel</button>
      </div>
    </form>
  );
}

/** The account's own actions, below its name on the Users page. */
export function AccountActions({ user, onChanged, onDeleted }: { user: Json; onChanged: () => void;
                                                                 onDeleted: () => void }) {
  const hapta = useHapta();
  const id = user.id as string;
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [password, setPassword] = useState("");
  const [deleting, setDeleting] = useState(false);
  const act = async (what: () => Promise<string>) => {
    setError(null);
    setDone(null);
    try {
      setDone(await what());
      onChanged();
    } catch (failure) {
      setError(describe(failure));
    }
  };
  const call = <T,>(op: string, args: Json = {}) => hapta.call<T>(op, { user: id, ...args });
  const setNew = (event: Event) => {
    event.preventDefault();
    act(async () => {
      const { revoked } = await call<{ revoked: number }>("auth.user.password", { password });
      setPassword("");
      return `password set; ${revoked} session${revoked === 1 ? "" : "s"} ended`;
    });
  };
  const remove = () => act(async () => {
    await hapta.call("records.delete", { collection: "users", id });
    onDeleted();
    return "deleted";
  });
  const mailable = Boolean(user.email) && !user.anonymous;
  return (
    <div class="account" data-account={id}>
      <div class="actions">
        <button disabled={Boolean(user.verified)} onClick={() => act(async () => {
          await call("auth.user.verify");
          return "the email is verified";
        })}>Mark verified</button>
        <button disabled={!mailable || Boolean(user.verified)} onClick={() => act(async () => {
          const { sent } = await call<{ sent: boolean }>("auth.user.verify.request");
          return sent ? `a verification mail is on its way to ${user.email as string}` : "verified already";
        })}>Send verification mail</button>
        <button disabled={!mailable} onClick={() => act(async () => {
          await call("auth.user.reset");
          return `a reset mail is on its way to ${user.email as string}`;
        })}>Send reset mail</button>
        <button onClick={() => act(async () => {
          const { removed } = await call<{ removed: boolean }>("auth.mfa.reset");
          return removed ? "second factor removed; every session ended" : "no second factor to remove";
        })}>Remove second factor</button>
      </div>
      <form class="actions" id="set-password" onSubmit={setNew}>
        <input type="password" autocomplete="new-password" placeholder="new password" value={password}
               onInput={(e) => setPassword(e.currentTarget.value)} />
        <button type="submit" disabled={!password}>Set password</button>
        <span class="muted">ends every session of the user</span>
      </form>
      <Problem error={error} />
      {done && <p class="ok" role="status">{done}</p>}
      <div class="actions">
        {deleting ? <DeleteConfirm onYes={remove} onNo={() => setDeleting(false)} />
          : <button class="danger" onClick={() => setDeleting(true)}>Delete user</button>}
      </div>
    </div>
  );
}

/** What a delete takes with it, said before it is done: the account's sessions (their sockets are told) and the
 * records that point to it, as the app's foreign keys say (records.delete of a user is a DELETE of its row). The
 * fields that point to users come from the schema. */
function DeleteConfirm({ onYes, onNo }: { onYes: () => void; onNo: () => void }) {
  const schema = useCall((h) => h.call<Schema>("admin.schema"), []);
  const pointing = (schema.data?.collections ?? []).flatMap((c) =>
    c.fields.filter((f) => f.relation === "users").map((f) => `${c.name}.${f.name}`));
  return (
    <div class="confirm" id="delete-user">
      <p>Delete this user? Their sessions end (their clients get <code>auth.revoked</code>), and the records that point
        to them{pointing.length > 0 && <> ({pointing.join(", ")})</>} go as the app's foreign keys say: deleted
        with them for <code>ON DELETE CASCADE</code> (the demo app's all are), emptied for <code>SET NULL</code>;
        any other key refuses the delete (<code>CONFLICT</code>).</p>
      <button class="danger" onClick={onYes}>Yes, delete</button>
      <button onClick={onNo}>No</button>
    </div>
  );
}
