// A form built from admin.schema to create a record or edit one: an input per writable field by its kind, a select
// for a CHECK's IN list, a picker that searches the related collection, file fields with drop and previews. A JSON
// view of the same data stays one click away. The record and its new files go in one step (the JS client's
// create/update with `files`); an edit goes at the version it was read at (CONFLICT if changed meanwhile); a
// VALIDATION_FAILED is shown under the input its details.field names.
import { useEffect, useState } from "preact/hooks";
import "../records.css";
import { describe, HaptaError } from "../gateway.ts";
import { quoted } from "../filter.ts";
import { useHapta, useSettled } from "../hooks.ts";
import type { CollectionInfo, Field, Json, Schema, StoredFile } from "../types.ts";
import { bytes, cell, Problem } from "../ui.tsx";
import { type Drafts, formData, formFields, searchFilter, SYSTEM, toDraft } from "../values.ts";

function draftsOf(fields: Field[], record: Json | null): Drafts {
  const drafts: Drafts = {};
  for (const field of fields) {
    if (!field.file) drafts[field.name] = toDraft(field, record ? record[field.name] : undefined);
  }
  return drafts;
}

export function RecordForm({ collection, schema, record, onSaved, onCancel }: {
  collection: CollectionInfo; schema: Schema; record: Json | null; onSaved: (record: Json) => void;
  onCancel: () => void;
}) {
  const hapta = useHapta();
  const fields = formFields(collection.fields);
  // The record as it was when the form opened: the edit is sent at its version, and only what changed since.
  const [base] = useState(record);
  const [initial] = useState(() => (record ? draftsOf(fields, record) : null));
  const [drafts, setDrafts] = useState<Drafts>(() => draftsOf(fields, record));
  const [added, setAdded] = useState<Record<string, File[]>>({});
  const [json, setJson] = useState<string | null>(null);   // the JSON view's text while it is open
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [progress, setProgress] = useState<number | null>(null);

  const set = (name: string, value: string | boolean) => setDrafts((now) => ({ ...now, [name]: value }));
  const current = () => formData(fields, drafts, initial);

  // The JSON view holds every field the form has (on an edit too); what an edit sends is still what changed.
  const showJson = () => {
    const { data, errors } = formData(fields, drafts, null);
    setFieldErrors(errors);
    if (Object.keys(errors).length === 0) setJson(JSON.stringify(data, null, 2));
  };
  const showForm = () => {
    try {
      const data = JSON.parse(json!) as Json;
      setDrafts((now) => {
        const next = { ...now };
        for (const field of fields) if (field.name in data) next[field.name] = toDraft(field, data[field.name]);
        return next;
      });
      setJson(null);
      setError(null);
    } catch (failure) {
      setError(`not JSON: ${(failure as Error).message}`);
    }
  };

  const save = async () => {
    setError(null);
    setFieldErrors({});
    let data: Json;
    if (json !== null) {
      try {
        data = JSON.parse(json) as Json;
      } catch (failure) {
        setError(`not JSON: ${(failure as Error).message}`);
        return;
      }
      if (base) {
        data = Object.fromEntries(Object.entries(data)
          .filter(([key, value]) => JSON.stringify(base[key]) !== JSON.stringify(value)));
      }
    } else {
      const made = current();
      if (Object.keys(made.errors).length > 0) {
        setFieldErrors(made.errors);
        return;
      }
      data = made.data;
    }
    const files = Object.fromEntries(Object.entries(added).filter(([, list]) => list.length > 0));
    const withFiles = Object.keys(files).length > 0
      ? { files, onProgress: (sent: number, total: number) => setProgress(total ? sent / total : 1) } : {};
    try {
      const records = hapta.records<Json>(collection.name);
      const saved = base === null
        ? await records.create(data, withFiles)
        : await records.update(base.id as string, data,
                               { ...(typeof base.version === "number" ? { version: base.version } : {}), ...withFiles });
      onSaved(saved);
    } catch (failure) {
      const field = failure instanceof HaptaError ? failure.details?.field : undefined;
      if (typeof field === "string" && fields.some((f) => f.name === field) && json === null) {
        setFieldErrors({ [field]: describe(failure) });
      } else {
        setError(describe(failure));
      }
    } finally {
      setProgress(null);
    }
  };

  return (
    <form class="record-form" data-form={base ? "edit" : "create"} onSubmit={(e) => { e.preventDefault(); save(); }}>
      <div class="tabs" role="tablist">
        <button type="button" role="tab" aria-selected={json === null} class={json === null ? "current" : ""}
                onClick={() => json !== null && showForm()}>Form</button>
        <button type="button" role="tab" aria-selected={json !== null} class={json !== null ? "current" : ""}
                onClick={() => json === null && showJson()}>JSON</button>
      </div>
      {json !== null ? (
        <textarea id="record-edit" rows={12} spellcheck={false} value={json}
                  onInput={(e) => setJson(e.currentTarget.value)} />
      ) : fields.map((field) => (
        <div class="field" key={field.name} data-field={field.name}>
          <label for={`field-${field.name}`}>{field.name}
            <span class="hint"> {hint(field)}</span></label>
          {field.file ? (
            <FileField collection={collection.name} record={base} field={field} files={added[field.name] ?? []}
                       onFiles={(list) => setAdded((now) => ({ ...now, [field.name]: list }))} />
          ) : field.relation ? (
            <RelationPicker field={field} value={String(drafts[field.name] ?? "")} schema={schema}
                            onChange={(value) => set(field.name, value)} />
          ) : (
            <Input field={field} value={drafts[field.name]} onChange={(value) => set(field.name, value)} />
          )}
          {fieldErrors[field.name] && (
            <p class="error field-error" role="alert" id={`error-${field.name}`}>{fieldErrors[field.name]}</p>
          )}
        </div>
      ))}
      {base && json === null && <p class="hint">Only the fields you change are sent, at version {String(base.version)}.</p>}
      {progress !== null && <progress value={progress} max={1} />}
      <Problem error={error} />
      <div class="actions">
        <button type="submit" class="primary">{base ? "Save" : "Create"}</button>
        <button type="button" onClick={onCancel}>Cancel</button>
      </div>
    </form>
  );
}

