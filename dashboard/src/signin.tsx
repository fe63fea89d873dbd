// The first screen: an admin account's email, password and authenticator code (a session this tab keeps until it
// closes or signs out), or the admin key (typed each time the page loads: it is never stored).
import { useState } from "preact/hooks";
import { connectAsAdmin, describe, signInAsAdmin, storedSession, type Credential, type Hapta } from "./gateway.ts";

export type SignedIn = (hapta: Hapta, credential: Credential, who: string | null) => void;

export function SignIn({ onSignedIn }: { onSignedIn: SignedIn }) {
  return (
    <main class="signin">
      <h1>Hapta admin</h1>
      <AccountForm onSignedIn={onSignedIn} />
      <KeyForm onSignedIn={onSignedIn} />
    </main>
  );
}

/** A form's busy state, its error and which attempt that error answers (a person, and the tests, can tell). */
function useAttempt() {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [attempts, setAttempts] = useState(0);
  const attempt = async (event: Event, work: () => Promise<void>) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setAttempts((n) => n + 1);
    try {
      await work();
    } catch (failure) {
      setError(describe(failure));
      setBusy(false);
    }
  };
  return { error, busy, attempts, attempt };
}

function AccountForm({ onSignedIn }: { onSignedIn: SignedIn }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const { error, busy, attempts, attempt } = useAttempt();
  const submit = (event: Event) => attempt(event, async () => {
    const { hapta, session } = await signInAsAdmin(email, password, code.replace(/\s/g, ""));
    storedSession.set(session.token);
    onSignedIn(hapta, { token: session.token }, session.admin.email);
  });
  return (
    <form onSubmit={submit} id="signin-account">
      <h2>Admin account</h2>
      <label for="admin-email">Email</label>
      <input id="admin-email" type="email" autocomplete="username" value={email} required
             onInput={(e) => setEmail(e.currentTarget.value)} />
      <label for="admin-password">Password</label>
      <input id="admin-password" type="password" autocomplete="current-password" value={password} required
             onInput={(e) => setPassword(e.currentTarget.value)} />
      <label for="admin-code">Code from the authenticator app</label>
      <input id="admin-code" inputMode="numeric" autocomplete="one-time-code" pattern="[0-9 ]{6,7}" value={code}
             onInput={(e) => setCode(e.currentTarget.value)} />
      <button type="submit" disabled={busy}>{busy ? "Signing in…" : "Sign in"}</button>
      {error && <p class="error" role="alert" data-attempt={attempts}>{error}</p>}
      <p class="hint">A reload keeps you signed in; closing the tab or signing out ends it.</p>
    </form>
  );
}

function KeyForm({ onSignedIn }: { onSignedIn: SignedIn }) {
  const [key, setKey] = useState("");
  const { error, busy, attempts, attempt } = useAttempt();
  const submit = (event: Event) => attempt(event, async () => {
    onSignedIn(await connectAsAdmin({ key }), { key }, null);
  });
  return (
    <form onSubmit={submit} id="signin">
      <h2>Admin key</h2>
      <label for="admin-key">Admin key</label>
      <input id="admin-key" type="password" autocomplete="off" value={key} required
             onInput={(e) => setKey(e.currentTarget.value)} />
      <button type="submit" disabled={busy}>{busy ? "Signing in…" : "Sign in"}</button>
      {error && <p class="error" role="alert" data-attempt={attempts}>{error}</p>}
      <p class="hint">The key is kept in this tab's memory only: a reload asks for it again.</p>
    </form>
  );
}
