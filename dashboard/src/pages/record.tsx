// One record: its JSON, previews of its pictures, an edit (records.update with the version it was read at, so
// that a change made meanwhile is not overwritten) and a delete that asks first.
import { useEffect, useState } from "preact/hooks";
import { describe } from "../gateway.ts";
import { useHapta } from "../hooks.ts";
import type { CollectionInfo, Json, StoredFile } from "../types.ts";
import { bytes, JsonView, Problem } from "../ui.tsx";

const SYSTEM = new Set(["id", "created", "updated", "version"]);

/** What an edit may change: what the gateway calls writable (not the system columns, not files: files.* ops keep
 * those, not hidden or read-only fields). */
function editable(collection: CollectionInfo, record: Json): Json {
  const out: Json = {};
  for (const field of collection.fields) {
    const writable = field.writable ?? !(SYSTEM.has(field.name) || field.hidden || field.readonly);
    if (!writable || field.file || !(field.name in record)) continue;
    out[field.name] = record[field.name];
  }
  return out;
}

function changed(before: Json, after: Json): Json {
  const out: Json = {};
  for (const [key, value] of Object.entries(after)) {
    if (JSON.stringify(before[key]) !== JSON.stringify(value)) out[key] = value;
  }
  return out;
}

export function RecordPanel({ collection, record, onClose, onSaved, onDeleted }: {
  collection: CollectionInfo; record: Json; onClose: () => void; onSaved: (record: Json) => void;
  onDeleted: (id: string) => void;
}) {
  const hapta = useHapta();
  const id = record.id as string;
  const [editing, setEditing] = useState<string | null>(null);
  // The record as it was when the edit began: the update is sent at its version, so that a change someone made
  // meanwhile (it arrives live, into `record`) is answered CONFLICT instead of being overwritten.
  const [base, setBase] = useState<Json | null>(null);
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const files = collection.fields.filter((f) => f.file);

  const save = async () => {
    setError(null);
    let data: Json;
    try {
      data = changed(base!, JSON.parse(editing!));
    } catch (failure) {
      setError(`not JSON: ${(failure as Error).message}`);
      return;
    }
    try {
      const version = typeof base!.version === "number" ? { version: base!.version } : {};
      onSaved(await hapta.records<Json>(collection.name).update(id, data, version));
      setEditing(null);
      setBase(null);
    } catch (failure) {
      setError(describe(failure));
    }
  };
  const remove = async () => {
    setError(null);
    try {
      await hapta.records(collection.name).delete(id);
      onDeleted(id);
    } catch (failure) {
      setError(describe(failure));
      setConfirming(false);
    }
  };

  return (
    <aside class="panel" data-record={id}>
      <header>
        <h3>{collection.name} / <code>{id}</code></h3>
        <button class="link" onClick={onClose} aria-label="close">✕</button>
      </header>
      {editing === null ? <JsonView value={record} /> : (
        <textarea id="record-edit" rows={12} spellcheck={false} value={editing}
                  onInput={(e) => setEditing(e.currentTarget.value)} />
      )}
      {base && base.version !== record.version && (
        <p class="warn" role="status">Changed by someone else since you began (version {String(record.version)}):
          saving will be refused; cancel and edit again.</p>
      )}
      <Problem error={error} />
      <div class="actions">
        {editing === null ? (
          <button onClick={() => {
            setBase(record);
            setEditing(JSON.stringify(editable(collection, record), null, 2));
          }}>Edit</button>
        ) : (
          <>
            <button class="primary" onClick={save}>Save</button>
            <button onClick={() => { setEditing(null); setBase(null); setError(null); }}>Cancel</button>
          </>
        )}
        {confirming ? (
          <span class="confirm">Delete this record?
            <button class="danger" onClick={remove}>Yes, delete</button>
            <button onClick={() => setConfirming(false)}>No</button>
          </span>
        ) : <button class="danger" onClick={() => setConfirming(true)}>Delete</button>}
      </div>
      {files.map((field) => {
        const stored = (Array.isArray(record[field.name]) ? record[field.name] : []) as StoredFile[];
        return stored.length > 0 && (
          <div class="files" key={field.name}>
            <h4>{field.name}</h4>
            {stored.map((file) => (
              <FilePreview key={file.name} collection={collection.name} id={id} field={field.name} file={file} />
            ))}
          </div>
        );
      })}
    </aside>
  );
}

/** A picture fetched over the socket (files.download) and shown as a blob: URL, which the CSP allows. */
function FilePreview({ collection, id, field, file }: { collection: string; id: string; field: string;
                                                        file: StoredFile }) {
  const hapta = useHapta();
  const [url, setUrl] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const picture = typeof file.type === "string" && file.type.startsWith("image/");
  useEffect(() => {
    if (!picture) return;
    let made: string | null = null;
    let live = true;
    hapta.files.download(collection, id, field, file.name).then((data) => {
      if (!live) return;
      made = URL.createObjectURL(new Blob([data as BlobPart], { type: file.type }));
      setUrl(made);
    }, (failure) => live && setError(describe(failure)));
    return () => {
      live = false;
      if (made) URL.revokeObjectURL(made);
    };
  }, [hapta, collection, id, field, file.name]);
  return (
    <figure class="file">
      {url && <img src={url} alt={file.name} />}
      <figcaption>{file.name} · {file.type} · {bytes(file.size)}</figcaption>
      <Problem error={error} />
    </figure>
  );
}
