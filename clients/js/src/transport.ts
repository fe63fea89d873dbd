// The socket: one open at a time, asking for the subprotocol of its encoding (JSON text or MessagePack); what it
// carries, encoded and decoded, with file chunks as binary frames; and what its close codes mean for what comes
// next. It knows nothing of requests or sessions: what arrives goes to the SocketEvents of the socket's owner.
import { HaptaError, type Json } from "./errors.js";
import { decode as decodeMsgpack, encode as encodeMsgpack } from "./msgpack.js";

export type Protocol = "json" | "msgpack";

export interface SocketLike {
  binaryType: string;
  readyState: number;
  protocol: string;
  send(data: string | ArrayBufferLike | Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
}
export type SocketConstructor = new (url: string, protocols?: string | string[]) => SocketLike;

const SUBPROTOCOLS: Record<Protocol, string> = { json: "hapta.v1.json", msgpack: "hapta.v1.msgpack" };
// Close codes after which reconnecting would be refused again: protocol errors and a policy violation (a revoked
// session, a refused Origin, garbage).
const FINAL_CLOSE_CODES = new Set([1002, 1003, 1008]);
// The gateway shutting down (1001) answers every request it has read before it closes.
const GOING_AWAY = 1001;

/** Closed with a code after which reconnecting would be refused again. */
export function final(code: number): boolean {
  return FINAL_CLOSE_CODES.has(code);
}

/** Closed with a code that says a request sent on the socket and never answered was not served. */
export function unserved(code: number): boolean {
  return code === GOING_AWAY;
}

/** What one socket tells its owner. */
export interface SocketEvents {
  /** It opened; `send` writes to it from now on. */
  opened(socket: SocketLike): void;
  /** A reply or an event. */
  message(message: Json): void;
  /** A chunk of a download's stream. */
  chunk(stream: number, data: Uint8Array): void;
  /** It closed, or failed to open (told once): `opened` says whether it had opened. */
  ended(code: number, opened: boolean): void;
}

export class Transport {
  private socket: SocketLike | null = null;
  private readonly Socket: SocketConstructor;
  /** Ends the current socket at once, as lost (drop). */
  private abandon: (() => void) | null = null;

  constructor(readonly url: string, readonly protocol: Protocol, Socket: SocketConstructor | undefined) {
    const found = Socket ?? (globalThis as any).WebSocket;
    if (!found) throw new Error("no WebSocket here: pass one as options.WebSocket");
    this.Socket = found;
  }

  /** Opens a socket (throwing what the WebSocket constructor throws) and tells `events` what becomes of it. */
  open(events: SocketEvents): SocketLike {
    const socket = new this.Socket(this.url, [SUBPROTOCOLS[this.protocol]]);
    socket.binaryType = "arraybuffer";
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.socket = socket;
      events.opened(socket);
    };
    socket.onmessage = (event) => this.received(event.data, events);
    let ended = false;
    const end = (code: number) => {
      if (ended) return;
      ended = true;
      if (this.socket === socket) this.socket = null;
      if (this.abandon === abandon) this.abandon = null;
      events.ended(code, opened);
    };
    const abandon = () => {
      end(1006);
      socket.close(1000);
    };
    this.abandon = abandon;
    // A browser follows a failed connection's error with a close; some WebSockets (Node's) end at the error.
    socket.onerror = () => { if (!opened) end(1006); };
    socket.onclose = (event) => end(event.code);
    return socket;
  }

  /** Lets the socket go now, told as lost (1006), without waiting for its close: the browser says it is offline,
   * and a close handshake over no network may take long to fail. */
  drop(): void {
    this.abandon?.();
  }

  /** Writes one message to the open socket; without one, throws UNAVAILABLE. */
  send(message: unknown): void {
    const socket = this.socket;
    if (!socket) throw new HaptaError("UNAVAILABLE", "not connected");
    socket.send(this.protocol === "json" ? JSON.stringify(message) : encodeMsgpack(message));
  }

  /** Writes an upload's chunk: a files.chunk message in MessagePack, a binary frame (the stream number in 4 bytes,
   * then the bytes) beside JSON. */
  sendChunk(stream: number, piece: Uint8Array): void {
    if (this.protocol === "msgpack") {
      this.send({ op: "files.chunk", stream, data: piece });
      return;
    }
    const frame = new Uint8Array(4 + piece.length);
    new DataView(frame.buffer).setUint32(0, stream);
    frame.set(piece, 4);
    this.socket?.send(frame);
  }

  close(code: number): void {
    this.socket?.close(code);
  }

  /** A browser cannot read why a handshake failed (a refused Origin is HTTP 403): if the gateway answers
   * /health, it is up and refusing; if not, it is down (retry). Where there is no fetch, assume down. */
  async refusing(): Promise<boolean> {
    if (typeof fetch !== "function" || typeof (globalThis as any).document === "undefined") return false;
    const health = this.url.replace(/^ws/, "http").replace(/\/ws(\?.*)?$/, "/health");
    try {
      await fetch(health, { mode: "no-cors", cache: "no-store" });   // an opaque answer is still an answer
      return true;
    } catch {
      return false;
    }
  }

  private received(data: unknown, events: SocketEvents): void {
    let messages: unknown;
    if (typeof data === "string") {
      messages = JSON.parse(data);
    } else {
      const bytes = new Uint8Array(data as ArrayBuffer);
      if (this.protocol === "json") {   // a download chunk: a 4-byte stream number, then bytes
        const stream = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0);
        events.chunk(stream, bytes.subarray(4));
        return;
      }
      messages = decodeMsgpack(bytes);
    }
    for (const message of (Array.isArray(messages) ? messages : [messages]) as Json[]) {
      if (message.op === "files.chunk") events.chunk(message.stream as number, message.data as Uint8Array);
      else events.message(message);
    }
  }
}
