/**
 * Connect and cold-start benchmark: `npx tsx bench/connect.ts`.
 *
 * 1. Connect for a held key: POST /v2/service/{a}/{s}/connect for a key whose
 *    backend is already ready, with one client and with 10 concurrent clients.
 * 2. Cold start: connect for a new key until the status stream says `ready`,
 *    beside the same image started directly with DockerEngine (create,
 *    start, wait for HTTP), runs interleaved so drift hits both alike.
 *
 * berth runs in this process (TestBerth) on PGlite, and on PostgreSQL as well
 * when TEST_DATABASE_URL names a server. The load generator runs in a worker
 * thread so that its own fetch work does not queue on berth's event loop.
 * Everything stays on 127.0.0.1; every loop is bounded in count and time;
 * every backend is terminated through the API and every raw container removed.
 *
 * Tunables (environment, integers ≥ 1): BENCH_REQUESTS (2000), BENCH_SECONDS (20),
 * BENCH_WARMUP (200), BENCH_CONCURRENCY (10), BENCH_COLD_N (10),
 * BENCH_COLD_SECONDS (300, time budget of the cold-start loop per storage).
 * A quick end-to-end check: BENCH_REQUESTS=200 BENCH_SECONDS=2 BENCH_WARMUP=20
 * BENCH_COLD_N=2 npx tsx bench/connect.ts
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import type Dockerode from 'dockerode';
import { customAlphabet } from 'nanoid';
import pg from 'pg';
import { DockerEngine } from '../scheduler/docker/docker-engine.ts';
import type { TestBerth } from '../test/support/berth.ts';
import type { TestDatabase } from '../test/support/databases.ts';
import { createTestDocker } from '../test/support/docker.ts';
import { ensureTestImage } from '../test/support/test-image.ts';
import { ACCOUNT, call as apiCall, SERVICE, setUpAccount, startBerth, STEP_TIMEOUT_MS } from './lib/berth.ts';
import { handleInterrupt } from './lib/interrupt.ts';
import { rawColdStart, rawLive } from './lib/raw-start.ts';
import { dockerVersion, loadavg, machine } from './lib/machine.ts';
import { fmt, printTable, ratio, reportProblems } from './lib/markdown.ts';
import { intOption } from './lib/options.ts';
import { summarize, type Summary } from './lib/stats.ts';

const REQUESTS = intOption('BENCH_REQUESTS', 2000);
const SECONDS = intOption('BENCH_SECONDS', 20);
const WARMUP = intOption('BENCH_WARMUP', 200);
const CONCURRENCY = intOption('BENCH_CONCURRENCY', 10);
const COLD_N = intOption('BENCH_COLD_N', 10);
const COLD_SECONDS = intOption('BENCH_COLD_SECONDS', 300);

const suffix = customAlphabet('0123456789abcdefghijklmnopqrstuvwxyz', 8);

const interrupted = handleInterrupt('step');

// ---------------------------------------------------------------------------
// Load generator (worker thread, plain JS: nothing to compile)

interface LoadOptions {
  url: string;
  token: string;
  body: string;
  concurrency: number;
  warmup: number;
  maxRequests: number;
  maxMs: number;
  /** Substrings every successful response body must contain. */
  expect: string[];
}

interface LoadResult {
  latencies: Float64Array;
  elapsedMs: number;
  statuses: Record<string, number>;
  unexpected: number;
  firstUnexpected: string | null;
}

const LOAD_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { url, token, body, concurrency, warmup, maxRequests, maxMs, expect } = workerData;
const headers = { authorization: 'Bearer ' + token, 'content-type': 'application/json' };

