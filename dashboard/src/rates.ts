// What the Overview draws, from two samples of admin.metrics: its counters are totals since the process started, so
// a rate is the difference over the time between the samples (a restarted process's smaller total counts as 0).
// Messages are the requests the gateway answered and the realtime events it sent.
import type { Metrics } from "./types.ts";

export interface Point { connections: number; perSecond: number | null; p99: number | null; hitRate: number | null;
                  lag: number | null }

const messages = (sample: Metrics) => sample.requests + sample.events;

export function point(now: Metrics, before: Metrics | undefined): Point {
  const seconds = before ? now.at - before.at : 0;
  const hits = before ? now.cache_hits - before.cache_hits : now.cache_hits;
  const loads = before ? now.cache_loads - before.cache_loads : now.cache_loads;
  return {
    connections: now.connections,
    perSecond: before && seconds > 0 ? Math.max(0, messages(now) - messages(before)) / seconds : null,
    p99: now.p99_ms,
    hitRate: hits + loads > 0 ? hits / (hits + loads) : null,
    lag: now.feed_lag_ms,
  };
}
