import { useEffect, useRef, useState } from 'preact/hooks';
import type { BerthClient, LogLine, MetricsSample } from '../../client/index.ts';
import type { ChartPoint } from './components/line-chart.tsx';

/** What the page keeps of a long-running backend's output; older lines drop off the top. */
const MAX_LOG_LINES = 5000;
/** About two minutes of samples at berth's one a second. */
const MAX_SAMPLES = 150;
const RETRY_MS = 2000;

/**
 * Calls `open` until it ends on its own while `active`, waiting a little
 * between tries: a metrics stream has nothing to say before the container
 * runs, and any stream drops when berth restarts.
 */
function useFollow(active: boolean, deps: unknown[], open: (signal: AbortSignal) => Promise<'done' | 'again'>): void {
  useEffect(() => {
    if (!active) return;
    const controller = new AbortController();
    void (async () => {
      while (!controller.signal.aborted) {
        const outcome = await open(controller.signal).catch(() => 'again' as const);
        if (outcome === 'done' || controller.signal.aborted) return;
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    })();
    return () => controller.abort();
    // The caller names what `open` depends on.
  }, [active, ...deps]);
}

/** The backend's log lines, stored ones first, then new ones as it writes them. */
export function useLogLines(client: BerthClient, id: string): LogLine[] {
  const [lines, setLines] = useState<LogLine[]>([]);
  // A stream that drops resumes after the last line shown, so no line shows twice.
  const lastEventId = useRef<string | undefined>(undefined);
  useFollow(true, [client, id], async (signal) => {
    for await (const line of client.logStream(id, { signal, ...(lastEventId.current ? { lastEventId: lastEventId.current } : {}) })) {
      if (line.id) lastEventId.current = line.id;
      setLines((previous) => [...previous.slice(-(MAX_LOG_LINES - 1)), line]);
    }
    // berth ends the log stream once the backend has terminated and its last lines are out.
    return 'done';
  });
  return lines;
}

export interface MetricsSeries {
  /** Percent of one core. */
  cpu: ChartPoint[];
  /** MiB, so the axis steps are round numbers of MiB. */
  memory: ChartPoint[];
  /** Bytes. */
  memoryLimit: number | undefined;
}

const MIB = 1024 * 1024;

/**
 * CPU and memory while the backend runs. berth sends CPU as nanoseconds used
 * so far; the rate between two samples, over the time between them, is the
 * share of one core.
 */
export function useMetrics(client: BerthClient, id: string, active: boolean): MetricsSeries {
  const [series, setSeries] = useState<MetricsSeries>({ cpu: [], memory: [], memoryLimit: undefined });
  useFollow(active, [client, id], async (signal) => {
    let previous: { at: number; sample: MetricsSample } | undefined;
    for await (const sample of client.metricsStream(id, { signal })) {
      const at = Date.now();
      const cpu = previous && sample.cpu_used >= previous.sample.cpu_used ? ((sample.cpu_used - previous.sample.cpu_used) / ((at - previous.at) * 1e6)) * 100 : undefined;
      previous = { at, sample };
      setSeries((current) => ({
        cpu: cpu === undefined ? current.cpu : [...current.cpu.slice(-(MAX_SAMPLES - 1)), { t: at, v: cpu }],
        memory: [...current.memory.slice(-(MAX_SAMPLES - 1)), { t: at, v: sample.mem_used / MIB }],
        memoryLimit: sample.mem_limit > 0 ? sample.mem_limit : current.memoryLimit,
      }));
    }
    return 'again';
  });
  return series;
}
