// The client's session and its connection's state, as React state.
import type { Hapta, Session, State } from "@hapta/client";
import { useCallback, useSyncExternalStore } from "react";
import { useHapta } from "./context.js";

/** The session signed in as (`session.user` is the users record), or null: re-renders on every sign-in, sign-out,
 * token refresh and revocation (the client's "auth" event). */
export function useSession(): Session | null {
  const client = useHapta();
  const subscribe = useCallback((changed: () => void) => client.on("auth", changed), [client]);
  const get = () => client.session;
  return useSyncExternalStore(subscribe, get, get);
}

/** The socket's state: "open", "reconnecting" while it is away (requests wait, live queries and channels come back
 * by themselves), "connecting", or "closed" for good. What an offline banner shows. */
export function useConnectionState(): State {
  const client = useHapta();
  const subscribe = useCallback((changed: () => void) => client.on("state", changed), [client]);
  const get = () => client.state;
  return useSyncExternalStore(subscribe, get, get);
}

