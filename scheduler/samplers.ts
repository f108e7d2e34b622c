import type { Logger } from '../src/core/logger.ts';
import type { ContainerEngine } from './engine.ts';
import type { SchedulerStore } from './store.ts';

export interface SamplerOptions {
  engine: Pick<ContainerEngine, 'sampleStats'>;
  store: Pick<SchedulerStore, 'listWatchedBackends' | 'publishMetrics' | 'recordMemoryPeak'>;
  /** The running backends of this node and their containers, now. */
  running: () => Array<[backendId: string, containerId: string]>;
  log: Logger;
  /** How often memory is sampled for max_mem_bytes. */
  memoryIntervalMs: number;
  /** Sampling ends when it aborts (the scheduler stopping). */
  signal: AbortSignal;
}

/** Watched backends (an API process streams their metrics) are sampled this often. */
const WATCHED_SAMPLE_MS = 1000;

/**
 * Memory samples per tick, round-robin over the running backends: each sample
 * is an engine call, so with many backends each is sampled less often rather
 * than the engine being asked for hundreds of samples every few seconds (500
 * backends: 100 calls a second, which took a third of the held-key connect
 * rate on a 2-core machine).
 */
const MEMORY_SAMPLES_PER_TICK = 25;

/**
 * The node's two resource samplers, from the engine's stats:
 * - the backends whose metrics an API process streams (it says so in the
 *   database) are sampled every second and each sample is announced there, so
 *   that the API needs no engine;
 * - every running backend's memory is sampled now and then, and its peak is
 *   written as max_mem_bytes when it rises.
 */
export function startSamplers(options: SamplerOptions): void {
  const { signal } = options;
  if (signal.aborted) return;
  const watched = guarded(() => sampleWatched(options));
  const memory = guarded(memorySampler(options));
  const timers = [setInterval(watched, WATCHED_SAMPLE_MS), setInterval(memory, options.memoryIntervalMs)];
  signal.addEventListener('abort', () => timers.forEach(clearInterval), { once: true });
}

/** A tick that is skipped while the previous one still runs. */
function guarded(tick: () => Promise<void>): () => void {
  let running = false;
  return () => {
    if (running) return;
    running = true;
    void tick().finally(() => (running = false));
  };
}

async function sampleWatched({ engine, store, running, log }: SamplerOptions): Promise<void> {
  try {
    const containers = new Map(running());
    const watched = await store.listWatchedBackends(new Date());
    await Promise.all(
      watched.map(async (backendId) => {
        const containerId = containers.get(backendId);
        if (!containerId) return;
        const sample = await engine.sampleStats(containerId);
        if (sample) await store.publishMetrics(backendId, sample);
      }),
    );
  } catch (error) {
    log.debug({ err: error }, 'sampling watched backends failed');
  }
}

function memorySampler({ engine, store, running, log, signal }: SamplerOptions): () => Promise<void> {
  /** The highest peak written per backend: a sample writes only when it rises. */
  const recorded = new Map<string, number>();
  /** Where the next tick starts in the list of running backends. */
  let cursor = 0;
  return async () => {
    const backends = running();
    const live = new Set(backends.map(([backendId]) => backendId));
    for (const backendId of recorded.keys()) if (!live.has(backendId)) recorded.delete(backendId);
    const count = Math.min(MEMORY_SAMPLES_PER_TICK, backends.length);
    for (let i = 0; i < count && !signal.aborted; i++) {
      const [backendId, containerId] = backends[(cursor + i) % backends.length]!;
      try {
        const sample = await engine.sampleStats(containerId);
        if (!sample || sample.memPeak <= (recorded.get(backendId) ?? 0)) continue;
        await store.recordMemoryPeak(backendId, sample.memPeak);
        recorded.set(backendId, sample.memPeak);
      } catch (error) {
        log.debug({ err: error, backend_id: backendId }, 'memory sample failed');
      }
    }
    cursor = backends.length === 0 ? 0 : (cursor + count) % backends.length;
  };
}
