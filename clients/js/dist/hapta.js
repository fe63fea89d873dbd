// @hapta/client (built from clients/js/src by build.mjs; do not edit)

// src/backoff.ts
function backoffDelay(attempt, base, cap, random = Math.random) {
  const ceiling = Math.min(cap, base * 2 ** attempt);
  return ceiling * (0.5 + random() / 2);
}
var Backoff = class {
  constructor(base, cap) {
    this.base = base;
    this.cap = cap;
  }
  base;
  cap;
  attempt = 0;
  next() {
    return backoffDelay(this.attempt++, this.base, this.cap);
  }
  reset() {
    this.attempt = 0;
  }
};
var TRY_AGAIN = /* @__PURE__ */ new Set(["RATE_LIMITED", "UNAVAILABLE", "TIMEOUT"]);
var KEYED_WRITES = /* @__PURE__ */ new Set(["records.create", "records.update", "records.delete", "records.batch"]);
function takesKey(op) {
  return KEYED_WRITES.has(op);
}
function idempotent(request) {
  return KEYED_WRITES.has(request.op) && typeof request.args.idempotency_key === "string";
}
function mayRetry(policy, request, error) {
  return TRY_AGAIN.has(error.code) && error.retryAfter !== void 0 && request.retries < policy.attempts && error.retryAfter * 1e3 <= policy.maxWait && (error.details?.outcome !== "unknown" || idempotent(request));
}

// src/channels.ts
var Channel = class {
  constructor(hapta, name) {
    this.hapta = hapta;
    this.name = name;
  }
  hapta;
  name;
  /** Who is there, this connection included, kept right across reconnects. */
  members = [];
  version = null;
  joined = false;
  handlers = { message: [], presence: [], left: [] };
  async join() {
    const answer = await this.hapta.call("channels.join", { channel: this.name });
    this.joined = true;
    this.apply(answer);
    return this.members;
  }
  send(data) {
    return this.hapta.call("channels.publish", { channel: this.name, data });
  }
  async leave() {
    this.joined = false;
    await this.hapta.call("channels.leave", { channel: this.name });
  }
  /** "message" (`{from, data}`), "presence" (`{action, member}`, after `members` changed) or "left"
   * (`{reason}`: the membership ended with the identity it was joined as). Returns the unsubscriber. */
  on(event, handler) {
    this.handlers[event].push(handler);
    return () => {
      this.handlers[event] = this.handlers[event].filter((h) => h !== handler);
    };
  }
  /** @internal a join's answer: everyone, or (a rejoin with a version) who joined and left since. */
  apply(answer) {
    if (Array.isArray(answer.members)) {
      this.members = answer.members;
    } else {
      const left = new Set(answer.left.map((m) => m.id));
      const kept = this.members.filter((m) => !left.has(m.id));
      const known = new Set(kept.map((m) => m.id));
      this.members = [...kept, ...answer.joined.filter((m) => !known.has(m.id))];
    }
    this.version = answer.version ?? null;
  }
  /** @internal */
  heard(event, data) {
    if (event === "channels.presence") {
      const member = data.member;
      this.members = this.members.filter((m) => m.id !== member.id);
      if (data.action === "join") this.members.push(member);
      this.handlers.presence.forEach((h) => h(data));
    } else if (event === "channels.message") {
      this.handlers.message.forEach((h) => h(data));
    } else if (event === "channels.left") {
      this.joined = false;
      this.handlers.left.forEach((h) => h(data));
    }
  }
};
var Channels = class {
  /** `client` is what each Channel calls through (the Hapta). */
  constructor(client, requests) {
    this.client = client;
    this.requests = requests;
  }
  client;
  requests;
  channels = /* @__PURE__ */ new Map();
  get(name) {
    let channel = this.channels.get(name);
    if (!channel) {
      channel = new Channel(this.client, name);
      this.channels.set(name, channel);
    }
    return channel;
  }
  /** On the socket being restored: every joined channel again, told only who came and went since. */
  async rejoin() {
    for (const channel of this.channels.values()) {
      if (!channel.joined) continue;
      channel.apply(await this.requests.direct("channels.join", { channel: channel.name, version: channel.version }));
    }
  }
  /** channels.presence, channels.message, channels.left */
  heard(event, data) {
    this.channels.get(data.channel)?.heard(event, data);
  }
  /** realtime.reset: who is in these channels cannot be told as a difference; join them afresh. */
  reset(names2) {
    for (const name of names2) {
      const joined = this.channels.get(name);
      if (joined?.joined) joined.join().catch(() => void 0);
    }
  }
};

// src/errors.ts
var HaptaError = class extends Error {
  code;
  details;
  /** Seconds after which trying again makes sense (RATE_LIMITED, UNAVAILABLE, TIMEOUT). */
  retryAfter;
  constructor(code, message, details, retryAfter) {
    super(message);
    this.name = "HaptaError";
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
  }
};

// src/files.ts
var EXTENSIONS = {
  "image/png": "png",
  "image/jpeg": "jpg",
  "image/gif": "gif",
  "image/webp": "webp",
  "image/svg+xml": "svg",
  "video/mp4": "mp4",
  "video/webm": "webm",
  "audio/mpeg": "mp3",
  "application/pdf": "pdf",
  "text/plain": "txt"
};
var TYPES = {
  jpeg: "image/jpeg",
  ...Object.fromEntries(Object.entries(EXTENSIONS).map(([type, extension2]) => [extension2, type]))
};
function uploadsOf(files) {
  const out = [];
  for (const [field, list] of Object.entries(files)) {
    for (const input of list ?? []) {
      const given = input instanceof Blob ? { data: input } : input;
      const raw = given.data;
      const data = raw instanceof ArrayBuffer ? new Uint8Array(raw) : raw;
      const named = given.name || data.name || "";
      const type = given.type || (data instanceof Blob ? data.type : "") || TYPES[named.split(".").pop().toLowerCase()] || "application/octet-stream";
      const extension2 = EXTENSIONS[type.split(";")[0]];
      const name = named || `file-${out.length + 1}${extension2 ? "." + extension2 : ""}`;
      out.push({ field, name, type, size: data instanceof Blob ? data.size : data.length, data });
    }
  }
  return out;
}
function withTokens(args, uploads, tokens) {
  const data = { ...args.data ?? {} };
  for (const field of new Set(uploads.map((upload) => upload.field))) {
    data[field] = (data[field] ?? []).filter((entry) => !isUpload(entry));
  }
  uploads.forEach((upload, n) => data[upload.field].push({ upload: tokens[n] }));
  return { ...args, data };
}
var isUpload = (entry) => !!entry && typeof entry === "object" && "upload" in entry;
function asFieldEntry(entry) {
  if (typeof entry === "string") return { name: entry };
  if (isUpload(entry)) return { upload: entry.upload };
  return { name: entry.name };
}
var MAX_RESUMES = 10;
var Files = class {
  constructor(requests, transport) {
    this.requests = requests;
    this.transport = transport;
  }
  requests;
  transport;
  transfers = /* @__PURE__ */ new Map();
  /** Streams one file: into the record `id`'s field, or, with `id` null, for a record still to be written (the
   * answer's `upload` token is what the write names). */
  async upload(collection, id, field, data, options) {
    const bytes = data instanceof Uint8Array ? data : data instanceof ArrayBuffer ? new Uint8Array(data) : null;
    const blob = bytes ? null : data;
    const piece = async (start, end) => bytes ? bytes.subarray(start, end) : new Uint8Array(await blob.slice(start, end).arrayBuffer());
    const name = options.name ?? (data.name || "file");
    const type = options.type ?? (blob?.type || "application/octet-stream");
    const size = bytes ? bytes.length : blob.size;
    let started = await this.requests.call("files.upload", {
      collection,
      ...id === null ? {} : { id },
      field,
      name,
      size,
      type
    });
    const resumable = started.upload_id;
    let reported = -1;
    const report = (sent) => {
      if (sent <= reported) return;
      reported = sent;
      options.onProgress?.(sent, size);
    };
    let lostWith = null;
    for (let resumes = 0; ; resumes++) {
      const { stream, chunk_size: chunkSize, window } = started;
      const transfer = this.track(stream);
      transfer.acked = started.received ?? 0;
      try {
        let sent = transfer.acked;
        while (sent < size) {
          while (sent - transfer.acked >= window && !transfer.error) await this.changed(transfer);
          if (transfer.error) throw transfer.error;
          const chunk = await piece(sent, Math.min(size, sent + chunkSize));
          this.transport.sendChunk(stream, chunk);
          sent += chunk.length;
          report(Math.min(sent, transfer.acked || sent));
        }
        while (transfer.acked < size && !transfer.error) await this.changed(transfer);
        if (transfer.error) throw transfer.error;
        report(size);
        return await this.requests.call("files.finish", { stream });
      } catch (error) {
        const lost = error instanceof HaptaError && error.code === "UNAVAILABLE";
        if (!resumable || !lost || resumes >= MAX_RESUMES) throw error;
        lostWith = error;
      } finally {
        this.transfers.delete(stream);
      }
      started = await this.requests.call("files.upload", { resume: resumable }).catch((error) => {
        throw error instanceof HaptaError && error.code === "NOT_FOUND" ? lostWith : error;
      });
    }
  }
  /** A write's args with its files uploaded and named (the steps below, in turn): the uploads' tokens replace
   * any the args named before (an earlier try whose tokens expired). */
  async attach(op, args, uploads, onProgress) {
    return withTokens(await this.kept(op, args, uploads), uploads, await this.uploadAll(args, uploads, onProgress));
  }
  /** The args of a write with new files in the fields of `uploads`, each field naming the files it keeps (`{name}`):
   * for an update, those `data` names in the field, else every file the record holds now, read here (the update
   * then goes at the version read, unless it names one); for a create, none. */
  async kept(op, args, uploads) {
    const data = { ...args.data ?? {} };
    const out = { ...args, data };
    const fields = [...new Set(uploads.map((upload) => upload.field))];
    const unnamed = fields.filter((field) => !Array.isArray(data[field]));
    if (op === "records.update" && unnamed.length) {
      const held = await this.requests.call("records.get", {
        collection: args.collection,
        id: args.id,
        fields: ["id", "version", ...unnamed]
      });
      for (const field of unnamed) data[field] = (held[field] ?? []).map((file) => ({ name: file.name }));
      if (out.version === void 0 && typeof held.version === "number") out.version = held.version;
    }
    for (const field of fields) {
      data[field] = (data[field] ?? []).filter((entry) => !isUpload(entry)).map(asFieldEntry);
    }
    return out;
  }
  /** Uploads each file without a record id, one after the other (`onProgress` hears the bytes of all of them):
   * their tokens, in order. */
  async uploadAll(args, uploads, onProgress) {
    const total = uploads.reduce((sum, upload) => sum + upload.size, 0);
    const tokens = [];
    let before = 0;
    for (const upload of uploads) {
      const done2 = await this.upload(
        String(args.collection),
        null,
        upload.field,
        upload.data,
        {
          name: upload.name,
          type: upload.type,
          onProgress: (sent) => onProgress?.(before + sent, total)
        }
      );
      before += upload.size;
      tokens.push(String(done2.upload));
    }
    return tokens;
  }
  async download(collection, id, field, name, options = {}) {
    const thumb = options.thumb ? { thumb: options.thumb } : {};
    return this.streamed("files.download", { collection, id, field, name, ...thumb });
  }
  /** The bytes of a download stream that `op` answers with {stream, length}, as files.download does (another op
   * that sends a file this way: the dashboard's admin.backup.download). */
  async streamed(op, args) {
    let transfer = null;
    const answer = await this.requests.call(op, args, (data) => {
      transfer = this.track(data.stream);
    });
    const tracked = transfer;
    try {
      while (!tracked.done && !tracked.error) await this.changed(tracked);
      if (tracked.error) throw tracked.error;
      const whole = new Uint8Array(answer.length);
      let at = 0;
      for (const chunk of tracked.chunks) {
        whole.set(chunk, at);
        at += chunk.length;
      }
      return whole;
    } finally {
      this.transfers.delete(answer.stream);
    }
  }
  /** A signed link; `options` is the link's lifetime in seconds, or {expires?, thumb?} (a size the field
   * declares: its thumbnail). */
  async url(collection, id, field, name, options) {
    const { expires, thumb } = typeof options === "number" ? { expires: options, thumb: void 0 } : options ?? {};
    return (await this.requests.call("files.url", {
      collection,
      id,
      field,
      name,
      ...expires ? { expires } : {},
      ...thumb ? { thumb } : {}
    })).url;
  }
  /** A chunk of a download's stream. */
  chunk(stream, data) {
    const transfer = this.transfers.get(stream);
    if (!transfer) return;
    transfer.chunks.push(data.slice());
    transfer.changed();
  }
  /** files.ack, files.error, files.end */
  heard(event, data) {
    if (event !== "files.ack" && event !== "files.error" && event !== "files.end") return;
    const transfer = this.transfers.get(data.stream);
    if (!transfer) return;
    if (event === "files.ack") transfer.acked = data.received;
    if (data.error) {
      const error = data.error;
      transfer.error = new HaptaError(String(error.code), String(error.message), error.details);
    }
    if (event === "files.end") transfer.done = true;
    transfer.changed();
  }
  /** The socket dropped: every transfer on it fails. */
  lost() {
    for (const transfer of this.transfers.values()) {
      transfer.error = new HaptaError("UNAVAILABLE", "the connection was lost during the transfer");
      transfer.changed();
    }
    this.transfers.clear();
  }
  track(stream) {
    const transfer = { acked: 0, changed: () => void 0, error: null, chunks: [], done: false };
    this.transfers.set(stream, transfer);
    return transfer;
  }
  changed(transfer) {
    return new Promise((resolve) => {
      transfer.changed = resolve;
    });
  }
};

