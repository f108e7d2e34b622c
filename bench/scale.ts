/**
 * Many live backends: `npx tsx bench/scale.ts` (`npm run bench:scale`).
 *
 * berth runs as `npm start` runs it (`berth serve`, its own process) on PGlite,
 * or on PostgreSQL with `--storage postgres` (TEST_DATABASE_URL names the
 * server). The backends are the tiny busybox image (bench/lib/tiny-image.ts)
 * with a 16 MiB memory limit, so that the machine holds hundreds of them.
 *
 * 1. One backend for the key `held`; connect for it under wrk (10
 *    connections); berth's CPU at rest and its memory.
 * 2. BACKENDS − 1 more, with distinct keys, SPAWN_CONCURRENCY connects at a
 *    time, each waited for until ready.
 * 3. The same measures with all of them live, once the machine has settled
 *    from the starts (1-minute load average under 2, or after SETTLE_MS).
 * 4. Every backend is terminated through the API and waited for.
 * Every loop is bounded in count and time; everything stays on 127.0.0.1.
 *
 * Flags (or environment; flag wins):
 *   --backends N   BENCH_SCALE_BACKENDS  live backends in step 3 (500)
 *   --seconds N    BENCH_SCALE_SECONDS   seconds per wrk run and per rest sample (8)
 *   --storage S    BENCH_SCALE_STORAGE   pglite (default) or postgres
 *   --profile DIR  BENCH_SCALE_PROFILE   write berth's V8 CPU profile into DIR
 *   --berth-env NAME=VALUE               more environment for berth, any number of times
 *                                        (e.g. BERTH_RECONCILE_INTERVAL_SECONDS=600, to see what the reconcile costs)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { BerthClient } from '../src/client/index.ts';
import { ADMIN_TOKEN } from '../test/support/berth.ts';
import { createPostgresDatabase } from '../test/support/databases.ts';
import { createTestDocker } from '../test/support/docker.ts';
import { ACCOUNT, call, dropDatabase, terminateAll } from './lib/berth.ts';
import { BerthChild } from './lib/berth-child.ts';
import { handleInterrupt } from './lib/interrupt.ts';
import { dockerVersion, loadavg, machine } from './lib/machine.ts';
import { fmt, printTable, ratio, reportProblems } from './lib/markdown.ts';
import { intOption } from './lib/options.ts';
import { machineTicks } from './lib/proc.ts';
import { ensureTinyImage, TINY_IMAGE } from './lib/tiny-image.ts';
import { findWrk, runWrk, wrkVersion, type WrkResult } from './lib/wrk.ts';

const { values: flags } = parseArgs({ options: { backends: { type: 'string' }, seconds: { type: 'string' }, storage: { type: 'string' }, profile: { type: 'string' }, 'berth-env': { type: 'string', multiple: true } } });
const BACKENDS = intOption('BENCH_SCALE_BACKENDS', 500, { flag: flags.backends });
const SECONDS = intOption('BENCH_SCALE_SECONDS', 8, { flag: flags.seconds });
const STORAGE = flags.storage ?? process.env.BENCH_SCALE_STORAGE ?? 'pglite';
const PROFILE_DIR = flags.profile ?? process.env.BENCH_SCALE_PROFILE;
const BERTH_ENV = Object.fromEntries(
  (flags['berth-env'] ?? []).map((pair) => {
    const at = pair.indexOf('=');
    if (at < 1) throw new Error(`--berth-env takes NAME=VALUE, not ${pair}`);
    return [pair.slice(0, at), pair.slice(at + 1)];
  }),
);
const SERVICE = 'tiny';
const SPAWN_CONCURRENCY = 20;
/** Upper bound for all spawns together, and for all terminations together. */
const PHASE_TIMEOUT_MS = 900_000;
/** Upper bound of the wait for the machine to settle after the spawns. */
const SETTLE_MS = 180_000;
const SPAWN = { executable: { resource_limits: { memory_limit_bytes: 16 * 1024 * 1024 } } };

const interrupted = handleInterrupt('run');

