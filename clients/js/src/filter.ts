// The filter language and the sort order of records.list, in the client: enough to place a write the gateway has
// not seen yet in the live queries it touches. The gateway decides what a list holds; this only guesses ahead of
// it, so where the client cannot know (a field through a relation, a full-text search, a variable it lacks, a
// field the record does not carry) the answer is "unknown" and the caller keeps to what the gateway said.
//
// Truth values follow SQL as the gateway's own evaluator does (hapta/query/evaluate.py): true, false, or null
// (unknown); a comparison with a null operand is unknown except `= null` / `!= null`; `!` of unknown is unknown;
// `&&` is false if any part is, `||` true if any part is. A record matches only when the answer is true.
import type { Json } from "./errors.js";

export type Truth = boolean | null;

type Operand =
  | { kind: "field"; path: string[] }
  | { kind: "var"; name: string }
  | { kind: "value"; value: unknown };

export type FilterNode =
  | { kind: "compare"; left: Operand; op: string; right: Operand }
  | { kind: "and"; items: FilterNode[] }
  | { kind: "or"; items: FilterNode[] }
  | { kind: "not"; item: FilterNode };

/** What `@user.*` and `@now` stand for here: the signed-in user as the session knows it. */
export interface FilterVars {
  user?: Json | null;
  now?: number;
}

const OPERATORS = ["!=", ">=", "<=", "!~", "@@", "=", ">", "<", "~"];   // longest first
const PUNCTUATION = ["&&", "||", "!", "(", ")", "[", "]", ","];

