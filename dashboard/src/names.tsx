// Users' ids as people read them: an email or a username, with the id kept for hover (title). A page asks for the
// names of the ids it draws; the ids asked for within one turn of the event loop go out together, as one
// records.list on users with an `id in [...]` filter (not a request per row), and the answers are kept per
// connection, asked for again when a page draws a name more than a minute old (an email may change).
import { useEffect, useState } from "preact/hooks";
import { quoted } from "./filter.ts";
import type { Hapta } from "./gateway.ts";
import { useHapta } from "./hooks.ts";
import type { Json } from "./types.ts";

const KEEP_MS = 60_000;
// ids per request: their quoted list stays well inside the filter's 4096 characters
const BATCH = 100;

/** What a person calls a user: the email, else the username, else the id itself. */
export function nameOf(user: Json | null | undefined, id: string): string {
  return (user?.email as string | undefined) || (user?.username as string | undefined) || id;
}

class Names {
  private known = new Map<string, { name: string; at: number }>();
  private asked = new Set<string>();     // in flight or about to be
  private queued: string[] = [];
  private listeners = new Set<() => void>();

  constructor(private hapta: Hapta) {}

  name(id: string): string | undefined {
    return this.known.get(id)?.name;
  }

  /** Ask for the names not known, or known for longer than KEEP_MS; the listeners hear when they arrive. */
  want(ids: string[]): void {
    const now = Date.now();
    const fresh = (id: string) => now - (this.known.get(id)?.at ?? 0) < KEEP_MS;
    for (const id of ids) {
      if (this.asked.has(id) || fresh(id)) continue;
      if (this.queued.length === 0) queueMicrotask(() => this.flush());
      this.asked.add(id);
      this.queued.push(id);
    }
  }

  listen(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private async flush(): Promise<void> {
    const ids = this.queued.splice(0);
    for (let start = 0; start < ids.length; start += BATCH) {
      const batch = ids.slice(start, start + BATCH);
      const now = Date.now();
      try {
        const page = await this.hapta.records<Json>("users").list({
          filter: `id in [${batch.map(quoted).join(", ")}]`, per_page: BATCH, fields: ["id", "email", "username"],
        });
        const found = new Map(page.items.map((user) => [user.id as string, user]));
        // an id with no user (deleted, or not a user's at all) reads as itself
        for (const id of batch) this.known.set(id, { name: nameOf(found.get(id), id), at: now });
      } catch {
        // unnamed this time (the connection dropped, say): drawn as before, asked for again in a minute, not at once
        for (const id of batch) this.known.set(id, { name: this.known.get(id)?.name ?? id, at: now });
      } finally {
        for (const id of batch) this.asked.delete(id);
      }
    }
    for (const listener of this.listeners) listener();
  }
}

const byConnection = new WeakMap<Hapta, Names>();

function namesOf(hapta: Hapta): Names {
  let names = byConnection.get(hapta);
  if (!names) byConnection.set(hapta, (names = new Names(hapta)));
  return names;
}

/** `name(id)`: the user's email or username once known, the id until then (or when it names no user). */
export function useNames(ids: (string | null | undefined)[]): (id: string) => string {
  const names = namesOf(useHapta());
  const [, redraw] = useState(0);
  useEffect(() => names.listen(() => redraw((n) => n + 1)), [names]);
  const wanted = ids.filter((id): id is string => typeof id === "string" && id !== "");
  // after every drawing: a page that polls (Live) renews what it shows; the cache keeps this to one request a minute
  useEffect(() => names.want(wanted));
  return (id: string) => names.name(id) ?? id;
}

/** A user id drawn as the user's name, the id on hover. */
export function UserName({ id }: { id: unknown }) {
  const text = typeof id === "string" ? id : "";
  const name = useNames([text]);
  if (!text) return <span class="muted">—</span>;
  return <span class="user-name" title={text} data-user-id={text}>{name(text)}</span>;
}
