// MessagePack as the `hapta.v1.msgpack` subprotocol uses it: nil, booleans, integers, float64, strings, binary,
// arrays, maps, and the timestamp extension (-1). Any other extension is refused, as the gateway does. A timestamp
// decodes to the RFC 3339 string the JSON subprotocol sends for the same value ("2026-12-01T11:18:46.651639Z"), so
// a record looks the same whichever subprotocol brought it; a Date encodes as a timestamp.
// Small and without dependencies, so that @hapta/client has none.

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

class Writer {
  private buffer = new Uint8Array(256);
  private view = new DataView(this.buffer.buffer);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.length + n) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.buffer.subarray(0, this.length));
    this.buffer = bigger;
    this.view = new DataView(bigger.buffer);
  }

  byte(b: number): void {
    this.room(1);
    this.buffer[this.length++] = b;
  }

  uint(bytes: 1 | 2 | 4, value: number): void {
    this.room(bytes);
    if (bytes === 1) this.view.setUint8(this.length, value);
    else if (bytes === 2) this.view.setUint16(this.length, value);
    else this.view.setUint32(this.length, value);
    this.length += bytes;
  }

  int64(value: bigint, signed: boolean): void {
    this.room(8);
    if (signed) this.view.setBigInt64(this.length, value);
    else this.view.setBigUint64(this.length, value);
    this.length += 8;
  }

  float64(value: number): void {
    this.room(8);
    this.view.setFloat64(this.length, value);
    this.length += 8;
  }

  raw(bytes: Uint8Array): void {
    this.room(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
  }

  result(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}

function header(w: Writer, length: number, fix: number | null, fixMax: number, codes: [number, number, number]): void {
  if (fix !== null && length <= fixMax) w.byte(fix | length);
  else if (length < 0x100 && codes[0] !== 0) { w.byte(codes[0]); w.uint(1, length); }
  else if (length < 0x10000) { w.byte(codes[1]); w.uint(2, length); }
  else { w.byte(codes[2]); w.uint(4, length); }
}

function encodeInto(w: Writer, value: unknown, depth: number): void {
  if (depth > 1000) throw new RangeError("value nested too deeply to encode");
  if (value === null || value === undefined) w.byte(0xc0);
  else if (value === false) w.byte(0xc2);
  else if (value === true) w.byte(0xc3);
  else if (typeof value === "number") {
    if (Number.isSafeInteger(value)) encodeInteger(w, BigInt(value));
    else { w.byte(0xcb); w.float64(value); }
  } else if (typeof value === "bigint") encodeInteger(w, value);
  else if (typeof value === "string") {
    const bytes = utf8Encoder.encode(value);
    header(w, bytes.length, 0xa0, 31, [0xd9, 0xda, 0xdb]);
    w.raw(bytes);
  } else if (value instanceof Uint8Array) {
    header(w, value.length, null, 0, [0xc4, 0xc5, 0xc6]);
    w.raw(value);
  } else if (value instanceof ArrayBuffer) {
    encodeInto(w, new Uint8Array(value), depth);
  } else if (value instanceof Date) {
    encodeTimestamp(w, value);
  } else if (Array.isArray(value)) {
    header(w, value.length, 0x90, 15, [0, 0xdc, 0xdd]);
    for (const item of value) encodeInto(w, item, depth + 1);
  } else if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    header(w, entries.length, 0x80, 15, [0, 0xde, 0xdf]);
    for (const [key, item] of entries) {
      encodeInto(w, key, depth + 1);
      encodeInto(w, item, depth + 1);
    }
  } else {
    throw new TypeError(`cannot encode a ${typeof value} as MessagePack`);
  }
}

function encodeInteger(w: Writer, n: bigint): void {
  if (n >= 0n) {
    if (n < 0x80n) w.byte(Number(n));
    else if (n < 0x100n) { w.byte(0xcc); w.uint(1, Number(n)); }
    else if (n < 0x10000n) { w.byte(0xcd); w.uint(2, Number(n)); }
    else if (n < 0x100000000n) { w.byte(0xce); w.uint(4, Number(n)); }
    else { w.byte(0xcf); w.int64(n, false); }
  } else if (n >= -32n) w.byte(Number(n) & 0xff);
  else if (n >= -0x80n) { w.byte(0xd0); w.uint(1, Number(n) & 0xff); }
  else if (n >= -0x8000n) { w.byte(0xd1); w.uint(2, Number(n) & 0xffff); }
  else if (n >= -0x80000000n) { w.byte(0xd2); w.uint(4, Number(n) >>> 0); }
  else { w.byte(0xd3); w.int64(n, true); }
}

function encodeTimestamp(w: Writer, date: Date): void {
  const millis = date.getTime();
  const seconds = Math.floor(millis / 1000);
  const nanos = (millis - seconds * 1000) * 1_000_000;
  w.byte(0xc7); w.uint(1, 12); w.byte(0xff);   // timestamp 96: nanoseconds (u32), seconds (i64)
  w.uint(4, nanos);
  w.int64(BigInt(seconds), true);
}

