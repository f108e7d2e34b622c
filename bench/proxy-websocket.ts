/**
 * The proxy under WebSocket load: `npx tsx bench/proxy-websocket.ts [flags]`.
 * (HTTP is measured with wrk, from outside: bench/proxy-http.ts.)
 *
 * One backend container (the test image's echo app), reached three ways, one
 * after another:
 *   direct  ws://127.0.0.1:{published port}/ws
 *   berth   {berth proxy}/{token}/ws   (berth runs in this process, PGlite)
 *   nginx   ws://127.0.0.1:{free port}/ws, Debian's nginx as a plain
 *           reverse proxy (keep-alive upstream, HTTP/1.1, upgrade headers),
 *           started by this script and stopped at the end; skipped (and said
 *           so) when nginx is not installed.
 * The load is N sockets each doing echo round trips one after another, in a
 * worker thread, so that it never queues on berth's event loop (berth owns
 * the main thread). wrk speaks no WebSocket; this is the one bench whose load
 * shares berth's process, which its CPU columns make visible.
 *
 * CPU per message is read from /proc for each process on the path: the load
 * generator (the worker's thread), berth (this process's main thread), the
 * rest of this process (V8's GC and libuv threads, shared by berth and the
 * load generator), nginx (master and workers), docker-proxy (Docker's
 * userland proxy behind the published port, in every path here) and the
 * app's node process.
 *
 * Every loop is bounded in count and time; the backend is terminated through
 * the API and berth stopped at the end. All traffic stays on 127.0.0.1.
 *
 * Flags (or environment; flag wins):
 *   --seconds N         BENCH_PROXY_SECONDS        measured seconds per scenario (10)
 *   --warmup N          BENCH_PROXY_WARMUP         warm-up seconds per scenario (2)
 *   --ws-sockets N      BENCH_PROXY_WS_SOCKETS     concurrent WebSockets (10)
 *   --ws-max-messages N BENCH_PROXY_WS_MAX_MESSAGES cap on measured round trips per scenario (1000000)
 *   --ws-bytes N        BENCH_PROXY_WS_BYTES       message size (64)
 *   --nginx-workers N|auto BENCH_PROXY_NGINX_WORKERS nginx worker_processes (1)
 *   --nginx PATH        NGINX                      nginx binary (/usr/sbin/nginx, else nginx on PATH)
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { createTestDocker } from '../test/support/docker.ts';
import { ensureTestImage } from '../test/support/test-image.ts';
import { ACCOUNT, call, SERVICE, setUpAccount, startBerth, STEP_TIMEOUT_MS } from './lib/berth.ts';
import { handleInterrupt } from './lib/interrupt.ts';
import { findNginx, nginxVersion, startNginx, type Nginx } from './lib/nginx.ts';
import { CLK_TCK, cpuTicks, dockerProxyPid, processCpu } from './lib/proc.ts';
import { dockerVersion, loadavg, machine } from './lib/machine.ts';
import { fmt, printTable, ratio, reportProblems } from './lib/markdown.ts';
import { intOption } from './lib/options.ts';
import { summarize, type Summary } from './lib/stats.ts';

// ---------------------------------------------------------------------------
// Options

const { values: flags } = parseArgs({
  options: {
    seconds: { type: 'string' },
    warmup: { type: 'string' },
    'ws-sockets': { type: 'string' },
    'ws-max-messages': { type: 'string' },
    'ws-bytes': { type: 'string' },
    'nginx-workers': { type: 'string' },
    nginx: { type: 'string' },
  },
});

const SECONDS = intOption('BENCH_PROXY_SECONDS', 10, { flag: flags.seconds });
const WARMUP_SECONDS = intOption('BENCH_PROXY_WARMUP', 2, { flag: flags.warmup, min: 0 });
const WS_SOCKETS = intOption('BENCH_PROXY_WS_SOCKETS', 10, { flag: flags['ws-sockets'] });
const WS_MAX_MESSAGES = intOption('BENCH_PROXY_WS_MAX_MESSAGES', 1_000_000, { flag: flags['ws-max-messages'] });
const WS_BYTES = intOption('BENCH_PROXY_WS_BYTES', 64, { flag: flags['ws-bytes'] });
const NGINX_WORKERS = flags['nginx-workers'] ?? process.env.BENCH_PROXY_NGINX_WORKERS ?? '1';
if (!/^(auto|[1-9][0-9]*)$/.test(NGINX_WORKERS)) throw new Error(`nginx workers: expected a number or auto, got ${NGINX_WORKERS}`);

const PATH = '/bench';

const require = createRequire(import.meta.url);
const WS_PATH = require.resolve('ws');

const interrupted = handleInterrupt('scenario');

// ---------------------------------------------------------------------------
// Load generators (worker thread, plain JS: nothing to compile)

interface WsLoadOptions {
  kind: 'ws';
  wsPath: string;
  url: string;
  sockets: number;
  warmupSeconds: number;
  seconds: number;
  maxMessages: number;
  bytes: number;
}

interface LoadResult {
  latencies: Float64Array;
  elapsedMs: number;
  /** 'echo' → count, 'sockets' → sockets opened. */
  statuses: Record<string, number>;
  errors: number;
  timeouts: number;
  resets: number;
  /** WS: echoes that differed from what was sent. */
  mismatches: number;
  firstError: string | null;
  bytes: number;
}

