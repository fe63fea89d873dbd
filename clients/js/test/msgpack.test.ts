import { describe, expect, it } from "vitest";
import { decode, encode } from "../src/msgpack";

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const bytes = (text: string) => new Uint8Array(Buffer.from(text, "hex"));

describe("MessagePack", () => {
  it("encodes the smallest form of each value, as the format says", () => {
    expect(hex(encode({ id: 1, op: "ping" }))).toBe("82a2696401a26f70a470696e67");
    expect(hex(encode([null, true, false, -1, -33, 255, 65536, 1.5]))).toBe(
      "98c0c3c2ffd0dfccffce00010000cb3ff8000000000000");
    expect(hex(encode(9007199254740993n))).toBe(
      "cf0020000000000001");
    expect(hex(encode(new Uint8Array([1, 2, 3])))).toBe("c403010203");
    expect(hex(encode("é".repeat(20)))).toBe("d928" + "c3a9".repeat(20));
  });

  it("round-trips what the protocol carries", () => {
    const message = { id: 7, ok: true, data: { items: [{ id: "a", n: -123456789, f: 0.25, tags: ["x"] }],
                                                empty: {}, list: Array.from({ length: 20 }, (_, i) => i) } };
    expect(decode(encode(message))).toEqual(message);
    const long = "x".repeat(70_000);
    expect(decode(encode({ long }))).toEqual({ long });
  });

  it("reads timestamps as the RFC 3339 strings the JSON subprotocol sends", () => {
    // msgspec.msgpack.encode(datetime(2026, 12, 1, 11, 18, 46, 651639, tzinfo=utc)), as the gateway sends it
    expect(decode(bytes("d7ff9b5ce3606b0ead16"))).toBe("2026-12-01T11:18:46.651639Z");
    expect(decode(bytes("d6ff6b0fb016"))).toBe("2026-12-02T05:43:50Z");
    expect(decode(encode(new Date("2026-12-01T11:18:46.651Z")))).toBe("2026-12-01T11:18:46.651000Z");
  });

  it("refuses what it cannot read, precisely", () => {
    expect(() => decode(bytes("d40501"))).toThrow("extension 5 is not supported");
    expect(() => decode(bytes("92c0"))).toThrow("ends too early");
    expect(() => decode(bytes("c0c0"))).toThrow("goes on after its value");
    expect(() => decode(bytes("c1"))).toThrow("is not a MessagePack type");
  });
});
