// A small line chart of the last samples, drawn as inline SVG (no chart library; SVG attributes, not style
// attributes, so the CSP's style-src 'self' holds).
export function Sparkline({ values, width = 220, height = 48 }: { values: (number | null)[]; width?: number;
                                                                  height?: number }) {
  const known = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (known.length < 2) return <svg class="spark" width={width} height={height} aria-hidden="true" />;
  const top = Math.max(...known);
  const bottom = Math.min(0, ...known);
  const span = top - bottom || 1;
  const step = width / Math.max(values.length - 1, 1);
  const points = values
    .map((v, i) => (v === null ? null : `${(i * step).toFixed(1)},${(height - 2 - ((v - bottom) / span) * (height - 4)).toFixed(1)}`))
    .filter((p): p is string => p !== null)
    .join(" ");
  return (
    <svg class="spark" width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img"
         aria-label={`last ${known.length} samples, up to ${top.toFixed(1)}`}>
      <polyline points={points} fill="none" stroke="currentColor" stroke-width="1.5" />
    </svg>
  );
}
