// Files over the socket. An upload is read a chunk at a time (a Blob is never read whole) and sent while the
// gateway's acknowledgements keep it within the window; a download arrives as the chunks of its stream. A dropped
// socket fails every transfer in flight.
//
// A record and its files in one step: each file is uploaded without a record id (files.finish answers a token of
// the uploader's, usable once, for a minute), then the write names the tokens in its file field
// (`{"media": [{"upload": token}]}`, beside `{"name": name}` for the files an update keeps) and the gateway stores
// the record and its files together or not at all. Uploads no write took are swept by the gateway.
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

/** A file as the gateway stores it in a record's file field. */
export interface HaptaFile {
  name: string;
  size: number;
  type: string;
  sha256: string;
}

/** files.finish's answer: the file as stored; for an upload into a record, the record; for one without a record
 * id, `upload` (a single-use token for the write that takes it) and `expires_at` (seconds since 1970). */
export interface Uploaded {
  file: HaptaFile;
  record?: Json;
  upload?: string;
  expires_at?: number;
}

/** A file to store with a write: a File (its name and type), a Blob, or bytes with the name and type to give. */
export type FileInput = Blob | { data: Blob | Uint8Array | ArrayBuffer; name?: string; type?: string };

/** The new files of a write, by file field: `{media: [file, ...]}`. */
export type FileSet = Record<string, FileInput[]>;

/** One file of a write, ready to upload (and, in the outbox, kept with it). */
export interface PendingUpload {
  field: string;
  name: string;
  type: string;
  size: number;
  data: Blob | Uint8Array;
}

/** Bytes sent so far, of all the files of a write. */
export type Progress = (sent: number, total: number) => void;

const EXTENSIONS: Record<string, string> = {
  "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp", "image/svg+xml": "svg",
  "video/mp4": "mp4", "video/webm": "webm", "audio/mpeg": "mp3", "application/pdf": "pdf", "text/plain": "txt",
};

const TYPES: Record<string, string> = { jpeg: "image/jpeg",
  ...Object.fromEntries(Object.entries(EXTENSIONS).map(([type, extension]) => [extension, type])) };

/** The files of `files`, in order, each with its name, type and size: a File's own; a Blob without a name is
 * `file-<n>.<extension of its type>` (n counts the files of the write, so names do not collide); bytes without a
 * type take the type of their name's extension (`.png`, `.jpg`, ...), else application/octet-stream. */
export function uploadsOf(files: FileSet): PendingUpload[] {
  const out: PendingUpload[] = [];
  for (const [field, list] of Object.entries(files)) {
    for (const input of list ?? []) {
      const given = input instanceof Blob ? { data: input } as { data: Blob; name?: string; type?: string } : input;
      const raw = given.data;
      const data = raw instanceof ArrayBuffer ? new Uint8Array(raw) : raw;
      const named = given.name || (data as File).name || "";
      const type = given.type || (data instanceof Blob ? data.type : "")
        || TYPES[named.split(".").pop()!.toLowerCase()] || "application/octet-stream";
      const extension = EXTENSIONS[type.split(";")[0]];
      const name = named || `file-${out.length + 1}${extension ? "." + extension : ""}`;
      out.push({ field, name, type, size: data instanceof Blob ? data.size : data.length, data });
    }
  }
  return out;
}

/** `args` (as `kept` answers them) with the tokens of `uploads` after the files each field keeps, any tokens named
 * before replaced. */
export function withTokens(args: Json, uploads: PendingUpload[], tokens: string[]): Json {
  const data: Json = { ...(args.data as Json ?? {}) };
  for (const field of new Set(uploads.map((upload) => upload.field))) {
    data[field] = ((data[field] ?? []) as unknown[]).filter((entry) => !isUpload(entry));
  }
  uploads.forEach((upload, n) => (data[upload.field] as Json[]).push({ upload: tokens[n] }));
  return { ...args, data };
}

const isUpload = (entry: unknown) => !!entry && typeof entry === "object" && "upload" in (entry as Json);

/** A file field's value as the gateway takes it: a file named as a string, or a file entry, is `{name}` (a file
 * the record keeps); `{upload}` stays. */
function asFieldEntry(entry: unknown): Json {
  if (typeof entry === "string") return { name: entry };
  if (isUpload(entry)) return { upload: (entry as Json).upload };
  return { name: (entry as Json).name };
}

/** files.upload's answer; a resumed one's says how many bytes the gateway kept (`received`). */
interface Started {
  stream: number;
  chunk_size: number;
  window: number;
  upload_id?: string;
  received?: number;
}

