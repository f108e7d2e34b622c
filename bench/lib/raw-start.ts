/**
 * The reference for a cold start: the same container berth would start, made
 * with berth's own engine code but no berth around it (no database, no
 * notifications): create + start, then wait until it answers HTTP.
 */
import type { DockerEngine } from '../../scheduler/docker/docker-engine.ts';
import { spawnSpec } from '../../scheduler/scheduler.ts';
import type { ScheduledBackend } from '../../scheduler/store.ts';
import { ACCOUNT, IMAGE_REPOSITORY, SERVICE, STEP_TIMEOUT_MS } from './berth.ts';

/** Raw containers not yet removed, for a bench's cleanup to remove after a failure. */
export const rawLive = new Set<string>();

/** One raw cold start of the test image; removes the container before resolving. */
export async function rawColdStart(executor: DockerEngine, instanceId: string, i: number): Promise<{ startMs: number; waitMs: number; totalMs: number }> {
  const backend: ScheduledBackend = {
    id: `${instanceId}${i < 0 ? 'w' : i}`,
    accountName: ACCOUNT,
    serviceName: SERVICE,
    environmentName: 'default',
    key: `raw-${i}`,
    fencingToken: 1,
    image: `${IMAGE_REPOSITORY}:latest`,
    env: {},
    mount: null,
    limits: {},
    status: 'scheduled',
    containerId: null,
    createdAt: new Date(),
    nodeName: 'bench',
  };
  const t0 = performance.now();
  const started = await executor.start(spawnSpec(backend, { instanceId, nodeName: 'bench' }, '127.0.0.1'));
  rawLive.add(started.containerId);
  const t1 = performance.now();
  await executor.waitForHttp({ host: '127.0.0.1', port: started.hostPort }, { signal: AbortSignal.timeout(STEP_TIMEOUT_MS * 5) });
  const t2 = performance.now();
  await executor.remove(started.containerId);
  rawLive.delete(started.containerId);
  return { startMs: t1 - t0, waitMs: t2 - t1, totalMs: t2 - t0 };
}
