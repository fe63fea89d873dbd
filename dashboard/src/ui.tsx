// Small pieces every page uses: an error line, a JSON view, readable times and sizes.
import type { ComponentChildren } from "preact";

export function Problem({ error }: { error: string | null | undefined }) {
  return error ? <p class="error" role="alert">{error}</p> : null;
}

/** `children` once `when` arrived; until then "Loading…", or nothing when the call failed (its error says why). */
export function Loading({ when, failed, children }: { when: unknown; failed?: string | null;
                                                      children: ComponentChildren }) {
  if (when !== undefined) return <>{children}</>;
  return failed ? null : <p class="muted">Loading…</p>;
}

export function JsonView({ value }: { value: unknown }) {
  return <pre class="json">{JSON.stringify(value, null, 2)}</pre>;
}

/** Unix seconds, RFC 3339 or null → a local date and time. */
export function when(value: unknown): string {
  if (value === null || value === undefined || value === "") return "—";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(String(value));
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export function bytes(size: number): string {
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KiB`;
  return `${(size / 1024 / 1024).toFixed(1)} MiB`;
}

/** A cell's short text: objects and lists as JSON, cut to fit. */
export function cell(value: unknown, max = 60): string {
  if (value === null || value === undefined) return "—";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

export function Figure({ label, value, children }: { label: string; value: string; children?: ComponentChildren }) {
  return (
    <div class="figure" data-figure={label}>
      <div class="label">{label}</div>
      <div class="value">{value}</div>
      {children}
    </div>
  );
}
