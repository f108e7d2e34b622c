export interface ChartPoint {
  /** ms since the epoch */
  t: number;
  v: number;
}

export interface LineChartProps {
  title: string;
  points: ChartPoint[];
  /** How a value reads on the axis and in the latest-value label. */
  format(value: number): string;
  /** The top of the axis at least (a limit, 100 %); the data may raise it. */
  minTop?: number;
  /** The most time the x axis spans, ending at the latest point; it starts shorter while there are few points. */
  windowMs: number;
  testId: string;
}

const WIDTH = 480;
const HEIGHT = 140;
const PAD = { left: 64, right: 8, top: 10, bottom: 20 };
const MIN_WINDOW_MS = 20_000;

/**
 * A plain SVG line over the last `windowMs`: two series of a few hundred points
 * need no charting library, and SVG stays sharp in screenshots.
 */
export function LineChart({ title, points, format, minTop = 0, windowMs, testId }: LineChartProps) {
  const end = points.length > 0 ? points[points.length - 1]!.t : Date.now();
  // A fresh backend's few samples fill a short axis instead of hugging the right edge of a long one.
  const span = Math.min(windowMs, Math.max(MIN_WINDOW_MS, end - (points[0]?.t ?? end)));
  const start = end - span;
  const visible = points.filter((point) => point.t >= start);
  const top = niceCeiling(Math.max(minTop, ...visible.map((point) => point.v)));
  const x = (t: number) => PAD.left + ((t - start) / span) * (WIDTH - PAD.left - PAD.right);
  const y = (v: number) => HEIGHT - PAD.bottom - (top === 0 ? 0 : (v / top) * (HEIGHT - PAD.top - PAD.bottom));
  const path = visible.map((point, i) => `${i === 0 ? 'M' : 'L'}${x(point.t).toFixed(1)},${y(point.v).toFixed(1)}`).join(' ');
  const latest = visible[visible.length - 1];

  return (
    <figure class="chart" data-testid={testId} data-points={visible.length}>
      <figcaption>
        {title} <strong>{latest ? format(latest.v) : '—'}</strong>
      </figcaption>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={title}>
        {[0, 0.5, 1].map((fraction) => (
          <g key={fraction}>
            <line class="grid" x1={PAD.left} x2={WIDTH - PAD.right} y1={y(top * fraction)} y2={y(top * fraction)} />
            <text class="axis" x={PAD.left - 6} y={y(top * fraction) + 4} text-anchor="end">
              {format(top * fraction)}
            </text>
          </g>
        ))}
        <text class="axis" x={PAD.left} y={HEIGHT - 4}>
          −{Math.round(span / 1000)} s
        </text>
        <text class="axis" x={WIDTH - PAD.right} y={HEIGHT - 4} text-anchor="end">
          latest
        </text>
        {path && <path class="series" d={path} />}
        {visible.map((point) => (
          <circle key={point.t} class="dot" cx={x(point.t)} cy={y(point.v)} r={1.8} />
        ))}
      </svg>
    </figure>
  );
}

/** 1, 2 or 5 times a power of ten, at or above `value`: axis labels that read well. */
function niceCeiling(value: number): number {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return ([1, 2, 5, 10].find((step) => step * power >= value) ?? 10) * power;
}
