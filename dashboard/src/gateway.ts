// The dashboard's one way to the gateway: the project's own client over the same WebSocket as every app, signed in
// with the admin key. The key lives in memory only (no storage, no URL): a reload asks for it again.
import { Hapta, HaptaError } from "../../clients/js/src/hapta.ts";

export { Hapta, HaptaError };

/** The gateway serves the dashboard from its own HTTP port: its WebSocket is on the same origin. */
export function gatewayUrl(at: Location = location): string {
  return `${at.protocol === "https:" ? "wss:" : "ws:"}//${at.host}/ws`;
}

/** A new connection signed in as admin; closed again when the key is refused. */
export async function connectAsAdmin(key: string, url: string = gatewayUrl()): Promise<Hapta> {
  // No `storage`: the client keeps nothing between page loads. No retries of a refused sign-in: the person retypes.
  const hapta = await Hapta.connect(url, { retry: { attempts: 0 } });
  try {
    await hapta.call("auth.admin", { key });
  } catch (error) {
    hapta.close();
    throw error;
  }
  return hapta;
}

/** One line for a person: the protocol's code and its message. */
export function describe(error: unknown): string {
  if (error instanceof HaptaError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}