interface Token {
  type: "field" | "var" | "value" | "op" | "end" | string;
  value: unknown;
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let at = 0;
  const name = /[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/y;
  const number = /-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
  while (true) {
    while (at < text.length && " \t\r\n".includes(text[at])) at++;
    if (at >= text.length) {
      tokens.push({ type: "end", value: null });
      return tokens;
    }
    const char = text[at];
    if (char === '"') {
      let out = "";
      at++;
      while (text[at] !== '"') {
        if (at >= text.length) throw new Error("unterminated string");
        if (text[at] === "\\") {
          const code = text[at + 1];
          if (code === "u") {
            out += String.fromCharCode(parseInt(text.slice(at + 2, at + 6), 16));
            at += 6;
          } else {
            out += ({ n: "\n", t: "\t" } as Record<string, string>)[code] ?? code;
            at += 2;
          }
        } else {
          out += text[at++];
        }
      }
      at++;
      tokens.push({ type: "value", value: out });
      continue;
    }
    number.lastIndex = at;
    if (/[0-9]/.test(char) || (char === "-" && /[0-9]/.test(text[at + 1] ?? ""))) {
      const found = number.exec(text)!;
      tokens.push({ type: "value", value: Number(found[0]) });
      at += found[0].length;
      continue;
    }
    const op = OPERATORS.find((symbol) => text.startsWith(symbol, at));
    if (op) {
      tokens.push({ type: "op", value: op });
      at += op.length;
      continue;
    }
    name.lastIndex = char === "@" ? at + 1 : at;
    const word = name.exec(text);
    if (word) {
      at = name.lastIndex;
      if (char === "@") tokens.push({ type: "var", value: word[0] });
      else if (word[0] === "true" || word[0] === "false") tokens.push({ type: "value", value: word[0] === "true" });
      else if (word[0] === "null") tokens.push({ type: "value", value: null });
      else if (word[0] === "in") tokens.push({ type: "op", value: "in" });
      else tokens.push({ type: "field", value: word[0].split(".") });
      continue;
    }
    const punct = PUNCTUATION.find((symbol) => text.startsWith(symbol, at));
    if (!punct) throw new Error(`unexpected character ${char} at ${at}`);
    tokens.push({ type: punct, value: punct });
    at += punct.length;
  }
}

/** A filter's tree, or throws on what the gateway would refuse too (the gateway's message is the one to show). */
export function parseFilter(text: string): FilterNode {
  const tokens = tokenize(text);
  let at = 0;
  const next = () => tokens[at++];
  const peek = () => tokens[at];
  const expect = (type: string) => {
    if (peek().type !== type) throw new Error(`expected ${type}`);
    return next();
  };
  const operand = (): Operand => {
    const token = next();
    if (token.type === "field") return { kind: "field", path: token.value as string[] };
    if (token.type === "var") return { kind: "var", name: token.value as string };
    if (token.type === "value") return { kind: "value", value: token.value };
    throw new Error("expected a field or value");
  };
  const comparison = (): FilterNode => {
    const left = operand();
    const op = expect("op").value as string;
    if (op === "in" && peek().type === "[") {
      next();
      const values: unknown[] = [];
      while (peek().type !== "]") {
        if (values.length) expect(",");
        values.push(expect("value").value);
      }
      next();
      return { kind: "compare", left, op, right: { kind: "value", value: values } };
    }
    return { kind: "compare", left, op, right: operand() };
  };
  const unary = (): FilterNode => {
    if (peek().type === "!") {
      next();
      return { kind: "not", item: unary() };
    }
    if (peek().type === "(") {
      next();
      const inner = expr();
      expect(")");
      return inner;
    }
    return comparison();
  };
  const joined = (kind: "and" | "or", separator: string, part: () => FilterNode) => (): FilterNode => {
    const items = [part()];
    while (peek().type === separator) {
      next();
      items.push(part());
    }
    return items.length === 1 ? items[0] : kind === "and" ? { kind, items } : { kind, items };
  };
  const conjunction = joined("and", "&&", unary);
  const expr = joined("or", "||", conjunction);
  const tree = expr();
  expect("end");
  return tree;
}

/** Whether `record` matches `node`: true, false or null (SQL's unknown, which never matches) as the gateway
 * would answer; "unknown" where only the gateway can tell (a field through a relation, `@@`, a variable the
 * session lacks, a field the record does not carry), unless the rest decides it (`a = 1 || post.public = true`
 * with a = 1). */
export function decide(node: FilterNode, record: Json, vars: FilterVars = {}): Truth | "unknown" {
  try {
    return truth(node, record, vars);
  } catch (error) {
    if (error === UNDECIDED) return "unknown";
    throw error;
  }
}

const UNDECIDED = Symbol("undecided");

function truth(node: FilterNode, record: Json, vars: FilterVars): Truth {
  if (node.kind === "not") {
    const value = truth(node.item, record, vars);
    return value === null ? null : !value;
  }
  if (node.kind === "and" || node.kind === "or") {
    const decisive = node.kind === "or";
    let result: Truth = !decisive;
    let undecided = false;
    for (const item of node.items) {
      let value: Truth;
      try {
        value = truth(item, record, vars);
      } catch (error) {
        if (error !== UNDECIDED) throw error;
        undecided = true;
        continue;
      }
      if (value === decisive) return decisive;
      if (value === null) result = null;
    }
    if (undecided) throw UNDECIDED;
    return result;
  }
  return compare(node, record, vars);
}

function compare(node: Extract<FilterNode, { kind: "compare" }>, record: Json, vars: FilterVars): Truth {
  const { op } = node;
  if (op === "@@") return undecided();
  const read = (operand: Operand): unknown => {
    if (operand.kind === "value") return operand.value;
    if (operand.kind === "var") return variable(operand.name, vars);
    if (operand.path.length > 1 || !(operand.path[0] in record)) return undecided();
    return record[operand.path[0]];
  };
  const isNull = (operand: Operand) => operand.kind === "value" && operand.value === null;
  if ((op === "=" || op === "!=") && (isNull(node.left) || isNull(node.right))) {
    const missing = read(isNull(node.left) ? node.right : node.left) == null;
    return op === "=" ? missing : !missing;
  }
  const left = read(node.left);
  const right = read(node.right);
  if (op === "in") {
    const list = Array.isArray(right) ? right : null;
    if (!list) return null;
    if (!list.length) return false;
    if (left == null) return null;
    if (list.some((item) => item != null && same(left, item))) return true;
    return list.some((item) => item == null) ? null : false;
  }
  if (left == null || right == null) return null;
  if (op === "~" || op === "!~") {
    if (typeof left !== "string" || typeof right !== "string") return undecided();
    return left.toLowerCase().includes(right.toLowerCase()) === (op === "~");
  }
  if (op === "=") return same(left, right);
  if (op === "!=") return !same(left, right);
  const order = orderOf(left, right);
  if (order === null) return undecided();
  return op === ">" ? order > 0 : op === ">=" ? order >= 0 : op === "<" ? order < 0 : order <= 0;
}

function undecided(): never {
  throw UNDECIDED;
}

function variable(name: string, vars: FilterVars): unknown {
  if (name === "now") return new Date(vars.now ?? Date.now()).toISOString();
  const user = vars.user;
  if (name === "user.id") return user ? user.id ?? null : null;
  if (name === "user.role") return user ? "user" : undecided();
  const field = name.slice("user.".length);
  if (user && field in user) return user[field];
  return user ? undecided() : null;
}

function same(left: unknown, right: unknown): boolean {
  const order = orderOf(left, right);
  return order === null ? left === right : order === 0;
}

// RFC 3339 timestamps as the gateway writes them: whole seconds, or with up to 6 fraction digits; Z or an offset.
const TIMESTAMP = /^(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d(?::\d\d)?)(?:\.(\d{1,9}))?)?(Z|[+-]\d\d:?\d\d)?$/;