// src/filter.ts
var OPERATORS = ["!=", ">=", "<=", "!~", "@@", "=", ">", "<", "~"];
var PUNCTUATION = ["&&", "||", "!", "(", ")", "[", "]", ","];
function tokenize(text) {
  const tokens = [];
  let at = 0;
  const name = /[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/y;
  const number = /-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
  while (true) {
    while (at < text.length && " 	\r\n".includes(text[at])) at++;
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
            out += { n: "\n", t: "	" }[code] ?? code;
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
    if (/[0-9]/.test(char) || char === "-" && /[0-9]/.test(text[at + 1] ?? "")) {
      const found = number.exec(text);
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
function parseFilter(text) {
  const tokens = tokenize(text);
  let at = 0;
  const next = () => tokens[at++];
  const peek = () => tokens[at];
  const expect = (type) => {
    if (peek().type !== type) throw new Error(`expected ${type}`);
    return next();
  };
  const operand = () => {
    const token = next();
    if (token.type === "field") return { kind: "field", path: token.value };
    if (token.type === "var") return { kind: "var", name: token.value };
    if (token.type === "value") return { kind: "value", value: token.value };
    throw new Error("expected a field or value");
  };
  const comparison = () => {
    const left = operand();
    const op = expect("op").value;
    if (op === "in" && peek().type === "[") {
      next();
      const values = [];
      while (peek().type !== "]") {
        if (values.length) expect(",");
        values.push(expect("value").value);
      }
      next();
      return { kind: "compare", left, op, right: { kind: "value", value: values } };
    }
    return { kind: "compare", left, op, right: operand() };
  };
  const unary = () => {
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
  const joined = (kind, separator, part) => () => {
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
function decide(node, record, vars = {}) {
  try {
    return truth(node, record, vars);
  } catch (error) {
    if (error === UNDECIDED) return "unknown";
    throw error;
  }
}
var UNDECIDED = /* @__PURE__ */ Symbol("undecided");
function truth(node, record, vars) {
  if (node.kind === "not") {
    const value = truth(node.item, record, vars);
    return value === null ? null : !value;
  }
  if (node.kind === "and" || node.kind === "or") {
    const decisive = node.kind === "or";
    let result = !decisive;
    let undecided2 = false;
    for (const item of node.items) {
      let value;
      try {
        value = truth(item, record, vars);
      } catch (error) {
        if (error !== UNDECIDED) throw error;
        undecided2 = true;
        continue;
      }
      if (value === decisive) return decisive;
      if (value === null) result = null;
    }
    if (undecided2) throw UNDECIDED;
    return result;
  }
  return compare(node, record, vars);
}
function compare(node, record, vars) {
  const { op } = node;
  if (op === "@@") return undecided();
  const read = (operand) => {
    if (operand.kind === "value") return operand.value;
    if (operand.kind === "var") return variable(operand.name, vars);
    if (operand.path.length > 1 || !(operand.path[0] in record)) return undecided();
    return record[operand.path[0]];
  };
  const isNull = (operand) => operand.kind === "value" && operand.value === null;
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
function undecided() {
  throw UNDECIDED;
}
function variable(name, vars) {
  if (name === "now") return new Date(vars.now ?? Date.now()).toISOString();
  const user = vars.user;
  if (name === "user.id") return user ? user.id ?? null : null;
  if (name === "user.role") return user ? "user" : undecided();
  const field = name.slice("user.".length);
  if (user && field in user) return user[field];
  return user ? undecided() : null;
}
function same(left, right) {
  const order = orderOf(left, right);
  return order === null ? left === right : order === 0;
}
var TIMESTAMP = /^(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d(?::\d\d)?)(?:\.(\d{1,9}))?)?(Z|[+-]\d\d:?\d\d)?$/;
function timestampKey(value) {
  const found = TIMESTAMP.exec(value);
  if (!found) return null;
  const [, date, time = "00:00:00", fraction = "", zone = "Z"] = found;
  const ms = Date.parse(`${date}T${time.length === 5 ? time + ":00" : time}${zone}`);
  if (Number.isNaN(ms)) return null;
  return ms * 1e3 + Number((fraction + "000000").slice(0, 6));
}
function orderOf(left, right) {
  if (typeof left === "number" && typeof right === "number") return Math.sign(left - right);
  if (typeof left === "boolean" && typeof right === "boolean") return Number(left) - Number(right);
  if (typeof left === "string" && typeof right === "string") {
    const a = timestampKey(left);
    const b = a === null ? null : timestampKey(right);
    if (a !== null && b !== null) return Math.sign(a - b);
    return left < right ? -1 : left > right ? 1 : 0;
  }
  return null;
}
function comparator(sort) {
  const terms = sort.split(",").map((term) => term.trim()).filter(Boolean).map((term) => term.startsWith("-") ? { field: term.slice(1), descending: true } : { field: term.replace(/^\+/, ""), descending: false });
  if (!terms.some((term) => term.field === "id")) terms.push({ field: "id", descending: false });
  return (a, b) => {
    for (const { field, descending } of terms) {
      const left = a[field] ?? null;
      const right = b[field] ?? null;
      let order;
      if (left === null || right === null) order = left === right ? 0 : left === null ? 1 : -1;
      else order = orderOf(left, right) ?? 0;
      if (order !== 0) return descending ? -order : order;
    }
    return 0;
  };
}

// src/overlay.ts
function recordKey(collection, id) {
  return `${collection}\0${String(id)}`;
}
var TEMP_PREFIX = "local-";
function iso(ms) {
  return new Date(ms).toISOString();
}
function steps(write) {
  const { op, args } = write;
  if (op === "records.create") {
    const id = write.answer ? String(write.answer.id) : write.tempIds?.[0] ?? "";
    return [{
      action: "create",
      collection: String(args.collection),
      id,
      data: args.data ?? {},
      answer: write.answer
    }];
  }
  if (op === "records.update" || op === "records.delete") {
    return [{
      action: op === "records.update" ? "update" : "delete",
      collection: String(args.collection),
      id: String(args.id),
      data: args.data ?? {},
      answer: write.answer
    }];
  }
  if (op !== "records.batch") return [];
  const ops = args.ops ?? [];
  const results = write.answer?.results ?? [];
  const ids = [];
  const ref = (value) => {
    if (value && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 1 && typeof value.$ref === "number") {
      return ids[value.$ref];
    }
    return value;
  };
  return ops.map((step, n) => {
    const action = step.op;
    const answer = results[n];
    const id = answer ? String(answer.id) : action === "create" ? write.tempIds?.[n] ?? "" : String(ref(step.id));
    ids[n] = id;
    const data = Object.fromEntries(Object.entries(step.data ?? {}).map(([k, v]) => [k, ref(v)]));
    return { action, collection: String(step.collection), id, data, answer };
  });
}
function effectsOf(writes, index) {
  const now = new Map(index);
  const out = [];
  for (const write of writes) {
    for (const step of steps(write)) {
      const at = recordKey(step.collection, step.id);
      const before = now.get(at) ?? null;
      let record = null;
      if (step.action === "create") {
        record = step.answer ?? {
          ...step.data,
          id: step.id,
          created: iso(write.made),
          updated: iso(write.made),
          ...pendingFiles(write, step.data, null)
        };
      } else if (step.action === "update") {
        record = step.answer ?? (before ? {
          ...before,
          ...step.data,
          updated: iso(write.made),
          ...pendingFiles(write, step.data, before)
        } : null);
      }
      if (record) now.set(at, record);
      else if (step.action === "delete") now.delete(at);
      out.push({
        key: write.key,
        collection: step.collection,
        action: step.action,
        id: step.id,
        record,
        before,
        data: step.data,
        landed: !!write.answer
      });
    }
  }
  return out;
}
function pendingFiles(write, data, before) {
  if (!write.files?.length) return {};
  const out = {};
  for (const field of new Set(write.files.map((file) => file.field))) {
    const held = before?.[field] ?? [];
    const named = data[field];
    const kept = Array.isArray(named) ? named.filter((entry) => typeof entry === "string" || !!entry && typeof entry === "object" && !("upload" in entry)).map((entry) => {
      const name = typeof entry === "string" ? entry : entry.name;
      return held.find((file) => file.name === name) ?? { name };
    }) : held;
    out[field] = [...kept, ...write.files.filter((file) => file.field === field).map((file) => ({
      name: file.name,
      size: file.size,
      type: file.type,
      $pending: true,
      ...file.preview ? { $preview: file.preview } : {}
    }))];
  }
  return out;
}
function shapeOf(args, parse) {
  let filter = null;
  if (typeof args.filter === "string" && args.filter.trim()) {
    try {
      filter = parse(args.filter);
    } catch {
      filter = "unparsed";
    }
  }
  return {
    collection: String(args.collection),
    limit: Number(args.limit),
    filter,
    compare: comparator(String(args.sort ?? "-created"))
  };
}
function overlay(server, effects, shape, vars, echoed) {
  const items = [...server];
  const serverAt = new Map(server.map((item) => [String(item.id), item]));
  for (const effect of effects) {
    if (effect.collection !== shape.collection) continue;
    const mark = `${effect.key}\0${effect.id}`;
    if (echoed.has(mark)) continue;
    if (effect.landed) {
      const shown = serverAt.get(effect.id);
      const caughtUp = effect.action === "delete" ? !shown : !!shown && typeof shown.version === "number" && shown.version >= Number(effect.record?.version);
      if (caughtUp) {
        echoed.add(mark);
        continue;
      }
    }
    const place = items.findIndex((item) => String(item.id) === effect.id);
    if (effect.action === "delete") {
      if (place >= 0) items.splice(place, 1);
      continue;
    }
    const record = effect.record;
    if (!record) continue;
    const matches = shape.filter === null ? true : shape.filter === "unparsed" ? "unknown" : decide(shape.filter, record, vars);
    if (matches === "unknown" && place >= 0) {
      items[place] = { ...record, $pending: true };
      continue;
    }
    if (place >= 0) items.splice(place, 1);
    if (matches !== true) continue;
    const marked = { ...record, $pending: true };
    let at = items.findIndex((item) => shape.compare(marked, item) < 0);
    if (at < 0) at = items.length;
    if (at >= shape.limit || at === items.length && place < 0 && server.length >= shape.limit) continue;
    items.splice(at, 0, marked);
  }
  return items.slice(0, shape.limit);
}
function same2(a, b) {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}
function diffItems(before, after) {
  const afterIds = new Set(after.map((item) => String(item.id)));
  const ops = before.filter((item) => !afterIds.has(String(item.id))).map((item) => ({ op: "delete", id: String(item.id) }));
  const kept = before.filter((item) => afterIds.has(String(item.id)));
  const oldPlace = new Map(kept.map((item, n) => [String(item.id), n]));
  const oldItem = new Map(kept.map((item) => [String(item.id), item]));
  const staying = new Set(longestRising(after.filter((item) => oldPlace.has(String(item.id))).map((item) => oldPlace.get(String(item.id)))).map((n) => String(kept[n].id)));
  const current = kept.map((item) => String(item.id));
  const updates = [];
  after.forEach((record, n) => {
    const id = String(record.id);
    if (staying.has(id)) {
      if (!same2(oldItem.get(id), record)) updates.push({ op: "update", id, record });
      return;
    }
    if (oldPlace.has(id)) current.splice(current.indexOf(id), 1);
    const index = n === 0 ? 0 : current.indexOf(String(after[n - 1].id)) + 1;
    current.splice(index, 0, id);
    ops.push(oldPlace.has(id) ? { op: "move", id, index, record } : { op: "insert", index, record });
  });
  return [...ops, ...updates];
}
function longestRising(values) {
  const tails = [];
  const tailAt = [];
  const previous = new Array(values.length).fill(-1);
  values.forEach((value, n) => {
    let low = 0;
    let high = tails.length;
    while (low < high) {
      const middle = low + high >> 1;
      if (tails[middle] < value) low = middle + 1;
      else high = middle;
    }
    tails[low] = value;
    tailAt[low] = n;
    previous[n] = low ? tailAt[low - 1] : -1;
  });
  const out = [];
  for (let n = tails.length ? tailAt[tails.length - 1] : -1; n !== -1; n = previous[n]) out.push(values[n]);
  return out.reverse();
}

// src/queries.ts
function applyOps(items, ops) {
  const out = [...items];
  for (const op of ops) {
    if (op.op === "insert") {
      out.splice(op.index, 0, op.record);
      continue;
    }
    const place = out.findIndex((item) => item.id === op.id);
    if (place < 0) throw new Error(`a live query's ${op.op} names ${op.id}, which it does not hold`);
    if (op.op === "delete") out.splice(place, 1);
    else if (op.op === "update") out[place] = op.record;
    else if (op.op === "move") {
      out.splice(place, 1);
      out.splice(op.index, 0, op.record);
    } else {
      throw new Error(`a live query's op ${op.op} is not one it knows`);
    }
  }
  return out;
}
function have(items, limit) {
  return items.slice(0, limit).map((item) => {
    const { id, version } = item;
    return [id, typeof version === "number" ? version : -1];
  });
}
var REFUSED = /* @__PURE__ */ new Set([
  "UNAUTHENTICATED",
  "FORBIDDEN",
  "NOT_FOUND",
  "BAD_REQUEST",
  "TOO_LARGE",
  "TOKEN_EXPIRED",
  "VALIDATION_FAILED",
  "RATE_LIMITED"
]);
var LiveQueries = class {
  constructor(requests, offline = null) {
    this.requests = requests;
    this.offline = offline;
  }
  requests;
  offline;
  live = /* @__PURE__ */ new Set();
  bySub = /* @__PURE__ */ new Map();
  /** Asking again on the socket being restored, before anything waiting may go. */
  restoring = false;
  async query(collection, options, onChange) {
    const held = {
      args: { collection, ...options },
      sub: null,
      pos: 0,
      server: [],
      items: [],
      onChange,
      ask: 0,
      started: false,
      stopped: false,
      stale: false,
      echoed: /* @__PURE__ */ new Set(),
      overlaid: false,
      shape: shapeOf({ collection, ...options }, parseFilter)
    };
    const handle = {
      get items() {
        return held.items;
      },
      get stale() {
        return held.stale;
      },
      stop: () => this.stop(held)
    };
    if (!this.offline) {
      await this.requests.call("realtime.query", held.args, this.answer(held));
      return handle;
    }
    const cached = await this.offline.cached(this.cacheId(held)).catch(() => null);
    this.live.add(held);
    held.stale = true;
    if (cached) {
      held.server = cached.items;
      this.show(held);
    }
    if (this.requests.ready) {
      const asked = this.requests.call("realtime.query", cached ? this.withHave(held) : held.args, this.answer(held));
      if (!cached) {
        try {
          await asked;
        } catch (error) {
          this.live.delete(held);
          throw error;
        }
      } else {
        asked.catch(() => void 0);
      }
    } else if (!cached) {
      this.show(held);
    }
    return handle;
  }
  /** On the socket being restored: every live query again, with what it holds. One the gateway refuses now (a
   * session that ended) waits to be asked for again after a sign-in (`askUnasked`). */
  async resume() {
    this.bySub.clear();
    this.restoring = true;
    try {
      for (const held of this.live) {
        held.sub = null;
        try {
          await this.requests.direct("realtime.query", this.withHave(held), this.answer(held));
        } catch (error) {
          if (!(error instanceof HaptaError) || !REFUSED.has(error.code)) throw error;
        }
      }
    } finally {
      this.restoring = false;
    }
  }
  /** On the open socket: every query that has no sub on it (refused before a sign-in, or made while the socket
   * was being restored), asked for again. */
  askUnasked() {
    for (const held of this.live) {
      if (held.sub === null && !held.stopped) this.send("realtime.query", this.withHave(held), this.answer(held));
    }
  }
  /** realtime.diff */
  diffed(sub, data) {
    const held = sub ? this.bySub.get(sub) : void 0;
    if (!held || data.pos <= held.pos) return;
    let next;
    try {
      next = applyOps(held.server, data.ops);
    } catch {
      this.again(held, false);
      return;
    }
    held.pos = data.pos;
    held.server = next;
    this.show(held, data.ops);
  }
  /** realtime.reset: these queries must be asked for again (with what they hold). */
  reset(subs) {
    for (const sub of subs) {
      const held = this.bySub.get(sub);
      if (held) this.again(held, true);
    }
  }
  /** The writes laid over the queries changed: each shows them again. */
  rewrite() {
    for (const held of this.live) this.show(held);
  }
  /** The records every query holds from the gateway, by collection and id (the newest version of each). */
  index() {
    const index = /* @__PURE__ */ new Map();
    for (const held of this.live) {
      for (const record of held.server) {
        const at = recordKey(held.shape.collection, record.id);
        const known = index.get(at);
        if (!known || Number(record.version) > Number(known.version)) index.set(at, record);
      }
    }
    return index;
  }
  /** A query's answer, as its reply is read (before any diff after it): the items, or ops from those held. */
  answer(held) {
    const ask = ++held.ask;
    return (data) => {
      if (held.stopped || ask !== held.ask) {
        this.unsubscribe(data.sub);
        return;
      }
      held.sub = data.sub;
      held.pos = data.pos;
      this.bySub.set(held.sub, held);
      this.live.add(held);
      let ops = data.ops;
      let next;
      if (ops) {
        try {
          next = applyOps(held.server, ops);
        } catch {
          this.again(held, false);
          return;
        }
      } else {
        next = data.items;
        ops = [
          ...held.server.map((item) => ({ op: "delete", id: item.id })),
          ...next.map((record, index) => ({ op: "insert", index, record }))
        ];
      }
      held.server = next;
      const wasStale = held.stale;
      held.stale = false;
      this.show(held, ops, wasStale);
    };
  }
  /** Shows what the query holds now: its server items with the writes laid over them. `ops` (the gateway's, from
   * the items shown before) are handed on as they are where no write is laid over it, before or now; else the
   * ops are made from what was shown. */
  show(held, ops, changedState = false) {
    const fromGateway = ops !== void 0;
    const writes = this.offline?.writes() ?? [];
    let next = held.server;
    if (writes.length) {
      const effects = effectsOf(writes, this.index()).filter((e) => e.collection === held.shape.collection);
      if (effects.length) next = overlay(held.server, effects, held.shape, this.offline.vars(), held.echoed);
    }
    const overlaid = next !== held.server;
    if (!ops || overlaid || held.overlaid) ops = diffItems(held.items, next);
    held.overlaid = overlaid;
    held.items.splice(0, held.items.length, ...next);
    if (ops.length || !held.started || changedState) this.tell(held, ops);
    if (fromGateway) this.save(held);
  }
  tell(held, ops) {
    held.started = true;
    try {
      held.onChange?.(held.items, ops, { stale: held.stale });
    } catch (error) {
      queueMicrotask(() => {
        throw error;
      });
    }
  }
  /** Keeps the server items in the store (an offline client), a little after the last change. */
  save(held) {
    const offline = this.offline;
    if (!offline) return;
    clearTimeout(held.saving);
    const owner = offline.owner();
    held.saving = setTimeout(() => {
      if (held.stopped || held.stale || offline.owner() !== owner) return;
      offline.cache(this.cacheId(held), { items: held.server, pos: held.pos, at: Date.now() });
    }, 100);
  }
  cacheId(held) {
    return `${this.offline.owner()}\0${JSON.stringify(held.args)}`;
  }
  withHave(held) {
    return { ...held.args, have: have(held.server, held.args.limit) };
  }
  /** Ask again on this socket, with what it holds (`keep`), or for the whole items (what it holds went wrong);
   * while the socket is down, the resume asks anyway. The gateway's old sub for it is ended. */
  again(held, keep) {
    const old = held.sub;
    held.sub = null;
    if (old) {
      this.bySub.delete(old);
      this.unsubscribe(old);
    }
    this.send("realtime.query", keep ? this.withHave(held) : held.args, this.answer(held));
  }
  async stop(held) {
    held.stopped = true;
    clearTimeout(held.saving);
    this.live.delete(held);
    const sub = held.sub;
    held.sub = null;
    if (sub) {
      this.bySub.delete(sub);
      if (this.requests.ready) await this.requests.call("realtime.unsubscribe", { sub }).catch(() => void 0);
    }
  }
  unsubscribe(sub) {
    this.send("realtime.unsubscribe", { sub });
  }
  /** A request of the queries' own, on the socket there is: the one being restored, or the open one. With none,
   * nothing: the next socket's resume asks for every query anyway. */
  send(op, args, onReply) {
    if (this.restoring) this.requests.direct(op, args, onReply).catch(() => void 0);
    else if (this.requests.ready) this.requests.call(op, args, onReply).catch(() => void 0);
  }
};

// src/records.ts
function keyed(options) {
  return options.idempotencyKey === void 0 ? {} : { idempotency_key: options.idempotencyKey };
}
var Records = class {
  constructor(hapta, collection) {
    this.hapta = hapta;
    this.collection = collection;
  }
  hapta;
  collection;
  /** `expand: ["author", "post.author"]` embeds related records under `record.expand`, as their own rules allow. */
  list(options = {}) {
    return this.hapta.call("records.list", { collection: this.collection, ...options });
  }
  /** Counts, sums, averages, minima and maxima of what `list` would list for you, in groups:
   * `aggregate({ group_by: ["author"], sum: ["likes"] })`. */
  aggregate(options = {}) {
    return this.hapta.call("records.aggregate", { collection: this.collection, ...options });
  }
  get(id, options = {}) {
    return this.hapta.call("records.get", { collection: this.collection, id, ...options });
  }
  /** `idempotencyKey`: the same key again (within 24 h) answers the first answer and writes nothing; without
   * one, a signed-in client makes one per call (ConnectOptions.idempotentWrites), kept across its retries. */
  /** `files: {media: [file, ...]}` uploads them first and creates the record with them, all or nothing
   * (FilesOptions). */
  create(data, options = {}) {
    const { files, onProgress, ...rest } = options;
    const args = { collection: this.collection, data, ...keyed(rest) };
    if (files) return this.hapta.withFiles("records.create", args, files, onProgress);
    return this.hapta.call("records.create", args);
  }
  /** `files: {media: [file, ...]}` adds them to the files the record keeps: those `data.media` names (names or
   * file entries), else every file it holds when the update is sent (FilesOptions). */
  update(id, data, options = {}) {
    const { version, files, onProgress, ...rest } = options;
    const args = {
      collection: this.collection,
      id,
      data,
      ...version === void 0 ? {} : { version },
      ...keyed(rest)
    };
    if (files) return this.hapta.withFiles("records.update", args, files, onProgress);
    return this.hapta.call("records.update", args);
  }
  delete(id, options = {}) {
    return this.hapta.call("records.delete", { collection: this.collection, id, ...keyed(options) });
  }
  /** Hear every change to the collection (or to one record, `id`) that matches `filter` and that you may view,
   * across reconnects: each once, in commit order. Resolves once the gateway has started it. */
  subscribe(options, onChange) {
    return this.hapta.subscribe(this.collection, options, onChange);
  }
  /** The first `limit` records `list` would list for you (`filter`, `sort`, `fields`, `expand`), kept current
   * across reconnects: `items` is always what `list` would answer now, and `onChange` hears each change (with the
   * ops that made it) and the items once at the start. Resolves once the first items are there. */
  query(options, onChange) {
    return this.hapta.query(this.collection, options, onChange);
  }
};

// src/msgpack.ts
var utf8Encoder = new TextEncoder();
var utf8Decoder = new TextDecoder();
var Writer = class {
  buffer = new Uint8Array(256);
  view = new DataView(this.buffer.buffer);
  length = 0;
  room(n) {
    if (this.length + n <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.length + n) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.buffer.subarray(0, this.length));
    this.buffer = bigger;
    this.view = new DataView(bigger.buffer);
  }
  byte(b) {
    this.room(1);
    this.buffer[this.length++] = b;
  }
  uint(bytes, value) {
    this.room(bytes);
    if (bytes === 1) this.view.setUint8(this.length, value);
    else if (bytes === 2) this.view.setUint16(this.length, value);
    else this.view.setUint32(this.length, value);
    this.length += bytes;
  }
  int64(value, signed) {
    this.room(8);
    if (signed) this.view.setBigInt64(this.length, value);
    else this.view.setBigUint64(this.length, value);
    this.length += 8;
  }
  float64(value) {
    this.room(8);
    this.view.setFloat64(this.length, value);
    this.length += 8;
  }
  raw(bytes) {
    this.room(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
  }
  result() {
    return this.buffer.slice(0, this.length);
  }
};
function header(w, length, fix, fixMax, codes) {
  if (fix !== null && length <= fixMax) w.byte(fix | length);
  else if (length < 256 && codes[0] !== 0) {
    w.byte(codes[0]);
    w.uint(1, length);
  } else if (length < 65536) {
    w.byte(codes[1]);
    w.uint(2, length);
  } else {
    w.byte(codes[2]);
    w.uint(4, length);
  }
}
function encodeInto(w, value, depth) {
  if (depth > 1e3) throw new RangeError("value nested too deeply to encode");
  if (value === null || value === void 0) w.byte(192);
  else if (value === false) w.byte(194);
  else if (value === true) w.byte(195);
  else if (typeof value === "number") {
    if (Number.isSafeInteger(value)) encodeInteger(w, BigInt(value));
    else {
      w.byte(203);
      w.float64(value);
    }
  } else if (typeof value === "bigint") encodeInteger(w, value);
  else if (typeof value === "string") {
    const bytes = utf8Encoder.encode(value);
    header(w, bytes.length, 160, 31, [217, 218, 219]);
    w.raw(bytes);
  } else if (value instanceof Uint8Array) {
    header(w, value.length, null, 0, [196, 197, 198]);
    w.raw(value);
  } else if (value instanceof ArrayBuffer) {
    encodeInto(w, new Uint8Array(value), depth);
  } else if (value instanceof Date) {
    encodeTimestamp(w, value);
  } else if (Array.isArray(value)) {
    header(w, value.length, 144, 15, [0, 220, 221]);
    for (const item of value) encodeInto(w, item, depth + 1);
  } else if (typeof value === "object") {
    const entries = Object.entries(value).filter(([, v]) => v !== void 0);
    header(w, entries.length, 128, 15, [0, 222, 223]);
    for (const [key, item] of entries) {
      encodeInto(w, key, depth + 1);
      encodeInto(w, item, depth + 1);
    }
  } else {
    throw new TypeError(`cannot encode a ${typeof value} as MessagePack`);
  }
}
function encodeInteger(w, n) {
  if (n >= 0n) {
    if (n < 0x80n) w.byte(Number(n));
    else if (n < 0x100n) {
      w.byte(204);
      w.uint(1, Number(n));
    } else if (n < 0x10000n) {
      w.byte(205);
      w.uint(2, Number(n));
    } else if (n < 0x100000000n) {
      w.byte(206);
      w.uint(4, Number(n));
    } else {
      w.byte(207);
      w.int64(n, false);
    }
  } else if (n >= -32n) w.byte(Number(n) & 255);
  else if (n >= -0x80n) {
    w.byte(208);
    w.uint(1, Number(n) & 255);
  } else if (n >= -0x8000n) {
    w.byte(209);
    w.uint(2, Number(n) & 65535);
  } else if (n >= -0x80000000n) {
    w.byte(210);
    w.uint(4, Number(n) >>> 0);
  } else {
    w.byte(211);
    w.int64(n, true);
  }
}
function encodeTimestamp(w, date) {
  const millis = date.getTime();
  const seconds = Math.floor(millis / 1e3);
  const nanos = (millis - seconds * 1e3) * 1e6;
  w.byte(199);
  w.uint(1, 12);
  w.byte(255);
  w.uint(4, nanos);
  w.int64(BigInt(seconds), true);
}
function encode(value) {
  const w = new Writer();
  encodeInto(w, value, 0);
  return w.result();
}
var Reader = class {
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  bytes;
  view;
  offset = 0;
  need(n) {
    if (this.offset + n > this.bytes.length) throw new RangeError("MessagePack data ends too early");
    const at = this.offset;
    this.offset += n;
    return at;
  }
  u8() {
    return this.view.getUint8(this.need(1));
  }
  u16() {
    return this.view.getUint16(this.need(2));
  }
  u32() {
    return this.view.getUint32(this.need(4));
  }
  i8() {
    return this.view.getInt8(this.need(1));
  }
  i16() {
    return this.view.getInt16(this.need(2));
  }
  i32() {
    return this.view.getInt32(this.need(4));
  }
  f32() {
    return this.view.getFloat32(this.need(4));
  }
  f64() {
    return this.view.getFloat64(this.need(8));
  }
  u64() {
    return small(this.view.getBigUint64(this.need(8)));
  }
  i64() {
    return small(this.view.getBigInt64(this.need(8)));
  }
  take(n) {
    const at = this.need(n);
    return this.bytes.slice(at, at + n);
  }
  text(n) {
    const at = this.need(n);
    return utf8Decoder.decode(this.bytes.subarray(at, at + n));
  }
};
function small(n) {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}
function decodeFrom(r, depth) {
  if (depth > 1e3) throw new RangeError("MessagePack data nested too deeply");
  const b = r.u8();
  if (b < 128) return b;
  if (b >= 224) return b - 256;
  if (b >= 160 && b <= 191) return r.text(b & 31);
  if (b >= 144 && b <= 159) return array(r, b & 15, depth);
  if (b >= 128 && b <= 143) return map(r, b & 15, depth);
  switch (b) {
    case 192:
      return null;
    case 194:
      return false;
    case 195:
      return true;
    case 196:
      return r.take(r.u8());
    case 197:
      return r.take(r.u16());
    case 198:
      return r.take(r.u32());
    case 202:
      return r.f32();
    case 203:
      return r.f64();
    case 204:
      return r.u8();
    case 205:
      return r.u16();
    case 206:
      return r.u32();
    case 207:
      return r.u64();
    case 208:
      return r.i8();
    case 209:
      return r.i16();
    case 210:
      return r.i32();
    case 211:
      return r.i64();
    case 217:
      return r.text(r.u8());
    case 218:
      return r.text(r.u16());
    case 219:
      return r.text(r.u32());
    case 220:
      return array(r, r.u16(), depth);
    case 221:
      return array(r, r.u32(), depth);
    case 222:
      return map(r, r.u16(), depth);
    case 223:
      return map(r, r.u32(), depth);
    case 212:
      return extension(r, 1);
    case 213:
      return extension(r, 2);
    case 214:
      return extension(r, 4);
    case 215:
      return extension(r, 8);
    case 216:
      return extension(r, 16);
    case 199:
      return extension(r, r.u8());
    case 200:
      return extension(r, r.u16());
    case 201:
      return extension(r, r.u32());
  }
  throw new RangeError(`0x${b.toString(16)} is not a MessagePack type`);
}
function array(r, n, depth) {
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = decodeFrom(r, depth + 1);
  return out;
}
function map(r, n, depth) {
  const out = {};
  for (let i = 0; i < n; i++) {
    const key = decodeFrom(r, depth + 1);
    out[String(key)] = decodeFrom(r, depth + 1);
  }
  return out;
}
function extension(r, size) {
  const type = r.i8();
  if (type !== -1) throw new RangeError(`MessagePack extension ${type} is not supported`);
  if (size === 4) return rfc3339(r.u32(), 0);
  if (size === 8) {
    const high = r.u32();
    const low = r.u32();
    return rfc3339(high % 4 * 2 ** 32 + low, Math.floor(high / 4));
  }
  if (size === 12) {
    const nanos = r.u32();
    return rfc3339(Number(r.i64()), nanos);
  }
  throw new RangeError(`a timestamp of ${size} bytes is not valid`);
}
function rfc3339(seconds, nanos) {
  const whole = new Date(seconds * 1e3).toISOString().slice(0, 19);
  const micros = Math.floor(nanos / 1e3);
  return micros ? `${whole}.${String(micros).padStart(6, "0")}Z` : `${whole}Z`;
}
function decode(bytes) {
  const r = new Reader(bytes);
  const value = decodeFrom(r, 0);
  if (r.offset !== bytes.length) throw new RangeError("MessagePack data goes on after its value");
  return value;
}

// src/transport.ts
var SUBPROTOCOLS = { json: "hapta.v1.json", msgpack: "hapta.v1.msgpack" };
var FINAL_CLOSE_CODES = /* @__PURE__ */ new Set([1002, 1003, 1008]);
var GOING_AWAY = 1001;
function final(code) {
  return FINAL_CLOSE_CODES.has(code);
}
function unserved(code) {
  return code === GOING_AWAY;
}
var Transport = class {
  constructor(url, protocol, Socket) {
    this.url = url;
    this.protocol = protocol;
    const found = Socket ?? globalThis.WebSocket;
    if (!found) throw new Error("no WebSocket here: pass one as options.WebSocket");
    this.Socket = found;
  }
  url;
  protocol;
  socket = null;
  Socket;
  /** Ends the current socket at once, as lost (drop). */
  abandon = null;
  /** Opens a socket (throwing what the WebSocket constructor throws) and tells `events` what becomes of it. */
  open(events) {
    const socket = new this.Socket(this.url, [SUBPROTOCOLS[this.protocol]]);
    socket.binaryType = "arraybuffer";
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.socket = socket;
      events.opened(socket);
    };
    socket.onmessage = (event) => this.received(event.data, events);
    let ended = false;
    const end = (code) => {
      if (ended) return;
      ended = true;
      if (this.socket === socket) this.socket = null;
      if (this.abandon === abandon) this.abandon = null;
      events.ended(code, opened);
    };
    const abandon = () => {
      end(1006);
      socket.close(1e3);
    };
    this.abandon = abandon;
    socket.onerror = () => {
      if (!opened) end(1006);
    };
    socket.onclose = (event) => end(event.code);
    return socket;
  }
  /** Lets the socket go now, told as lost (1006), without waiting for its close: the browser says it is offline,
   * and a close handshake over no network may take long to fail. */
  drop() {
    this.abandon?.();
  }
  /** Writes one message to the open socket; without one, throws UNAVAILABLE. */
  send(message) {
    const socket = this.socket;
    if (!socket) throw new HaptaError("UNAVAILABLE", "not connected");
    socket.send(this.protocol === "json" ? JSON.stringify(message) : encode(message));
  }
  /** Writes an upload's chunk: a files.chunk message in MessagePack, a binary frame (the stream number in 4 bytes,
   * then the bytes) beside JSON. */
  sendChunk(stream, piece) {
    if (this.protocol === "msgpack") {
      this.send({ op: "files.chunk", stream, data: piece });
      return;
    }
    const frame = new Uint8Array(4 + piece.length);
    new DataView(frame.buffer).setUint32(0, stream);
    frame.set(piece, 4);
    this.socket?.send(frame);
  }
  close(code) {
    this.socket?.close(code);
  }
  /** A browser cannot read why a handshake failed (a refused Origin is HTTP 403): if the gateway answers
   * /health, it is up and refusing; if not, it is down (retry). Where there is no fetch, assume down. */
  async refusing() {
    if (typeof fetch !== "function" || typeof globalThis.document === "undefined") return false;
    const health = this.url.replace(/^ws/, "http").replace(/\/ws(\?.*)?$/, "/health");
    try {
      await fetch(health, { mode: "no-cors", cache: "no-store" });
      return true;
    } catch {
      return false;
    }
  }
  received(data, events) {
    let messages;
    if (typeof data === "string") {
      messages = JSON.parse(data);
    } else {
      const bytes = new Uint8Array(data);
      if (this.protocol === "json") {
        const stream = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0);
        events.chunk(stream, bytes.subarray(4));
        return;
      }
      messages = decode(bytes);
    }
    for (const message of Array.isArray(messages) ? messages : [messages]) {
      if (message.op === "files.chunk") events.chunk(message.stream, message.data);
      else events.message(message);
    }
  }
};

// src/requests.ts
var Requests = class {
  // made while no socket was open, or to be sent again
  constructor(link, options) {
    this.link = link;
    this.options = options;
  }
  link;
  options;
  ids = 0;
  pending = /* @__PURE__ */ new Map();
  waiting = [];
  /** Whether a request made now is sent at once. */
  get ready() {
    return this.link.ready();
  }
  /** One request; waits for the socket while it reconnects (up to the timeout). Rejects with HaptaError. */
  call(op, args = {}, onReply) {
    if (this.link.closed()) return Promise.reject(new HaptaError("UNAVAILABLE", "the client is closed"));
    if (takesKey(op) && this.link.keyWrites() && args.idempotency_key === void 0) {
      args = { ...args, idempotency_key: newKey() };
    }
    return new Promise((resolve, reject) => {
      const request = this.request(op, args, resolve, reject, onReply, 0);
      if (this.link.ready()) this.send(request);
      else this.waiting.push(request);
    });
  }
  /** A request on the socket being restored (signing in, resuming), not queued behind it, and never retried. */
  direct(op, args, onReply) {
    return new Promise((resolve, reject) => {
      this.send(this.request(op, args, resolve, reject, onReply, this.options.retry.attempts));
    });
  }
  /** One request on the open, restored socket, sent once: never queued, retried or sent again after a lost
   * socket. Its caller (the outbox) decides what comes next: a lost socket or a deadline rejects with
   * `details.outcome: "unknown"` (it may have been served), no socket with UNAVAILABLE (it was not sent). */
  attempt(op, args) {
    if (!this.link.ready()) return Promise.reject(new HaptaError("UNAVAILABLE", "not connected"));
    return new Promise((resolve, reject) => {
      const request = this.request(op, args, resolve, reject, void 0, Infinity);
      request.once = true;
      this.send(request);
    });
  }
  /** The socket is open and restored: send what waited for it. */
  flush() {
    const waiting = this.waiting;
    this.waiting = [];
    waiting.forEach((request) => this.send(request));
  }
  /** A reply: its request is answered, or, refused for now and within the retry policy, sent again later. */
  reply(message) {
    const request = this.pending.get(message.id);
    if (!request) return;
    this.pending.delete(message.id);
    if (message.ok) {
      clearTimeout(request.timer);
      request.onReply?.(message.data);
      request.resolve(message.data);
      return;
    }
    const error = message.error ?? {};
    const refused = new HaptaError(
      String(error.code ?? "INTERNAL"),
      String(error.message ?? ""),
      error.details,
      error.retry_after
    );
    if (mayRetry(this.options.retry, request, refused)) {
      request.retries++;
      request.sent = false;
      this.waiting.push(request);
      setTimeout(() => {
        if (!this.link.ready() || !this.waiting.includes(request)) return;
        this.waiting = this.waiting.filter((r) => r !== request);
        this.send(request);
      }, refused.retryAfter * 1e3);
      return;
    }
    clearTimeout(request.timer);
    request.reject(refused);
  }
  /** The socket closed with `code`. Requests sent on it: at 1001 (the gateway shutting down) those without a reply
   * were not served and go again, as do writes with an idempotency key (the gateway answers a repeat with the first
   * answer); otherwise whether they ran is unknown and only the app can tell (read it back). */
  lost(code) {
    for (const request of this.pending.values()) {
      if (request.once) {
        clearTimeout(request.timer);
        request.reject(new HaptaError(
          "UNAVAILABLE",
          "the connection was lost before the reply",
          unserved(code) ? void 0 : { outcome: "unknown" }
        ));
      } else if (unserved(code) || idempotent(request)) {
        request.sent = false;
        this.waiting.push(request);
      } else {
        clearTimeout(request.timer);
        request.reject(new HaptaError("UNAVAILABLE", "the connection was lost before the reply: the request may or may not have been served", { outcome: "unknown" }));
      }
    }
    this.pending.clear();
  }
  /** Every request, sent or waiting, fails with `error`. */
  failAll(error) {
    for (const request of [...this.waiting, ...this.pending.values()]) {
      clearTimeout(request.timer);
      request.reject(error);
    }
    this.waiting = [];
    this.pending.clear();
  }
  request(op, args, resolve, reject, onReply, retries) {
    const request = {
      op,
      args,
      resolve,
      reject,
      onReply,
      sent: false,
      retries,
      timer: setTimeout(() => this.expire(request), this.options.timeout)
    };
    return request;
  }
  send(request) {
    const id = ++this.ids;
    request.sent = true;
    this.pending.set(id, request);
    try {
      this.link.send({ id, op: request.op, args: request.args });
    } catch (error) {
      if (!request.once) throw error;
      this.pending.delete(id);
      clearTimeout(request.timer);
      request.reject(error);
    }
  }
  expire(request) {
    this.waiting = this.waiting.filter((r) => r !== request);
    for (const [id, r] of this.pending) if (r === request) this.pending.delete(id);
    request.reject(new HaptaError(
      "TIMEOUT",
      `no answer to ${request.op} within ${this.options.timeout} ms`,
      request.once ? { outcome: "unknown" } : void 0
    ));
  }
};
function newKey() {
  const crypto = globalThis.crypto;
  if (crypto?.randomUUID) return crypto.randomUUID();
  let key = "";
  for (let i = 0; i < 4; i++) key += Math.floor(Math.random() * 2 ** 32).toString(16).padStart(8, "0");
  return key;
}

// src/outbox.ts
var FOR_NOW = /* @__PURE__ */ new Set(["RATE_LIMITED", "UNAVAILABLE", "TIMEOUT", "TOKEN_EXPIRED", "UNAUTHENTICATED"]);
function classify(error) {
  if (!(error instanceof HaptaError)) return "refused";
  if (FOR_NOW.has(error.code)) return "retry";
  if (error.code === "CONFLICT" && typeof error.details?.version === "number") return "conflict";
  return "refused";
}
function uncertain(error) {
  return error instanceof HaptaError && error.details?.outcome === "unknown";
}
function asWrite(entry) {
  const files = entry.files?.map(({ field, name, type, size }) => ({ field, name, type, size }));
  return {
    key: entry.key,
    op: entry.op,
    args: entry.args,
    user: entry.user,
    made: entry.made,
    ...files ? { files } : {}
  };
}
function tokensRefused(error) {
  return error instanceof HaptaError && error.code === "TOKEN_INVALID";
}
var isRef = (value) => !!value && typeof value === "object" && !Array.isArray(value);
function replaceIds(args, ids) {
  let swapped = false;
  const swap = (value) => {
    if (typeof value === "string" && ids.has(value)) {
      swapped = true;
      return ids.get(value);
    }
    return value;
  };
  const data = (value) => isRef(value) ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, swap(v)])) : value;
  const out = { ...args };
  if ("id" in out) out.id = swap(out.id);
  if ("data" in out) out.data = data(out.data);
  if (Array.isArray(out.ops)) {
    out.ops = out.ops.map((op) => ({
      ...op,
      ..."id" in op ? { id: swap(op.id) } : {},
      ..."data" in op ? { data: data(op.data) } : {}
    }));
  }
  return swapped ? out : args;
}
function names(write, ids) {
  const hit = (value) => typeof value === "string" && ids.has(value);
  const inData = (value) => isRef(value) && Object.values(value).some(hit);
  const { args } = write;
  return hit(args.id) || inData(args.data) || Array.isArray(args.ops) && args.ops.some((op) => hit(op.id) || inData(op.data));
}
function touches(write, collection, id) {
  const { op, args } = write;
  if (op === "records.create") return args.collection === collection && write.tempIds?.[0] === id;
  if (op === "records.update" || op === "records.delete") return args.collection === collection && args.id === id;
  if (op !== "records.batch") return false;
  return (args.ops ?? []).some((step, n) => step.collection === collection && (step.id === id || write.tempIds?.[n] === id));
}
function versionIn(write, answer, collection, id) {
  const records = write.op === "records.batch" ? (answer.results ?? []).filter((_, n) => (write.args.ops[n] ?? {}).collection === collection) : write.args.collection === collection ? [answer] : [];
  const found = records.find((record) => record && record.id === id);
  return typeof found?.version === "number" ? found.version : void 0;
}
function idsIn(write, answer) {
  const results = write.op === "records.batch" ? answer.results ?? [] : [answer];
  return (write.tempIds ?? []).flatMap((temp, n) => temp && results[n]?.id !== void 0 ? [[temp, String(results[n].id)]] : []);
}
function errorOf(wire) {
  return new HaptaError(
    String(wire.code),
    String(wire.message),
    wire.details,
    wire.retryAfter
  );
}
function wireOf(error) {
  return { code: error.code, message: error.message, details: error.details, retryAfter: error.retryAfter };
}
var Outbox = class {
  constructor(store, tabs, link, listener, options) {
    this.store = store;
    this.tabs = tabs;
    this.link = link;
    this.listener = listener;
    this.options = options;
  }
  store;
  tabs;
  link;
  listener;
  options;
  /** The store's entries as this tab last read them, then those it is still storing. */
  mirror = [];
  /** Answered writes, laid over the views until their diffs show them (or `grace` passes). */
  landed = [];
  /** Temporary ids whose creates landed, and the gateway's ids for them. */
  ids = /* @__PURE__ */ new Map();
  /** The app's promises of the writes made in this tab, by key. */
  waiters = /* @__PURE__ */ new Map();
  flushing = false;
  again = false;
  retryTimer;
  delay = 0;
  closed = false;
  /** Progress listeners of the writes with files made in this tab, by key. */
  progress = /* @__PURE__ */ new Map();
  /** Writes whose expired tokens were uploaded again since their last try that reached no answer: a second
   * TOKEN_INVALID in a row is a refusal. */
  uploadedAgain = /* @__PURE__ */ new Set();
  /** Object URLs of the pending files' bytes (for previews), by write key. */
  previews = /* @__PURE__ */ new Map();
  /** Reads what the store holds, and starts hearing the other tabs. */
  async load() {
    await this.reload();
    this.tabs.listen((message) => this.heard(message));
  }
  /** The writes to lay over the views, in order: those answered but not yet shown by the gateway, then the
   * outbox. */
  writes() {
    return [...this.landed, ...this.mirror.map((entry) => entry.files ? this.previewed(entry) : entry)];
  }
  /** An entry with files, each with an object URL of its bytes where the page can make one (made once per write,
   * let go when the write leaves). */
  previewed(entry) {
    const make = globalThis.URL?.createObjectURL;
    if (typeof make !== "function") return entry;
    let urls = this.previews.get(entry.key);
    if (!urls) {
      urls = entry.files.map((file) => URL.createObjectURL(file.data instanceof Blob ? file.data : new Blob([file.data], { type: file.type })));
      this.previews.set(entry.key, urls);
    }
    const shown = urls;
    return { ...entry, files: entry.files.map((file, n) => ({ ...file, preview: shown[n] })) };
  }
  /** Lets go of the previews of writes no longer in the outbox (a landed write shows the gateway's files). */
  forgetPreviews() {
    const keys = new Set(this.mirror.map((entry) => entry.key));
    for (const [key, urls] of this.previews) {
      if (keys.has(key)) continue;
      urls.forEach((url) => URL.revokeObjectURL(url));
      this.previews.delete(key);
    }
  }
  /** The writes waiting to be sent or answered, in order. */
  pending() {
    return this.mirror.map(asWrite);
  }
  /** The gateway's id for a temporary one, once its create has landed (in this page's life). */
  idFor(id) {
    return this.ids.get(id);
  }
  /** Keeps a write of the signed-in user, lays it over the views at once, and sends it when it may. Resolves with
   * the gateway's answer once it landed; rejects with the refusal. */
  add(op, args, files, onProgress) {
    const user = this.link.user();
    if (!user) return Promise.reject(new HaptaError("UNAUTHENTICATED", "the outbox keeps the writes of a user"));
    const key = typeof args.idempotency_key === "string" ? args.idempotency_key : newKey();
    const entry = {
      key,
      user,
      op,
      args: replaceIds({ ...args, idempotency_key: key }, this.ids),
      made: Date.now()
    };
    if (files?.length) entry.files = files;
    if (onProgress) this.progress.set(key, onProgress);
    if (op === "records.create") entry.tempIds = [TEMP_PREFIX + newKey()];
    if (op === "records.batch") {
      entry.tempIds = (args.ops ?? []).map((step) => step.op === "create" ? TEMP_PREFIX + newKey() : null);
    }
    if (op === "records.update" && entry.args.version === void 0) this.version(entry);
    const promise = new Promise((resolve, reject) => this.waiters.set(key, { resolve, reject }));
    promise.catch(() => void 0);
    this.mirror.push(entry);
    this.listener.added(entry);
    this.listener.changed();
    this.store.add(entry).then((seq) => {
      entry.seq = seq;
      this.tabs.post({ type: "added", entry });
      this.flush();
    }, (error) => {
      this.mirror = this.mirror.filter((e) => e !== entry);
      this.waiters.get(key)?.reject(error);
      this.waiters.delete(key);
      this.listener.changed();
    });
    return promise;
  }
  /** An update that names no version is made against the one the client shows: an earlier write of the record
   * still in the outbox gives it its version when it lands; else the version held. */
  version(entry) {
    const { collection, id } = entry.args;
    const earlier = [...this.mirror].reverse().find((write) => touches(write, collection, id));
    if (earlier) {
      entry.follows = earlier.key;
      return;
    }
    const versions = [
      this.link.version(String(collection), String(id)),
      ...this.landed.filter((write) => touches(write, collection, id)).map((write) => versionIn(write, write.answer, collection, id))
    ].filter((version) => version !== void 0);
    if (versions.length) entry.args = { ...entry.args, version: Math.max(...versions) };
  }
  /** Sends what waits, in order, while the socket is open and signed in as its user; one tab at a time. */
  flush() {
    if (this.closed) return;
    if (this.flushing) {
      this.again = true;
      return;
    }
    this.flushing = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = void 0;
    this.tabs.exclusive("outbox", () => this.sendAll()).catch(() => void 0).finally(() => {
      this.flushing = false;
      if (this.again) {
        this.again = false;
        this.flush();
      }
    });
  }
  /** A user signed in: the writes of anyone else are dropped, reported; then theirs go. */
  async signedIn(user) {
    await this.tabs.exclusive("outbox", async () => {
      const others = (await this.reload()).filter((entry) => entry.user !== user);
      if (others.length) {
        await this.settle("dropped", others, new HaptaError("UNAUTHENTICATED", "another user signed in: a write is sent only as the user who made it"));
      }
    });
    this.flush();
  }
  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
  }
  async sendAll() {
    while (!this.closed && this.link.ready()) {
      const user = this.link.user();
      const entry = (await this.reload())[0];
      if (!user || !entry || entry.user !== user) return;
      if (entry.sentAt !== void 0 && Date.now() - entry.sentAt > this.options.keyLife) {
        await this.settle("expired", [entry], new HaptaError(
          "UNAVAILABLE",
          "sent more than a day ago without an answer: its idempotency key may be forgotten, so it was not sent again (read back whether it was done)",
          { outcome: "unknown" }
        ));
        continue;
      }
      const first = entry.sentAt === void 0;
      let answer;
      try {
        if (first) {
          entry.args = replaceIds(entry.args, this.ids);
          if (entry.follows !== void 0) this.followLanded(entry);
          if (entry.files) entry.args = await this.link.attach(
            entry.op,
            entry.args,
            entry.files,
            this.progress.get(entry.key)
          );
          entry.sentAt = Date.now();
          await this.store.put([entry]);
        }
        answer = await this.link.attempt(entry.op, entry.args);
      } catch (error) {
        if (entry.files && tokensRefused(error) && !this.uploadedAgain.has(entry.key)) {
          this.uploadedAgain.add(entry.key);
          try {
            entry.args = await this.link.attach(entry.op, entry.args, entry.files, this.progress.get(entry.key));
            await this.store.put([entry]);
            continue;
          } catch (again) {
            error = again;
          }
        }
        const outcome = classify(error);
        if (outcome === "retry") {
          this.uploadedAgain.delete(entry.key);
          if (first && !uncertain(error)) {
            delete entry.sentAt;
            await this.store.put([entry]);
          }
          if (this.link.ready()) this.retryLater(error);
          return;
        }
        if (outcome === "conflict" && entry.op === "records.update") await this.conflicted(entry, error);
        else await this.refused(outcome === "conflict" ? "conflict" : "refused", entry, error);
        continue;
      }
      this.delay = 0;
      this.uploadedAgain.delete(entry.key);
      await this.answered(entry, answer);
    }
  }
  /** A write to take its version from an earlier one that landed before it was stored (made while that one was on
   * the wire): the version that one's answer gave, if this tab still has it; else none (the last write wins). */
  followLanded(entry) {
    const earlier = this.landed.find((write) => write.key === entry.follows);
    const version = earlier ? versionIn(earlier, earlier.answer, entry.args.collection, entry.args.id) : void 0;
    entry.args = { ...entry.args };
    if (version === void 0) delete entry.args.version;
    else entry.args.version = version;
    delete entry.follows;
  }
  retryLater(error) {
    this.delay = error.retryAfter !== void 0 ? error.retryAfter * 1e3 : Math.min(3e4, Math.max(1e3, this.delay * 2));
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.flush(), this.delay);
  }
  /** It landed: later writes get the ids and the version it was given; it is laid over the views until their
   * diffs show it. */
  async answered(entry, answer) {
    const ids = new Map(idsIn(entry, answer));
    const later = (await this.store.entries()).filter((e) => e.seq > entry.seq);
    const changed = [];
    for (const e of later) {
      let touched = false;
      if (ids.size && e.sentAt === void 0) {
        const args = replaceIds(e.args, ids);
        touched = args !== e.args;
        e.args = args;
      }
      if (e.follows === entry.key) {
        e.args = { ...e.args };
        const version = versionIn(entry, answer, e.args.collection, e.args.id);
        if (version === void 0) delete e.args.version;
        else e.args.version = version;
        delete e.follows;
        touched = true;
      }
      if (touched) changed.push(e);
    }
    if (changed.length) await this.store.put(changed);
    await this.store.remove([entry.seq]);
    const write = {
      key: entry.key,
      op: entry.op,
      args: entry.args,
      made: entry.made,
      tempIds: entry.tempIds,
      answer
    };
    this.tabs.post({ type: "landed", write, ids: [...ids] });
    await this.landedHere(write, [...ids]);
  }
  async landedHere(write, ids) {
    ids.forEach(([temp, id]) => this.ids.set(temp, id));
    this.listener.landed(write, ids);
    if (!this.landed.some((w) => w.key === write.key)) {
      this.landed.push(write);
      setTimeout(() => {
        this.landed = this.landed.filter((w) => w !== write);
        this.listener.changed();
      }, this.options.grace);
    }
    await this.reload();
    this.listener.changed();
    this.waiters.get(write.key)?.resolve(write.answer);
    this.waiters.delete(write.key);
    this.progress.delete(write.key);
  }
  /** Refused: it leaves, and so do later writes that name a record only it would have created; later updates
   * that were to take its version take the one it was made against. */
  async refused(kind, entry, error, extra = {}) {
    const later = (await this.store.entries()).filter((e) => e.seq > entry.seq);
    const doomedIds = new Set((entry.tempIds ?? []).filter((id) => !!id));
    const doomed = [];
    const changed = [];
    for (const e of later) {
      if (doomedIds.size && names(e, doomedIds)) {
        doomed.push(e);
        (e.tempIds ?? []).forEach((id) => id && doomedIds.add(id));
      } else if (e.follows === entry.key) {
        e.args = { ...e.args };
        if (entry.args.version === void 0) delete e.args.version;
        else e.args.version = entry.args.version;
        delete e.follows;
        changed.push(e);
      }
    }
    if (changed.length) await this.store.put(changed);
    await this.settle(kind, [entry, ...doomed], error, extra);
  }
  /** A stale version: the app's policy decides; by default (or when the record cannot be read) the gateway's
   * version stands. */
  async conflicted(entry, error) {
    const collection = String(entry.args.collection);
    const id = String(entry.args.id);
    const server = await this.link.read(collection, id).catch(() => null);
    let decided = null;
    if (server && this.options.conflict) {
      try {
        decided = await this.options.conflict({
          collection,
          id,
          mine: entry.args.data ?? {},
          server,
          write: asWrite(entry)
        });
      } catch {
        decided = null;
      }
    }
    if (!decided || !server) {
      await this.refused("conflict", entry, error, { server });
      return;
    }
    const key = newKey();
    const replaced = { ...entry, key, args: {
      ...entry.args,
      data: decided,
      version: server.version,
      idempotency_key: key
    } };
    delete replaced.sentAt;
    const followers = (await this.store.entries()).filter((e) => e.follows === entry.key).map((e) => ({ ...e, follows: key }));
    await this.store.put([replaced, ...followers]);
    this.tabs.post({ type: "replaced", from: entry.key, to: key });
    this.replacedHere(entry.key, key);
    await this.reload();
    this.listener.changed();
  }
  replacedHere(from, to) {
    const waiter = this.waiters.get(from);
    this.waiters.delete(from);
    if (waiter) this.waiters.set(to, waiter);
  }
  /** Writes leave unsent or refused: what the views showed of them is undone, each is reported (here and in every
   * other tab) and its promise rejected. The first is the one `error` is about; the rest could only follow it. */
  async settle(kind, entries, error, extra = {}) {
    await this.store.remove(entries.map((e) => e.seq));
    const follow = new HaptaError("NOT_FOUND", `it named a record that an earlier write was to create, and that write was ${kind}`);
    const errors = entries.map((entry, n) => {
      if (kind === "dropped" && entry.sentAt !== void 0) {
        return new HaptaError(
          error.code,
          `${error.message} (it was sent once, and may have been done)`,
          { outcome: "unknown" }
        );
      }
      return n === 0 || kind === "dropped" ? error : follow;
    });
    this.tabs.post({ type: "settled", kind, entries, errors: errors.map(wireOf), extra });
    await this.settledHere(kind, entries, errors, extra);
  }
  async settledHere(kind, entries, errors, extra) {
    const rolledBack = this.listener.undoing(entries);
    const keys = new Set(entries.map((e) => e.key));
    this.mirror = this.mirror.filter((e) => !keys.has(e.key));
    this.listener.changed();
    entries.forEach((entry, n) => {
      const undone = rolledBack.filter((item) => item.key === entry.key);
      const mine = undone.find((item) => item.id === entry.args.id)?.shown ?? null;
      const event = {
        kind: n === 0 || kind === "dropped" ? kind : "refused",
        write: asWrite(entry),
        error: errors[n],
        rolledBack: undone,
        ...n === 0 && kind === "conflict" ? { mine, server: extra.server ?? null } : {}
      };
      this.listener.report(event);
      this.waiters.get(entry.key)?.reject(errors[n]);
      this.waiters.delete(entry.key);
      this.progress.delete(entry.key);
      this.uploadedAgain.delete(entry.key);
    });
    await this.reload();
  }
  /** Another tab told what it did. */
  heard(message) {
    if (this.closed) return;
    if (message.type === "added") {
      this.reload().then(() => {
        this.listener.added(message.entry);
        this.listener.changed();
      });
    } else if (message.type === "landed") {
      this.landedHere(message.write, message.ids);
    } else if (message.type === "settled") {
      this.settledHere(
        message.kind,
        message.entries,
        message.errors.map(errorOf),
        message.extra
      );
    } else if (message.type === "replaced") {
      this.replacedHere(String(message.from), String(message.to));
      this.reload().then(() => this.listener.changed());
    }
  }
  /** The store's entries, now; the copy this tab lays over its views follows them (with those it is still
   * storing after). */
  async reload() {
    const stored = await this.store.entries();
    const keys = new Set(stored.map((e) => e.key));
    this.mirror = [...stored, ...this.mirror.filter((e) => e.seq === void 0 && !keys.has(e.key))];
    this.forgetPreviews();
    return stored;
  }
};

