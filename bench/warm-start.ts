/**
 * Warm start against cold start: `npx tsx bench/warm-start.ts`.
 *
 * One image written for Jamsocket's session-backend SDK (test/fixtures/warm-app),
 * two services on it: one with a warm pool, one without. Each round connects a
 * new key on each, interleaved, and times connect → `ready` (berth's own
 * client, waitUntilReady on the status stream). Between rounds the pool is let
 * refill, so that every warm connect finds it not exhausted.
 *
 * berth runs in this process on PGlite (the default a new user runs). Everything
 * stays on 127.0.0.1; the loop is bounded in rounds and time; every backend is
 * terminated and the pool emptied at the end.
 *
 * Tunables: BENCH_ROUNDS (20), BENCH_POOL (2), BENCH_SECONDS (300, time budget).
 */
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureNodeImage } from '../examples/lib/node-image.ts';
import { BerthClient } from '../src/client/index.ts';
import { ADMIN_TOKEN } from '../test/support/berth.ts';
import { createTestDocker } from '../test/support/docker.ts';
import { ACCOUNT, call, setUpAccount, startBerth, STEP_TIMEOUT_MS } from './lib/berth.ts';
import { handleInterrupt } from './lib/interrupt.ts';
import { dockerVersion, loadavg, machine } from './lib/machine.ts';
import { fmt, printTable, ratio, reportProblems } from './lib/markdown.ts';
import { intOption } from './lib/options.ts';
import { summarize } from './lib/stats.ts';

const ROUNDS = intOption('BENCH_ROUNDS', 20);
const POOL = intOption('BENCH_POOL', 2);
const SECONDS = intOption('BENCH_SECONDS', 300);
const REPOSITORY = 'berth-bench/warm-app';
const interrupted = handleInterrupt('round');

const docker = createTestDocker();
await ensureNodeImage(docker, {
  reference: `${REPOSITORY}:latest`,
  appDir: fileURLToPath(new URL('../test/fixtures/warm-app/', import.meta.url)),
  packages: ['@jamsocket/session-backend'],
});
const berth = await startBerth({ kind: 'pglite' }, docker, 'warn');
const problems: string[] = [];
const warm: number[] = [];
/** Connects on the warm service that found no warm container and started cold. */
let tookCold = 0;
const cold: number[] = [];
try {
  await setUpAccount(berth.apiUrl);
  for (const name of ['warm', 'cold']) await call(berth.apiUrl, ADMIN_TOKEN, 'POST', `/v2/account/${ACCOUNT}/service`, { name, image: REPOSITORY });
  const token = (await call<{ token: string }>(berth.apiUrl, ADMIN_TOKEN, 'POST', `/v2/account/${ACCOUNT}/tokens`, {})).token;
  const client = new BerthClient({ url: berth.apiUrl, token });
  const admin = new BerthClient({ url: berth.apiUrl, token: ADMIN_TOKEN });
  await client.services.setWarmPool(ACCOUNT, 'warm', POOL);

  const warmed = async () => (await admin.nodes()).reduce((sum, node) => sum + ((node as unknown as { warm_pool: Record<string, { warmed: number }> }).warm_pool[`${ACCOUNT}/warm/default`]?.warmed ?? 0), 0);
  const untilRefilled = async () => {
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    while ((await warmed()) < POOL) {
      if (Date.now() > deadline) throw new Error(`the pool did not refill to ${POOL} within ${STEP_TIMEOUT_MS / 1000} s`);
      await sleep(100);
    }
  };
  const connectUntilReady = async (service: string, key: string): Promise<number> => {
    const started = performance.now();
    const connected = await client.connect(ACCOUNT, service, { key });
    await client.waitUntilReady(connected.backend_id, { timeoutMs: STEP_TIMEOUT_MS });
    const ms = performance.now() - started;
    // The app says whether it got its assignment over the SDK socket (a warm container) or from its env.
    const assignment = (await (await fetch(`${connected.url}assignment`, { signal: AbortSignal.timeout(STEP_TIMEOUT_MS) })).json()) as { warm: boolean };
    if (service === 'warm' && !assignment.warm) tookCold++;
    await client.terminate(connected.backend_id, { hard: true });
    // Let its removal finish before the next round, so that no round pays for another's cleanup.
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    while ((await client.status(connected.backend_id)).status !== 'terminated' && Date.now() < deadline) await sleep(50);
    return ms;
  };

  const deadline = Date.now() + SECONDS * 1000;
  for (let round = 0; round < ROUNDS && Date.now() < deadline && !interrupted(); round++) {
    // Nodes report their pools with each heartbeat (every 2 s): let one pass before trusting the count.
    await sleep(2500);
    await untilRefilled();
    warm.push(await connectUntilReady('warm', `w${round}`));
    cold.push(await connectUntilReady('cold', `c${round}`));
  }
  await client.services.setWarmPool(ACCOUNT, 'warm', 0);
} catch (error) {
  problems.push(error instanceof Error ? error.message : String(error));
} finally {
  await berth.stop();
}

const w = summarize(warm);
const c = summarize(cold);
console.log('## Warm start vs cold start (connect → ready, same SDK image, PGlite)\n');
for (const line of machine(await dockerVersion(docker))) console.log(`    ${line}`);
console.log(`    load after: ${loadavg()}\n`);
printTable(
  ['path', 'n', 'p50 ms', 'p99 ms', 'mean ms', 'min ms'],
  'lrrrrr',
  [
    [`warm pool (size ${POOL}, refilled between rounds)`, w.n, fmt(w.p50, 1), fmt(w.p99, 1), fmt(w.mean, 1), fmt(w.min, 1)],
    ['cold start', c.n, fmt(c.p50, 1), fmt(c.p99, 1), fmt(c.mean, 1), fmt(c.min, 1)],
  ],
);
console.log(`\n${w.n - tookCold} of ${w.n} connects on the warm service got a warm container; warm/cold at p50: ${ratio(w.p50, c.p50)}; goal: warm p50 < 50 ms, p99 < 150 ms`);
process.exitCode = reportProblems(problems, interrupted());