const LOAD_WORKER = `
const { parentPort, workerData: o } = require('node:worker_threads');

const post = (type, value) => parentPort.postMessage({ type, value });

async function ws() {
  const WebSocket = require(o.wsPath);
  const payload = 'x'.repeat(o.bytes);
  const latencies = new Float64Array(o.maxMessages);
  let n = 0, errors = 0, mismatches = 0, firstError = null, bytes = 0;
  let measuring = false, stopping = false, measureStart = 0, last = 0;
  const fail = (error) => { errors++; if (firstError === null) firstError = String((error && error.message) || error); };
  let inflight = 0;
  let drained = () => {};

  const open = (i) => new Promise((resolve) => {
    const socket = new WebSocket(o.url, { perMessageDeflate: false });
    const timer = setTimeout(() => { fail(new Error('socket ' + i + ': no hello within 10 s')); socket.terminate(); resolve(null); }, 10000);
    socket.on('error', (error) => { fail(error); clearTimeout(timer); resolve(null); });
    socket.once('message', () => { clearTimeout(timer); resolve(socket); });
  });
  const sockets = (await Promise.all(Array.from({ length: o.sockets }, (_, i) => open(i)))).filter(Boolean);
  if (sockets.length === 0) throw new Error('no WebSocket opened: ' + firstError);

  for (const socket of sockets) {
    let sentAt = 0, sentMeasured = false;
    const send = () => {
      if (stopping || (measuring && n >= o.maxMessages)) { stopping = true; return; }
      sentAt = performance.now();
      sentMeasured = measuring;
      inflight++;
      socket.send(payload);
    };
    socket.on('message', (data) => {
      const now = performance.now();
      inflight--;
      if (sentMeasured) {
        if (n < latencies.length) latencies[n++] = now - sentAt;
        last = now;
        bytes += data.length;
        if (data.toString() !== payload) mismatches++;
      }
      if (!stopping) send(); else if (inflight === 0) drained();
    });
    socket.on('close', () => { if (!stopping) fail(new Error('socket closed during the run')); });
    socket.on('error', fail);
    socket.__send = send;
  }

  for (const socket of sockets) socket.__send();
  await new Promise((r) => setTimeout(r, o.warmupSeconds * 1000));
  measuring = true;
  measureStart = performance.now();
  post('measuring');
  const deadline = measureStart + o.seconds * 1000;
  while (performance.now() < deadline && n < o.maxMessages && !stopping) await new Promise((r) => setTimeout(r, 20));
  stopping = true;
  const elapsedMs = (last || performance.now()) - measureStart;
  if (inflight > 0) await Promise.race([new Promise((r) => (drained = r)), new Promise((r) => setTimeout(r, 5000))]);
  await Promise.all(sockets.map((socket) => new Promise((resolve) => {
    if (socket.readyState === WebSocket.CLOSED) return resolve();
    const timer = setTimeout(() => { socket.terminate(); resolve(); }, 3000);
    socket.once('close', () => { clearTimeout(timer); resolve(); });
    socket.close(1000);
  })));
  post('done', {
    latencies: latencies.slice(0, n), elapsedMs, statuses: { echo: n, sockets: sockets.length },
    errors, timeouts: 0, resets: 0, mismatches, firstError, bytes,
  });
}

ws().catch((error) => post('fatal', String((error && error.stack) || error)));
`;

