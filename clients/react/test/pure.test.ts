// What the hooks decide without React or a gateway: the query a useQuery asks for and the key that stands for it,
// useRecord's filter, whether items are pending, the messages kept, and when held work starts and stops.
import { afterEach, describe, expect, it, vi } from "vitest";
import { Held } from "../src/held";
import { keepLast, pendingOf, queryKey, queryOptions, recordOptions } from "../src/index";

describe("queries", () => {
  it("fills in the defaults and leaves out what was not given", () => {
    expect(queryOptions()).toEqual({ sort: "-created", limit: 50 });
    expect(queryOptions({ filter: "  ", expand: ["author"] })).toEqual({ sort: "-created", limit: 50,
                                                                        expand: ["author"] });
    expect(queryOptions({ filter: "public = true", sort: "text", limit: 3, fields: ["id", "version"] }))
      .toEqual({ filter: "public = true", sort: "text", limit: 3, fields: ["id", "version"] });
  });

  it("keys a query by what it asks, not by the object that asks it", () => {
    const a = queryKey("posts", queryOptions({ filter: "public = true", limit: 5 }));
    expect(queryKey("posts", queryOptions({ limit: 5, filter: "public = true" }))).toBe(a);
    expect(queryKey("comments", queryOptions({ filter: "public = true", limit: 5 }))).not.toBe(a);
    expect(queryKey("posts", queryOptions({ filter: "public = true", limit: 6 }))).not.toBe(a);
    expect(queryKey("posts", queryOptions({ filter: "public = true", limit: 5, expand: ["author"] }))).not.toBe(a);
  });

  it("asks for one record by its id, the id a JSON string whatever it holds", () => {
    expect(recordOptions("p1")).toEqual({ filter: 'id = "p1"', sort: "id", limit: 1 });
    expect(recordOptions('a" || id != "').filter).toBe('id = "a\\" || id != \\""');
    expect(recordOptions("p1", { expand: ["author"] }).expand).toEqual(["author"]);
  });

  it("follows the client's pending marks where it has them, and never an item's own fields", () => {
    const items = [{ id: "a", pending: true }, { id: "b" }];
    expect(pendingOf(null, items)).toBe(false);
    expect(pendingOf({ items, stop: async () => undefined } as any, items)).toBe(false);   // @hapta/client 0.1
    expect(pendingOf({ items, pending: true } as any, items)).toBe(true);
    expect(pendingOf({ items, isPending: (item: any) => item.id === "b" } as any, items)).toBe(true);
    expect(pendingOf({ items, isPending: () => false } as any, items)).toBe(false);
    const shown = [{ id: "a" }, { id: "b", $pending: true }];   // @hapta/client with persist: marked on the item
    expect(pendingOf({ items: shown, stop: async () => undefined } as any, shown)).toBe(true);
  });
});

describe("channels", () => {
  it("keeps the last messages, oldest first", () => {
    let kept: number[] = [];
    for (let i = 1; i <= 5; i++) kept = keepLast(kept, i, 3);
    expect(kept).toEqual([3, 4, 5]);
    expect(keepLast([1, 2], 3, 0)).toEqual([]);
    const before = [1];
    expect(keepLast(before, 2, 3)).toEqual([1, 2]);
    expect(before).toEqual([1]);   // a new array: React sees the change
  });
});

describe("held work", () => {
  afterEach(() => { vi.useRealTimers(); });

  function counted() {
    const log: string[] = [];
    let set: (next: number) => void = () => undefined;
    const held = new Held<number>(0, (update) => {
      log.push("start");
      set = update;
      return () => log.push("stop");
    });
    return { held, log, set: (next: number) => set(next) };
  }

  it("starts nothing until someone listens, and stops after the last has gone", () => {
    vi.useFakeTimers();
    const { held, log, set } = counted();
    expect(log).toEqual([]);   // made during a render that React may throw away: no request
    const heard: number[] = [];
    const off = held.subscribe(() => heard.push(held.get()));
    const second = held.subscribe(() => undefined);
    expect(log).toEqual(["start"]);
    set(1);
    set(1);   // the same state: nobody is told
    expect(heard).toEqual([1]);
    off();
    second();
    expect(log).toEqual(["start"]);
    vi.runAllTimers();
    expect(log).toEqual(["start", "stop"]);
    expect(held.running).toBe(false);
  });

  it("a remount at once (StrictMode) keeps the work it started", () => {
    vi.useFakeTimers();
    const { held, log } = counted();
    held.subscribe(() => undefined)();   // mount, unmount ...
    const off = held.subscribe(() => undefined);   // ... and mount again
    vi.runAllTimers();
    expect(log).toEqual(["start"]);
    off();
    vi.runAllTimers();
    expect(log).toEqual(["start", "stop"]);
    held.subscribe(() => undefined);   // mounted again later: started again
    expect(log).toEqual(["start", "stop", "start"]);
  });

  it("a state set while starting reaches the listener and does not start it twice", () => {
    const log: string[] = [];
    const held = new Held<number>(0, (set) => {
      log.push("start");
      set(7);
      return () => undefined;
    });
    held.subscribe(() => log.push(`heard ${held.get()}`));
    expect(log).toEqual(["start", "heard 7"]);
  });
});