export function encode(value: unknown): Uint8Array {
  const w = new Writer();
  encodeInto(w, value, 0);
  return w.result();
}

class Reader {
  private view: DataView;
  offset = 0;

  constructor(private bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private need(n: number): number {
    if (this.offset + n > this.bytes.length) throw new RangeError("MessagePack data ends too early");
    const at = this.offset;
    this.offset += n;
    return at;
  }

  u8(): number { return this.view.getUint8(this.need(1)); }
  u16(): number { return this.view.getUint16(this.need(2)); }
  u32(): number { return this.view.getUint32(this.need(4)); }
  i8(): number { return this.view.getInt8(this.need(1)); }
  i16(): number { return this.view.getInt16(this.need(2)); }
  i32(): number { return this.view.getInt32(this.need(4)); }
  f32(): number { return this.view.getFloat32(this.need(4)); }
  f64(): number { return this.view.getFloat64(this.need(8)); }
  u64(): number | bigint { return small(this.view.getBigUint64(this.need(8))); }
  i64(): number | bigint { return small(this.view.getBigInt64(this.need(8))); }
  take(n: number): Uint8Array { const at = this.need(n); return this.bytes.slice(at, at + n); }
  text(n: number): string { const at = this.need(n); return utf8Decoder.decode(this.bytes.subarray(at, at + n)); }
}

function small(n: bigint): number | bigint {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

function decodeFrom(r: Reader, depth: number): unknown {
  if (depth > 1000) throw new RangeError("MessagePack data nested too deeply");
  const b = r.u8();
  if (b < 0x80) return b;
  if (b >= 0xe0) return b - 0x100;
  if (b >= 0xa0 && b <= 0xbf) return r.text(b & 0x1f);
  if (b >= 0x90 && b <= 0x9f) return array(r, b & 0x0f, depth);
  if (b >= 0x80 && b <= 0x8f) return map(r, b & 0x0f, depth);
  switch (b) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xc4: return r.take(r.u8());
    case 0xc5: return r.take(r.u16());
    case 0xc6: return r.take(r.u32());
    case 0xca: return r.f32();
    case 0xcb: return r.f64();
    case 0xcc: return r.u8();
    case 0xcd: return r.u16();
    case 0xce: return r.u32();
    case 0xcf: return r.u64();
    case 0xd0: return r.i8();
    case 0xd1: return r.i16();
    case 0xd2: return r.i32();
    case 0xd3: return r.i64();
    case 0xd9: return r.text(r.u8());
    case 0xda: return r.text(r.u16());
    case 0xdb: return r.text(r.u32());
    case 0xdc: return array(r, r.u16(), depth);
    case 0xdd: return array(r, r.u32(), depth);
    case 0xde: return map(r, r.u16(), depth);
    case 0xdf: return map(r, r.u32(), depth);
    case 0xd4: return extension(r, 1);
    case 0xd5: return extension(r, 2);
    case 0xd6: return extension(r, 4);
    case 0xd7: return extension(r, 8);
    case 0xd8: return extension(r, 16);
    case 0xc7: return extension(r, r.u8());
    case 0xc8: return extension(r, r.u16());
    case 0xc9: return extension(r, r.u32());
  }
  throw new RangeError(`0x${b.toString(16)} is not a MessagePack type`);
}

function array(r: Reader, n: number, depth: number): unknown[] {
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = decodeFrom(r, depth + 1);
  return out;
}

function map(r: Reader, n: number, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const key = decodeFrom(r, depth + 1);
    out[String(key)] = decodeFrom(r, depth + 1);
  }
  return out;
}

function extension(r: Reader, size: number): string {
  const type = r.i8();
  if (type !== -1) throw new RangeError(`MessagePack extension ${type} is not supported`);
  if (size === 4) return rfc3339(r.u32(), 0);
  if (size === 8) {
    const high = r.u32();
    const low = r.u32();
    return rfc3339((high % 4) * 2 ** 32 + low, Math.floor(high / 4));
  }
  if (size === 12) {
    const nanos = r.u32();
    return rfc3339(Number(r.i64()), nanos);
  }
  throw new RangeError(`a timestamp of ${size} bytes is not valid`);
}

function rfc3339(seconds: number, nanos: number): string {
  const whole = new Date(seconds * 1000).toISOString().slice(0, 19);   // YYYY-MM-DDTHH:MM:SS
  const micros = Math.floor(nanos / 1000);
  return micros ? `${whole}.${String(micros).padStart(6, "0")}Z` : `${whole}Z`;
}

export function decode(bytes: Uint8Array): unknown {
  const r = new Reader(bytes);
  const value = decodeFrom(r, 0);
  if (r.offset !== bytes.length) throw new RangeError("MessagePack data goes on after its value");
  return value;
}
