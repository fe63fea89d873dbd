// The first screen: the admin key, typed each time the page loads (it is never stored).
import { useState } from "preact/hooks";
import { connectAsAdmin, describe, type Hapta } from "./gateway.ts";

export function SignIn({ onSignedIn }: { onSignedIn: (hapta: Hapta, key: string) => void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [attempts, setAttempts] = useState(0);   // which try an error answers (a person, and the tests, can tell)
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setAttempts((n) => n + 1);
    try {
      onSignedIn(await connectAsAdmin(key), key);
    } catch (failure) {
      setError(describe(failure));
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <form onSubmit={submit} id="signin">
        <h1>Hapta admin</h1>
        <label for="admin-key">Admin key</label>
        <input id="admin-key" type="password" autocomplete="off" value={key} required
               onInput={(e) => setKey(e.currentTarget.value)} />
        <button type="submit" disabled={busy}>{busy ? "Signing in…" : "Sign in"}</button>
        {error && <p class="error" role="alert" data-attempt={attempts}>{error}</p>}
        <p class="hint">The key is kept in this tab's memory only: a reload asks for it again.</p>
      </form>
    </main>
  );
}
