/**
 * Many idle WebSockets through one proxy process: `npx tsx bench/websocket-scale.ts`.
 *
 * berth runs as two processes on one PostgreSQL (TEST_DATABASE_URL): `berth
 * serve` (API and node) and `berth serve --role proxy`, the process measured:
 * every socket goes through it. (The embedded PGlite cannot be shared between
 * processes, and in an all-in-one process it keeps hundreds of MiB of its own,
 * which would hide what the sockets cost.) The proxy's open-files limit is
 * raised with prlimit where allowed: each proxied WebSocket holds two
 * descriptors; where the limit cannot be raised, as many sockets as fit in the
 * one it has, and the output says so). BACKENDS backends of the test image each take SOCKETS / BACKENDS
 * WebSockets (Docker's userland proxy in front of each backend holds two
 * descriptors per socket as well, within the engine's own limit). Sockets are
 * opened through the proxy in batches of BATCH, each waiting for the app's
 * hello, then all sit idle for IDLE seconds; berth's resident memory is read
 * before, once all are open, and after the idle time. Then every socket is
 * closed and the backends terminated. Everything stays on 127.0.0.1; the
 * opening is bounded by BENCH_SECONDS.
 *
 * Tunables: BENCH_WS_SOCKETS (10000), BENCH_WS_BACKENDS (4), BENCH_WS_BATCH (250),
 * BENCH_WS_IDLE (30 s: V8 gives memory back once allocation has been quiet a while), BENCH_SECONDS (180),
 * BENCH_WS_EDGE (0; 1: the proxy process runs with BERTH_PROXY_EDGE=nginx, and the memory printed is
 * that of the proxy process with its nginx, and of nginx's worker alone, which then holds the sockets).
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { createPostgresDatabase } from '../test/support/databases.ts';
import { createTestDocker } from '../test/support/docker.ts';
import { ensureTestImage } from '../test/support/test-image.ts';
import { ACCOUNT, call, dropDatabase, SERVICE, setUpAccount, waitReady } from './lib/berth.ts';
import { BerthChild } from './lib/berth-child.ts';
import { handleInterrupt } from './lib/interrupt.ts';
import { dockerVersion, loadavg, machine } from './lib/machine.ts';
import { fmt, printTable, reportProblems } from './lib/markdown.ts';
import { intOption } from './lib/options.ts';
import { descendantsOf, rssOf } from './lib/proc.ts';

const WANTED = intOption('BENCH_WS_SOCKETS', 10_000);
const BACKENDS = intOption('BENCH_WS_BACKENDS', 4);
const BATCH = intOption('BENCH_WS_BATCH', 250);
const IDLE_SECONDS = intOption('BENCH_WS_IDLE', 30);
const SECONDS = intOption('BENCH_SECONDS', 180);
const EDGE = intOption('BENCH_WS_EDGE', 0) === 1;
const GOAL_MIB = 150;
const interrupted = handleInterrupt('run');

const mib = (bytes: number) => bytes / 2 ** 20;

/** Opens one WebSocket and resolves once the app's hello arrived; rejects after 20 s. */
function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: false });
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new Error('no hello within 20 s'));
    }, 20_000);
    socket.once('message', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

const docker = createTestDocker();
await ensureTestImage(docker);
const problems: string[] = [];
const sockets: WebSocket[] = [];
let failures = 0;
let firstFailure = '';
const memory: Array<[string, number[]]> = [];
let openedInMs = NaN;

// Two descriptors per proxied socket, and room for the rest.
if (!process.env.TEST_DATABASE_URL) throw new Error('TEST_DATABASE_URL must name a PostgreSQL server (see the comment at the top)');
const databaseUrl = await createPostgresDatabase();
const berth = await BerthChild.start({ databaseUrl });
const proxy = await BerthChild.start({
  role: 'proxy',
  databaseUrl,
  fileLimit: WANTED * 2 + 4096,
  env: {
    BERTH_MAX_CONNECTIONS: String(WANTED + 1000),
    BERTH_MAX_CONNECTIONS_PER_CLIENT: String(WANTED + 1000),
    ...(EDGE ? { BERTH_PROXY_EDGE: 'nginx' } : {}),
  },
});
/** The proxy process's RSS; with the edge, its whole tree (the shell, nginx's master and worker) and the worker alone. */
const rss = (): number[] => {
  if (!EDGE) return [proxy.rssBytes()];
  const tree = [proxy.pid, ...descendantsOf(proxy.pid)];
  const workers = tree.filter((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('nginx: worker'));
  return [tree.reduce((sum, pid) => sum + rssOf(pid), 0), workers.reduce((sum, pid) => sum + rssOf(pid), 0)];
};
const fileLimit = proxy.fileLimit();
const SOCKETS = Math.min(WANTED, Math.floor((fileLimit - 1024) / 2));
if (SOCKETS < WANTED) console.error(`the proxy's open-files limit is ${fileLimit}: ${SOCKETS} sockets fit, not ${WANTED}`);
const backends: string[] = [];
let token = '';
try {
  token = await setUpAccount(berth.apiUrl);
  const urls: string[] = [];
  for (let i = 0; i < BACKENDS; i++) {
    const connected = await call<{ backend_id: string; url: string }>(berth.apiUrl, token, 'POST', `/v2/service/${ACCOUNT}/${SERVICE}/connect`, {
      key: `scale-${i}`,
      spawn: { max_idle_seconds: 3600 },
    });
    backends.push(connected.backend_id);
    await waitReady(berth.apiUrl, token, connected.backend_id);
    const url = new URL(connected.url);
    urls.push(`${proxy.proxyUrl.replace(/^http/, 'ws')}${url.pathname.replace(/\/$/, '')}/ws`);
  }
  await sleep(2000);
  memory.push(['before any socket', rss()]);
  const deadline = Date.now() + SECONDS * 1000;
  const started = performance.now();
  while (sockets.length + failures < SOCKETS && Date.now() < deadline && !interrupted()) {
    const batch = Math.min(BATCH, SOCKETS - sockets.length - failures);
    const base = sockets.length + failures;
    const results = await Promise.allSettled(Array.from({ length: batch }, (_, i) => open(urls[(base + i) % urls.length]!)));
    for (const result of results) {
      if (result.status === 'fulfilled') sockets.push(result.value);
      else {
        failures++;
        firstFailure ||= String(result.reason);
      }
    }
  }
  openedInMs = performance.now() - started;
  memory.push([`${sockets.length} sockets open`, rss()]);
  await sleep(IDLE_SECONDS * 1000);
  memory.push([`after ${IDLE_SECONDS} s idle`, rss()]);
  const closedBefore = sockets.filter((socket) => socket.readyState !== WebSocket.OPEN).length;
  if (closedBefore > 0) problems.push(`${closedBefore} socket(s) closed while idle`);
  if (failures > 0) problems.push(`${failures} of ${SOCKETS} sockets failed to open; first: ${firstFailure}`);
  if (sockets.length < SOCKETS && failures === 0) problems.push(`only ${sockets.length} of ${SOCKETS} sockets opened within ${SECONDS} s`);
} catch (error) {
  problems.push((error as Error).stack ?? String(error));
} finally {
  for (const socket of sockets) socket.terminate();
  for (const id of backends) await call(berth.apiUrl, token, 'POST', `/v2/backend/${id}/terminate`, { hard: true }).catch(() => undefined);
  await sleep(2000);
  await proxy.stop();
  await berth.stop();
  await dropDatabase(databaseUrl).catch((error: unknown) => problems.push(`dropping ${databaseUrl}: ${String(error)}`));
}

console.log(`## ${SOCKETS} idle WebSockets through one proxy process (berth serve --role proxy)\n`);
console.log('```');
for (const line of machine(await dockerVersion(docker))) console.log(line);
console.log(`${BACKENDS} backends, batches of ${BATCH}, ${IDLE_SECONDS} s idle; the proxy's open-files limit ${fileLimit}; load after: ${loadavg()}`);
if (SOCKETS < WANTED) console.log(`${WANTED} sockets need ${WANTED * 2} descriptors in the proxy; its limit (${fileLimit}, not raisable here) fits ${SOCKETS}`);
console.log('```\n');
printTable(
  EDGE ? ['moment', 'proxy process + nginx RSS MiB', 'nginx worker RSS MiB'] : ['moment', 'proxy process RSS MiB'],
  EDGE ? 'lrr' : 'lr',
  memory.map(([moment, bytes]) => [moment, ...bytes.map((each) => fmt(mib(each), 1))]),
);
const [before, , after] = memory;
if (before && after && sockets.length > 0) {
  console.log(
    `\n${sockets.length} sockets opened in ${fmt(openedInMs / 1000, 1)} s; ` +
      `${fmt((after[1][0]! - before[1][0]!) / sockets.length / 1024, 1)} KiB of the proxy's memory per socket; goal: under ${GOAL_MIB} MiB with ${WANTED} open`,
  );
}
process.exitCode = reportProblems(problems, interrupted());
