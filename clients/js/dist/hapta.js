// @hapta/client (built from clients/js/src by build.mjs; do not edit)

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

// src/hapta.ts
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
function backoffDelay(attempt, base, cap, random = Math.random) {
  const ceiling = Math.min(cap, base * 2 ** attempt);
  return ceiling * (0.5 + random() / 2);
}
var FINAL_CLOSE_CODES = /* @__PURE__ */ new Set([1002, 1003, 1008]);
var SESSION_OVER = /* @__PURE__ */ new Set(["TOKEN_INVALID", "TOKEN_REUSED", "TOKEN_EXPIRED", "UNAUTHENTICATED"]);
var SUBPROTOCOLS = { json: "hapta.v1.json", msgpack: "hapta.v1.msgpack" };
var TRY_AGAIN = /* @__PURE__ */ new Set(["RATE_LIMITED", "UNAVAILABLE", "TIMEOUT"]);
function idempotent(request) {
  return KEYED_WRITES.has(request.op) && typeof request.args.idempotency_key === "string";
}
function keyed(options) {
  return options.idempotencyKey === void 0 ? {} : { idempotency_key: options.idempotencyKey };
}
var KEYED_WRITES = /* @__PURE__ */ new Set(["records.create", "records.update", "records.delete", "records.batch"]);
function newKey() {
  const crypto = globalThis.crypto;
  if (crypto?.randomUUID) return crypto.randomUUID();
  let key = "";
  for (let i = 0; i < 4; i++) key += Math.floor(Math.random() * 2 ** 32).toString(16).padStart(8, "0");
  return key;
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
  create(data, options = {}) {
    return this.hapta.call("records.create", { collection: this.collection, data, ...keyed(options) });
  }
  update(id, data, options = {}) {
    const { version, ...rest } = options;
    return this.hapta.call("records.update", {
      collection: this.collection,
      id,
      data,
      ...version === void 0 ? {} : { version },
      ...keyed(rest)
    });
  }
  delete(id, options = {}) {
    return this.hapta.call("records.delete", { collection: this.collection, id, ...keyed(options) });
  }
  /** Hear every change to the collection (or to one record, `id`) that matches `filter` and that you may view,
   * across reconnects: each once, in commit order. Resolves once the gateway has started it. */
  subscribe(options, onChange) {
    return this.hapta.subscribe(this.collection, options, onChange);
  }
};
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
var Hapta = class _Hapta {
  constructor(url, options) {
    this.url = url;
    this.options = options;
    this.protocol = options.protocol ?? "json";
    const Socket = options.WebSocket ?? globalThis.WebSocket;
    if (!Socket) throw new Error("no WebSocket here: pass one as options.WebSocket");
    this.Socket = Socket;
    this.storageKey = options.storageKey ?? "hapta.session";
    this.base = options.backoff?.base ?? 250;
    this.cap = options.backoff?.cap ?? 15e3;
    this.requestTimeout = options.requestTimeout ?? 3e4;
    this.attempts = options.retry?.attempts ?? 3;
    this.maxWait = options.retry?.maxWait ?? 1e4;
    this.idempotentWrites = options.idempotentWrites ?? true;
    this.apikey = options.apikey;
    this.session = this.storedSession();
  }
  url;
  options;
  state = "connecting";
  session = null;
  /** Sockets opened after the first. */
  reconnects = 0;
  auth = {
    /** Signs in at once (a Session), or, where the app requires verified emails, answers `{check_mail: true}`
     * whether or not the address had an account: the mail says what to do next. */
    register: async (fields) => {
      const answer = await this.call("auth.register", fields);
      if ("token" in answer) this.setSession(answer);
      return answer;
    },
    login: (identity, password) => this.signIn("auth.login", { identity, password }),
    /** A guest account (no email or password yet); `register` on this client later makes it an account. */
    guest: () => this.signIn("auth.guest", {}),
    /** Mails a six-digit sign-in code; `otp` signs in with it. */
    otpRequest: (email) => this.call("auth.otp.request", { email }),
    otp: (email, code) => this.signIn("auth.otp", { email, code }),
    /** The second factor after a sign-in that failed with MFA_REQUIRED (`error.details.challenge`). */
    mfaVerify: (challenge, code) => this.signIn("auth.mfa.verify", { challenge, code }),
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
      this.setSession(null);
    },
    refresh: () => this.refresh(),
    me: () => this.call("auth.me"),
    anon: (apikey) => {
      this.apikey = apikey;
      return this.call("auth.anon", { apikey });
    },
    /** Starts an OAuth2 sign-in: open `url` in a browser; `session` resolves when the provider sent it back. */
    oauth2: async (provider) => {
      const session = new Promise((resolve, reject) => this.oauthWaiters.push({ resolve, reject }));
      const answer = await this.call("auth.oauth2", { provider });
      return { ...answer, session };
    }
  };
  files = {
    upload: (collection, id, field, data, options = {}) => this.upload(collection, id, field, data, options),
    download: (collection, id, field, name) => this.download(collection, id, field, name),
    url: async (collection, id, field, name, expires) => (await this.call("files.url", { collection, id, field, name, ...expires ? { expires } : {} })).url
  };
  socket = null;
  protocol;
  Socket;
  storageKey;
  base;
  cap;
  requestTimeout;
  attempts;
  maxWait;
  idempotentWrites;
  apikey;
  ids = 0;
  pending = /* @__PURE__ */ new Map();
  waiting = [];
  // made while no socket was open
  live = /* @__PURE__ */ new Set();
  bySub = /* @__PURE__ */ new Map();
  channels = /* @__PURE__ */ new Map();
  transfers = /* @__PURE__ */ new Map();
  handlers = /* @__PURE__ */ new Map();
  oauthWaiters = [];
  refreshing = null;
  closing = false;
  attempt = 0;
  /** Opens the socket and signs in again as the stored session (or the anon key). */
  static async connect(url, options = {}) {
    const hapta = new _Hapta(url, options);
    try {
      await hapta.open();
    } catch (error) {
      hapta.close();
      throw error;
    }
    return hapta;
  }
  /** "state" (the State), "auth" (the Session or null), "reset" (`{subs, channels}`: refetch), or any gateway
   * event by name ("auth.revoked", ...). Returns the unsubscriber. */
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
   * HaptaError with `details.index`. Answers each op's result, in order. */
  batch(ops, options = {}) {
    const { atomic, ...rest } = options;
    return this.call("records.batch", { ops, ...atomic === void 0 ? {} : { atomic }, ...keyed(rest) });
  }
  channel(name) {
    let channel = this.channels.get(name);
    if (!channel) {
      channel = new Channel(this, name);
      this.channels.set(name, channel);
    }
    return channel;
  }
  /** One request; waits for the socket while it reconnects (up to requestTimeout). Rejects with HaptaError. */
  call(op, args = {}, onReply) {
    if (this.state === "closed") return Promise.reject(new HaptaError("UNAVAILABLE", "the client is closed"));
    if (KEYED_WRITES.has(op) && this.idempotentWrites && this.session && args.idempotency_key === void 0) {
      args = { ...args, idempotency_key: newKey() };
    }
    return new Promise((resolve, reject) => {
      const request = {
        op,
        args,
        resolve,
        reject,
        onReply,
        sent: false,
        retries: 0,
        timer: setTimeout(() => this.expire(request), this.requestTimeout)
      };
      if (this.state === "open") this.send(request);
      else this.waiting.push(request);
    });
  }
  close() {
    this.closing = true;
    this.setState("closed");
    this.socket?.close(1e3);
    this.failAll(new HaptaError("UNAVAILABLE", "the client is closed"));
  }
  // ---- realtime ----
  /** @internal Records.subscribe */
  async subscribe(collection, options, onChange) {
    const { onReset, ...wire } = options;
    const live = { args: { collection, ...wire }, sub: null, pos: 0, onChange, onReset };
    const answer = await this.call("realtime.subscribe", live.args, (data) => this.started(live, data));
    const { snapshot, sort, per_page, ...resume } = live.args;
    live.args = resume;
    this.live.add(live);
    const stop = (async () => {
      this.live.delete(live);
      const sub = live.sub;
      live.sub = null;
      if (sub) {
        this.bySub.delete(sub);
        if (this.state === "open") await this.call("realtime.unsubscribe", { sub }).catch(() => void 0);
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
  started(live, answer) {
    live.sub = answer.sub;
    live.pos = answer.pos;
    this.bySub.set(live.sub, live);
  }
  // ---- the socket ----
  open() {
    return new Promise((resolve, reject) => {
      let socket;
      try {
        socket = new this.Socket(this.url, [SUBPROTOCOLS[this.protocol]]);
      } catch (error) {
        reject(error);
        return;
      }
      socket.binaryType = "arraybuffer";
      let opened = false;
      socket.onopen = () => {
        opened = true;
        this.socket = socket;
        this.restore().then(() => {
          this.attempt = 0;
          this.setState("open");
          const waiting = this.waiting;
          this.waiting = [];
          waiting.forEach((request) => this.send(request));
          resolve();
        }, (error) => {
          socket.close(1e3);
          reject(error);
        });
      };
      socket.onmessage = (event) => this.received(event.data);
      let ended = false;
      const end = async (code) => {
        if (ended) return;
        ended = true;
        if (this.socket === socket) this.socket = null;
        if (!opened && await this.refusing()) {
          const refused = new HaptaError("FORBIDDEN", "the gateway refused the connection: is this page's origin in App.origins?");
          this.closing = true;
          this.setState("closed");
          this.failAll(refused);
          reject(refused);
          return;
        }
        if (!opened) reject(new HaptaError("UNAVAILABLE", `could not connect (${code})`));
        this.lost(code, opened);
      };
      socket.onerror = () => {
        if (!opened) end(1006);
      };
      socket.onclose = (event) => end(event.code);
    });
  }
  lost(code, wasOpen) {
    for (const request of this.pending.values()) {
      if (code === 1001 || idempotent(request)) {
        request.sent = false;
        this.waiting.push(request);
      } else {
        clearTimeout(request.timer);
        request.reject(new HaptaError("UNAVAILABLE", "the connection was lost before the reply: the request may or may not have been served", { outcome: "unknown" }));
      }
    }
    this.pending.clear();
    for (const transfer of this.transfers.values()) {
      transfer.error = new HaptaError("UNAVAILABLE", "the connection was lost during the transfer");
      transfer.changed();
    }
    this.transfers.clear();
    if (this.closing) return;
    if (FINAL_CLOSE_CODES.has(code) && wasOpen) {
      this.setState("closed");
      this.failAll(new HaptaError("UNAVAILABLE", `the gateway closed the connection (${code}); not retrying`));
      return;
    }
    if (this.state !== "reconnecting") this.setState("reconnecting");
    const delay = backoffDelay(this.attempt++, this.base, this.cap);
    setTimeout(() => {
      if (this.closing) return;
      this.open().then(() => {
        this.reconnects++;
      }, () => void 0);
    }, delay);
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
  /** Sign in again, resume every subscription from its position, join every channel again: before anything
   * waiting is sent, so that it runs as the same principal as before. */
  async restore() {
    if (this.session) {
      try {
        if (this.session.expires_at > Date.now() / 1e3 + 5) {
          await this.direct("auth.resume", { token: this.session.token });
        } else {
          await this.refresh(true);
        }
      } catch (error) {
        if (!(error instanceof HaptaError) || !SESSION_OVER.has(error.code)) throw error;
        this.setSession(null);
      }
    }
    if (!this.session && this.apikey) await this.direct("auth.anon", { apikey: this.apikey });
    this.bySub.clear();
    for (const live of this.live) {
      await this.direct("realtime.subscribe", { ...live.args, since: live.pos }, (data) => this.started(live, data));
    }
    for (const channel of this.channels.values()) {
      if (!channel.joined) continue;
      channel.apply(await this.direct("channels.join", { channel: channel.name, version: channel.version }));
    }
  }
  /** A request on the socket being restored, not queued behind it. */
  direct(op, args, onReply) {
    return new Promise((resolve, reject) => {
      const request = {
        op,
        args,
        resolve,
        reject,
        onReply,
        sent: false,
        retries: this.attempts,
        // restoring: no retries
        timer: setTimeout(() => this.expire(request), this.requestTimeout)
      };
      this.send(request);
    });
  }
  send(request) {
    const id = ++this.ids;
    request.sent = true;
    this.pending.set(id, request);
    this.write({ id, op: request.op, args: request.args });
  }
  write(message) {
    const socket = this.socket;
    if (!socket) throw new HaptaError("UNAVAILABLE", "not connected");
    socket.send(this.protocol === "json" ? JSON.stringify(message) : encode(message));
  }
  /** The gateway said "not now" and did nothing: ask again after retry_after, within the limits. */
  mayRetry(request, error) {
    return TRY_AGAIN.has(error.code) && error.retryAfter !== void 0 && request.retries < this.attempts && error.retryAfter * 1e3 <= this.maxWait && (error.details?.outcome !== "unknown" || idempotent(request));
  }
  expire(request) {
    this.waiting = this.waiting.filter((r) => r !== request);
    for (const [id, r] of this.pending) if (r === request) this.pending.delete(id);
    request.reject(new HaptaError("TIMEOUT", `no answer to ${request.op} within ${this.requestTimeout} ms`));
  }
  failAll(error) {
    for (const request of [...this.waiting, ...this.pending.values()]) {
      clearTimeout(request.timer);
      request.reject(error);
    }
    this.waiting = [];
    this.pending.clear();
  }
  received(data) {
    let messages;
    if (typeof data === "string") {
      messages = JSON.parse(data);
    } else {
      const bytes = new Uint8Array(data);
      if (this.protocol === "json") {
        const stream = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0);
        this.chunk(stream, bytes.subarray(4));
        return;
      }
      messages = decode(bytes);
    }
    for (const message of Array.isArray(messages) ? messages : [messages]) this.dispatch(message);
  }
  dispatch(message) {
    if (message.op === "files.chunk") {
      this.chunk(message.stream, message.data);
      return;
    }
    if (typeof message.event === "string") {
      this.event(message.event, message.sub, message.data ?? {});
      return;
    }
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
    if (this.mayRetry(request, refused)) {
      request.retries++;
      request.sent = false;
      this.waiting.push(request);
      setTimeout(() => {
        if (this.state !== "open" || !this.waiting.includes(request)) return;
        this.waiting = this.waiting.filter((r) => r !== request);
        this.send(request);
      }, refused.retryAfter * 1e3);
      return;
    }
    clearTimeout(request.timer);
    request.reject(refused);
  }
  event(name, sub, data) {
    if (name === "records.change") {
      const live = sub ? this.bySub.get(sub) : void 0;
      if (live && data.pos > live.pos) {
        live.pos = data.pos;
        live.onChange(data);
      }
      return;
    }
    if (name === "realtime.reset") {
      for (const id of data.subs ?? []) this.bySub.get(id)?.onReset?.();
      for (const channel of data.channels ?? []) {
        const joined = this.channels.get(channel);
        if (joined?.joined) joined.join().catch(() => void 0);
      }
      this.emit("reset", data);
      return;
    }
    if (name.startsWith("channels.")) this.channels.get(data.channel)?.heard(name, data);
    else if (name === "auth.expiring") this.refresh().catch(() => void 0);
    else if (name === "auth.oauth2") {
      const waiters = this.oauthWaiters;
      this.oauthWaiters = [];
      if (data.error) waiters.forEach((w) => w.reject(new HaptaError(
        String(data.error.code),
        String(data.error.message)
      )));
      else {
        this.setSession(data);
        waiters.forEach((w) => w.resolve(data));
      }
    } else if (name === "files.ack" || name === "files.error" || name === "files.end") {
      const transfer = this.transfers.get(data.stream);
      if (transfer) {
        if (name === "files.ack") transfer.acked = data.received;
        if (data.error) {
          const error = data.error;
          transfer.error = new HaptaError(String(error.code), String(error.message), error.details);
        }
        if (name === "files.end") transfer.done = true;
        transfer.changed();
      }
    }
    if (name === "auth.revoked") this.setSession(null);
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
  // ---- sessions ----
  async signIn(op, args) {
    const session = await this.call(op, args);
    this.setSession(session);
    return session;
  }
  setSession(session) {
    this.session = session;
    const storage = this.options.storage;
    if (storage) {
      if (session) storage.setItem(this.storageKey, JSON.stringify(session));
      else storage.removeItem(this.storageKey);
    }
    this.emit("auth", session);
  }
  storedSession() {
    const stored = this.options.storage?.getItem(this.storageKey);
    if (!stored) return null;
    try {
      return JSON.parse(stored);
    } catch {
      return null;
    }
  }
  /** Roll the session's tokens, once at a time in this tab and, where Web Locks exist, across every tab of this
   * origin: a tab that waited finds the tokens another tab just got (in shared storage) and takes them instead
   * of spending a refresh token that is already spent. */
  refresh(restoring = false) {
    if (this.refreshing) return this.refreshing;
    const run = async () => {
      const current = this.session;
      if (!current) throw new HaptaError("UNAUTHENTICATED", "no session to refresh");
      const stored = this.storedSession();
      const call = restoring ? this.direct.bind(this) : this.call.bind(this);
      if (stored && stored.refresh_token !== current.refresh_token && stored.expires_at > Date.now() / 1e3 + 5) {
        await call("auth.resume", { token: stored.token });
        this.setSession(stored);
        return stored;
      }
      const session = await call("auth.refresh", { refresh_token: current.refresh_token });
      this.setSession(session);
      return session;
    };
    const locks = globalThis.navigator?.locks;
    const flight = locks && this.options.storage ? locks.request(`${this.storageKey}.refresh`, run) : run();
    this.refreshing = flight.finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }
  // ---- files ----
  async upload(collection, id, field, data, options) {
    const bytes = data instanceof Uint8Array ? data : data instanceof ArrayBuffer ? new Uint8Array(data) : null;
    const blob = bytes ? null : data;
    const piece = async (start, end) => bytes ? bytes.subarray(start, end) : new Uint8Array(await blob.slice(start, end).arrayBuffer());
    const name = options.name ?? (data.name || "file");
    const type = options.type ?? (blob?.type || "application/octet-stream");
    const size = bytes ? bytes.length : blob.size;
    const started = await this.call("files.upload", { collection, id, field, name, size, type });
    const { stream, chunk_size: chunkSize, window } = started;
    const transfer = this.track(stream);
    try {
      let sent = 0;
      while (sent < size) {
        while (sent - transfer.acked >= window && !transfer.error) await this.changed(transfer);
        if (transfer.error) throw transfer.error;
        const chunk = await piece(sent, Math.min(size, sent + chunkSize));
        this.sendChunk(stream, chunk);
        sent += chunk.length;
        options.onProgress?.(Math.min(sent, transfer.acked || sent), size);
      }
      while (transfer.acked < size && !transfer.error) await this.changed(transfer);
      if (transfer.error) throw transfer.error;
      options.onProgress?.(size, size);
      return await this.call("files.finish", { stream });
    } finally {
      this.transfers.delete(stream);
    }
  }
  sendChunk(stream, piece) {
    if (this.protocol === "msgpack") {
      this.write({ op: "files.chunk", stream, data: piece });
      return;
    }
    const frame = new Uint8Array(4 + piece.length);
    new DataView(frame.buffer).setUint32(0, stream);
    frame.set(piece, 4);
    this.socket?.send(frame);
  }
  async download(collection, id, field, name) {
    let transfer = null;
    const answer = await this.call(
      "files.download",
      { collection, id, field, name },
      (data) => {
        transfer = this.track(data.stream);
      }
    );
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
  chunk(stream, data) {
    const transfer = this.transfers.get(stream);
    if (!transfer) return;
    transfer.chunks.push(data.slice());
    transfer.changed();
  }
};
export {
  Channel,
  Hapta,
  HaptaError,
  Records,
  backoffDelay
};
