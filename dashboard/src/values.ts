// A record's fields as a form's inputs hold them, and back: pure, so that the conversions are tested without a
// browser (test/values.test.ts). An input holds text (a checkbox a boolean); what is sent is the field's kind.
import type { Field, Json } from "./types.ts";

export const SYSTEM = new Set(["id", "created", "updated", "version"]);

export type Draft = string | boolean;
export type Drafts = Record<string, Draft>;

/** The fields a form offers: what the gateway calls writable (not the system columns, hidden or read-only ones),
 * and the file fields, which take new files with the record (uploads named in the write) though not plain values. */
export function formFields(fields: Field[]): Field[] {
  return fields.filter((f) => (f.file ? !f.hidden
                                      : f.writable ?? !(SYSTEM.has(f.name) || f.hidden || f.readonly)));
}

/** A stored value as its input shows it. */
export function toDraft(field: Field, value: unknown): Draft {
  if (field.kind === "bool" && !field.choices) return value === true;
  if (value === null || value === undefined) return "";
  if (field.kind === "json") return JSON.stringify(value, null, 2);
  if (field.kind === "timestamp") return localInput(String(value));
  return String(value);
}

/** RFC 3339 → what <input type="datetime-local"> holds: the reader's own time, to the second. */
export function localInput(value: string): string {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return value;
  const two = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())}T${two(date.getHours())}:` +
    `${two(date.getMinutes())}:${two(date.getSeconds())}`;
}

/** Thrown for input that is not the field's kind: shown under the input, nothing is sent. */
export class Invalid extends Error {}

/** An input's content as the value to send. `undefined`: leave the field out (an empty input on a create: the
 * database's default, or null). An empty input on an edit is null, but for a text that may not be null: "". */
export function fromDraft(field: Field, draft: Draft, creating: boolean): unknown {
  if (typeof draft === "boolean") return draft;
  if (draft.trim() === "") {
    if (creating) return undefined;
    return field.kind === "text" && field.nullable === false ? "" : null;
  }
  if (field.choices) {   // a select: its options are the choices' text
    const choice = field.choices.find((c) => String(c) === draft);
    if (choice === undefined) throw new Invalid(`one of ${field.choices.join(", ")}`);
    return choice;
  }
  switch (field.kind) {
    case "int":
      if (!/^-?\d+$/.test(draft.trim())) throw new Invalid("a whole number");
      return Number(draft);
    case "float": {
      const number = Number(draft);
      if (!Number.isFinite(number)) throw new Invalid("a number");
      return number;
    }
    case "json":
      try {
        return JSON.parse(draft);
      } catch (failure) {
        throw new Invalid(`not JSON: ${(failure as Error).message}`);
      }
    case "timestamp": {
      const date = new Date(draft);   // an input's local time (or any date Date reads)
      if (Number.isNaN(date.getTime())) throw new Invalid("a date and time");
      return date.toISOString();
    }
    default:
      return draft;
  }
}

/** The data a form sends: on a create every field given; on an edit (`initial`: the drafts it began with) only
 * those changed, so that a field someone else changed meanwhile is not sent back unchanged. Inputs that are not
 * their field's kind are `errors`, by field. */
export function formData(fields: Field[], drafts: Drafts, initial: Drafts | null): { data: Json; errors: Record<string, string> } {
  const data: Json = {};
  const errors: Record<string, string> = {};
  for (const field of fields) {
    if (field.file || !(field.name in drafts)) continue;
    if (initial && initial[field.name] === drafts[field.name]) continue;
    try {
      const value = fromDraft(field, drafts[field.name], initial === null);
      if (value !== undefined) data[field.name] = value;
    } catch (failure) {
      if (!(failure instanceof Invalid)) throw failure;
      errors[field.name] = failure.message;
    }
  }
  return { data, errors };
}

/** A relation picker's search: the related collection's text fields that contain what was typed, or its id. */
export function searchFilter(related: Field[], typed: string, quote: (text: string) => string): string {
  const text = related.filter((f) => f.kind === "text" && !f.hidden && !f.file && !SYSTEM.has(f.name)).slice(0, 3);
  return [`id = ${quote(typed)}`, ...text.map((f) => `${f.name} ~ ${quote(typed)}`)].join(" || ");
}