// src/session.ts
var SESSION_OVER = /* @__PURE__ */ new Set(["TOKEN_INVALID", "TOKEN_REUSED", "TOKEN_EXPIRED", "UNAUTHENTICATED"]);
var SessionStore = class {
  constructor(storage, key) {
    this.storage = storage;
    this.key = key;
  }
  storage;
  key;
  /** Kept where other tabs see it: a refresh takes their lock, and the tokens another tab just got. */
  get shared() {
    return !!this.storage;
  }
  load() {
    const stored = this.storage?.getItem(this.key);
    if (!stored) return null;
    try {
      return JSON.parse(stored);
    } catch {
      return null;
    }
  }
  save(session) {
    const storage = this.storage;
    if (!storage) return;
    if (session) storage.setItem(this.key, JSON.stringify(session));
    else storage.removeItem(this.key);
  }
};
var Sessions = class {
  /** `changed` hears every change of the session (the client's "auth" event). */
  constructor(store, requests, apikey, changed) {
    this.store = store;
    this.requests = requests;
    this.changed = changed;
    this.apikey = apikey;
    this.current = store.load();
  }
  store;
  requests;
  changed;
  /** The session signed in as; null: a guest, or anon with the apikey. */
  current;
  /** Signs in as anon (auth.anon) whenever there is no session. */
  apikey;
  refreshing = null;
  oauthWaiters = [];
  set(session) {
    this.current = session;
    this.store.save(session);
    this.changed(session);
  }
  async signIn(op, args) {
    const session = await this.requests.call(op, args);
    this.set(session);
    return session;
  }
  /** Sign in again on a new socket, before anything else is sent on it. A session that is over is dropped. */
  async restore() {
    if (this.current) {
      try {
        if (this.current.expires_at > Date.now() / 1e3 + 5) {
          await this.requests.direct("auth.resume", { token: this.current.token });
        } else {
          await this.refresh(true);
        }
      } catch (error) {
        if (!(error instanceof HaptaError) || !SESSION_OVER.has(error.code)) throw error;
        this.set(null);
      }
    }
    if (!this.current && this.apikey) await this.requests.direct("auth.anon", { apikey: this.apikey });
  }
  /** Roll the session's tokens, once at a time in this tab and, where Web Locks exist, across every tab of this
   * origin: a tab that waited finds the tokens another tab just got (in shared storage) and takes them instead
   * of spending a refresh token that is already spent. `restoring`: on the socket being restored. */
  refresh(restoring = false) {
    if (this.refreshing) return this.refreshing;
    const run = async () => {
      const current = this.current;
      if (!current) throw new HaptaError("UNAUTHENTICATED", "no session to refresh");
      const stored = this.store.load();
      const call = restoring ? this.requests.direct.bind(this.requests) : this.requests.call.bind(this.requests);
      if (stored && stored.refresh_token !== current.refresh_token && stored.expires_at > Date.now() / 1e3 + 5) {
        await call("auth.resume", { token: stored.token });
        this.set(stored);
        return stored;
      }
      const session = await call("auth.refresh", { refresh_token: current.refresh_token });
      this.set(session);
      return session;
    };
    const locks = globalThis.navigator?.locks;
    const flight = locks && this.store.shared ? locks.request(`${this.store.key}.refresh`, run) : run();
    this.refreshing = flight.finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }
  /** auth.expiring: refresh in-band, before the access token lapses. */
  expiring() {
    this.refresh().catch(() => void 0);
  }
  /** Starts an OAuth2 sign-in; `session` resolves when the gateway sends auth.oauth2. */
  async oauth2(provider) {
    const session = new Promise((resolve, reject) => this.oauthWaiters.push({ resolve, reject }));
    const answer = await this.requests.call("auth.oauth2", { provider });
    return { ...answer, session };
  }
  /** auth.oauth2: the provider sent the person back, signed in or refused. */
  oauth2Answered(data) {
    const waiters = this.oauthWaiters;
    this.oauthWaiters = [];
    if (data.error) waiters.forEach((w) => w.reject(new HaptaError(
      String(data.error.code),
      String(data.error.message)
    )));
    else {
      this.set(data);
      waiters.forEach((w) => w.resolve(data));
    }
  }
};

