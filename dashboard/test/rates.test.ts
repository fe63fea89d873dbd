import { expect, it } from "vitest";
import { point } from "../src/rates.ts";
import type { Metrics } from "../src/types.ts";

const sample = (at: number, messages: number, hits: number, loads: number): Metrics => ({
  at, connections: 3, subscriptions: 1, requests: messages - 100, events: 100, errors: 0, p99_ms: 4.5, cache_hits: hits,
  cache_loads: loads, feed_lag_ms: 12,
});

it("rates come from the difference of two samples, not from the totals", () => {
  const first = sample(100, 1000, 90, 10);
  expect(point(first, undefined)).toMatchObject({ perSecond: null, hitRate: 0.9, connections: 3, p99: 4.5, lag: 12 });
  expect(point(sample(102, 1300, 93, 13), first)).toMatchObject({ perSecond: 150, hitRate: 0.5 });
  expect(point(sample(100, 1000, 90, 10), first)).toMatchObject({ perSecond: null, hitRate: null });   // same time
  expect(point(sample(104, 10, 0, 0), first).perSecond).toBe(0);   // a restart: the totals start again
});
