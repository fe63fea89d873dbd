// The collections and their relations as a diagram: a box per collection (its fields, a relation marked → and
// drawn as an arrow to the collection it refers to, and its rule per op), laid out on a grid. An SVG drawn from
// admin.schema by the page itself: no layout library for a handful of boxes.
import type { CollectionInfo, Field, RuleOp, Schema } from "../types.ts";

const WIDTH = 320;        // a box
const ROW = 17;           // a line of text in it
const HEAD = 24;          // its name
const GAP_X = 80;         // room between columns for the arrows
const GAP_Y = 40;
const PAD = 20;
const OPS: RuleOp[] = ["list", "view", "create", "update", "delete"];
const LINE_CHARS = 42;    // what fits in a box's width in the 12px monospace

interface Box { collection: CollectionInfo; x: number; y: number; height: number; fields: Field[] }

function ruleText(rule: string | null): string {
  return rule === null ? "admins only" : rule === "" ? "everyone signed in" : rule;
}

function short(text: string, most: number): string {
  return text.length > most ? text.slice(0, most - 1) + "…" : text;
}

/** Boxes in rows of up to `columns`, each row as tall as its tallest box. */
function layout(collections: CollectionInfo[]): { boxes: Map<string, Box>; width: number; height: number } {
  const columns = Math.max(1, Math.min(3, Math.ceil(Math.sqrt(collections.length))));
  const boxes = new Map<string, Box>();
  let y = PAD;
  for (let start = 0; start < collections.length; start += columns) {
    const row = collections.slice(start, start + columns);
    let tallest = 0;
    row.forEach((collection, i) => {
      const fields = collection.fields.filter((f) => !f.hidden);
      const height = HEAD + (fields.length + 1 + OPS.length) * ROW + 10;
      tallest = Math.max(tallest, height);
      boxes.set(collection.name, { collection, x: PAD + i * (WIDTH + GAP_X), y, height, fields });
    });
    y += tallest + GAP_Y;
  }
  return { boxes, width: PAD * 2 + columns * WIDTH + (columns - 1) * GAP_X, height: y - GAP_Y + PAD };
}

/** From a relation field's line to the box it refers to, leaving and arriving on the sides that face each other. */
function arrow(from: Box, at: number, to: Box): string {
  const y1 = from.y + HEAD + at * ROW + ROW / 2 + 2;
  const y2 = to.y + HEAD / 2;
  if (to.x === from.x) {   // same column: out of the right side and back into it
    const x = from.x + WIDTH;
    return `M ${x} ${y1} C ${x + 60} ${y1}, ${x + 60} ${y2}, ${x + 4} ${y2}`;
  }
  const rightward = to.x > from.x;
  const x1 = rightward ? from.x + WIDTH : from.x;
  const x2 = rightward ? to.x - 4 : to.x + WIDTH + 4;
  const bend = (x2 - x1) / 2;
  return `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`;
}

export function Diagram({ schema }: { schema: Schema }) {
  const { boxes, width, height } = layout(schema.collections);
  const links: { key: string; d: string; from: string; field: string; to: string }[] = [];
  for (const box of boxes.values()) {
    box.fields.forEach((field, at) => {
      const target = field.relation ? boxes.get(field.relation) : undefined;
      if (target) {
        links.push({ key: `${box.collection.name}.${field.name}`, d: arrow(box, at, target),
                     from: box.collection.name, field: field.name, to: target.collection.name });
      }
    });
  }
  return (
    <figure class="er" id="er">
      <svg width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img"
           aria-label="The collections, their relations and rules">
        <defs>
          <marker id="er-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7"
                  orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" class="arrow" />
          </marker>
        </defs>
        {/* the arrows first: under the boxes, so that one crossing a box goes behind it */}
        {links.map((link) => (
          <path key={link.key} class="link" d={link.d} marker-end="url(#er-arrow)"
                data-er-link={`${link.from}.${link.field}->${link.to}`}>
            <title>{`${link.from}.${link.field} → ${link.to}`}</title>
          </path>
        ))}
        {[...boxes.values()].map(({ collection, x, y, height: tall, fields }) => (
          <g class="box" key={collection.name} data-er-collection={collection.name}>
            <rect x={x} y={y} width={WIDTH} height={tall} rx={5} />
            <rect class="head" x={x} y={y} width={WIDTH} height={HEAD} rx={5} />
            <text class="name" x={x + 10} y={y + 16}>{collection.name}</text>
            {fields.map((field, i) => (
              <text key={field.name} x={x + 10} y={y + HEAD + (i + 1) * ROW - 3} data-er-field={field.name}>
                {field.name}: {field.file ? "files" : field.relation ? `→ ${field.relation}` : field.kind}
                {field.required ? " *" : ""}
              </text>
            ))}
            {OPS.map((op, i) => {
              const rule = collection.rules[op];
              return (
                <g key={op} data-er-rule={op}>
                  <title>{`${op}: ${ruleText(rule)}`}</title>
                  <text class={`rule ${rule === null ? "admins" : ""}`}
                        x={x + 10} y={y + HEAD + (fields.length + 1 + i + 1) * ROW - 3}>
                    {short(`${op}: ${ruleText(rule)}`, LINE_CHARS)}
                  </text>
                </g>
              );
            })}
          </g>
        ))}
      </svg>
      <figcaption class="muted">Fields (* required; → a relation, drawn as an arrow) and each op's rule.</figcaption>
    </figure>
  );
}