// src/store.ts
var clone = (value) => JSON.parse(JSON.stringify(value));
function cloneEntry(entry) {
  const { files, ...rest } = entry;
  const copy = clone(rest);
  if (files) copy.files = files.map(({ field, name, type, size, data }) => ({ field, name, type, size, data }));
  return copy;
}
var MemoryStore = class {
  outbox = [];
  seq = 0;
  queries = /* @__PURE__ */ new Map();
  whose = void 0;
  async entries() {
    return this.outbox.map(cloneEntry);
  }
  async add(entry) {
    const seq = ++this.seq;
    this.outbox.push(cloneEntry({ ...entry, seq }));
    return seq;
  }
  async put(entries) {
    for (const entry of entries) {
      const at = this.outbox.findIndex((e) => e.seq === entry.seq);
      if (at >= 0) this.outbox[at] = cloneEntry(entry);
    }
  }
  async remove(seqs) {
    this.outbox = this.outbox.filter((e) => !seqs.includes(e.seq));
  }
  async cached(id) {
    return this.queries.has(id) ? clone(this.queries.get(id)) : null;
  }
  async cache(id, value) {
    this.queries.set(id, clone(value));
  }
  async clearCache(owner) {
    this.queries.clear();
    this.whose = owner;
  }
  async owner() {
    return this.whose;
  }
};
var OUTBOX = "outbox";
var QUERIES = "queries";
var META = "meta";
function done(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}
var IndexedDbStore = class _IndexedDbStore {
  constructor(db) {
    this.db = db;
  }
  db;
  static async open(name) {
    const factory = globalThis.indexedDB;
    if (!factory) throw new Error('persist: "indexeddb" needs IndexedDB (a browser); use persist: "memory" here');
    const request = factory.open(name, 1);
    request.onupgradeneeded = () => {
      const db2 = request.result;
      db2.createObjectStore(OUTBOX, { keyPath: "seq", autoIncrement: true });
      db2.createObjectStore(QUERIES);
      db2.createObjectStore(META);
    };
    const db = await done(request);
    db.onversionchange = () => db.close();
    return new _IndexedDbStore(db);
  }
  /** Runs `body` in one transaction over `stores`; resolves once it has committed. */
  run(stores, mode, body) {
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction(stores, mode);
      let result;
      Promise.resolve(body(tx)).then((value) => {
        result = value;
      }, reject);
      tx.oncomplete = () => resolve(result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error("the IndexedDB transaction was aborted"));
    });
  }
  entries() {
    return this.run([OUTBOX], "readonly", (tx) => done(tx.objectStore(OUTBOX).getAll()));
  }
  add(entry) {
    const { seq, ...stored } = cloneEntry(entry);
    return this.run([OUTBOX], "readwrite", (tx) => done(tx.objectStore(OUTBOX).add(stored)));
  }
  put(entries) {
    return this.run([OUTBOX], "readwrite", (tx) => {
      const outbox = tx.objectStore(OUTBOX);
      for (const entry of entries) outbox.put(cloneEntry(entry));
    });
  }
  remove(seqs) {
    return this.run([OUTBOX], "readwrite", (tx) => {
      for (const seq of seqs) tx.objectStore(OUTBOX).delete(seq);
    });
  }
  async cached(id) {
    return await this.run([QUERIES], "readonly", (tx) => done(tx.objectStore(QUERIES).get(id))) ?? null;
  }
  cache(id, value) {
    return this.run([QUERIES], "readwrite", (tx) => {
      tx.objectStore(QUERIES).put(clone(value), id);
    });
  }
  clearCache(owner) {
    return this.run([QUERIES, META], "readwrite", (tx) => {
      tx.objectStore(QUERIES).clear();
      tx.objectStore(META).put(owner, "owner");
    });
  }
  owner() {
    return this.run([META], "readonly", (tx) => done(tx.objectStore(META).get("owner")));
  }
};

