
const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/** A sample as prom-client's Registry formats it. */
interface Sample {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

/**
 * A Prometheus histogram labelled by HTTP status class, built for the proxy's
 * hot path: prom-client's Histogram builds a label object and a hash string
 * per observation, this one only adds to preallocated arrays. It is
 * registered with a prom-client Registry like any metric and formatted there.
 */
export class StatusClassHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  /** Non-cumulative counts: row per status class, column per bucket, the last column +Inf. */
  private readonly counts: Float64Array;
  private readonly sums = new Float64Array(STATUS_CLASSES.length);

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
  ) {
    this.counts = new Float64Array(STATUS_CLASSES.length * (buckets.length + 1));
  }

  /** `statusClass` 1 to 5; anything else counts as 5xx, since only a broken answer has no sane status. */
  observe(statusClass: number, seconds: number): void {
    const row = statusClass >= 1 && statusClass <= 5 ? statusClass - 1 : 4;
    let bucket = 0;
    while (bucket < this.buckets.length && seconds > this.buckets[bucket]!) bucket++;
    this.counts[row * (this.buckets.length + 1) + bucket]! += 1;
    this.sums[row]! += seconds;
  }

  reset(): void {
    this.counts.fill(0);
    this.sums.fill(0);
  }

  /** The shape prom-client's Registry formats; classes never seen are left out. */
  get(): { name: string; help: string; type: string; aggregator: string; values: Sample[] } {
    const values: Sample[] = [];
    const width = this.buckets.length + 1;
    STATUS_CLASSES.forEach((statusClass, row) => {
      const rowCounts = this.counts.subarray(row * width, (row + 1) * width);
      if (!rowCounts.some((count) => count > 0)) return;
      let cumulative = 0;
      rowCounts.forEach((count, bucket) => {
        cumulative += count;
        const le = bucket < this.buckets.length ? this.buckets[bucket]! : '+Inf';
        values.push({ metricName: `${this.name}_bucket`, labels: { le, status_class: statusClass }, value: cumulative });
      });
      values.push({ metricName: `${this.name}_sum`, labels: { status_class: statusClass }, value: this.sums[row]! });
      values.push({ metricName: `${this.name}_count`, labels: { status_class: statusClass }, value: cumulative });
    });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
