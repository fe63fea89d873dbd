// The shell: sign-in, then a left nav of pages, each drawn from admin-only ops on one connection. When that
// connection drops, the client's own reconnect cannot sign in again as admin (it knows users' sessions and anon
// keys only), so the shell closes it and opens a new connection with what it holds: the key in memory, or the
// admin account's session token (auth.admin.resume, no sign-in attempt), which is also how a reload goes on.
import { useEffect, useState } from "preact/hooks";
import { connectAsAdmin, HaptaError, resumeAsAdmin, storedSession, type Credential, type Hapta } from "./gateway.ts";
import { AdminCredential, Connection } from "./hooks.ts";
import { SignIn } from "./signin.tsx";
import { Overview } from "./pages/overview.tsx";
import { Collections } from "./pages/collections.tsx";
import { Records } from "./pages/records.tsx";
import { Users } from "./pages/users.tsx";
import { Live } from "./pages/live.tsx";
import { Limits } from "./pages/limits.tsx";
import { Functions } from "./pages/functions.tsx";
import { Backups } from "./pages/backups.tsx";
import { Settings } from "./pages/settings.tsx";
import { Sql } from "./pages/sql.tsx";
import { Admins } from "./pages/admins.tsx";
import { Logs } from "./pages/logs.tsx";

const PAGES = [
  { path: "overview", title: "Overview", Page: Overview },
  { path: "collections", title: "Collections", Page: Collections },
  { path: "records", title: "Records", Page: Records },
  { path: "users", title: "Users", Page: Users },
  { path: "live", title: "Live", Page: Live },
  { path: "limits", title: "Limits", Page: Limits },
  { path: "functions", title: "Workers & functions", Page: Functions },
  { path: "backups", title: "Backups", Page: Backups },
  { path: "settings", title: "Settings", Page: Settings },
  { path: "sql", title: "SQL", Page: Sql },
  { path: "logs", title: "Logs", Page: Logs },
  { path: "admins", title: "Admins", Page: Admins },
] as const;

/** `#records/posts` → ["records", "posts"]: the page and what it shows (never a secret). */
function route(): [string, string] {
  const [page = "", rest = ""] = location.hash.replace(/^#\/?/, "").split(/\/(.*)/s);
  return [PAGES.some((p) => p.path === page) ? page : "overview", decodeURIComponent(rest)];
}

export function useRoute(): [string, string] {
  const [at, setAt] = useState(route);
  useEffect(() => {
    const changed = () => setAt(route());
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return at;
}

/** The connection and what it was signed in with. A new connection reaches the pages through the context: their
 * calls and subscriptions depend on it and start over on it, while what was typed (a filter, a search) stays.
 * `who`: the admin account's email (null: the key). */
interface Signed { hapta: Hapta; credential: Credential; who: string | null }

/** A refusal that no retry mends: the key was changed, or the session ended (signed out elsewhere, the account
 * deleted or its factor reset, too old). */
function final(error: unknown): boolean {
  return error instanceof HaptaError && ["INVALID_CREDENTIALS", "TOKEN_INVALID", "TOKEN_EXPIRED"].includes(error.code);
}

/** Resume the session this tab holds (a reload): null when there is none or it has ended. */
async function resumed(): Promise<Signed | null> {
  const token = storedSession.get();
  if (!token) return null;
  try {
    const { hapta, who } = await resumeAsAdmin(token);
    return { hapta, credential: { token }, who };
  } catch (error) {
    if (final(error)) storedSession.forget();
    return null;
  }
}

export function App() {
  // "resuming" until the session this tab holds, if any, is tried: no sign-in form flashes on a reload
  const [signed, setSigned] = useState<Signed | null | "resuming">(storedSession.get() ? "resuming" : null);
  const [state, setState] = useState<"open" | "reconnecting">("open");
  const [page, detail] = useRoute();

  useEffect(() => {
    if (signed === "resuming") resumed().then(setSigned);
  }, []);

  useEffect(() => {
    if (!signed || signed === "resuming") return;
    let live = true;
    const { credential, who } = signed;
    const stop = signed.hapta.on("state", async (now: string) => {
      if (now !== "reconnecting" || !live) return;
      signed.hapta.close();
      setState("reconnecting");
      for (let wait = 500; live; wait = Math.min(wait * 2, 5000)) {
        try {
          const hapta = await connectAsAdmin(credential);
          if (live) setSigned({ hapta, credential, who });
          else hapta.close();
          setState("open");
          return;
        } catch (error) {
          if (final(error)) {
            if ("token" in credential) storedSession.forget();
            setSigned(null);
            return;
          }
          await new Promise((next) => setTimeout(next, wait));
        }
      }
    });
    // An account's session lives a quarter of an hour from its last use: while the dashboard is open, it is
    // renewed on the same connection when the gateway says it nears its end (auth.expiring).
    const renew = "token" in credential
      ? signed.hapta.on("auth.expiring", () => {
        signed.hapta.call("auth.admin.resume", { token: credential.token }).catch(() => undefined);
      })
      : () => undefined;
    return () => {
      live = false;
      stop();
      renew();
    };
  }, [signed]);

  if (signed === "resuming") return <main class="signin"><p class="muted" id="resuming">Resuming…</p></main>;
  if (!signed) return <SignIn onSignedIn={(hapta, credential, who) => setSigned({ hapta, credential, who })} />;
  const { Page, title } = PAGES.find((p) => p.path === page)!;
  const signOut = async () => {
    if ("token" in signed.credential) {   // ends the session on the gateway too, for every connection holding it
      storedSession.forget();
      await signed.hapta.call("auth.logout").catch(() => undefined);
    }
    signed.hapta.close();
    setSigned(null);
  };
  return (
    <AdminCredential.Provider value={signed.credential}>
    <Connection.Provider value={signed.hapta}>
      <div class="shell">
        <nav>
          <h1>Hapta</h1>
          <p class="who" id="who">{signed.who ?? "signed in with the admin key"}</p>
          <ul>
            {PAGES.map((p) => (
              <li key={p.path}>
                <a href={`#${p.path}`} class={p.path === page ? "current" : undefined}
                   aria-current={p.path === page ? "page" : undefined}>{p.title}</a>
              </li>
            ))}
          </ul>
          <button class="link" id="signout" onClick={signOut}>Sign out</button>
        </nav>
        <main id="page" data-page={page}>
          <header><h2>{title}</h2>{state === "reconnecting" && <span class="badge warn">reconnecting…</span>}</header>
          <Page detail={detail} />
        </main>
      </div>
    </Connection.Provider>
    </AdminCredential.Provider>
  );
}