async function phase(count, limitMs, record) {
  const latencies = new Float64Array(count);
  const statuses = {};
  let issued = 0, done = 0, unexpected = 0, firstUnexpected = null;
  const start = performance.now();
  const deadline = start + limitMs;
  async function client() {
    while (issued < count && performance.now() < deadline) {
      issued++;
      const t0 = performance.now();
      let status = 0, text = '';
      try {
        const res = await fetch(url, { method: 'POST', headers, body });
        status = res.status;
        text = await res.text();
      } catch (error) {
        status = 'fetch error';
        text = String((error && error.cause) || error);
      }
      latencies[done++] = performance.now() - t0;
      if (!record) continue;
      statuses[status] = (statuses[status] || 0) + 1;
      if (status !== 200 || !expect.every((s) => text.includes(s))) {
        unexpected++;
        if (firstUnexpected === null) firstUnexpected = status + ' ' + text.slice(0, 400);
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, client));
  return { latencies: latencies.slice(0, done), elapsedMs: performance.now() - start, statuses, unexpected, firstUnexpected };
}

(async () => {
  await phase(warmup, Math.min(maxMs, 10000), false);
  const result = await phase(maxRequests, maxMs, true);
  parentPort.postMessage(result, [result.latencies.buffer]);
})().catch((error) => parentPort.postMessage({ fatal: String((error && error.stack) || error) }));
`;

function runLoad(options: LoadOptions): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(LOAD_WORKER, { eval: true, workerData: options });
    // Warm-up and measured phase are each bounded by maxMs; this is the backstop.
    const backstop = setTimeout(() => {
      void worker.terminate();
      reject(new Error('load worker did not finish in time'));
    }, 2 * options.maxMs + 30_000);
    worker.once('message', (message: LoadResult | { fatal: string }) => {
      clearTimeout(backstop);
      void worker.terminate();
      if ('fatal' in message) reject(new Error(`load worker failed: ${message.fatal}`));
      else resolve(message);
    });
    worker.once('error', (error) => {
      clearTimeout(backstop);
      reject(error);
    });
  });
}

// ---------------------------------------------------------------------------
// berth API helpers

interface ConnectResponse {
  backend_id: string;
  spawned: boolean;
  status: string;
  token: string;
}

interface BackendJson {
  statuses: Array<{ status: string; time: string }>;
}

class Api {
  constructor(
    readonly baseUrl: string,
    readonly token: string,
  ) {}

  call<T>(method: string, path: string, body?: unknown): Promise<T> {
    return apiCall<T>(this.baseUrl, this.token, method, path, body);
  }

  connect(key: string): Promise<ConnectResponse> {
    return this.call<ConnectResponse>('POST', `/v2/service/${ACCOUNT}/${SERVICE}/connect`, { key });
  }

  /**
   * Follows GET /v2/backend/{id}/status/stream until one of `wanted` arrives;
   * resolves with performance.now() at that moment. The stream replays the
   * history first, so opening it after the connect misses nothing.
   */
  async waitForStatus(backendId: string, wanted: readonly string[]): Promise<{ status: string; at: number }> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error('timed out')), STEP_TIMEOUT_MS);
    const seen: string[] = [];
    try {
      const response = await fetch(`${this.baseUrl}/v2/backend/${backendId}/status/stream`, { signal: abort.signal });
      if (!response.ok || !response.body) throw new Error(`status stream of ${backendId} → ${response.status}`);
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          for (const line of frame.split('\n')) {
            if (!line.startsWith('data:')) continue;
            const { status } = JSON.parse(line.slice(5)) as { status: string };
            seen.push(status);
            if (wanted.includes(status)) return { status, at: performance.now() };
          }
        }
      }
      throw new Error(`status stream of ${backendId} ended before ${wanted.join('/')}; saw ${seen.join(' → ') || 'nothing'}`);
    } catch (error) {
      if (abort.signal.aborted) {
        throw new Error(`no ${wanted.join('/')} for ${backendId} within ${STEP_TIMEOUT_MS} ms; saw ${seen.join(' → ') || 'nothing'}`);
      }
      throw error;
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
  }

  async statusTimes(backendId: string): Promise<Map<string, number>> {
    const backend = await this.call<BackendJson>('GET', `/v2/backend/${backendId}`);
    return new Map(backend.statuses.map((s) => [s.status, Date.parse(s.time)]));
  }
}

/** Waits until the engine no longer knows the container (berth removes it after `terminated`). */
async function waitContainerGone(docker: Dockerode, name: string, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      await docker.getContainer(name).inspect();
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return true;
      throw error;
    }
    await sleep(50);
  }
  return false;
}

// ---------------------------------------------------------------------------
// One berth (one storage)

interface HeldKeyRow {
  database: string;
  clients: number;
  requests: number;
  unexpected: number;
  statuses: Record<string, number>;
  firstUnexpected: string | null;
  summary: Summary;
  requestsPerSecond: number;
}

interface ColdRow {
  database: string;
  berth: Summary;
  raw: Summary;
  /** Medians of berth's phases, from its recorded status times. */
  phases: Record<string, Summary>;
  rawPhases: Record<string, Summary>;
}

class BenchBerth {
  /** Backends this bench spawned and has not yet seen terminated and removed. */
  readonly live = new Set<string>();
  private constructor(
    readonly label: string,
    readonly testBerth: TestBerth,
    readonly api: Api,
    private readonly docker: Dockerode,
  ) {}

  static async start(database: TestDatabase, docker: Dockerode): Promise<BenchBerth> {
    const testBerth = await startBerth(database, docker, 'silent');
    const token = await setUpAccount(testBerth.apiUrl);
    return new BenchBerth(database.kind === 'pglite' ? 'PGlite' : 'PostgreSQL', testBerth, new Api(testBerth.apiUrl, token), docker);
  }

  /** Connect for a new key and wait for `ready`. */
  async spawnReady(key: string): Promise<{ backendId: string; t0: number; t0Wall: number; connectMs: number; readyAt: number }> {
    const t0Wall = Date.now();
    const t0 = performance.now();
    const connected = await this.api.connect(key);
    const connectMs = performance.now() - t0;
    this.live.add(connected.backend_id);
    if (!connected.spawned) throw new Error(`connect for new key ${key} returned spawned=false (backend ${connected.backend_id})`);
    const { status, at } = await this.api.waitForStatus(connected.backend_id, ['ready', 'terminated']);
    if (status !== 'ready') {
      const times = await this.api.statusTimes(connected.backend_id).catch(() => new Map<string, number>());
      throw new Error(`backend ${connected.backend_id} (key ${key}) ended ${status} instead of ready; statuses: ${[...times.keys()].join(' → ')}`);
    }
    return { backendId: connected.backend_id, t0, t0Wall, connectMs, readyAt: at };
  }

  /** Terminates through the API, waits for `terminated`, then for the container to be removed. */
  async terminate(backendId: string): Promise<void> {
    await this.api.call('POST', `/v2/backend/${backendId}/terminate`, {});
    await this.api.waitForStatus(backendId, ['terminated']);
    if (!(await waitContainerGone(this.docker, `berth-${backendId}`))) {
      throw new Error(`backend ${backendId} is terminated but its container berth-${backendId} is still there after 30 s`);
    }
    this.live.delete(backendId);
  }

  async heldKey(): Promise<HeldKeyRow[]> {
    const key = `held-${suffix()}`;
    const held = await this.spawnReady(key);
    const rows: HeldKeyRow[] = [];
    for (const clients of [1, CONCURRENCY]) {
      if (interrupted()) break;
      const result = await runLoad({
        url: `${this.testBerth.apiUrl}/v2/service/${ACCOUNT}/${SERVICE}/connect`,
        token: this.api.token,
        body: JSON.stringify({ key }),
        concurrency: clients,
        warmup: WARMUP,
        maxRequests: REQUESTS,
        maxMs: SECONDS * 1000,
        expect: [`"backend_id":"${held.backendId}"`, '"spawned":false'],
      });
      rows.push({
        database: this.label,
        clients,
        requests: result.latencies.length,
        unexpected: result.unexpected,
        statuses: result.statuses,
        firstUnexpected: result.firstUnexpected,
        summary: summarize(result.latencies),
        requestsPerSecond: result.latencies.length / (result.elapsedMs / 1000),
      });
      console.error(`  ${this.label}: ${clients} client(s): ${result.latencies.length} requests in ${(result.elapsedMs / 1000).toFixed(1)} s`);
    }
    await this.terminate(held.backendId);
    return rows;
  }

  async coldStart(executor: DockerEngine): Promise<ColdRow> {
    const rawInstance = `benchraw${suffix()}`;
    const berthTimes: number[] = [];
    const rawTimes: number[] = [];
    const phaseSamples: Record<string, number[]> = {};
    const rawPhaseSamples: Record<string, number[]> = { 'create+start+inspect': [], 'wait for HTTP': [] };
    const addPhase = (name: string, ms: number) => (phaseSamples[name] ??= []).push(ms);

    // One unmeasured run of each first: the first container after an image
    // build or an idle engine pays for cold caches that later runs do not.
    const deadline = Date.now() + COLD_SECONDS * 1000;
    for (let i = -1; i < COLD_N && !interrupted(); i++) {
      if (Date.now() > deadline) {
        console.error(`  ${this.label}: cold start stopped after ${COLD_SECONDS} s with ${berthTimes.length} runs`);
        break;
      }
      // berth: connect for a new key → `ready` on the status stream.
      const run = await this.spawnReady(`cold-${i}-${suffix()}`);
      const times = await this.api.statusTimes(run.backendId);
      await this.terminate(run.backendId);
      // raw: the same container, through the same executor berth uses.
      const raw = await rawColdStart(executor, rawInstance, i);
      if (i < 0) continue;
      berthTimes.push(run.readyAt - run.t0);
      rawTimes.push(raw.totalMs);
      rawPhaseSamples['create+start+inspect']!.push(raw.startMs);
      rawPhaseSamples['wait for HTTP']!.push(raw.waitMs);
      addPhase('connect response', run.connectMs);
      const at = (status: string) => times.get(status);
      const scheduled = at('scheduled');
      const starting = at('starting');
      const waiting = at('waiting');
      const ready = at('ready');
      if (scheduled !== undefined && starting !== undefined) addPhase('scheduled → starting', starting - scheduled);
      if (starting !== undefined && waiting !== undefined) addPhase('starting → waiting (create+start)', waiting - starting);
      if (waiting !== undefined && ready !== undefined) addPhase('waiting → ready (wait for HTTP)', ready - waiting);
      if (ready !== undefined) addPhase('ready recorded → seen on stream', run.readyAt - run.t0 - (ready - run.t0Wall));
    }
    return {
      database: this.label,
      berth: summarize(berthTimes),
      raw: summarize(rawTimes),
      phases: Object.fromEntries(Object.entries(phaseSamples).map(([k, v]) => [k, summarize(v)])),
      rawPhases: Object.fromEntries(Object.entries(rawPhaseSamples).map(([k, v]) => [k, summarize(v)])),
    };
  }

  /** Terminates whatever is still live through the API; returns ids that would not go. */
  async cleanUp(): Promise<string[]> {
    const stuck: string[] = [];
    for (const id of [...this.live]) {
      try {
        await this.terminate(id);
      } catch (error) {
        // Already terminated is fine as long as the container is gone.
        if (await waitContainerGone(this.docker, `berth-${id}`, 15_000).catch(() => false)) this.live.delete(id);
        else stuck.push(`${id}: ${(error as Error).message}`);
      }
    }
    return stuck;
  }
}

// ---------------------------------------------------------------------------
// Output

function printHeldKey(rows: HeldKeyRow[]): void {
  console.log('\n### Connect for a held key (backend already ready)\n');
  printTable(
    ['storage', 'clients', 'requests', 'p50 ms', 'p99 ms', 'mean ms', 'requests/s', 'not 200 + spawned:false'],
    'lrrrrrrr',
    rows.map((r) => [r.database, r.clients, r.requests, fmt(r.summary.p50), fmt(r.summary.p99), fmt(r.summary.mean), r.requestsPerSecond.toFixed(0), r.unexpected]),
  );
  for (const r of rows) {
    if (r.unexpected > 0) {
      console.log(`\n${r.database}, ${r.clients} client(s): statuses ${JSON.stringify(r.statuses)}; first unexpected: ${r.firstUnexpected}`);
    }
  }
}

function printCold(rows: ColdRow[]): void {
  console.log(`\n### Cold start: connect → ready, N=${COLD_N} sequential new keys (after one unmeasured run each)\n`);
  printTable(
    ['storage', 'path', 'n', 'p50 ms', 'p99 ms', 'mean ms', 'min ms', 'max ms'],
    'llrrrrrr',
    rows.flatMap((r) =>
      (
        [
          ['berth: connect → ready', r.berth],
          ['raw: DockerEngine start + waitForHttp', r.raw],
        ] as const
      ).map(([path, s]) => [r.database, path, s.n, fmt(s.p50, 1), fmt(s.p99, 1), fmt(s.mean, 1), fmt(s.min, 1), fmt(s.max, 1)]),
    ),
  );
  console.log('');
  printTable(
    ['storage', 'berth/raw p50', 'berth/raw mean', 'berth − raw p50 ms'],
    'lrrr',
    rows.map((r) => [r.database, ratio(r.berth.p50, r.raw.p50), ratio(r.berth.mean, r.raw.mean), fmt(r.berth.p50 - r.raw.p50, 1)]),
  );
  console.log('\nWhere the time goes (p50 ms of each phase; berth phases from its recorded status times):\n');
  const phaseRows = (database: string, side: string, phases: Record<string, Summary>) =>
    Object.entries(phases).map(([name, s]) => [database, `${side}: ${name}`, fmt(s.p50, 1), fmt(s.mean, 1), fmt(s.max, 1)]);
  printTable(
    ['storage', 'phase', 'p50 ms', 'mean ms', 'max ms'],
    'llrrr',
    rows.flatMap((r) => [...phaseRows(r.database, 'berth', r.phases), ...phaseRows(r.database, 'raw', r.rawPhases)]),
  );
}

