/**
 * Connect for a held key: `npx tsx bench/held-key.ts [--before DIR]`.
 *
 * berth runs as `npm start` runs it (`berth serve`, defaults, log level info
 * into a file) in a child process; the load comes from wrk (one thread, its
 * own process). Per storage (PGlite; PostgreSQL as well when TEST_DATABASE_URL
 * names a server) one backend is spawned for the key `held` and waited for;
 * then, for ROUNDS rounds, the paths are measured one after another:
 *   connect   POST /v2/service/{a}/{s}/connect {"key":"held"}, account token
 *   health    GET /healthcheck on the same berth (the HTTP floor)
 * With `--before DIR` (another checkout, e.g. `git archive` of the commit
 * before a change, with node_modules linked) a second berth from DIR runs on
 * its own storage beside this one and each round measures both, interleaved,
 * so that drift on the machine hits both alike.
 *
 * CPU µs/request is the berth process's user+system CPU during the run
 * divided by the requests served. Every value printed is the median of the
 * rounds. Every loop is bounded; the backends are terminated through the API.
 *
 * Flags (or environment; flag wins):
 *   --seconds N      BENCH_HELD_SECONDS      seconds per measured run (8)
 *   --connections N  BENCH_HELD_CONNECTIONS  wrk connections = concurrent clients (10)
 *   --rounds N       BENCH_HELD_ROUNDS       rounds (2)
 *   --before DIR     BENCH_HELD_BEFORE       a checkout to compare with
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { ADMIN_TOKEN } from '../test/support/berth.ts';
import { createPostgresDatabase } from '../test/support/databases.ts';
import { createTestDocker } from '../test/support/docker.ts';
import { ensureTestImage } from '../test/support/test-image.ts';
import { ACCOUNT, call, dropDatabase, SERVICE, setUpAccount, STEP_TIMEOUT_MS, waitReady } from './lib/berth.ts';
import { BerthChild } from './lib/berth-child.ts';
import { handleInterrupt } from './lib/interrupt.ts';
import { dockerVersion, loadavg, machine } from './lib/machine.ts';
import { fmt, printTable, ratio, reportProblems } from './lib/markdown.ts';
import { intOption } from './lib/options.ts';
import { findWrk, medianOf, runWrk, wrkVersion, type MeasuredRun } from './lib/wrk.ts';

const { values: flags } = parseArgs({
  options: { seconds: { type: 'string' }, connections: { type: 'string' }, rounds: { type: 'string' }, before: { type: 'string' } },
});
const SECONDS = intOption('BENCH_HELD_SECONDS', 8, { flag: flags.seconds });
const CONNECTIONS = intOption('BENCH_HELD_CONNECTIONS', 10, { flag: flags.connections });
const ROUNDS = intOption('BENCH_HELD_ROUNDS', 2, { flag: flags.rounds });
const BEFORE = flags.before ?? process.env.BENCH_HELD_BEFORE;
const KEY = 'held';

const interrupted = handleInterrupt('run');

interface Variant {
  label: string;
  bin: string | undefined;
}

interface Subject {
  storage: 'PGlite' | 'PostgreSQL';
  variant: Variant;
  berth: BerthChild;
  token: string;
  backendId: string;
  databaseUrl: string | undefined;
}

type Measured = MeasuredRun;

type Path = 'connect' | 'health';

async function startSubject(storage: Subject['storage'], variant: Variant): Promise<Subject> {
  const databaseUrl = storage === 'PostgreSQL' ? await createPostgresDatabase() : undefined;
  const berth = await BerthChild.start({ bin: variant.bin, ...(databaseUrl ? { databaseUrl } : {}) });
  const token = await setUpAccount(berth.apiUrl);
  const first = await call<{ backend_id: string }>(berth.apiUrl, token, 'POST', `/v2/service/${ACCOUNT}/${SERVICE}/connect`, { key: KEY });
  await waitReady(berth.apiUrl, token, first.backend_id);
  const again = await call<{ backend_id: string; spawned: boolean }>(berth.apiUrl, token, 'POST', `/v2/service/${ACCOUNT}/${SERVICE}/connect`, { key: KEY });
  if (again.backend_id !== first.backend_id || again.spawned) throw new Error(`${variant.label}: the key is not held: ${JSON.stringify(again)}`);
  return { storage, variant, berth, token, backendId: first.backend_id, databaseUrl };
}

async function measure(wrk: string, subject: Subject, path: Path): Promise<Measured> {
  const cpuBefore = subject.berth.cpuMs();
  const result =
    path === 'connect'
      ? await runWrk(wrk, {
          url: `${subject.berth.apiUrl}/v2/service/${ACCOUNT}/${SERVICE}/connect`,
          connections: CONNECTIONS,
          seconds: SECONDS,
          postBody: JSON.stringify({ key: KEY }),
          token: subject.token,
        })
      : await runWrk(wrk, { url: `${subject.berth.apiUrl}/healthcheck`, connections: CONNECTIONS, seconds: SECONDS });
  const cpuMs = subject.berth.cpuMs() - cpuBefore;
  return { ...result, cpuUsPerRequest: (cpuMs * 1000) / Math.max(1, result.requests) };
}

async function stopSubject(subject: Subject, problems: string[]): Promise<void> {
  try {
    await call(subject.berth.apiUrl, subject.token, 'POST', `/v2/backend/${subject.backendId}/terminate`, { hard: true });
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const backend = await call<{ statuses?: Array<{ status: string }> }>(subject.berth.apiUrl, ADMIN_TOKEN, 'GET', `/v2/backend/${subject.backendId}`);
      if (backend.statuses?.at(-1)?.status === 'terminated') break;
      await sleep(200);
    }
  } catch (error) {
    problems.push(`${subject.variant.label} ${subject.storage}: terminating ${subject.backendId}: ${String(error)}`);
  }
  await subject.berth.stop();
  if (subject.databaseUrl) await dropDatabase(subject.databaseUrl).catch((error: unknown) => problems.push(`dropping ${subject.databaseUrl}: ${String(error)}`));
}

async function main(): Promise<number> {
  const wrk = findWrk();
  if (!wrk) {
    console.error('wrk is not installed (apt-get install wrk; .ci/run installs it)');
    return 1;
  }
  const docker = createTestDocker();
  console.log('## Connect for a held key\n');
  console.log('```');
  for (const line of machine(await dockerVersion(docker), wrkVersion(wrk))) console.log(line);
  console.log(`wrk -t1 -c${CONNECTIONS} -d${SECONDS}s per run, ${ROUNDS} round(s), medians of the rounds; berth log level info`);
  console.log('```');
  console.error('building or checking the test image…');
  await ensureTestImage(docker);

  const variants: Variant[] = [{ label: 'this checkout', bin: undefined }];
  if (BEFORE) variants.unshift({ label: 'before', bin: `${BEFORE.replace(/\/$/, '')}/bin/berth.js` });
  const storages: Array<Subject['storage']> = ['PGlite'];
  if (process.env.TEST_DATABASE_URL) storages.push('PostgreSQL');
  else console.error('TEST_DATABASE_URL is not set: PostgreSQL is skipped');

  const problems: string[] = [];
  const rows: Array<{ storage: string; variant: string; path: Path; result: Measured; load: string }> = [];
  for (const storage of storages) {
    if (interrupted()) break;
    const subjects: Subject[] = [];
    try {
      for (const variant of variants) {
        console.error(`${storage}: starting berth (${variant.label})…`);
        subjects.push(await startSubject(storage, variant));
      }
      const results = new Map<string, Measured[]>();
      const loads: string[] = [];
      for (let round = 0; round < ROUNDS && !interrupted(); round++) {
        loads.push(loadavg(1));
        for (const path of ['connect', 'health'] as const) {
          for (const subject of subjects) {
            console.error(`${storage} round ${round + 1}: ${path} (${subject.variant.label})…`);
            const id = `${subject.variant.label}|${path}`;
            results.set(id, [...(results.get(id) ?? []), await measure(wrk, subject, path)]);
          }
        }
      }
      for (const subject of subjects) {
        for (const path of ['connect', 'health'] as const) {
          const runs = results.get(`${subject.variant.label}|${path}`);
          if (runs?.length) rows.push({ storage, variant: subject.variant.label, path, result: medianOf(runs), load: loads.join(', ') });
        }
      }
    } catch (error) {
      problems.push(`${storage}: ${(error as Error).stack ?? String(error)}`);
    } finally {
      for (const subject of subjects) await stopSubject(subject, problems);
    }
  }

  console.log(`\nload average at the end: ${loadavg()}\n`);
  printTable(
    ['storage', 'berth', 'path', 'requests/s', 'p50 ms', 'p90 ms', 'p99 ms', 'non-2xx', 'errors', 'berth CPU µs/request', 'load (1 min) per round'],
    'llrrrrrrrrl',
    rows.map(({ storage, variant, path, result: r, load }) => [
      storage, variant, path, r.requestsPerSecond.toFixed(0), fmt(r.p50), fmt(r.p90), fmt(r.p99), r.non2xx, r.errors, r.cpuUsPerRequest.toFixed(0), load,
    ]),
  );
  console.log('');
  const find = (storage: string, variant: string, path: Path) => rows.find((r) => r.storage === storage && r.variant === variant && r.path === path)?.result;
  const ratioRows = [];
  for (const storage of storages) {
    for (const variant of variants) {
      const connect = find(storage, variant.label, 'connect');
      const health = find(storage, variant.label, 'health');
      if (connect && health) ratioRows.push([storage, `${variant.label}: connect / healthcheck`, ratio(connect.requestsPerSecond, health.requestsPerSecond), ratio(connect.p99, health.p99)]);
    }
    if (BEFORE) {
      const after = find(storage, 'this checkout', 'connect');
      const before = find(storage, 'before', 'connect');
      if (after && before) ratioRows.push([storage, 'connect: this checkout / before', ratio(after.requestsPerSecond, before.requestsPerSecond), ratio(after.p99, before.p99)]);
    }
  }
  printTable(['storage', 'ratio', 'requests/s', 'p99'], 'llrr', ratioRows);
  for (const row of rows) if (row.result.non2xx > 0 || row.result.errors > 0) problems.push(`${row.storage} ${row.variant} ${row.path}: ${row.result.non2xx} non-2xx, ${row.result.errors} socket errors`);
  return reportProblems(problems, interrupted());
}

process.exitCode = await main();
