// The shell: sign-in, then a left nav of pages, each drawn from admin-only ops on one connection. When that
// connection drops, the client's own reconnect cannot sign in again as admin (it knows sessions and anon keys
// only), so the shell closes it and opens a new connection with the key it holds in memory.
import { useEffect, useState } from "preact/hooks";
import { connectAsAdmin, HaptaError, type Hapta } from "./gateway.ts";
import { AdminKey, Connection } from "./hooks.ts";
import { SignIn } from "./signin.tsx";
import { Overview } from "./pages/overview.tsx";
import { Collections } from "./pages/collections.tsx";
import { Records } from "./pages/records.tsx";
import { Users } from "./pages/users.tsx";
import { Live } from "./pages/live.tsx";
import { Limits } from "./pages/limits.tsx";
import { Functions } from "./pages/functions.tsx";
import { Logs } from "./pages/logs.tsx";

const PAGES = [
  { path: "overview", title: "Overview", Page: Overview },
  { path: "collections", title: "Collections", Page: Collections },
  { path: "records", title: "Records", Page: Records },
  { path: "users", title: "Users", Page: Users },
  { path: "live", title: "Live", Page: Live },
  { path: "limits", title: "Limits", Page: Limits },
  { path: "functions", title: "Workers & functions", Page: Functions },
  { path: "logs", title: "Logs", Page: Logs },
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

/** The connection and the key it was signed in with. A new connection reaches the pages through the context: their
 * calls and subscriptions depend on it and start over on it, while what was typed (a filter, a search) stays. */
interface Signed { hapta: Hapta; key: string }

export function App() {
  const [signed, setSigned] = useState<Signed | null>(null);
  const [state, setState] = useState<"open" | "reconnecting">("open");
  const [page, detail] = useRoute();

  useEffect(() => {
    if (!signed) return;
    let live = true;
    const stop = signed.hapta.on("state", async (now: string) => {
      if (now !== "reconnecting" || !live) return;
      signed.hapta.close();
      setState("reconnecting");
      for (let wait = 500; live; wait = Math.min(wait * 2, 5000)) {
        try {
          const hapta = await connectAsAdmin(signed.key);
          if (live) setSigned({ hapta, key: signed.key });
          else hapta.close();
          setState("open");
          return;
        } catch (error) {
          if (error instanceof HaptaError && error.code === "INVALID_CREDENTIALS") {   // the key was changed
            setSigned(null);
            return;
          }
          await new Promise((next) => setTimeout(next, wait));
        }
      }
    });
    return () => {
      live = false;
      stop();
    };
  }, [signed]);

  if (!signed) return <SignIn onSignedIn={(hapta, key) => setSigned({ hapta, key })} />;
  const { Page, title } = PAGES.find((p) => p.path === page)!;
  const signOut = () => {
    signed.hapta.close();
    setSigned(null);
  };
  return (
    <AdminKey.Provider value={signed.key}>
    <Connection.Provider value={signed.hapta}>
      <div class="shell">
        <nav>
          <h1>Hapta</h1>
          <ul>
            {PAGES.map((p) => (
              <li key={p.path}>
                <a href={`#${p.path}`} class={p.path === page ? "current" : undefined}
                   aria-current={p.path === page ? "page" : undefined}>{p.title}</a>
              </li>
            ))}
          </ul>
          <button class="link" onClick={signOut}>Sign out</button>
        </nav>
        <main id="page" data-page={page}>
          <header><h2>{title}</h2>{state === "reconnecting" && <span class="badge warn">reconnecting…</span>}</header>
          <Page detail={detail} />
        </main>
      </div>
    </Connection.Provider>
    </AdminKey.Provider>
  );
}