/** What a field takes, beside its name: its kind, whether it may be left empty, the database's default. */
function hint(field: Field): string {
  const parts = [field.file ? "files" : field.relation ? `→ ${field.relation}` : field.kind];
  if (field.required) parts.push("required");
  else if (field.default && !field.file) parts.push(`default ${field.default}`);
  else if (field.nullable) parts.push("may be empty");
  return parts.join(", ");
}

function Input({ field, value, onChange }: { field: Field; value: string | boolean | undefined;
                                             onChange: (value: string | boolean) => void }) {
  const id = `field-${field.name}`;
  const text = typeof value === "string" ? value : "";
  if (field.choices) {
    return (
      <select id={id} value={text} onChange={(e) => onChange(e.currentTarget.value)}>
        <option value="">{field.nullable || field.default ? "—" : "choose…"}</option>
        {field.choices.map((c) => <option key={String(c)} value={String(c)}>{String(c)}</option>)}
      </select>
    );
  }
  switch (field.kind) {
    case "bool":
      return <input id={id} type="checkbox" checked={value === true} onChange={(e) => onChange(e.currentTarget.checked)} />;
    case "int":
    case "float":
      return <input id={id} type="number" step={field.kind === "int" ? 1 : "any"} value={text}
                    onInput={(e) => onChange(e.currentTarget.value)} />;
    case "timestamp":
      return <input id={id} type="datetime-local" step={1} value={text} onInput={(e) => onChange(e.currentTarget.value)} />;
    case "json":
      return <textarea id={id} rows={4} spellcheck={false} value={text} onInput={(e) => onChange(e.currentTarget.value)} />;
    case "text":
      return <textarea id={id} rows={2} value={text} onInput={(e) => onChange(e.currentTarget.value)} />;
    default:
      return <input id={id} value={text} spellcheck={false} onInput={(e) => onChange(e.currentTarget.value)} />;
  }
}

/** An id of the related collection: typed, or chosen from a search of its text fields (records.list with a filter,
 * the typed text a string literal). */