/**
 * Runs one scenario in a worker. `onMeasuring` fires when the warm-up is over
 * and `onDone` when the result arrives, both while the worker's thread still
 * exists, so that its CPU time can be read; `loadThreads` gets the thread ids
 * that appeared with the worker.
 */
function runLoad(
  options: WsLoadOptions,
  hooks: { onMeasuring: (loadThreads: number[]) => void; onDone: () => void },
): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const threadsBefore = new Set(threadIds());
    const worker = new Worker(LOAD_WORKER, { eval: true, workerData: options });
    const backstop = setTimeout(
      () => {
        void worker.terminate();
        reject(new Error('load worker did not finish in time'));
      },
      (options.warmupSeconds + options.seconds) * 1000 + 60_000,
    );
    const finish = () => {
      clearTimeout(backstop);
      void worker.terminate();
    };
    worker.on('message', (message: { type: 'measuring' } | { type: 'done'; value: LoadResult } | { type: 'fatal'; value: string }) => {
      if (message.type === 'measuring') hooks.onMeasuring(threadIds().filter((id) => !threadsBefore.has(id)));
      else if (message.type === 'done') {
        hooks.onDone();
        finish();
        resolve(message.value);
      } else {
        finish();
        reject(new Error(`load worker failed: ${message.value}`));
      }
    });
    worker.once('error', (error) => {
      finish();
      reject(error);
    });
  });
}

function threadIds(): number[] {
  return readdirSync('/proc/self/task').map(Number);
}

// ---------------------------------------------------------------------------
// CPU accounting from /proc (clock ticks of utime + stime)

interface CpuProbe {
  label: string;
  read: () => number;
}

function snapshot(probes: CpuProbe[]): number[] {
  return probes.map((p) => p.read());
}

/** CPU µs per request of each probe between two snapshots. */
function cpuPerOp(probes: CpuProbe[], before: number[], after: number[], ops: number): Record<string, number> {
  const out: Record<string, number> = {};
  probes.forEach((p, i) => {
    out[p.label] = ((after[i]! - before[i]!) / CLK_TCK / Math.max(1, ops)) * 1e6;
  });
  return out;
}

// ---------------------------------------------------------------------------
// berth API

async function waitForStatus(apiUrl: string, backendId: string, wanted: string): Promise<void> {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  let last = '';
  while (Date.now() < deadline) {
    const { status } = await call<{ status: string }>(apiUrl, '', 'GET', `/v2/backend/${backendId}/status`);
    last = status;
    if (status === wanted) return;
    if (status === 'terminated') throw new Error(`backend ${backendId} is terminated, waited for ${wanted}`);
    await sleep(100);
  }
  throw new Error(`backend ${backendId} did not reach ${wanted} within ${STEP_TIMEOUT_MS} ms (last: ${last})`);
}

