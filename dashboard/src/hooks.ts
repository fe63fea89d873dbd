// Data for a page: one call to the gateway, again whenever its inputs change, and again every `every` ms when it
// polls (the next poll starts after the last answer: a slow gateway is never asked twice at once).
import { createContext } from "preact";
import { useContext, useEffect, useRef, useState } from "preact/hooks";
import { describe, type Credential, type Hapta } from "./gateway.ts";

export const Connection = createContext<Hapta | null>(null);
/** What the dashboard signed in with (the key, or an account's session token), in memory: a page that needs a
 * connection of its own (impersonation) signs it in with it. */
export const AdminCredential = createContext<Credential>({ key: "" });
/** The older name of AdminCredential (connectAsAdmin takes either form). */
export const AdminKey = AdminCredential;

export function useHapta(): Hapta {
  const hapta = useContext(Connection);
  if (!hapta) throw new Error("no connection: a page is drawn only when signed in");
  return hapta;
}

export interface Loaded<T> {
  data: T | undefined;
  error: string | null;
  reload: () => void;
}

export function useCall<T>(load: (hapta: Hapta) => Promise<T>, inputs: unknown[], every = 0): Loaded<T> {
  const hapta = useHapta();
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [asked, setAsked] = useState(0);
  const latest = useRef(load);
  latest.current = load;
  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const answer = await latest.current(hapta);
        if (!live) return;
        setData(answer);
        setError(null);
      } catch (failure) {
        if (!live) return;
        setError(describe(failure));
      }
      if (live && every > 0) timer = setTimeout(run, every);
    };
    run();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [hapta, asked, every, ...inputs]);
  return { data, error, reload: () => setAsked((n) => n + 1) };
}

/** `value` once it stopped changing for `ms`: a filter is sent when the typing pauses, not per key. */
export function useSettled<T>(value: T, ms: number): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}
