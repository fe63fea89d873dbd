// The dashboard's one way to the gateway: the project's own client over the same WebSocket as every app, signed in
// as an admin account (email, password, code: a short-lived session) or with the admin key. The key lives in memory
// only (no storage, no URL): a reload asks for it again. An account's session token is kept in sessionStorage (this
// tab only, gone when it closes) so that a reload resumes it: docs/dashboard.md, "How it is secured", says why.
import { Hapta, HaptaError } from "../../clients/js/src/hapta.ts";

export { Hapta, HaptaError };

/** What signs a connection in: the admin key, or an admin account's session token. */
export type Credential = { key: string } | { token: string };

/** The gateway serves the dashboard from its own HTTP port: its WebSocket is on the same origin. */
export function gatewayUrl(at: Location = location): string {
  return `${at.protocol === "https:" ? "wss:" : "ws:"}//${at.host}/ws`;
}

async function connected(sign: (hapta: Hapta) => Promise<unknown>, url: string): Promise<Hapta> {
  // No `storage`: the client keeps nothing between page loads. No retries of a refused sign-in: the person retypes.
  const hapta = await Hapta.connect(url, { retry: { attempts: 0 } });
  try {
    await sign(hapta);
  } catch (error) {
    hapta.close();
    throw error;
  }
  return hapta;
}

/** A new connection signed in as admin, with the key (a string, as before) or a session token (auth.admin.resume:
 * no sign-in attempt); closed again when it is refused. */
export function connectAsAdmin(credential: Credential | string, url: string = gatewayUrl()): Promise<Hapta> {
  const given: Credential = typeof credential === "string" ? { key: credential } : credential;
  return connected((hapta) => "key" in given ? hapta.call("auth.admin", { key: given.key })
                                              : hapta.call("auth.admin.resume", { token: given.token }), url);
}

export interface AdminSession { token: string; expires_at: number; admin: { email: string } }

/** An admin account's sign-in: one attempt with all three parts. */
export async function signInAsAdmin(email: string, password: string, code: string,
                                    url: string = gatewayUrl()): Promise<{ hapta: Hapta; session: AdminSession }> {
  let session: AdminSession | null = null;
  const hapta = await connected(async (h) => {
    session = await h.call<AdminSession>("auth.admin.signin", { email, password, ...(code ? { code } : {}) });
  }, url);
  return { hapta, session: session! };
}

/** A connection on the session `token` stands for (a reload): no sign-in attempt; and whose session it is. */
export async function resumeAsAdmin(token: string, url: string = gatewayUrl()): Promise<{ hapta: Hapta; who: string }> {
  let who = "";
  const hapta = await connected(async (h) => {
    who = (await h.call<{ admin: { email: string } }>("auth.admin.resume", { token })).admin.email;
  }, url);
  return { hapta, who };
}

const STORED = "hapta.admin.session";

/** The session token this tab holds (sessionStorage: this tab only), if any. */
export const storedSession = {
  get(): string | null {
    return sessionStorage.getItem(STORED);
  },
  set(token: string): void {
    sessionStorage.setItem(STORED, token);
  },
  forget(): void {
    sessionStorage.removeItem(STORED);
  },
};

/** One line for a person: the protocol's code and its message. */
export function describe(error: unknown): string {
  if (error instanceof HaptaError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}
