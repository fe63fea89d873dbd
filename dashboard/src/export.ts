// Export of a grid's filtered rows: every page of the filter, up to a bound, as CSV or JSON for the browser to
// download. Pure but for the list call it is given (test/export.test.ts).
import type { Json } from "./types.ts";

/** The most rows one export holds: a filter over a large collection downloads a note that it was cut, not
 * everything in memory. */
export const MOST_ROWS = 10_000;
const PER_PAGE = 500;   // records.list's most

export interface Exported { rows: Json[]; cut: boolean }

/** All pages of a query, keyset paged (`next` → `after`), at most `most` rows. */
export async function allRows(list: (after: string | undefined, perPage: number) => Promise<{ items: Json[]; next?: string | null }>,
                              most = MOST_ROWS): Promise<Exported> {
  const rows: Json[] = [];
  let after: string | undefined;
  for (;;) {
    // one row past the bound: whether there was more is known without another call
    const page = await list(after, Math.min(PER_PAGE, most - rows.length + 1));
    rows.push(...page.items);
    if (rows.length > most) return { rows: rows.slice(0, most), cut: true };
    if (!page.next || page.items.length === 0) return { rows, cut: false };
    after = page.next;
  }
}

/** The columns of the rows: every key, in the order first met. */
export function columnsOf(rows: Json[]): string[] {
  const seen = new Set<string>();
  for (const row of rows) for (const key of Object.keys(row)) seen.add(key);
  return [...seen];
}

/** RFC 4180 CSV (CRLF, quotes doubled). Objects and lists as JSON, null as empty. A text that begins like a
 * formula (= + - @, a tab or CR) gets a leading ' so that a spreadsheet shows it instead of running it: records hold
 * what any user wrote, and the admin opens the file. */
export function toCsv(rows: Json[], columns: string[] = columnsOf(rows)): string {
  const field = (value: unknown): string => {
    if (value === null || value === undefined) return "";
    let text = typeof value === "string" ? value : typeof value === "object" ? JSON.stringify(value) : String(value);
    if (typeof value === "string" && /^[=+\-@\t\r]/.test(text)) text = "'" + text;
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return [columns.map(field).join(","), ...rows.map((row) => columns.map((c) => field(row[c])).join(","))]
    .map((line) => line + "\r\n").join("");
}
