// The app as one user sees it. auth.impersonate turns the connection that calls it into that user, so it runs on
// a second connection of its own (signed in as admin first, with the key or the admin's session), never on the dashboard's; that connection's session
// is ended (auth.logout) and closed when the view closes.
import { useContext, useEffect, useState } from "preact/hooks";
import type { Page } from "../../../clients/js/src/hapta.ts";
import { connectAsAdmin, describe, type Hapta } from "../gateway.ts";
import { AdminCredential, Connection, useCall, useHapta } from "../hooks.ts";
import type { Json, Schema } from "../types.ts";
import { cell, Loading, Problem } from "../ui.tsx";

export function Impersonation({ user, onEnd }: { user: string; onEnd: () => void }) {
  const admin = useHapta();
  const credential = useContext(AdminCredential);
  const schema = useCall((h) => h.call<Schema>("admin.schema"), []);   // on the admin's connection
  const [as, setAs] = useState<Hapta | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let other: Hapta | null = null;
    let impersonating = false;
    let live = true;
    (async () => {
      other = await connectAsAdmin(credential, admin.url);
      if (!live) return other.close();
      await other.call("auth.impersonate", { user });
      impersonating = true;
      setAs(other);
    })().catch((failure) => live && setError(describe(failure)));
    return () => {
      live = false;
      const ending = other;
      if (!ending) return;
      // auth.logout only once it is the user's session: before that it would be the admin's own, which it ends
      if (impersonating) ending.call("auth.logout").catch(() => undefined).finally(() => ending.close());
      else ending.close();
    };
  }, [user]);
  return (
    <div class="impersonation" data-impersonating={user}>
      <header>
        <h4>As this user sees it</h4>
        <button onClick={onEnd}>End impersonation</button>
      </header>
      <Problem error={error} />
      {as && <Connection.Provider value={as}><TheirView collections={schema.data?.collections.map((c) => c.name) ?? ["posts"]} /></Connection.Provider>}
    </div>
  );
}

/** Each collection's first page through the user's rules (on the impersonating connection). */
function TheirView({ collections }: { collections: string[] }) {
  const [collection, setCollection] = useState("posts");
  const page = useCall((h) => h.records<Json>(collection).list({ per_page: 10, sort: "-created" }) as
    Promise<Page<Json>>, [collection]);
  const me = useCall((h) => h.auth.me(), []);
  return (
    <div>
      <p class="muted">Signed in as {cell((me.data?.user as Json | undefined)?.username ?? me.data?.role ?? "…")}</p>
      <select value={collection} onChange={(e) => setCollection(e.currentTarget.value)}>
        {collections.map((name) => <option key={name} value={name}>{name}</option>)}
      </select>
      <Problem error={page.error} />
      <Loading when={page.data} failed={page.error}>
        <Rows items={page.data?.items ?? []} />
        {page.data?.items.length === 0 && <p class="muted">They see no {collection}.</p>}
      </Loading>
    </div>
  );
}

const SYSTEM = new Set(["id", "created", "updated", "version"]);

/** A compact table of what they see: the id and the first few fields of their own. */
function Rows({ items }: { items: Json[] }) {
  if (items.length === 0) return null;
  const columns = ["id", ...Object.keys(items[0]).filter((k) => !SYSTEM.has(k)).slice(0, 4)];
  return (
    <table id="their-records">
      <thead><tr>{columns.map((c) => <th key={c}>{c}</th>)}</tr></thead>
      <tbody>
        {items.map((r) => <tr key={r.id as string}>{columns.map((c) => <td key={c}>{cell(r[c], 50)}</td>)}</tr>)}
      </tbody>
    </table>
  );
}