// src/subscriptions.ts
var REFUSED2 = /* @__PURE__ */ new Set([
  "UNAUTHENTICATED",
  "FORBIDDEN",
  "NOT_FOUND",
  "BAD_REQUEST",
  "TOO_LARGE",
  "TOKEN_EXPIRED",
  "VALIDATION_FAILED",
  "RATE_LIMITED"
]);
var Subscriptions = class {
  constructor(requests) {
    this.requests = requests;
  }
  requests;
  live = /* @__PURE__ */ new Set();
  bySub = /* @__PURE__ */ new Map();
  async subscribe(collection, options, onChange) {
    const { onReset, ...wire } = options;
    const live = {
      args: { collection, ...wire },
      sub: null,
      pos: 0,
      atPos: /* @__PURE__ */ new Set(),
      onChange,
      onReset
    };
    const answer = await this.requests.call("realtime.subscribe", live.args, (data) => this.started(live, data));
    const { snapshot, sort, per_page, ...resume } = live.args;
    live.args = resume;
    this.live.add(live);
    const stop = (async () => {
      this.live.delete(live);
      const sub = live.sub;
      live.sub = null;
      if (sub) {
        this.bySub.delete(sub);
        if (this.requests.ready) await this.requests.call("realtime.unsubscribe", { sub }).catch(() => void 0);
      }
    });
    stop.snapshot = snapshot ? {
      items: answer.items,
      page: answer.page,
      per_page: answer.per_page,
      ...answer.next ? { next: answer.next } : {}
    } : null;
    return stop;
  }
  /** On the socket being restored: every subscription again, from the last position it delivered. */
  async resume() {
    this.bySub.clear();
    for (const live of this.live) {
      live.sub = null;
      try {
        await this.requests.direct(
          "realtime.subscribe",
          { ...live.args, since: live.pos },
          (data) => this.started(live, data)
        );
      } catch (error) {
        if (!(error instanceof HaptaError) || !REFUSED2.has(error.code)) throw error;
      }
    }
  }
  /** On the open socket: every subscription that has no sub on it (refused before a sign-in), asked for again
   * from its position. */
  askUnasked() {
    for (const live of this.live) {
      if (live.sub !== null || !this.requests.ready) continue;
      this.requests.call("realtime.subscribe", { ...live.args, since: live.pos }, (data) => this.started(live, data)).catch(() => void 0);
    }
  }
  /** Effects of this client's writes the gateway has not confirmed (`rolledBack` false), or that it refused
   * (`rolledBack` true): each subscription they match hears them as changes. */
  optimistic(effects, vars, rolledBack) {
    for (const live of this.live) {
      for (const effect of effects) {
        const change = this.changeOf(live, effect, vars, rolledBack);
        if (!change) continue;
        try {
          live.onChange(change);
        } catch (error) {
          queueMicrotask(() => {
            throw error;
          });
        }
      }
    }
  }
  /** Creates of this client landed: `ids` (temporary → the gateway's) by collection. Each subscription that heard
   * one pending hears its temporary id deleted, `replacedBy` the gateway's (whose own create comes as any change
   * does). */
  replaced(ids) {
    for (const live of this.live) {
      for (const { collection, temp, id } of ids) {
        if (!live.temps?.delete(temp)) continue;
        try {
          live.onChange({ action: "delete", collection, record: { id: temp }, pos: live.pos, replacedBy: id });
        } catch (error) {
          queueMicrotask(() => {
            throw error;
          });
        }
      }
    }
  }
  changeOf(live, effect, vars, rolledBack) {
    const { args } = live;
    if (args.collection !== effect.collection || args.id !== void 0 && args.id !== effect.id) return null;
    const shown = effect.record ?? (effect.action === "update" ? { ...effect.data, id: effect.id } : null) ?? effect.before ?? { id: effect.id };
    if (live.filter === void 0) {
      live.filter = null;
      if (typeof args.filter === "string" && args.filter.trim()) {
        try {
          live.filter = parseFilter(args.filter);
        } catch {
          live.filter = "unparsed";
        }
      }
    }
    if (live.filter === "unparsed") return null;
    if (live.filter && decide(live.filter, shown, vars) !== true) return null;
    const base = { collection: effect.collection, pos: live.pos };
    if (!rolledBack) {
      if (effect.action === "create") (live.temps ??= /* @__PURE__ */ new Set()).add(effect.id);
      return { ...base, action: effect.action, record: { ...shown, $pending: true }, pending: true };
    }
    if (effect.action === "create") {
      if (!live.temps?.delete(effect.id)) return null;
      return { ...base, action: "delete", record: { id: effect.id }, rolledBack: true };
    }
    if (!effect.before) return null;
    return {
      ...base,
      action: effect.action === "delete" ? "create" : "update",
      record: effect.before,
      rolledBack: true
    };
  }
  /** records.change */
  changed(sub, data) {
    const live = sub ? this.bySub.get(sub) : void 0;
    if (!live) return;
    const pos = data.pos;
    const id = data.record?.id;
    if (pos < live.pos || pos === live.pos && live.atPos.has(id)) return;
    if (pos > live.pos) {
      live.pos = pos;
      live.atPos = /* @__PURE__ */ new Set();
    }
    live.atPos.add(id);
    live.onChange(data);
  }
  /** realtime.reset: what these subscriptions missed cannot be replayed. */
  reset(subs) {
    for (const id of subs) this.bySub.get(id)?.onReset?.();
  }
  started(live, answer) {
    live.sub = answer.sub;
    const pos = answer.pos;
    if (pos !== live.pos) live.atPos = /* @__PURE__ */ new Set();
    live.pos = pos;
    this.bySub.set(live.sub, live);
  }
};

