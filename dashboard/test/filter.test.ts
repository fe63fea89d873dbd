import { expect, it } from "vitest";
import { quoted } from "../src/filter.ts";

it("what is typed stays one string literal of the filter language", () => {
  expect(quoted("ada")).toBe('"ada"');
  expect(quoted('x" || id != "')).toBe('"x\\" || id != \\""');   // an attempt to close the string and add a clause
  expect(quoted("back\\slash")).toBe('"back\\\\slash"');
  expect(quoted("tab\there\r")).toBe('"tab\\u0009here\\u000d"');
});
