import type Dockerode from 'dockerode';
import type { MetricsSample } from '../engine.ts';
import { LineSplitter } from '../line-splitter.ts';

/** One sample, in the units of the Jamsocket metrics stream (nanoseconds of CPU, bytes). */

interface EngineStats {
  cpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
  memory_stats?: { usage?: number; max_usage?: number; limit?: number; stats?: { cache?: number; inactive_file?: number } };
}

export function statsToSample(stats: EngineStats): MetricsSample | undefined {
  const memory = stats.memory_stats;
  if (!memory?.usage || !memory.limit) return undefined; // a stopped container reports nothing
  // Like `docker stats`: page cache the kernel can drop is not counted as used.
  const reclaimable = memory.stats?.inactive_file ?? memory.stats?.cache ?? 0;
  const memUsed = Math.max(0, memory.usage - reclaimable);
  return {
    cpuUsed: stats.cpu_stats?.cpu_usage?.total_usage ?? 0,
    sysCpu: stats.cpu_stats?.system_cpu_usage ?? 0,
    memUsed,
    memLimit: memory.limit,
    memAvailable: Math.max(0, memory.limit - memUsed),
    memPeak: Math.max(memUsed, memory.max_usage ?? 0),
  };
}

/** The engine's live stats, one sample about every second, until the container stops or the signal aborts. */
export async function* streamContainerStats(docker: Dockerode, containerId: string, signal: AbortSignal): AsyncGenerator<MetricsSample> {
  const stream = (await docker.getContainer(containerId).stats({ stream: true })) as unknown as NodeJS.ReadableStream & { destroy(): void };
  const pending: MetricsSample[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const splitter = new LineSplitter((line) => {
    try {
      const sample = statsToSample(JSON.parse(line) as EngineStats);
      if (sample) pending.push(sample);
    } catch {
      // A malformed line is skipped; the next one comes within a second.
    }
    wake?.();
  });
  const end = () => {
    ended = true;
    wake?.();
  };
  stream.on('data', (chunk: Buffer) => splitter.write(chunk));
  stream.on('end', end);
  stream.on('close', end);
  stream.on('error', end);
  const abort = () => stream.destroy();
  signal.addEventListener('abort', abort, { once: true });
  try {
    while (!signal.aborted) {
      const next = pending.shift();
      if (next) {
        yield next;
        continue;
      }
      if (ended) return;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
  } finally {
    signal.removeEventListener('abort', abort);
    stream.destroy();
  }
}

/** One sample right now (API 1.41 `one-shot`), or undefined when the container is not running. */
export async function sampleContainerStats(docker: Dockerode, containerId: string): Promise<MetricsSample | undefined> {
  const options = { stream: false, 'one-shot': true } as { stream: false };
  const stats = (await docker.getContainer(containerId).stats(options)) as unknown as EngineStats;
  return statsToSample(stats);
}