/** One GET through a path; checks that the app saw `/bench` and, through berth, berth's headers. */
async function sanityCheck(label: string, url: string, backendId: string, viaBerth: boolean): Promise<number> {
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${label}: GET ${url} → ${response.status} ${text.slice(0, 300)}`);
  const echo = JSON.parse(text) as { url: string; headers: Record<string, string>; env: { SESSION_BACKEND_ID: string } };
  if (echo.url !== PATH) throw new Error(`${label}: the app saw ${echo.url}, expected ${PATH}`);
  if (echo.env.SESSION_BACKEND_ID !== backendId) throw new Error(`${label}: answered by ${echo.env.SESSION_BACKEND_ID}, expected ${backendId}`);
  if (viaBerth && echo.headers['x-verified-backend'] !== backendId) throw new Error(`${label}: x-verified-backend missing or wrong`);
  return Buffer.byteLength(text);
}

/** Open descriptors of this process, and how many are sockets. */
function fdCounts(): { fds: number; sockets: number } {
  let fds = 0;
  let sockets = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    fds++;
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:')) sockets++;
    } catch {
      // Closed meanwhile.
    }
  }
  return { fds, sockets };
}

// ---------------------------------------------------------------------------
// Output

interface Row {
  path: 'direct' | 'berth' | 'nginx';
  result: LoadResult;
  summary: Summary;
  rate: number;
  cpu: Record<string, number>;
  load: string;
}

function makeRow(path: Row['path'], result: LoadResult, cpu: Record<string, number>): Row {
  const summary = summarize(result.latencies);
  return { path, result, summary, rate: summary.n / (result.elapsedMs / 1000), cpu, load: loadavg(1) };
}

const CPU_COLUMNS = ['load gen', 'berth', 'other threads', 'nginx', 'docker-proxy', 'app'];

function printResults(title: string, unit: string, rows: Row[], skipped: string | undefined): void {
  const http = unit === 'request';
  console.log(`\n### ${title}\n`);
  printTable(
    ['path', `${unit}s/s`, 'p50 ms', 'p99 ms', 'mean ms', 'max ms', `${unit}s`, 'non-2xx', 'errors', `bytes/${unit}`, `CPU µs/${unit}: ${CPU_COLUMNS.join(' · ')}`, 'load 1 min after'],
    'lrrrrrrrrrll',
    rows.map((r) => {
      const s = r.summary;
      const non2xx = Object.entries(r.result.statuses)
        .filter(([code]) => /^\d+$/.test(code) && !code.startsWith('2'))
        .reduce((sum, [, count]) => sum + count, 0);
      const errors = r.result.errors + r.result.mismatches;
      const cpu = CPU_COLUMNS.map((c) => (r.cpu[c] === undefined || !Number.isFinite(r.cpu[c]) ? '–' : r.cpu[c]!.toFixed(0))).join(' · ');
      return [r.path, r.rate.toFixed(0), fmt(s.p50), fmt(s.p99), fmt(s.mean), fmt(s.max, 1), s.n, http ? non2xx : '–', errors, (r.result.bytes / Math.max(1, s.n)).toFixed(0), cpu, r.load];
    }),
  );
  if (skipped) console.log(`| nginx | skipped: ${skipped} |${' |'.repeat(10)}`);
  const by = (p: Row['path']) => rows.find((r) => r.path === p);
  const pairs: Array<[string, Row | undefined, Row | undefined]> = [
    ['berth/direct', by('berth'), by('direct')],
    ['nginx/direct', by('nginx'), by('direct')],
    ['berth/nginx', by('berth'), by('nginx')],
  ];
  console.log('');
  printTable(
    ['ratio', `${unit}s/s`, 'p50', 'p99'],
    'lrrr',
    pairs.flatMap(([name, a, b]) => (a && b ? [[name, ratio(a.rate, b.rate), ratio(a.summary.p50, b.summary.p50), ratio(a.summary.p99, b.summary.p99)]] : [])),
  );
  for (const r of rows) {
    const { statuses, errors, timeouts, resets, mismatches, firstError } = r.result;
    if (errors + mismatches + resets + timeouts > 0 || Object.keys(statuses).some((c) => /^\d+$/.test(c) && !c.startsWith('2'))) {
      console.log(
        `\n${r.path}: statuses ${JSON.stringify(statuses)}, errors ${errors}, timeouts ${timeouts}, resets ${resets}, mismatches ${mismatches}; first error: ${firstError}`,
      );
    }
  }
}

// ---------------------------------------------------------------------------

