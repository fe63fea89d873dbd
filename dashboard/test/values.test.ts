import { expect, it } from "vitest";
import { allRows, toCsv } from "../src/export.ts";
import { quoted } from "../src/filter.ts";
import type { Field } from "../src/types.ts";
import { formData, fromDraft, Invalid, searchFilter, toDraft } from "../src/values.ts";

const field = (name: string, kind: string, more: Partial<Field> = {}): Field => ({
  name, kind, relation: null, hidden: false, guarded: null, readonly: false, writable: true, file: null,
  nullable: true, ...more });

it("an input's text becomes the field's kind, and back", () => {
  expect(fromDraft(field("n", "int"), "42", false)).toBe(42);
  expect(() => fromDraft(field("n", "int"), "4.2", false)).toThrow(Invalid);
  expect(fromDraft(field("x", "float"), "4.5", false)).toBe(4.5);
  expect(fromDraft(field("j", "json"), '{"a": [1]}', false)).toEqual({ a: [1] });
  expect(() => fromDraft(field("j", "json"), "{a", false)).toThrow(/not JSON/);
  expect(fromDraft(field("s", "text", { choices: ["draft", "live"] }), "live", false)).toBe("live");
  expect(fromDraft(field("s", "int", { choices: [1, 2] }), "2", false)).toBe(2);
  const at = "2026-12-07T10:00:00.000Z";
  expect(fromDraft(field("t", "timestamp"), toDraft(field("t", "timestamp"), at) as string, false)).toBe(at);
  expect(toDraft(field("b", "bool"), true)).toBe(true);
  expect(toDraft(field("j", "json"), [1])).toBe("[\n  1\n]");
});

it("an empty input: left out on a create, null (or \"\" for a text that may not be null) on an edit", () => {
  expect(fromDraft(field("n", "int"), "", true)).toBeUndefined();
  expect(fromDraft(field("n", "int"), " ", false)).toBeNull();
  expect(fromDraft(field("t", "text", { nullable: false }), "", false)).toBe("");
});

it("an edit sends only what changed; a wrong input is an error at its field", () => {
  const fields = [field("text", "text"), field("likes", "int"), field("public", "bool")];
  const initial = { text: "a", likes: "1", public: false };
  expect(formData(fields, { ...initial, text: "b" }, initial)).toEqual({ data: { text: "b" }, errors: {} });
  expect(formData(fields, { ...initial, likes: "x" }, initial).errors).toEqual({ likes: "a whole number" });
  expect(formData(fields, { text: "hi", likes: "", public: true }, null).data).toEqual({ text: "hi", public: true });
});

it("a relation picker searches the related collection's text fields, what was typed one string literal", () => {
  const users = [field("id", "text"), field("username", "text"), field("password_hash", "text", { hidden: true }),
                 field("created", "timestamp")];
  expect(searchFilter(users, 'a"b', quoted)).toBe('id = "a\\"b" || username ~ "a\\"b"');
});

it("CSV: quoted where it must be, objects as JSON, formulas defused", () => {
  expect(toCsv([{ id: "a", text: 'say "hi", then\ngo', n: 3, media: [{ name: "x.png" }], none: null },
                { id: "b", text: "=1+1" }]))
    .toBe('id,text,n,media,none\r\na,"say ""hi"", then\ngo",3,"[{""name"":""x.png""}]",\r\nb,\'=1+1,,,\r\n');
});

it("an export reads every page of the filter, and stops at the bound with a note", async () => {
  const rows = Array.from({ length: 25 }, (_, i) => ({ id: String(i) }));
  const list = async (after: string | undefined, perPage: number) => {
    const start = after ? Number(after) : 0;
    const items = rows.slice(start, start + perPage);
    return { items, next: start + perPage < rows.length ? String(start + perPage) : null };
  };
  expect(await allRows(list, 100)).toEqual({ rows, cut: false });
  expect(await allRows(list, 25)).toEqual({ rows, cut: false });
  const cut = await allRows(list, 10);
  expect(cut.cut).toBe(true);
  expect(cut.rows.map((r) => r.id)).toEqual(rows.slice(0, 10).map((r) => r.id));
});
