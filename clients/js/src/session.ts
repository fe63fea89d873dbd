// The session: who the client is signed in as. It is kept in a StorageLike between page loads (shared by the tabs
// of an origin), rolled in-band when the gateway says it is expiring (one refresh at a time, across tabs where
// there are Web Locks), and signed in again on every new socket: with the access token while it is valid, else
// the refresh token, else as anon with the apikey.
import { HaptaError, type Json } from "./errors.js";
import type { Requests } from "./requests.js";

export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface Session {
  token: string;
  refresh_token: string;
  expires_at: number;
  user: Json;
}

// Sign-in refusals no retry changes: the session is over.
const SESSION_OVER = new Set(["TOKEN_INVALID", "TOKEN_REUSED", "TOKEN_EXPIRED", "UNAUTHENTICATED"]);

/** Where the session is kept: under `key` in `storage` (localStorage: every tab of the origin sees it), or in
 * memory only. */
export class SessionStore {
  constructor(private readonly storage: StorageLike | undefined, readonly key: string) {}

  /** Kept where other tabs see it: a refresh takes their lock, and the tokens another tab just got. */
  get shared(): boolean {
    return !!this.storage;
  }

  load(): Session | null {
    const stored = this.storage?.getItem(this.key);
    if (!stored) return null;
    try {
      return JSON.parse(stored) as Session;
    } catch {
      return null;
    }
  }

  save(session: Session | null): void {
    const storage = this.storage;
    if (!storage) return;
    if (session) storage.setItem(this.key, JSON.stringify(session));
    else storage.removeItem(this.key);
  }
}

export class Sessions {
  /** The session signed in as; null: a guest, or anon with the apikey. */
  current: Session | null;
  /** Signs in as anon (auth.anon) whenever there is no session. */
  apikey: string | undefined;
  private refreshing: Promise<Session> | null = null;
  private oauthWaiters: { resolve: (s: Session) => void; reject: (e: unknown) => void }[] = [];

  /** `changed` hears every change of the session (the client's "auth" event). */
  constructor(private readonly store: SessionStore, private readonly requests: Requests, apikey: string | undefined,
              private readonly changed: (session: Session | null) => void) {
    this.apikey = apikey;
    this.current = store.load();
  }

  set(session: Session | null): void {
    this.current = session;
    this.store.save(session);
    this.changed(session);
  }

  async signIn(op: string, args: Json): Promise<Session> {
    const session = await this.requests.call<Session>(op, args);
    this.set(session);
    return session;
  }

  /** Sign in again on a new socket, before anything else is sent on it. A session that is over is dropped. */
  async restore(): Promise<void> {
    if (this.current) {
      try {
        if (this.current.expires_at > Date.now() / 1000 + 5) {
          await this.requests.direct("auth.resume", { token: this.current.token });
        } else {
          await this.refresh(true);
        }
      } catch (error) {
        if (!(error instanceof HaptaError) || !SESSION_OVER.has(error.code)) throw error;
        this.set(null);   // over: go on as a guest (or anon); the app hears "auth" with null
      }
    }
    if (!this.current && this.apikey) await this.requests.direct("auth.anon", { apikey: this.apikey });
  }

  /** Roll the session's tokens, once at a time in this tab and, where Web Locks exist, across every tab of this
   * origin: a tab that waited finds the tokens another tab just got (in shared storage) and takes them instead
   * of spending a refresh token that is already spent. `restoring`: on the socket being restored. */
  refresh(restoring = false): Promise<Session> {
    if (this.refreshing) return this.refreshing;
    const run = async (): Promise<Session> => {
      const current = this.current;
      if (!current) throw new HaptaError("UNAUTHENTICATED", "no session to refresh");
      const stored = this.store.load();
      const call = restoring ? this.requests.direct.bind(this.requests) : this.requests.call.bind(this.requests);
      if (stored && stored.refresh_token !== current.refresh_token && stored.expires_at > Date.now() / 1000 + 5) {
        await call("auth.resume", { token: stored.token });   // another tab refreshed: its tokens are ours
        this.set(stored);
        return stored;
      }
      const session = await call("auth.refresh", { refresh_token: current.refresh_token }) as Session;
      this.set(session);
      return session;
    };
    const locks = (globalThis as any).navigator?.locks;
    const flight: Promise<Session> = locks && this.store.shared
      ? locks.request(`${this.store.key}.refresh`, run) : run();
    this.refreshing = flight.finally(() => { this.refreshing = null; });
    return this.refreshing;
  }

  /** auth.expiring: refresh in-band, before the access token lapses. */
  expiring(): void {
    this.refresh().catch(() => undefined);
  }

  /** Starts an OAuth2 sign-in; `session` resolves when the gateway sends auth.oauth2. */
  async oauth2(provider: string): Promise<{ url: string; state: string; session: Promise<Session> }> {
    const session = new Promise<Session>((resolve, reject) => this.oauthWaiters.push({ resolve, reject }));
    const answer = await this.requests.call("auth.oauth2", { provider });
    return { ...answer, session };
  }

  /** auth.oauth2: the provider sent the person back, signed in or refused. */
  oauth2Answered(data: Json): void {
    const waiters = this.oauthWaiters;
    this.oauthWaiters = [];
    if (data.error) waiters.forEach((w) => w.reject(new HaptaError(String((data.error as Json).code),
      String((data.error as Json).message))));
    else {
      this.set(data as unknown as Session);
      waiters.forEach((w) => w.resolve(data as unknown as Session));
    }
  }
}
