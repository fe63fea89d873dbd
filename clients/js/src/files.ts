// Files over the socket. An upload is read a chunk at a time (a Blob is never read whole) and sent while the
// gateway's acknowledgements keep it within the window; a download arrives as the chunks of its stream. A dropped
// socket fails every transfer in flight.
import { HaptaError, type Json } from "./errors.js";
import type { Caller } from "./requests.js";
import type { Transport } from "./transport.js";

/** How a file link is made: its lifetime in seconds, and a thumbnail size the field declares
 * (`FileField(thumbs=...)`, e.g. "100x100"). */
export interface FileLinkOptions {
  expires?: number;
  thumb?: string;
}

export interface UploadOptions {
  name?: string;
  type?: string;
  onProgress?: (sent: number, size: number) => void;
}

interface Transfer {
  /** Bytes of an upload the gateway has acknowledged. */
  acked: number;
  /** Wakes whoever waits for the transfer to change. */
  changed: () => void;
  error: HaptaError | null;
  /** A download's chunks so far. */
  chunks: Uint8Array[];
  done: boolean;
}

export class Files {
  private transfers = new Map<number, Transfer>();

  constructor(private readonly requests: Caller, private readonly transport: Transport) {}

  async upload(collection: string, id: string, field: string, data: Blob | Uint8Array | ArrayBuffer,
               options: UploadOptions): Promise<{ file: Json; record: Json }> {
    // Bytes are cut as they are; a Blob (a File from an <input>) is read a chunk at a time, never whole.
    const bytes = data instanceof Uint8Array ? data : data instanceof ArrayBuffer ? new Uint8Array(data) : null;
    const blob = bytes ? null : data as Blob;
    const piece = async (start: number, end: number) =>
      bytes ? bytes.subarray(start, end) : new Uint8Array(await blob!.slice(start, end).arrayBuffer());
    const name = options.name ?? ((data as File).name || "file");
    const type = options.type ?? (blob?.type || "application/octet-stream");
    const size = bytes ? bytes.length : blob!.size;
    const started = await this.requests.call("files.upload", { collection, id, field, name, size, type });
    const { stream, chunk_size: chunkSize, window } = started as { stream: number; chunk_size: number;
                                                                   window: number };
    const transfer = this.track(stream);
    try {
      let sent = 0;
      while (sent < size) {
        while (sent - transfer.acked >= window && !transfer.error) await this.changed(transfer);
        if (transfer.error) throw transfer.error;
        const chunk = await piece(sent, Math.min(size, sent + chunkSize));
        this.transport.sendChunk(stream, chunk);
        sent += chunk.length;
        options.onProgress?.(Math.min(sent, transfer.acked || sent), size);
      }
      while (transfer.acked < size && !transfer.error) await this.changed(transfer);
      if (transfer.error) throw transfer.error;
      options.onProgress?.(size, size);
      return await this.requests.call("files.finish", { stream });
    } finally {
      this.transfers.delete(stream);
    }
  }

  async download(collection: string, id: string, field: string, name: string,
                 options: { thumb?: string } = {}): Promise<Uint8Array> {
    const thumb = options.thumb ? { thumb: options.thumb } : {};
    return this.streamed("files.download", { collection, id, field, name, ...thumb });
  }

  /** The bytes of a download stream that `op` answers with {stream, length}, as files.download does (another op
   * that sends a file this way: the dashboard's admin.backup.download). */
  async streamed(op: string, args: Json): Promise<Uint8Array> {
    let transfer: Transfer | null = null;
    const answer = await this.requests.call(op, args, (data) => { transfer = this.track(data.stream); });
    const tracked = transfer as unknown as Transfer;
    try {
      while (!tracked.done && !tracked.error) await this.changed(tracked);
      if (tracked.error) throw tracked.error;
      const whole = new Uint8Array(answer.length);
      let at = 0;
      for (const chunk of tracked.chunks) {
        whole.set(chunk, at);
        at += chunk.length;
      }
      return whole;
    } finally {
      this.transfers.delete(answer.stream);
    }
  }

  /** A signed link; `options` is the link's lifetime in seconds, or {expires?, thumb?} (a size the field
   * declares: its thumbnail). */
  async url(collection: string, id: string, field: string, name: string,
            options?: number | FileLinkOptions): Promise<string> {
    const { expires, thumb } = typeof options === "number" ? { expires: options, thumb: undefined } : options ?? {};
    return (await this.requests.call("files.url", { collection, id, field, name, ...(expires ? { expires } : {}),
                                                    ...(thumb ? { thumb } : {}) })).url;
  }

  /** A chunk of a download's stream. */
  chunk(stream: number, data: Uint8Array): void {
    const transfer = this.transfers.get(stream);
    if (!transfer) return;
    transfer.chunks.push(data.slice());
    transfer.changed();
  }

  /** files.ack, files.error, files.end */
  heard(event: string, data: Json): void {
    if (event !== "files.ack" && event !== "files.error" && event !== "files.end") return;
    const transfer = this.transfers.get(data.stream as number);
    if (!transfer) return;
    if (event === "files.ack") transfer.acked = data.received as number;
    if (data.error) {
      const error = data.error as Json;
      transfer.error = new HaptaError(String(error.code), String(error.message), error.details as Json);
    }
    if (event === "files.end") transfer.done = true;
    transfer.changed();
  }

  /** The socket dropped: every transfer on it fails. */
  lost(): void {
    for (const transfer of this.transfers.values()) {
      transfer.error = new HaptaError("UNAVAILABLE", "the connection was lost during the transfer");
      transfer.changed();
    }
    this.transfers.clear();
  }

  private track(stream: number): Transfer {
    const transfer: Transfer = { acked: 0, changed: () => undefined, error: null, chunks: [], done: false };
    this.transfers.set(stream, transfer);
    return transfer;
  }

  private changed(transfer: Transfer): Promise<void> {
    return new Promise((resolve) => { transfer.changed = resolve; });
  }
}
