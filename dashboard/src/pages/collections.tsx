// Every collection's fields and rules, as config.py declares them (admin.schema): a diagram of them and their
// relations (er.tsx), then a card each.
import { useCall } from "../hooks.ts";
import type { CollectionInfo, RuleOp, Schema } from "../types.ts";
import { bytes, Loading, Problem } from "../ui.tsx";
import { Diagram } from "./er.tsx";

const OPS: RuleOp[] = ["list", "view", "create", "update", "delete"];

/** null: admins only; "": everyone signed in; else the expression that must hold. */
export function Rule({ rule }: { rule: string | null }) {
  if (rule === null) return <span class="rule admins">admins only</span>;
  if (rule === "") return <span class="rule everyone">everyone signed in</span>;
  return <code class="rule">{rule}</code>;
}

function CollectionCard({ collection }: { collection: CollectionInfo }) {
  return (
    <article class="card" data-collection={collection.name}>
      <h3><a href={`#records/${encodeURIComponent(collection.name)}`}>{collection.name}</a></h3>
      <table>
        <thead><tr><th>field</th><th>kind</th><th>relation</th><th>flags</th></tr></thead>
        <tbody>
          {collection.fields.map((field) => (
            <tr key={field.name}>
              <td><code>{field.name}</code></td>
              <td>{field.file ? "file" : field.kind}</td>
              <td>{field.relation ?? ""}</td>
              <td class="flags">
                {field.hidden && <span class="badge">hidden</span>}
                {field.guarded !== null && <span class="badge" title={field.guarded}>guarded: {field.guarded}</span>}
                {field.readonly && <span class="badge">readonly</span>}
                {field.required && <span class="badge">required</span>}
                {field.search && <span class="badge">search: {field.search}</span>}
                {field.file && (
                  <span class="badge">≤ {field.file.max_count} × {bytes(field.file.max_size)}
                    {field.file.types?.length ? `, ${field.file.types.join(" ")}` : ", any type"}</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <table class="rules">
        <tbody>
          {OPS.map((op) => (
            <tr key={op}><th>{op}</th><td><Rule rule={collection.rules[op]} /></td></tr>
          ))}
        </tbody>
      </table>
    </article>
  );
}

export function Collections() {
  const schema = useCall((hapta) => hapta.call<Schema>("admin.schema"), []);
  return (
    <section>
      <Problem error={schema.error} />
      <Loading when={schema.data} failed={schema.error}>
        {schema.data && <Diagram schema={schema.data} />}
        <div class="cards">
          {schema.data?.collections.map((c) => <CollectionCard key={c.name} collection={c} />)}
        </div>
      </Loading>
    </section>
  );
}