function RelationPicker({ field, value, schema, onChange }: { field: Field; value: string; schema: Schema;
                                                               onChange: (id: string) => void }) {
  const hapta = useHapta();
  const related = schema.collections.find((c) => c.name === field.relation);
  const [typed, setTyped] = useState("");
  const search = useSettled(typed.trim(), 250);
  const [found, setFound] = useState<Json[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (!related || search === "") {
      setFound([]);
      return;
    }
    let live = true;
    hapta.records<Json>(related.name).list({ filter: searchFilter(related.fields, search, quoted), per_page: 8 })
      .then((page) => { if (live) { setFound(page.items); setError(null); } },
            (failure) => live && setError(describe(failure)));
    return () => { live = false; };
  }, [hapta, related, search]);
  const shown = related ? related.fields.filter((f) => f.kind === "text" && !f.hidden && !f.file && !SYSTEM.has(f.name))
    .slice(0, 2).map((f) => f.name) : [];
  return (
    <div class="picker" data-relation={field.relation}>
      <input id={`field-${field.name}`} value={value} spellcheck={false} placeholder="id"
             onInput={(e) => onChange(e.currentTarget.value)} />
      <input type="search" class="pick-search" placeholder={`search ${field.relation}…`} value={typed}
             onInput={(e) => setTyped(e.currentTarget.value)} aria-label={`search ${field.relation}`} />
      <Problem error={error} />
      {found.length > 0 && (
        <ul class="list picks">
          {found.map((item) => (
            <li key={item.id as string} data-pick={item.id as string} class={item.id === value ? "selected" : ""}>
              <button type="button" class="link" onClick={() => { onChange(item.id as string); setTyped(""); }}>
                <code>{item.id as string}</code> {shown.map((name) => cell(item[name], 40)).join(" · ")}
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** A file field: the files the record holds (thumbnails where the field declares sizes) and new ones, picked or
 * dropped, previewed from the File itself (a blob: URL) before they are sent with the record. */
function FileField({ collection, record, field, files, onFiles }: {
  collection: string; record: Json | null; field: Field; files: File[]; onFiles: (files: File[]) => void;
}) {
  const spec = field.file!;
  const stored = (record && Array.isArray(record[field.name]) ? record[field.name] : []) as StoredFile[];
  const [over, setOver] = useState(false);
  const room = spec.max_count - stored.length;
  const add = (list: FileList | null) => {
    if (list) onFiles([...files, ...Array.from(list)].slice(0, Math.max(room, 0)));
  };
  return (
    <div class={`drop ${over ? "over" : ""}`}
         onDragOver={(e) => { e.preventDefault(); setOver(true); }} onDragLeave={() => setOver(false)}
         onDrop={(e) => { e.preventDefault(); setOver(false); add(e.dataTransfer?.files ?? null); }}>
      <div class="files">
        {stored.map((file) => record && (
          <Thumb key={file.name} collection={collection} id={record.id as string} field={field} file={file} />
        ))}
        {files.map((file, i) => (
          <NewFile key={`${file.name}-${i}`} file={file} onRemove={() => onFiles(files.filter((_, j) => j !== i))} />
        ))}
      </div>
      <input id={`field-${field.name}`} type="file" multiple={room > 1} accept={spec.types?.join(",")}
             disabled={room <= 0} onChange={(e) => { add(e.currentTarget.files); e.currentTarget.value = ""; }} />
      <span class="hint"> or drop here · up to {spec.max_count} × {bytes(spec.max_size)}
        {spec.types?.length ? ` · ${spec.types.join(" ")}` : ""}</span>
    </div>
  );
}

/** A stored file: its thumbnail in the field's smallest declared size (files.download {thumb}: the bytes over the
 * socket, shown as a blob: URL, which the page's policy allows wherever the files are stored), else the picture. */
function Thumb({ collection, id, field, file }: { collection: string; id: string; field: Field; file: StoredFile }) {
  const hapta = useHapta();
  const [url, setUrl] = useState<string | null>(null);
  const picture = typeof file.type === "string" && file.type.startsWith("image/");
  const thumb = field.file?.thumbs?.[0];
  useEffect(() => {
    if (!picture) return;
    let made: string | null = null;
    let live = true;
    hapta.files.download(collection, id, field.name, file.name, thumb ? { thumb } : {}).then((data) => {
      if (!live) return;
      made = URL.createObjectURL(new Blob([data as BlobPart]));
      setUrl(made);
    }, () => undefined);   // no thumbnail: the name and size say enough
    return () => {
      live = false;
      if (made) URL.revokeObjectURL(made);
    };
  }, [hapta, collection, id, field.name, file.name, thumb]);
  return (
    <figure class="file thumb" data-file={file.name}>
      {url && <img src={url} alt={file.name} data-thumb={thumb ?? ""} />}
      <figcaption>{file.name} · {bytes(file.size)}</figcaption>
    </figure>
  );
}

function NewFile({ file, onRemove }: { file: File; onRemove: () => void }) {
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    if (!file.type.startsWith("image/")) return;
    const made = URL.createObjectURL(file);
    setUrl(made);
    return () => URL.revokeObjectURL(made);
  }, [file]);
  return (
    <figure class="file new" data-new-file={file.name}>
      {url && <img src={url} alt={file.name} />}
      <figcaption>{file.name} · {bytes(file.size)} · new
        <button type="button" class="link" onClick={onRemove} aria-label={`remove ${file.name}`}> ✕</button></figcaption>
    </figure>
  );
}