/** Resumes of one upload at most: a socket that drops again and again is a network to give up on. */
const MAX_RESUMES = 10;

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

  /** Streams one file: into the record `id`'s field, or, with `id` null, for a record still to be written (the
   * answer's `upload` token is what the write names). */
  async upload(collection: string, id: string | null, field: string, data: Blob | Uint8Array | ArrayBuffer,
               options: UploadOptions): Promise<Uploaded> {
    // Bytes are cut as they are; a Blob (a File from an <input>) is read a chunk at a time, never whole.
    const bytes = data instanceof Uint8Array ? data : data instanceof ArrayBuffer ? new Uint8Array(data) : null;
    const blob = bytes ? null : data as Blob;
    const piece = async (start: number, end: number) =>
      bytes ? bytes.subarray(start, end) : new Uint8Array(await blob!.slice(start, end).arrayBuffer());
    const name = options.name ?? ((data as File).name || "file");
    const type = options.type ?? (blob?.type || "application/octet-stream");
    const size = bytes ? bytes.length : blob!.size;
    let started: Started = await this.requests.call("files.upload", { collection, ...(id === null ? {} : { id }),
                                                                     field, name, size, type });
    // A signed-in principal's upload can be resumed (`upload_id`): when the socket drops, the gateway keeps what it
    // stored, and after the reconnect (signed in again) the rest goes on a new stream.
    const resumable = started.upload_id;
    // Progress never goes back: bytes sent again after a drop count once, when they pass what was reported.
    let reported = -1;
    const report = (sent: number) => {
      if (sent <= reported) return;
      reported = sent;
      options.onProgress?.(sent, size);
    };
    let lostWith: HaptaError | null = null;
    for (let resumes = 0; ; resumes++) {
      const { stream, chunk_size: chunkSize, window } = started;
      const transfer = this.track(stream);
      transfer.acked = started.received ?? 0;
      try {
        let sent = transfer.acked;
        while (sent < size) {
          while (sent - transfer.acked >= window && !transfer.error) await this.changed(transfer);
          if (transfer.error) throw transfer.error;
          const chunk = await piece(sent, Math.min(size, sent + chunkSize));
          this.transport.sendChunk(stream, chunk);
          sent += chunk.length;
          report(Math.min(sent, transfer.acked || sent));
        }
        while (transfer.acked < size && !transfer.error) await this.changed(transfer);
        if (transfer.error) throw transfer.error;
        report(size);
        return await this.requests.call("files.finish", { stream });
      } catch (error) {
        const lost = error instanceof HaptaError && error.code === "UNAVAILABLE";
        if (!resumable || !lost || resumes >= MAX_RESUMES) throw error;
        lostWith = error as HaptaError;
      } finally {
        this.transfers.delete(stream);
      }
      // Waits for the socket and the session (up to the request timeout); "still being received on the connection
      // that dropped" (UNAVAILABLE with retry_after) is asked again after retry_after by the request path. Nothing
      // to resume (NOT_FOUND: a finish whose answer was lost, or kept past its time) leaves the loss as it was:
      // whether the upload was stored is not known here, and the caller may upload again.
      started = await this.requests.call("files.upload", { resume: resumable }).catch((error) => {
        throw error instanceof HaptaError && error.code === "NOT_FOUND" ? lostWith : error;
      });
    }
  }

  /** A write's args with its files uploaded and named (the steps below, in turn): the uploads' tokens replace
   * any the args named before (an earlier try whose tokens expired). */
  async attach(op: string, args: Json, uploads: PendingUpload[], onProgress?: Progress): Promise<Json> {
    return withTokens(await this.kept(op, args, uploads), uploads, await this.uploadAll(args, uploads, onProgress));
  }

  /** The args of a write with new files in the fields of `uploads`, each field naming the files it keeps (`{name}`):
   * for an update, those `data` names in the field, else every file the record holds now, read here (the update
   * then goes at the version read, unless it names one); for a create, none. */
  async kept(op: string, args: Json, uploads: PendingUpload[]): Promise<Json> {
    const data: Json = { ...(args.data as Json ?? {}) };
    const out: Json = { ...args, data };
    const fields = [...new Set(uploads.map((upload) => upload.field))];
    const unnamed = fields.filter((field) => !Array.isArray(data[field]));
    if (op === "records.update" && unnamed.length) {
      const held = await this.requests.call("records.get", { collection: args.collection, id: args.id,
                                                             fields: ["id", "version", ...unnamed] });
      for (const field of unnamed) data[field] = ((held[field] ?? []) as Json[]).map((file) => ({ name: file.name }));
      if (out.version === undefined && typeof held.version === "number") out.version = held.version;
    }
    for (const field of fields) {
      data[field] = ((data[field] ?? []) as unknown[]).filter((entry) => !isUpload(entry)).map(asFieldEntry);
    }
    return out;
  }

  /** Uploads each file without a record id, one after the other (`onProgress` hears the bytes of all of them):
   * their tokens, in order. */
  async uploadAll(args: Json, uploads: PendingUpload[], onProgress?: Progress): Promise<string[]> {
    const total = uploads.reduce((sum, upload) => sum + upload.size, 0);
    const tokens: string[] = [];
    let before = 0;
    for (const upload of uploads) {
      const done = await this.upload(String(args.collection), null, upload.field, upload.data,
                                     { name: upload.name, type: upload.type,
                                       onProgress: (sent) => onProgress?.(before + sent, total) });
      before += upload.size;
      tokens.push(String(done.upload));
    }
    return tokens;
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