// src/tabs.ts
var LocalLocks = class {
  tails = /* @__PURE__ */ new Map();
  exclusive(name, body) {
    const before = this.tails.get(name) ?? Promise.resolve();
    const run = before.then(body, body);
    const tail = run.catch(() => void 0);
    this.tails.set(name, tail);
    tail.then(() => {
      if (this.tails.get(name) === tail) this.tails.delete(name);
    });
    return run;
  }
};
function tabsOf(name, shared) {
  const Channel3 = shared ? globalThis.BroadcastChannel : void 0;
  const locks = shared ? globalThis.navigator?.locks : void 0;
  const channel = Channel3 ? new Channel3(name) : null;
  const local = new LocalLocks();
  const handlers = [];
  if (channel) channel.onmessage = (event) => handlers.forEach((handler) => handler(event.data));
  return {
    post: (message) => channel?.postMessage(message),
    listen: (handler) => {
      handlers.push(handler);
    },
    exclusive: (lock, body) => locks ? locks.request(`${name} ${lock}`, body) : local.exclusive(lock, body),
    close: () => channel?.close()
  };
}

// src/hapta.ts
var KEY_LIFE = 23 * 36e5;
var LANDED_GRACE = 15e3;
var OUTBOX_FILE_BYTES = 25 * 1024 * 1024;
var FILE_UPDATE_TRIES = 3;
var Hapta = class _Hapta {
  constructor(url, options) {
    this.url = url;
    this.options = options;
    if (options.persist === "indexeddb" && !options.storage) {
      options = { ...options, storage: globalThis.localStorage };
    }
    this.transport = new Transport(url, options.protocol ?? "json", options.WebSocket);
    this.backoff = new Backoff(options.backoff?.base ?? 250, options.backoff?.cap ?? 15e3);
    const idempotentWrites = options.idempotentWrites ?? true;
    this.requests = new Requests({
      ready: () => this.state === "open",
      closed: () => this.state === "closed",
      keyWrites: () => idempotentWrites && !!this.session,
      send: (message) => this.transport.send(message)
    }, {
      timeout: options.requestTimeout ?? 3e4,
      retry: { attempts: options.retry?.attempts ?? 3, maxWait: options.retry?.maxWait ?? 1e4 }
    });
    this.sessions = new Sessions(
      new SessionStore(options.storage, options.storageKey ?? "hapta.session"),
      this.requests,
      options.apikey,
      (session) => this.signedIn(session)
    );
    this.subscriptions = new Subscriptions(this.requests);
    this.liveQueries = new LiveQueries(this.requests, options.persist ? {
      cached: (id) => this.store ? this.store.cached(id) : Promise.resolve(null),
      cache: (id, value) => {
        this.store?.cache(id, value).catch(() => void 0);
      },
      owner: () => this.owner ?? "",
      writes: () => this.queue?.writes() ?? [],
      vars: () => ({ user: this.session?.user ?? null })
    } : null);
    this.channels = new Channels(this, this.requests);
    this.transfers = new Files(this.requests, this.transport);
    this.listenToNetwork(true);
  }
  url;
  options;
  state = "connecting";
  /** Sockets opened after the first. */
  reconnects = 0;
  auth = {
    /** Signs in at once (a Session), or, where the app requires verified emails, answers `{check_mail: true}`
     * whether or not the address had an account: the mail says what to do next. */
    register: async (fields) => {
      const answer = await this.call("auth.register", fields);
      if ("token" in answer) this.sessions.set(answer);
      return answer;
    },
    login: (identity, password) => this.sessions.signIn("auth.login", { identity, password }),
    /** A guest account (no email or password yet); `register` on this client later makes it an account. */
    guest: () => this.sessions.signIn("auth.guest", {}),
    /** Mails a six-digit sign-in code; `otp` signs in with it. */
    otpRequest: (email) => this.call("auth.otp.request", { email }),
    otp: (email, code) => this.sessions.signIn("auth.otp", { email, code }),
    /** The second factor after a sign-in that failed with MFA_REQUIRED (`error.details.challenge`). */
    mfaVerify: (challenge, code) => this.sessions.signIn("auth.mfa.verify", { challenge, code }),
    mfaEnroll: () => this.call("auth.mfa.enroll"),
    mfaConfirm: (code) => this.call("auth.mfa.confirm", { code }),
    /** Removes the second factor with a current code or a recovery code. */
    mfaDisable: (code) => this.call("auth.mfa.disable", { code }),
    verifyRequest: () => this.call("auth.verify.request"),
    /** Verifies the email of a mailed link. Signed in to that account here, or with its `password`, it only
     * verifies; otherwise it claims the address: an unverified account is taken over (`taken_over: true`). */
    verify: (token, password) => this.call("auth.verify", password === void 0 ? { token } : { token, password }),
    resetRequest: (email) => this.call("auth.reset.request", { email }),
    reset: (token, password) => this.call("auth.reset", { token, password }),
    /** Mails a link to the new address; asks the current password (an account without one: a fresh sign-in). */
    changeEmail: (email, password) => this.call("auth.email.change", password === void 0 ? { email } : { email, password }),
    /** A new password; `old` is the current one (an account without one: within 10 minutes of signing in). */
    changePassword: (newPassword, old) => this.call("auth.password", old === void 0 ? { new: newPassword } : { new: newPassword, old }),
    confirmEmail: (token) => this.call("auth.email.confirm", { token }),
    logout: async () => {
      await this.call("auth.logout");
      this.sessions.set(null);
    },
    refresh: () => this.sessions.refresh(),
    me: () => this.call("auth.me"),
    anon: (apikey) => {
      this.sessions.apikey = apikey;
      return this.call("auth.anon", { apikey });
    },
    /** Starts an OAuth2 sign-in: open `url` in a browser; `session` resolves when the provider sent it back. */
    oauth2: (provider) => this.sessions.oauth2(provider)
  };
  functions = {
    /** Calls the app's server function `name` (functions/*.py, `@call`): its return value. */
    call: (name, args) => this.call("functions.call", args === void 0 ? { name } : { name, args })
  };
  /** The offline outbox (ConnectOptions.persist); empty without one. */
  outbox = {
    /** The writes waiting for the gateway (of every tab of the origin), in the order they go. */
    pending: () => this.queue?.pending() ?? [],
    /** The gateway's id of a record created offline, for the temporary one (`local-...`) it showed under, once its
     * create has landed (while this page lives). */
    idFor: (id) => this.queue?.idFor(id)
  };
  files = {
    /** Streams a file into the record `id`'s field (answers `{file, record}`), or, with `id` null, for a record
     * still to be written: `{file, upload, expires_at}`, `upload` a single-use token the write names in the field
     * (`{media: [{upload}]}`) within `expires_at`. `records(c).create(data, {files})` does both in one call. */
    upload: (collection, id, field, data, options = {}) => this.transfers.upload(collection, id, field, data, options),
    download: (collection, id, field, name, options = {}) => this.transfers.download(collection, id, field, name, options),
    /** The bytes of a download stream another op answers with, as files.download does (admin.backup.download). */
    streamed: (op, args = {}) => this.transfers.streamed(op, args),
    url: (collection, id, field, name, options) => this.transfers.url(collection, id, field, name, options)
  };
  transport;
  backoff;
  requests;
  sessions;
  subscriptions;
  liveQueries;
  channels;
  transfers;
  handlers = /* @__PURE__ */ new Map();
  closing = false;
  /** A socket was opened and restored before: the next is a reconnect. */
  hadSocket = false;
  reconnectTimer;
  /** The gateway said `auth.revoked`: the close (1008) that follows is no reason to stop. */
  revoked = false;
  // Offline first (ConnectOptions.persist):
  store = null;
  tabs = null;
  queue = null;
  /** Whose the kept live queries are: the user signed in (null: nobody). */
  owner = null;
  /** The browser's "offline" and "online": the socket is let go at once, and opened again at once. */
  network = {
    offline: () => {
      if (this.state === "open" || this.state === "connecting") this.transport.drop();
    },
    online: () => this.reconnectNow()
  };
  /** Where there is a browser's window (with navigator.onLine), hear when it goes offline and online. */
  listenToNetwork(on) {
    const scope = globalThis;
    if (typeof scope.addEventListener !== "function" || typeof scope.navigator?.onLine !== "boolean") return;
    for (const name of ["offline", "online"]) {
      if (on) scope.addEventListener(name, this.network[name]);
      else scope.removeEventListener(name, this.network[name]);
    }
  }
  /** Opens the socket and signs in again as the stored session (or the anon key). With `persist`, resolves once
   * what was kept is loaded, without waiting for the socket: it opens, and opens again, meanwhile. */
  static async connect(url, options = {}) {
    const hapta = new _Hapta(url, options);
    try {
      if (options.persist) {
        await hapta.loadOffline(options.persist);
        hapta.open().catch(() => void 0);
        return hapta;
      }
      await hapta.open();
    } catch (error) {
      hapta.close();
      throw error;
    }
    return hapta;
  }
  /** The session signed in as; null: a guest, or anon with the apikey. */
  get session() {
    return this.sessions.current;
  }
  set session(session) {
    this.sessions.current = session;
  }
  /** "state" (the State), "auth" (the Session or null), "reset" (`{subs, channels}`: refetch), "outbox" (an
   * OutboxEvent: a write that left the outbox unsent or refused, and what was rolled back), or any gateway event
   * by name ("auth.revoked", ...). Returns the unsubscriber. */
  on(event, handler) {
    const list = this.handlers.get(event) ?? [];
    list.push(handler);
    this.handlers.set(event, list);
    return () => this.handlers.set(event, (this.handlers.get(event) ?? []).filter((h) => h !== handler));
  }
  records(collection) {
    return new Records(this, collection);
  }
  /** Up to App.batch_max writes in one transaction: all of them or none; a failure is the failing op's own
   * HaptaError with `details.index`. Answers each op's result, in order. `publish`: up to 16 channel messages
   * (channels this connection joined) sent only if the batch commits, after its record changes; a refused one
   * refuses the batch with `details.publish`. */
  batch(ops, options = {}) {
    const { atomic, publish, ...rest } = options;
    return this.call("records.batch", {
      ops,
      ...atomic === void 0 ? {} : { atomic },
      ...publish === void 0 ? {} : { publish },
      ...keyed(rest)
    });
  }
  channel(name) {
    return this.channels.get(name);
  }
  /** One request; waits for the socket while it reconnects (up to requestTimeout). Rejects with HaptaError. With
   * `persist`, a write of a signed-in user goes through the outbox instead: it resolves when the gateway has done
   * it, however long that takes, and rejects if it refuses it. */
  call(op, args = {}, onReply) {
    if (this.queue && takesKey(op) && this.session?.user?.id !== void 0) return this.queue.add(op, args);
    return this.requests.call(op, args, onReply);
  }
  /** @internal Records.create and .update with `files`: through the outbox with their bytes when it keeps them
   * (persist, a user, within outboxFileBytes), else uploaded now and then written. */
  withFiles(op, args, files, onProgress) {
    const uploads = uploadsOf(files);
    if (this.queue && this.session?.user?.id !== void 0) {
      const size = uploads.reduce((sum, upload) => sum + upload.size, 0);
      const most = this.options.outboxFileBytes ?? OUTBOX_FILE_BYTES;
      if (size <= most) return this.queue.add(op, args, uploads, onProgress);
      if (this.state !== "open") {
        return Promise.reject(new HaptaError(
          "TOO_LARGE",
          `the write's files (${size} bytes) are more than the outbox keeps (outboxFileBytes, ${most}), and the client is offline: it was not kept`,
          { size, outboxFileBytes: most }
        ));
      }
    }
    return this.sendWithFiles(op, args, uploads, onProgress);
  }
  /** Uploads the files, then the write naming them. Tokens that expired before the write arrived (TOKEN_INVALID)
   * are uploaded once more; an update that read the record's files at a version that changed before it arrived
   * reads them again. */
  async sendWithFiles(op, args, uploads, onProgress) {
    let tokens = await this.transfers.uploadAll(args, uploads, onProgress);
    let uploadedAgain = false;
    for (let tries = 1; ; tries++) {
      const sent = withTokens(await this.transfers.kept(op, args, uploads), uploads, tokens);
      try {
        return await this.requests.call(op, sent);
      } catch (error) {
        if (!(error instanceof HaptaError)) throw error;
        if (error.code === "TOKEN_INVALID" && !uploadedAgain) {
          uploadedAgain = true;
          tokens = await this.transfers.uploadAll(args, uploads, onProgress);
          continue;
        }
        const readStale = args.version === void 0 && sent.version !== void 0 && error.code === "CONFLICT" && typeof error.details?.version === "number";
        if (!readStale || tries >= FILE_UPDATE_TRIES) throw error;
      }
    }
  }
  close() {
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    this.setState("closed");
    this.transport.close(1e3);
    this.requests.failAll(new HaptaError("UNAVAILABLE", "the client is closed"));
    this.queue?.close();
    this.tabs?.close();
    this.listenToNetwork(false);
  }
  /** @internal Records.subscribe */
  subscribe(collection, options, onChange) {
    return this.subscriptions.subscribe(collection, options, onChange);
  }
  /** @internal Records.query */
  query(collection, options, onChange) {
    return this.liveQueries.query(collection, options, onChange);
  }
  // ---- offline first ----
  /** Opens the store, reads the outbox, and forgets the kept queries if they are someone else's. */
  async loadOffline(persist) {
    const name = `hapta ${this.url}`;
    const store = persist === "memory" ? new MemoryStore() : await IndexedDbStore.open(name);
    this.store = store;
    this.tabs = tabsOf(name, persist === "indexeddb");
    this.queue = new Outbox(store, this.tabs, {
      ready: () => this.state === "open",
      user: () => this.userId(),
      attempt: (op, args) => this.requests.attempt(op, args),
      read: (collection, id) => this.requests.call("records.get", { collection, id }).catch(() => null),
      version: (collection, id) => {
        const held = this.liveQueries.index().get(recordKey(collection, id));
        return typeof held?.version === "number" ? held.version : void 0;
      },
      attach: (op, args, files, onProgress) => this.transfers.attach(op, args, files, onProgress)
    }, {
      changed: () => this.liveQueries.rewrite(),
      added: (entry) => this.subscriptions.optimistic(this.effects([entry]), this.vars(), false),
      landed: (write, ids) => this.subscriptions.replaced(ids.map(([temp, id]) => {
        const at = (write.tempIds ?? []).indexOf(temp);
        const collection = write.op === "records.batch" ? write.args.ops[at]?.collection : write.args.collection;
        return { collection: String(collection), temp, id };
      })),
      undoing: (entries) => this.undoing(entries),
      report: (event) => this.emit("outbox", event)
    }, { conflict: this.options.conflict, keyLife: KEY_LIFE, grace: LANDED_GRACE });
    await this.queue.load();
    this.owner = this.userId();
    if (await store.owner() !== this.owner) await store.clearCache(this.owner);
    if (this.owner) this.queue.signedIn(this.owner).catch(() => void 0);
  }
  userId() {
    const id = this.session?.user?.id;
    return id === void 0 || id === null ? null : String(id);
  }
  vars() {
    return { user: this.session?.user ?? null };
  }
  /** What `entries` do to the records the live queries hold, after the writes before them. */
  effects(entries) {
    const keys = new Set(entries.map((entry) => entry.key));
    const writes = this.queue.writes().filter((write) => !keys.has(write.key));
    return effectsOf([...writes, ...entries], this.liveQueries.index()).filter((effect) => keys.has(effect.key));
  }
  /** Writes about to leave unsent or refused: the subscriptions hear them undone; the event says what the views
   * showed of them and show again. */
  undoing(entries) {
    const effects = this.effects(entries);
    this.subscriptions.optimistic(effects, this.vars(), true);
    const index = this.liveQueries.index();
    return effects.map((effect) => ({
      key: effect.key,
      collection: effect.collection,
      id: effect.id,
      action: effect.action,
      shown: effect.record,
      restored: index.get(recordKey(effect.collection, effect.id)) ?? null
    }));
  }
  /** The session changed (a sign-in, a refresh, a sign-out): the app hears it; the kept queries are forgotten when
   * it is no longer theirs; after a sign-in the writes of anyone else are dropped, the user's go, and queries and
   * subscriptions refused before are asked for again. */
  signedIn(session) {
    this.emit("auth", session);
    if (session && this.state === "open") {
      this.liveQueries.askUnasked();
      this.subscriptions.askUnasked();
    }
    if (!this.store) return;
    const user = this.userId();
    if (user !== this.owner) {
      this.owner = user;
      this.store.clearCache(user).catch(() => void 0);
    }
    if (user) this.queue?.signedIn(user).catch(() => void 0);
  }
  // ---- the socket's life ----
  open() {
    const online = globalThis.navigator?.onLine !== false;
    return new Promise((resolve, reject) => {
      try {
        this.transport.open({
          opened: (socket) => {
            this.restore().then(() => {
              this.backoff.reset();
              if (this.hadSocket) this.reconnects++;
              this.hadSocket = true;
              this.setState("open");
              this.requests.flush();
              this.liveQueries.askUnasked();
              this.subscriptions.askUnasked();
              this.queue?.flush();
              resolve();
            }, (error) => {
              socket.close(1e3);
              reject(error);
            });
          },
          message: (message) => this.received(message),
          chunk: (stream, data) => this.transfers.chunk(stream, data),
          ended: async (code, opened) => {
            if (!opened && online && await this.transport.refusing()) {
              const refused = new HaptaError("FORBIDDEN", "the gateway refused the connection: is this page's origin in App.origins?");
              this.closing = true;
              this.setState("closed");
              this.requests.failAll(refused);
              reject(refused);
              return;
            }
            if (!opened) reject(new HaptaError("UNAVAILABLE", `could not connect (${code})`));
            this.lost(code, opened);
          }
        });
      } catch (error) {
        reject(error);
      }
    });
  }
  /** Sign in again, resume every subscription from its position and every live query from what it holds, join
   * every channel again: before anything waiting is sent, so that it runs as the same principal as before. */
  async restore() {
    await this.sessions.restore();
    await this.subscriptions.resume();
    await this.liveQueries.resume();
    await this.channels.rejoin();
  }
  lost(code, wasOpen) {
    this.requests.lost(code);
    this.transfers.lost();
    if (this.closing) return;
    const revoked = this.revoked;
    this.revoked = false;
    if (final(code) && wasOpen && !revoked) {
      this.setState("closed");
      this.requests.failAll(new HaptaError("UNAVAILABLE", `the gateway closed the connection (${code}); not retrying`));
      return;
    }
    if (this.state !== "reconnecting") this.setState("reconnecting");
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.reconnect(), revoked ? 0 : this.backoff.next());
  }
  reconnect() {
    this.reconnectTimer = void 0;
    if (this.closing) return;
    this.open().catch(() => void 0);
  }
  /** The browser says it is online again: no need to wait out the backoff. */
  reconnectNow() {
    if (this.state !== "reconnecting" || this.reconnectTimer === void 0) return;
    clearTimeout(this.reconnectTimer);
    this.reconnect();
  }
  received(message) {
    if (typeof message.event === "string") {
      this.event(message.event, message.sub, message.data ?? {});
    } else {
      this.requests.reply(message);
    }
  }
  /** A gateway event, to the part it is for; then to the app's handlers of it. */
  event(name, sub, data) {
    if (name === "records.change") {
      this.subscriptions.changed(sub, data);
      return;
    }
    if (name === "realtime.diff") {
      this.liveQueries.diffed(sub, data);
      return;
    }
    if (name === "realtime.reset") {
      this.subscriptions.reset(data.subs ?? []);
      this.liveQueries.reset(data.subs ?? []);
      this.channels.reset(data.channels ?? []);
      this.emit("reset", data);
      return;
    }
    if (name.startsWith("channels.")) this.channels.heard(name, data);
    else if (name === "auth.expiring") this.sessions.expiring();
    else if (name === "auth.oauth2") this.sessions.oauth2Answered(data);
    else if (name.startsWith("files.")) this.transfers.heard(name, data);
    if (name === "auth.revoked") {
      this.revoked = true;
      this.sessions.set(null);
    }
    this.emit(name, data);
  }
  emit(event, data) {
    for (const handler of this.handlers.get(event) ?? []) handler(data);
  }
  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", state);
  }
};
export {
  Channel,
  Hapta,
  HaptaError,
  Records,
  backoffDelay
};