interface Sample {
  live: number;
  connect: WrkResult;
  /** berth's CPU at rest, % of one core. */
  restCpuPercent: number;
  /** The longest the event loop was held at rest, ms (berth's /metrics: nodejs_eventloop_lag_max_seconds). */
  restLoopMaxMs: number;
  /** Share of both CPUs in use at rest, by anything (the engine, its shims, other tenants of the machine). */
  restMachineBusy: number;
  rssMiB: number;
}

/** One gauge of berth's /metrics, read as the admin. Each read also restarts prom-client's event-loop histogram. */
async function metric(berth: BerthChild, name: string): Promise<number> {
  const text = await (await fetch(`${berth.apiUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
}

async function sample(wrk: string, berth: BerthChild, token: string, live: number): Promise<Sample> {
  await metric(berth, 'berth_nodejs_eventloop_lag_max_seconds');
  const cpuBefore = berth.cpuMs();
  const machineBefore = machineTicks();
  await sleep(SECONDS * 1000);
  const machineAfter = machineTicks();
  const restMachineBusy = (machineAfter.busy - machineBefore.busy) / Math.max(1, machineAfter.total - machineBefore.total);
  const restCpuPercent = ((berth.cpuMs() - cpuBefore) / (SECONDS * 1000)) * 100;
  const restLoopMaxMs = (await metric(berth, 'berth_nodejs_eventloop_lag_max_seconds')) * 1000;
  const rssMiB = berth.rssBytes() / 2 ** 20;
  const options = { url: `${berth.apiUrl}/v2/service/${ACCOUNT}/${SERVICE}/connect`, connections: 10, postBody: JSON.stringify({ key: 'held' }), token };
  await runWrk(wrk, { ...options, seconds: 2 });
  const connect = await runWrk(wrk, { ...options, seconds: SECONDS });
  return { live, connect, restCpuPercent, restLoopMaxMs, restMachineBusy, rssMiB };
}

async function main(): Promise<number> {
  if (STORAGE !== 'pglite' && STORAGE !== 'postgres') throw new Error(`--storage must be pglite or postgres, not ${STORAGE}`);
  if (STORAGE === 'postgres' && !process.env.TEST_DATABASE_URL) throw new Error('--storage postgres needs TEST_DATABASE_URL');
  const wrk = findWrk();
  if (!wrk) throw new Error('wrk is not installed (apt-get install wrk; .ci/run installs it)');
  const docker = createTestDocker();
  await ensureTinyImage(docker);
  const problems: string[] = [];
  const samples: Sample[] = [];
  const machineLines = machine(await dockerVersion(docker), wrkVersion(wrk));
  const databaseUrl = STORAGE === 'postgres' ? await createPostgresDatabase() : undefined;
  const berth = await BerthChild.start({
    ...(databaseUrl ? { databaseUrl } : {}),
    ...(PROFILE_DIR ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] } : {}),
    env: { BERTH_MAX_BACKENDS_PER_ACCOUNT: String(BACKENDS + 10), ...BERTH_ENV },
  });
  const ids: string[] = [];
  let spawnSeconds = NaN;
  let client: BerthClient | undefined;
  try {
    await call(berth.apiUrl, ADMIN_TOKEN, 'POST', '/v2/accounts', { name: ACCOUNT });
    await call(berth.apiUrl, ADMIN_TOKEN, 'POST', `/v2/account/${ACCOUNT}/service`, { name: SERVICE, image: TINY_IMAGE });
    const token = (await call<{ token: string }>(berth.apiUrl, ADMIN_TOKEN, 'POST', `/v2/account/${ACCOUNT}/tokens`, {})).token;
    const api = new BerthClient({ url: berth.apiUrl, token });
    client = api;
    const spawn = async (key: string) => {
      const connected = await api.connect(ACCOUNT, SERVICE, { key, spawn: SPAWN });
      ids.push(connected.backend_id);
      await api.waitUntilReady(connected.backend_id, { timeoutMs: 120_000 });
    };
    await spawn('held');
    console.error('1 live backend: measuring…');
    samples.push(await sample(wrk, berth, token, 1));

    console.error(`spawning ${BACKENDS - 1} more, ${SPAWN_CONCURRENCY} at a time…`);
    const started = performance.now();
    let next = 1;
    const failures: string[] = [];
    await Promise.all(
      Array.from({ length: SPAWN_CONCURRENCY }, async () => {
        while (next < BACKENDS && !interrupted() && performance.now() - started < PHASE_TIMEOUT_MS) {
          const key = `live-${next++}`;
          await spawn(key).catch((error: unknown) => failures.push(`${key}: ${error instanceof Error ? error.message : String(error)}`));
          if (next % 50 === 0) console.error(`  ${next} spawned or spawning, ${((performance.now() - started) / 1000).toFixed(0)} s`);
        }
      }),
    );
    spawnSeconds = (performance.now() - started) / 1000;
    if (failures.length > 0) problems.push(`${failures.length} spawns failed; first: ${failures[0]}`);
    const live = (await call<{ running_backends: unknown[] }>(berth.apiUrl, token, 'GET', `/v2/account/${ACCOUNT}/backends`)).running_backends.length;
    const settleUntil = Date.now() + SETTLE_MS;
    while (!interrupted() && Date.now() < settleUntil && Number(loadavg(1)) >= 2) await sleep(2000);
    if (!interrupted()) {
      console.error(`${live} live backends: measuring (load ${loadavg(1)})…`);
      samples.push(await sample(wrk, berth, token, live));
    }
  } catch (error) {
    problems.push((error as Error).stack ?? String(error));
  } finally {
    if (client) {
      console.error(`terminating ${ids.length} backends…`);
      if (!(await terminateAll(client, ids, PHASE_TIMEOUT_MS))) problems.push('not every backend was terminated in time');
    }
    await berth.stop();
    if (databaseUrl) await dropDatabase(databaseUrl).catch((error: unknown) => problems.push(`dropping ${databaseUrl}: ${String(error)}`));
  }

  console.log(`## ${BACKENDS} live backends (${STORAGE === 'postgres' ? 'PostgreSQL' : 'PGlite'}, berth serve in its own process)\n`);
  console.log('```');
  for (const line of machineLines) console.log(line);
  console.log(`load:    ${loadavg()} (at the end)`);
  console.log(`image ${TINY_IMAGE} (busybox httpd), memory limit 16 MiB; wrk -t1 -c10 -d${SECONDS}s after a 2 s warm-up`);
  console.log(`${BACKENDS - 1} spawned ${SPAWN_CONCURRENCY} at a time in ${fmt(spawnSeconds, 0)} s`);
  if (Object.keys(BERTH_ENV).length > 0) console.log(`berth's environment also: ${Object.entries(BERTH_ENV).map(([name, value]) => `${name}=${value}`).join(' ')}`);
  console.log('```\n');
  printTable(
    ['live backends', 'held-key connect requests/s', 'p50 ms', 'p99 ms', 'non-2xx', 'berth CPU at rest, % of a core', 'longest event-loop delay at rest, ms', 'machine busy at rest', 'berth RSS MiB'],
    'rrrrrrrrr',
    samples.map((s) => [
      s.live, s.connect.requestsPerSecond.toFixed(0), fmt(s.connect.p50), fmt(s.connect.p99), s.connect.non2xx + s.connect.errors, fmt(s.restCpuPercent, 1), fmt(s.restLoopMaxMs, 1), `${fmt(s.restMachineBusy * 100, 0)} %`, fmt(s.rssMiB, 0),
    ]),
  );
  const [one, many] = samples;
  if (one && many) console.log(`\np99 with ${many.live} / with 1: ${ratio(many.connect.p99, one.connect.p99)} (goal ≤ 2)`);
  for (const s of samples) if (s.connect.non2xx + s.connect.errors > 0) problems.push(`${s.live} live: ${s.connect.non2xx} non-2xx, ${s.connect.errors} errors`);
  return reportProblems(problems, interrupted());
}

process.exitCode = await main();