async function main(): Promise<number> {
  const docker = createTestDocker();
  const nginxBinary = findNginx(flags.nginx ?? process.env.NGINX);

  console.log('## Proxy: WebSocket\n');
  console.log('```');
  for (const line of machine(await dockerVersion(docker))) console.log(line);
  console.log(`ws:      ${WS_SOCKETS} sockets, ${WS_BYTES}-byte text echo round trips, ${WARMUP_SECONDS} s warm-up, then ${SECONDS} s or ${WS_MAX_MESSAGES} round trips per path`);
  console.log(`nginx:   ${nginxBinary ? `${nginxBinary} (${nginxVersion(nginxBinary)})` : 'not found'}${nginxBinary ? `, worker_processes ${NGINX_WORKERS}, keepalive 64 upstream, proxy_http_version 1.1, access_log off` : ''}`);
  console.log('```');

  console.error('building or checking the test image…');
  await ensureTestImage(docker);

  console.error('starting berth (PGlite)…');
  const berth = await startBerth({ kind: 'pglite' }, docker, 'warn');
  const problems: string[] = [];
  const notes: string[] = [];
  let backendId: string | undefined;
  let nginx: Nginx | undefined;
  let nginxSkipped: string | undefined;
  const wsRows: Row[] = [];
  let token = '';

  try {
    token = await setUpAccount(berth.apiUrl);
    const connected = await call<{ backend_id: string; url: string }>(berth.apiUrl, token, 'POST', `/v2/service/${ACCOUNT}/${SERVICE}/connect`, {
      key: 'proxy-bench',
      user: 'bench-user',
      auth: { role: 'bench' },
      // Direct and nginx traffic is not berth activity: keep the backend from being swept meanwhile.
      spawn: { max_idle_seconds: 3600 },
    });
    backendId = connected.backend_id;
    await waitForStatus(berth.apiUrl, backendId, 'ready');
    const info = await docker.getContainer(`berth-${backendId}`).inspect();
    const hostPort = Number(info.NetworkSettings.Ports['8080/tcp']?.find((b) => b.HostIp === '127.0.0.1')?.HostPort);
    if (!Number.isInteger(hostPort)) throw new Error(`no published 127.0.0.1 port on berth-${backendId}`);
    const appPid = info.State.Pid;
    const proxyBase = connected.url.replace(/\/$/, '');
    const proxyPid = dockerProxyPid(hostPort);
    if (proxyPid === undefined) notes.push('no docker-proxy found for the published port (the engine routes it in the kernel): its column is empty.');

    if (!nginxBinary) {
      nginxSkipped = `nginx not found (${flags.nginx ?? process.env.NGINX ?? '/usr/sbin/nginx, PATH'}); apt-get install nginx, or .ci/run`;
    } else {
      try {
        nginx = await startNginx(nginxBinary, { upstreamPort: hostPort, workers: NGINX_WORKERS, checkPath: PATH });
      } catch (error) {
        nginxSkipped = `nginx failed to start: ${(error as Error).message.slice(0, 300)}`;
      }
    }
    if (nginxSkipped) console.error(`nginx row skipped: ${nginxSkipped}`);

    const urls: Record<Row['path'], string | undefined> = {
      direct: `http://127.0.0.1:${hostPort}${PATH}`,
      berth: `${proxyBase}${PATH}`,
      nginx: nginx ? `http://127.0.0.1:${nginx.port}${PATH}` : undefined,
    };
    const sizes: string[] = [];
    for (const [path, url] of Object.entries(urls) as Array<[Row['path'], string | undefined]>) {
      if (url) sizes.push(`${path} ${await sanityCheck(path, url, backendId, path === 'berth')} B`);
    }
    notes.push(
      `response body sizes (the app echoes the request headers, so berth's x-verified-* and x-forwarded-for make its answers longer): ${sizes.join(', ')}.`,
    );

    const mainPid = process.pid;
    const thread = (tid: number) => cpuTicks(`/proc/${mainPid}/task/${tid}/stat`);
    /** The load worker's own thread(s), learnt when each scenario starts measuring. */
    let loadThreads: number[] = [];
    const loadGen = () => loadThreads.reduce((sum, tid) => sum + thread(tid), 0);
    const probes: CpuProbe[] = [
      { label: 'load gen', read: loadGen },
      { label: 'berth', read: () => thread(mainPid) },
      // V8's platform threads (GC) and libuv's pool serve both isolates of this process.
      { label: 'other threads', read: () => cpuTicks(`/proc/${mainPid}/stat`) - thread(mainPid) - loadGen() },
      { label: 'nginx', read: () => (nginx ? nginx.workerPids().reduce((sum, pid) => sum + processCpu(pid)(), 0) + processCpu(nginx.child.pid!)() : NaN) },
      { label: 'docker-proxy', read: proxyPid === undefined ? () => NaN : processCpu(proxyPid) },
      { label: 'app', read: processCpu(appPid) },
    ];

    const proxyServer = (berth.berth as unknown as { proxy?: Record<string, unknown> }).proxy;
    const berthState = () => {
      const agent = proxyServer?.agent as { sockets: Record<string, unknown[]>; freeSockets: Record<string, unknown[]> } | undefined;
      const activity = proxyServer?.activity as { openCount(id: string): number } | undefined;
      const count = (m: Record<string, unknown[]> | undefined) => Object.values(m ?? {}).reduce((s, a) => s + a.length, 0);
      return {
        activityOpen: activity ? activity.openCount(backendId!) : NaN,
        agentActive: count(agent?.sockets),
        agentFree: count(agent?.freeSockets),
        upgradeSockets: (proxyServer?.upgradeSockets as Set<unknown> | undefined)?.size ?? NaN,
        ...fdCounts(),
      };
    };
    const leakLines: string[] = [`before load: ${JSON.stringify(berthState())}`];

    const measure = async (path: Row['path'], options: WsLoadOptions): Promise<Row> => {
      let before: number[] = [];
      let after: number[] = [];
      console.error(`  ${options.kind} ${path}: ${options.warmupSeconds} s warm-up, then up to ${options.seconds} s…`);
      const result = await runLoad(options, {
        onMeasuring: (threads) => {
          loadThreads = threads;
          before = snapshot(probes);
        },
        onDone: () => (after = snapshot(probes)),
      });
      return makeRow(path, result, cpuPerOp(probes, before, after, result.latencies.length));
    };

    // WebSockets.
    const wsUrl = (http: string) => http.replace(/^http/, 'ws').replace(new RegExp(`${PATH}$`), '/ws');
    for (const path of ['direct', 'berth', 'nginx'] as const) {
      const url = urls[path];
      if (!url || interrupted()) continue;
      wsRows.push(
        await measure(path, {
          kind: 'ws',
          wsPath: WS_PATH,
          url: wsUrl(url),
          sockets: WS_SOCKETS,
          warmupSeconds: WARMUP_SECONDS,
          seconds: SECONDS,
          maxMessages: WS_MAX_MESSAGES,
          bytes: WS_BYTES,
        }),
      );
      await sleep(1000);
      const open = await fetch(`http://127.0.0.1:${hostPort}/sockets`, { signal: AbortSignal.timeout(5000) })
        .then((r) => r.json() as Promise<{ open: number }>)
        .catch(() => ({ open: NaN }));
      if (open.open !== 0) problems.push(`after the WebSocket run via ${path}, the app still has ${open.open} open socket(s) (1 s after all were closed)`);
      if (path === 'berth') leakLines.push(`1 s after the WebSocket load through berth: ${JSON.stringify(berthState())}`);
    }
    for (const [kind, rows] of [['WebSocket', wsRows]] as const) {
      for (const r of rows) {
        const bad = Object.entries(r.result.statuses).filter(([code]) => /^\d+$/.test(code) && !code.startsWith('2'));
        const failures = r.result.errors + r.result.mismatches + bad.reduce((sum, [, count]) => sum + count, 0);
        if (failures > 0) problems.push(`${kind} via ${r.path}: ${failures} failed (statuses ${JSON.stringify(r.result.statuses)}, first error: ${r.result.firstError})`);
      }
    }
    await sleep(6000);
    leakLines.push(`7 s after the last load (the app's keep-alive timeout is 5 s): ${JSON.stringify(berthState())}`);
    const final = berthState();
    if (final.activityOpen !== 0) problems.push(`berth's activity tracker still counts ${final.activityOpen} open request(s)/socket(s) for the backend after all load ended`);
    if (final.upgradeSockets > 0) problems.push(`berth's proxy still tracks ${final.upgradeSockets} upgrade socket(s) after all WebSockets closed`);
    notes.push(`berth proxy state (activity = open requests/sockets it counts for the backend; agent = pooled sockets towards the app; fds/sockets = this whole process):\n${leakLines.map((l) => `  ${l}`).join('\n')}`);
  } catch (error) {
    problems.push((error as Error).stack ?? String(error));
  } finally {
    console.error('cleaning up…');
    if (nginx) await nginx.stop().catch((error: unknown) => problems.push(`stopping nginx: ${String(error)}`));
    if (backendId && token) {
      try {
        await call(berth.apiUrl, token, 'POST', `/v2/backend/${backendId}/terminate`, {});
        await waitForStatus(berth.apiUrl, backendId, 'terminated');
      } catch (error) {
        problems.push(`terminating backend ${backendId}: ${(error as Error).message}`);
      }
    }
    await berth.stop().catch((error: unknown) => problems.push(`stopping berth: ${String(error)}`));
  }

  console.log(`\nload average at the end: ${loadavg()}`);
  if (wsRows.length > 0) printResults(`WebSocket: ${WS_SOCKETS} sockets, ${WS_BYTES}-byte echo round trips`, 'message', wsRows, nginxSkipped);
  if (notes.length > 0) {
    console.log('\nNotes:');
    for (const n of notes) console.log(`- ${n}`);
  }
  return reportProblems(problems, interrupted());
}

process.exitCode = await main();
