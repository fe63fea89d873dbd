// One record: its JSON, previews of its pictures, an edit in a form built from the schema (form.tsx: sent with the
// version it was read at, so that a change made meanwhile is not overwritten) and a delete that asks first.
import { useEffect, useState } from "preact/hooks";
import { describe } from "../gateway.ts";
import { useHapta } from "../hooks.ts";
import type { CollectionInfo, Json, Schema, StoredFile } from "../types.ts";
import { bytes, JsonView, Problem } from "../ui.tsx";
import { RecordForm } from "./form.tsx";

export function RecordPanel({ collection, schema, record, onClose, onSaved, onDeleted }: {
  collection: CollectionInfo; schema: Schema; record: Json; onClose: () => void; onSaved: (record: Json) => void;
  onDeleted: (id: string) => void;
}) {
  const hapta = useHapta();
  const id = record.id as string;
  // The record as it was when the edit began (the form sends it at that version); `record` keeps arriving live.
  const [base, setBase] = useState<Json | null>(null);
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const files = collection.fields.filter((f) => f.file);

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
      {base === null ? <JsonView value={record} /> : (
        <RecordForm collection={collection} schema={schema} record={base} onCancel={() => setBase(null)}
                    onSaved={(saved) => { setBase(null); onSaved(saved); }} />
      )}
      {base && base.version !== record.version && (
        <p class="warn" role="status">Changed by someone else since you began (version {String(record.version)}):
          saving will be refused; cancel and edit again.</p>
      )}
      <Problem error={error} />
      <div class="actions">
        {base === null && <button onClick={() => setBase(record)}>Edit</button>}
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
