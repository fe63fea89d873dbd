// Key figures of this gateway process, polled every 2 s; counters are totals, so rates come from the difference
// between two samples.
import { useEffect, useState } from "preact/hooks";
import { useCall } from "../hooks.ts";
import { Sparkline } from "../sparkline.tsx";
import { point, type Point } from "../rates.ts";
import type { Metrics } from "../types.ts";
import { Figure, Loading, Problem } from "../ui.tsx";

const KEPT = 60;   // two minutes of samples

const shown = (value: number | null, digits = 0, unit = "") => (value === null ? "—" : value.toFixed(digits) + unit);

export function Overview() {
  const metrics = useCall((hapta) => hapta.call<Metrics>("admin.metrics"), [], 2000);
  const [samples, setSamples] = useState<Metrics[]>([]);
  useEffect(() => {
    if (metrics.data) setSamples((kept) => [...kept, metrics.data!].slice(-KEPT));
  }, [metrics.data]);
  const points = samples.map((sample, i) => point(sample, samples[i - 1]));
  const last = points.at(-1);
  const now = samples.at(-1);
  const series = (pick: (p: Point) => number | null) => points.map(pick);
  return (
    <section>
      <Problem error={metrics.error} />
      <Loading when={now} failed={metrics.error}>
        {now && last && (
          <div class="figures">
            <Figure label="Connections" value={String(now.connections)}>
              <Sparkline values={series((p) => p.connections)} />
            </Figure>
            <Figure label="Messages/s" value={shown(last.perSecond, 1)}>
              <Sparkline values={series((p) => p.perSecond)} />
            </Figure>
            <Figure label="p99" value={shown(last.p99, 1, " ms")}>
              <Sparkline values={series((p) => p.p99)} />
            </Figure>
            <Figure label="Cache hit rate" value={last.hitRate === null ? "—" : `${(last.hitRate * 100).toFixed(0)} %`}>
              <Sparkline values={series((p) => (p.hitRate === null ? null : p.hitRate * 100))} />
            </Figure>
            <Figure label="Feed lag" value={shown(last.lag, 0, " ms")}>
              <Sparkline values={series((p) => p.lag)} />
            </Figure>
            <Figure label="Subscriptions" value={String(now.subscriptions)} />
            <Figure label="Requests" value={String(now.requests)} />
            <Figure label="Events sent" value={String(now.events)} />
            <Figure label="Errors" value={String(now.errors)} />
          </div>
        )}
      </Loading>
      <p class="muted">This gateway process, every 2 s; rates from the change between samples (messages: requests answered and realtime events sent).</p>
    </section>
  );
}