async function dropDatabase(databaseUrl: string): Promise<void> {
  const serverUrl = process.env.TEST_DATABASE_URL;
  if (!serverUrl) return;
  const name = new URL(databaseUrl).pathname.slice(1);
  if (!/^berth_test_[a-z0-9]+$/.test(name)) return;
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${name}`);
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------

async function main(): Promise<number> {
  const docker = createTestDocker();
  const executor = new DockerEngine(docker);
  console.log('## Connect and cold start\n');
  console.log('```');
  for (const line of machine(await dockerVersion(docker))) console.log(line);
  console.log(
    `held key: ${WARMUP} warm-up requests, then up to ${REQUESTS} requests or ${SECONDS} s per row; cold start N=${COLD_N}`,
  );
  console.log('```');

  console.error('building or checking the test image…');
  await ensureTestImage(docker);

  const databases: TestDatabase[] = [{ kind: 'pglite' }];
  if (process.env.TEST_DATABASE_URL) databases.push({ kind: 'postgres' });
  else console.error('TEST_DATABASE_URL is not set: PostgreSQL is skipped');

  const heldRows: HeldKeyRow[] = [];
  const coldRows: ColdRow[] = [];
  const problems: string[] = [];

  for (const database of databases) {
    if (interrupted()) break;
    console.error(`starting berth on ${database.kind}…`);
    const bench = await BenchBerth.start(database, docker);
    const databaseUrl = bench.testBerth.berth.config.databaseUrl;
    try {
      console.error(`${bench.label}: connect for a held key…`);
      heldRows.push(...(await bench.heldKey()));
      if (!interrupted()) {
        console.error(`${bench.label}: cold start, ${COLD_N} + 1 runs each of berth and raw…`);
        coldRows.push(await bench.coldStart(executor));
      }
    } catch (error) {
      problems.push(`${bench.label}: ${(error as Error).stack ?? String(error)}`);
    } finally {
      const stuck = await bench.cleanUp();
      for (const s of stuck) problems.push(`${bench.label}: could not terminate ${s}`);
      await bench.testBerth.stop();
      // Last resort, only for this bench's own containers: anything berth left behind.
      for (const s of stuck) {
        const id = s.split(':')[0]!;
        await docker.getContainer(`berth-${id}`).remove({ force: true, v: true }).catch(() => undefined);
      }
      if (databaseUrl) await dropDatabase(databaseUrl).catch((error: unknown) => problems.push(`dropping the bench database: ${String(error)}`));
    }
  }
  for (const id of [...rawLive]) {
    await executor.remove(id).catch((error: unknown) => problems.push(`removing raw container ${id}: ${String(error)}`));
  }

  console.log(`\nload average at the end: ${loadavg()}`);
  if (heldRows.length > 0) printHeldKey(heldRows);
  if (coldRows.length > 0) printCold(coldRows);
  return reportProblems(problems, interrupted());
}

process.exitCode = await main();
