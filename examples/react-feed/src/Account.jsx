// Sign up or sign in (the session is kept in localStorage: a reload stays signed in), and sign out.
import { useHapta } from "@hapta/react";
import { useState } from "react";

export function Account() {
  const hapta = useHapta();
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  async function submit(event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const email = form.get("email"), password = form.get("password"), username = form.get("username");
    const signUp = event.nativeEvent.submitter?.name === "signup";
    setBusy(true);
    setError("");
    try {
      if (signUp) await hapta.auth.register({ email, password, ...(username ? { username } : {}) });
      else await hapta.auth.login(email, password);
    } catch (failure) {
      setError(failure.message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="card" id="account" onSubmit={submit}>
      <input name="email" id="email" type="email" placeholder="email" required autoComplete="email" />
      <input name="password" id="password" type="password" placeholder="password (8 or more characters)" required
             autoComplete="current-password" />
      <input name="username" id="username" placeholder="username, to sign up (optional)" pattern="[a-z0-9_]{2,32}" />
      <div className="row">
        <button name="signup" id="signup" disabled={busy}>Sign up</button>
        <button name="login" id="login" disabled={busy}>Sign in</button>
      </div>
      <p className="error">{error}</p>
    </form>
  );
}

export function SignOut({ name }) {
  const hapta = useHapta();
  return (
    <button className="link" onClick={() => hapta.auth.logout().catch(() => undefined)} title="Sign out">
      {name ?? "me"} · sign out
    </button>
  );
}
