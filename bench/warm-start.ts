/**
 * Warm start against cold start: `npx tsx bench/warm-start.ts`.
 *
 * One image written for Jamsocket's session-backend SDK (test/fixtures/warm-app),
 * two services on it: one with a warm pool, one without. Each round connects a
 * new key on each, interleaved, and times connect → `ready` (berth's own
 * client, waitUntilReady on the status stream). Between rounds the pool is let
 * refill, so that every warm connect finds it not exhausted.
 *
 * berth runs as `npm start` runs it (`berth serve`, defaults, its own process),
 * on PGlite (the default a new user runs) and, when TEST_DATABASE_URL names a
 * server, on PostgreSQL too. Everything stays on 127.0.0.1; the loop is bounded
 * in rounds and time; every backend is terminated and the pool emptied at the end.
 *
 * Tunables: BENCH_ROUNDS (20), BENCH_POOL (2), BENCH_SECONDS (300, time budget per storage).
 */
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureNodeImage } from '../examples/lib/node-image.ts';
import { BerthClient } from '../src/client/index.ts';
import { ADMIN_TOKEN } from '../test/support/berth.ts';
import { createPostgresDatabase } from '../test/support/databases.ts';
import { createTestDocker } from '../test/support/docker.ts';
import { ACCOUNT, call, STEP_TIMEOUT_MS } from './lib/berth.ts';
import { BerthChild } from './lib/berth-child.ts';
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

/** Where each warm start's time went, in ms, by the server's status times and the client's clock (one machine). */
interface Phases {
  connect: number[];
  toStarting: number[];
  toWaiting: number[];
  toReady: number[];
  noticed: number[];
}

interface Run {
  storage: 'PGlite' | 'PostgreSQL';
  warm: number[];
  cold: number[];
  /** Connects on the warm service that found no warm container and started cold. */
  tookCold: number;
  phases: Phases;
}

const docker = createTestDocker();
await ensureNodeImage(docker, {
  reference: `${REPOSITORY}:latest`,
  appDir: fileURLToPath(new URL('../test/fixtures/warm-app/', import.meta.url)),
  packages: ['@jamsocket/session-backend'],
});
const problems: string[] = [];
const runs: Run[] = [];
const load = loadavg();

async function measure(storage: Run['storage']): Promise<Run> {
  const run: Run = { storage, warm: [], cold: [], tookCold: 0, phases: { connect: [], toStarting: [], toWaiting: [], toReady: [], noticed: [] } };
  const databaseUrl = storage === 'PostgreSQL' ? await createPostgresDatabase() : undefined;
  const berth = await BerthChild.start(databaseUrl ? { databaseUrl } : {});
  try {
    await call(berth.apiUrl, ADMIN_TOKEN, 'POST', '/v2/accounts', { name: ACCOUNT });
    for (const name of ['warm', 'cold']) await call(berth.apiUrl, ADMIN_TOKEN, 'POST', `/v2/account/${ACCOUNT}/service`, { name, image: REPOSITORY });
    const token = (await call<{ token: string }>(berth.apiUrl, ADMIN_TOKEN, 'POST', `/v2/account/${ACCOUNT}/tokens`, {})).token;
    const client = new BerthClient({ url: berth.apiUrl, token });
    const admin = new BerthClient({ url: berth.apiUrl, token: ADMIN_TOKEN });
    await client.services.setWarmPool(ACCOUNT, 'warm', POOL);

    const warmed = async () =>
      (await admin.nodes()).reduce(
        (sum, node) => sum + ((node as unknown as { warm_pool: Record<string, { warmed: number }> }).warm_pool[`${ACCOUNT}/warm/default`]?.warmed ?? 0),
        0,
      );
    const untilRefilled = async () => {
      const deadline = Date.now() + STEP_TIMEOUT_MS;
      while ((await warmed()) < POOL) {
        if (Date.now() > deadline) throw new Error(`the pool did not refill to ${POOL} within ${STEP_TIMEOUT_MS / 1000} s`);
        await sleep(100);
      }
    };
    const connectUntilReady = async (service: string, key: string): Promise<number> => {
      const startedAt = Date.now();
      const started = performance.now();
      const connected = await client.connect(ACCOUNT, service, { key });
      const connectedMs = performance.now() - started;
      await client.waitUntilReady(connected.backend_id, { timeoutMs: STEP_TIMEOUT_MS });
      const ms = performance.now() - started;
      // The app says whether it got its assignment over the SDK socket (a warm container) or from its env.
      const assignment = (await (await fetch(`${connected.url}assignment`, { signal: AbortSignal.timeout(STEP_TIMEOUT_MS) })).json()) as { warm: boolean };
      if (service === 'warm' && !assignment.warm) run.tookCold++;
      if (service === 'warm' && assignment.warm) {
        const { statuses } = await client.backend(connected.backend_id);
        const at = (name: string) => Date.parse(statuses.find((status) => status.status === name)?.time ?? '') - startedAt;
        run.phases.connect.push(connectedMs);
        run.phases.toStarting.push(at('starting'));
        run.phases.toWaiting.push(at('waiting') - at('starting'));
        run.phases.toReady.push(at('ready') - at('waiting'));
        run.phases.noticed.push(ms - at('ready'));
      }
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
      run.warm.push(await connectUntilReady('warm', `w${round}`));
      run.cold.push(await connectUntilReady('cold', `c${round}`));
    }
    await client.services.setWarmPool(ACCOUNT, 'warm', 0);
  } catch (error) {
    problems.push(`${storage}: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    await berth.stop();
  }
  return run;
}

for (const storage of ['PGlite', ...(process.env.TEST_DATABASE_URL ? ['PostgreSQL' as const] : [])] as const) {
  if (interrupted()) break;
  runs.push(await measure(storage));
}

console.log('## Warm start vs cold start (connect → ready, same SDK image, berth serve in its own process)\n');
for (const line of machine(await dockerVersion(docker))) console.log(`    ${line}`);
console.log(`    load: ${load} at start, ${loadavg()} after\n`);
printTable(
  ['storage', 'path', 'n', 'p50 ms', 'p99 ms', 'mean ms', 'min ms'],
  'llrrrrr',
  runs.flatMap(({ storage, warm, cold }) => {
    const w = summarize(warm);
    const c = summarize(cold);
    return [
      [storage, `warm pool (size ${POOL}, refilled between rounds)`, w.n, fmt(w.p50, 1), fmt(w.p99, 1), fmt(w.mean, 1), fmt(w.min, 1)],
      [storage, 'cold start', c.n, fmt(c.p50, 1), fmt(c.p99, 1), fmt(c.mean, 1), fmt(c.min, 1)],
    ];
  }),
);
console.log("\nWhere a warm start goes (p50 of each phase, ms; status times are the server's, on the same clock):\n");
printTable(
  ['storage', 'connect answered', 'connect → starting', 'starting → waiting', 'waiting → ready', 'ready → client sees it'],
  'lrrrrr',
  runs.map(({ storage, phases }) => [storage, ...[phases.connect, phases.toStarting, phases.toWaiting, phases.toReady, phases.noticed].map((values) => fmt(summarize(values).p50, 1))]),
);
console.log('');
for (const { storage, warm, cold, tookCold } of runs) {
  console.log(
    `${storage}: ${warm.length - tookCold} of ${warm.length} connects on the warm service got a warm container; ` +
      `warm/cold at p50: ${ratio(summarize(warm).p50, summarize(cold).p50)}`,
  );
}
console.log('goal: warm p50 < 50 ms, p99 < 150 ms');
process.exitCode = reportProblems(problems, interrupted());