/** A timestamp as microseconds since 1970 (exact: the gateway keeps microseconds), or null for anything else. */
export function timestampKey(value: string): number | null {
  const found = TIMESTAMP.exec(value);
  if (!found) return null;
  const [, date, time = "00:00:00", fraction = "", zone = "Z"] = found;
  const ms = Date.parse(`${date}T${time.length === 5 ? time + ":00" : time}${zone}`);
  if (Number.isNaN(ms)) return null;
  return ms * 1000 + Number((fraction + "000000").slice(0, 6));
}

/** -1, 0 or 1 as the gateway orders the two values, or null when they are not of one orderable kind. */
function orderOf(left: unknown, right: unknown): number | null {
  if (typeof left === "number" && typeof right === "number") return Math.sign(left - right);
  if (typeof left === "boolean" && typeof right === "boolean") return Number(left) - Number(right);
  if (typeof left === "string" && typeof right === "string") {
    const a = timestampKey(left);
    const b = a === null ? null : timestampKey(right);
    if (a !== null && b !== null) return Math.sign(a - b);
    return left < right ? -1 : left > right ? 1 : 0;   // code points (C collation), as the gateway's default
  }
  return null;
}

/** How records.list orders records for `sort` ("-created,title"; id breaks ties): ascending puts nulls last,
 * descending first, as PostgreSQL does. */
export function comparator(sort: string): (a: Json, b: Json) => number {
  const terms = sort.split(",").map((term) => term.trim()).filter(Boolean)
    .map((term) => term.startsWith("-") ? { field: term.slice(1), descending: true }
                                        : { field: term.replace(/^\+/, ""), descending: false });
  if (!terms.some((term) => term.field === "id")) terms.push({ field: "id", descending: false });
  return (a, b) => {
    for (const { field, descending } of terms) {
      const left = a[field] ?? null;
      const right = b[field] ?? null;
      let order: number;
      if (left === null || right === null) order = left === right ? 0 : left === null ? 1 : -1;
      else order = orderOf(left, right) ?? 0;
      if (order !== 0) return descending ? -order : order;
    }
    return 0;
  };
}
