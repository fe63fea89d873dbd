// The shapes of the admin ops' answers (hapta/ops/admin.py, docs/protocol.md).
export type Json = Record<string, unknown>;

export interface FileSpec { max_size: number; max_count: number; types: string[] | null; thumbs?: string[] }

export interface Field {
  name: string;
  kind: string;
  relation: string | null;
  hidden: boolean;
  guarded: string | null;
  readonly: boolean;
  /** A client may set it (records.create/update); absent from older gateways. */
  writable?: boolean;
  required?: boolean;
  /** The text-search configuration `field @@ "words"` uses, when the field is searchable. */
  search?: string | null;
  /** For the forms (absent from older gateways): may it be null, the column default's SQL text ("now()"), the
   * values of a plain CHECK (field IN (...)). */
  nullable?: boolean;
  default?: string | null;
  choices?: (string | number)[] | null;
  file: FileSpec | null;
}

export type RuleOp = "list" | "view" | "create" | "update" | "delete";

export interface CollectionInfo {
  name: string;
  rules: Record<RuleOp, string | null>;
  fields: Field[];
}

export interface Schema { collections: CollectionInfo[] }

export interface StoredFile { name: string; size: number; type: string; [more: string]: unknown }

export interface Metrics {
  at: number;
  connections: number;
  subscriptions: number;
  /** Requests answered (in), and realtime events sent (out): totals since the process started. */
  requests: number;
  events: number;
  errors: number;
  p99_ms: number | null;
  cache_hits: number;
  cache_loads: number;
  feed_lag_ms: number | null;
}
