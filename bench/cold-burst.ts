/**
 * Many cold starts at once: `npx tsx bench/cold-burst.ts`.
 *
 * BURST connects with distinct keys are sent at the same moment to berth
 * (`berth serve`, its own process; PGlite, and PostgreSQL too when
 * TEST_DATABASE_URL names a server); each is timed from its request to
 * `ready` (berth's own client, waitUntilReady on the status stream). Every
 * backend must become ready. Then all are terminated and waited for. The
 * reference: the same BURST containers started at once without berth (berth's
 * engine code, create + start + wait for HTTP; bench/lib/raw-start.ts). The run
 * is bounded by BENCH_SECONDS per storage; everything stays on 127.0.0.1.
 *
 * Tunables: BENCH_BURST (50), BENCH_SECONDS (300).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { DockerEngine } from '../scheduler/docker/docker-engine.ts';
import { BerthClient } from '../src/client/index.ts';
import { createPostgresDatabase } from '../test/support/databases.ts';
import { createTestDocker } from '../test/support/docker.ts';
import { ensureTestImage } from '../test/support/test-image.ts';
import { ACCOUNT, dropDatabase, SERVICE, setUpAccount, terminateAll } from './lib/berth.ts';
import { BerthChild } from './lib/berth-child.ts';
import { handleInterrupt } from './lib/interrupt.ts';
import { dockerVersion, loadavg, machine } from './lib/machine.ts';
import { fmt, printTable, reportProblems } from './lib/markdown.ts';
import { intOption } from './lib/options.ts';
import { rawColdStart, rawLive } from './lib/raw-start.ts';
import { summarize } from './lib/stats.ts';

const BURST = intOption('BENCH_BURST', 50);
const SECONDS = intOption('BENCH_SECONDS', 300);
const interrupted = handleInterrupt('run');

interface Run {
  storage: 'PGlite' | 'PostgreSQL' | 'raw (no berth)';
  /** connect → ready of each backend that became ready, ms. */
  ready: number[];
  /** The slowest connect's answer, ms: how long the API held a caller during the burst. */
  connectAnswered: number[];
  failed: string[];
  wallMs: number;
}

const docker = createTestDocker();
await ensureTestImage(docker);
const problems: string[] = [];
const runs: Run[] = [];
const load = loadavg();

async function burst(storage: 'PGlite' | 'PostgreSQL'): Promise<Run> {
  const run: Run = { storage, ready: [], connectAnswered: [], failed: [], wallMs: NaN };
  const databaseUrl = storage === 'PostgreSQL' ? await createPostgresDatabase() : undefined;
  const berth = await BerthChild.start(databaseUrl ? { databaseUrl } : {});
  const ids: string[] = [];
  let client: BerthClient | undefined;
  try {
    client = new BerthClient({ url: berth.apiUrl, token: await setUpAccount(berth.apiUrl) });
    const api = client;
    const timeoutMs = SECONDS * 1000;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: BURST }, async (_, i) => {
        const sent = performance.now();
        try {
          const connected = await api.connect(ACCOUNT, SERVICE, { key: `burst-${i}` });
          run.connectAnswered.push(performance.now() - sent);
          ids.push(connected.backend_id);
          await api.waitUntilReady(connected.backend_id, { timeoutMs });
          run.ready.push(performance.now() - sent);
        } catch (error) {
          run.failed.push(`burst-${i}: ${error instanceof Error ? error.message : String(error)}`);
        }
      }),
    );
    run.wallMs = performance.now() - started;
  } catch (error) {
    problems.push(`${storage}: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    if (client && !(await terminateAll(client, ids, 120_000))) problems.push(`${storage}: not every backend was terminated within 120 s`);
    await berth.stop();
    if (databaseUrl) await dropDatabase(databaseUrl).catch((error: unknown) => problems.push(`dropping ${databaseUrl}: ${String(error)}`));
  }
  if (run.failed.length > 0) problems.push(`${storage}: ${run.failed.length} of ${BURST} did not become ready; first: ${run.failed[0]}`);
  return run;
}

/** The same burst without berth. */
async function rawBurst(): Promise<Run> {
  const run: Run = { storage: 'raw (no berth)', ready: [], connectAnswered: [], failed: [], wallMs: NaN };
  const executor = new DockerEngine(docker);
  const instanceId = `benchburst${Date.now().toString(36)}`;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: BURST }, async (_, i) => {
      try {
        run.ready.push((await rawColdStart(executor, instanceId, i)).totalMs);
      } catch (error) {
        run.failed.push(`raw-${i}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }),
  );
  run.wallMs = performance.now() - started;
  for (const id of [...rawLive]) await executor.remove(id).catch((error: unknown) => problems.push(`removing raw container ${id}: ${String(error)}`));
  if (run.failed.length > 0) problems.push(`raw: ${run.failed.length} of ${BURST} did not answer; first: ${run.failed[0]}`);
  return run;
}

for (const storage of ['raw (no berth)', 'PGlite', ...(process.env.TEST_DATABASE_URL ? ['PostgreSQL' as const] : [])] as const) {
  if (interrupted()) break;
  runs.push(storage === 'raw (no berth)' ? await rawBurst() : await burst(storage));
  // Let the engine settle (removals, the load they leave) before the next burst.
  await sleep(10_000);
}

console.log(`## ${BURST} cold connects at once (distinct keys, berth serve in its own process)\n`);
console.log('```');
for (const line of machine(await dockerVersion(docker))) console.log(line);
console.log(`load: ${load} at start, ${loadavg()} after`);
console.log('```\n');
printTable(
  ['storage', 'ready', 'connect → ready p50 ms', 'p99 ms', 'max ms', 'connect answered p50 ms', 'p99 ms', 'all ready after s'],
  'lrrrrrrr',
  runs.map(({ storage, ready, connectAnswered, wallMs }) => {
    const r = summarize(ready);
    const c = summarize(connectAnswered);
    return [storage, `${ready.length} / ${BURST}`, fmt(r.p50, 0), fmt(r.p99, 0), fmt(r.max, 0), c.n ? fmt(c.p50, 1) : '–', c.n ? fmt(c.p99, 1) : '–', fmt(wallMs / 1000, 1)];
  }),
);
process.exitCode = reportProblems(problems, interrupted());
