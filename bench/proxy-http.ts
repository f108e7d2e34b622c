/**
 * The proxy under HTTP load: `npx tsx bench/proxy-http.ts [flags]`.
 *
 * One backend container (the test image's echo app), `GET /bench`, reached by
 * wrk (one thread, its own process) along these paths, interleaved round by
 * round so that drift on the machine hits all of them alike:
 *   direct     127.0.0.1:{published port}: Docker's userland proxy, which every path below also crosses
 *   berth      `berth serve` (npm start's defaults: PGlite, one process), {proxy}/{token}/bench
 *   berth edge `berth serve` with BERTH_PROXY_EDGE=nginx (proxy/edge/): nginx with berth's Lua forwards
 *              the learned route itself, berth's process answers the rest; its own backend, same image
 *   nginx      Debian's nginx, worker_processes 1, keep-alive upstream
 *   nginx + headers  the same nginx, also setting the headers berth sets (x-verified-secret and
 *              -backend, X-Forwarded-For): the app (which echoes every header) then does the same
 *              work behind both, and the difference left is the proxies' own
 *   node floor the least a Node.js proxy does (bench/lib/floor-proxy.mjs: Node's HTTP server
 *              and undici's pool, as berth's proxy uses, and nothing else): Node's own cost
 * Both proxies run one process: equal workers (--workers N gives nginx and the
 * edge N workers each; berth's own proxy stays one process). "machine busy" is the share of
 * all CPUs in use during the run (wrk, Docker's userland proxy and the app
 * included): near 100 %, a second proxy process would only take CPU from them.
 *
 * Each run: a 1 s warm-up run (discarded), then SECONDS. CPU µs/request is the
 * user+system CPU of the proxy's processes (berth's serve process and its
 * workers; nginx's master and workers) divided by the requests served. Every
 * figure printed is the median of the rounds. Everything stays on 127.0.0.1;
 * the backends are terminated and the servers stopped at the end.
 *
 * Flags (or environment; flag wins):
 *   --seconds N      BENCH_PROXY_SECONDS      seconds per measured run (8)
 *   --connections N  BENCH_PROXY_CONNECTIONS  wrk connections (32)
 *   --rounds N       BENCH_PROXY_ROUNDS       rounds (2)
 *   --workers N      BENCH_PROXY_WORKERS      nginx's worker_processes, and the edge's BERTH_PROXY_WORKERS (1)
 *   --profile DIR    BENCH_PROXY_PROFILE      write each berth process's V8 CPU profile into DIR
 *   --before DIR     BENCH_PROXY_BEFORE       also measure the berth of another checkout (e.g. `git worktree add DIR <commit>`
 *                                             with node_modules linked), in front of its own backend: path "berth (before)"
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort } from '../test/support/berth.ts';
import { createTestDocker } from '../test/support/docker.ts';
import { ensureTestImage } from '../test/support/test-image.ts';
import { ACCOUNT, call, SERVICE, setUpAccount, waitReady } from './lib/berth.ts';
import { BerthChild } from './lib/berth-child.ts';
import { handleInterrupt } from './lib/interrupt.ts';
import { dockerVersion, loadavg, machine } from './lib/machine.ts';
import { fmt, printTable, ratio, reportProblems } from './lib/markdown.ts';
import { findNginx, nginxVersion, startNginx, type Nginx } from './lib/nginx.ts';
import { intOption } from './lib/options.ts';
import { CLK_TCK, descendantsOf, machineTicks, processCpu } from './lib/proc.ts';
import { findWrk, medianOf, runWrk, wrkVersion, type MeasuredRun } from './lib/wrk.ts';

const { values: flags } = parseArgs({
  options: {
    seconds: { type: 'string' },
    connections: { type: 'string' },
    rounds: { type: 'string' },
    workers: { type: 'string' },
    profile: { type: 'string' },
    before: { type: 'string' },
  },
});
const SECONDS = intOption('BENCH_PROXY_SECONDS', 8, { flag: flags.seconds });
const CONNECTIONS = intOption('BENCH_PROXY_CONNECTIONS', 32, { flag: flags.connections });
const ROUNDS = intOption('BENCH_PROXY_ROUNDS', 2, { flag: flags.rounds });
const WORKERS = intOption('BENCH_PROXY_WORKERS', 1, { flag: flags.workers });
const PROFILE_DIR = flags.profile ?? process.env.BENCH_PROXY_PROFILE;
const BEFORE = flags.before ?? process.env.BENCH_PROXY_BEFORE;
const PATH = '/bench';
const docker = createTestDocker();
const interrupted = handleInterrupt('run');

interface Berth {
  child: BerthChild;
  token: string;
  backendId: string;
  /** What the app sees as x-verified-secret. */
  secretToken: string;
  url: string;
  hostPort: number;
}

interface Path {
  label: string;
  url: string;
  /** The backend the app's answers must name (x-verified-backend), where the path sets it. */
  backendId: string;
  /** CPU of the proxy's processes so far, in clock ticks (NaN for the direct path). */
  cpuTicks: () => number;
}

const treeCpu = (pid: number) => () => [pid, ...descendantsOf(pid)].reduce((sum, each) => sum + processCpu(each)(), 0);

async function startBerth(bin?: string, env: Record<string, string> = {}): Promise<Berth> {
  const child = await BerthChild.start({ bin, env, ...(PROFILE_DIR ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] } : {}) });
  const token = await setUpAccount(child.apiUrl);
  const connected = await call<{ backend_id: string; url: string; secret_token: string }>(child.apiUrl, token, 'POST', `/v2/service/${ACCOUNT}/${SERVICE}/connect`, {
    key: 'proxy-bench',
    // Direct and nginx traffic is not berth activity: keep the backend from being swept meanwhile.
    spawn: { max_idle_seconds: 3600 },
  });
  await waitReady(child.apiUrl, token, connected.backend_id);
  const info = await docker.getContainer(`berth-${connected.backend_id}`).inspect();
  const hostPort = Number(info.NetworkSettings.Ports['8080/tcp']?.find((binding) => binding.HostIp === '127.0.0.1')?.HostPort);
  if (!Number.isInteger(hostPort)) throw new Error(`no published 127.0.0.1 port on berth-${connected.backend_id}`);
  return { child, token, backendId: connected.backend_id, secretToken: connected.secret_token, url: `${connected.url.replace(/\/$/, '')}${PATH}`, hostPort };
}

const FLOOR_PROXY = fileURLToPath(new URL('./lib/floor-proxy.mjs', import.meta.url));

/** bench/lib/floor-proxy.mjs in front of the backend's published port, listening once it says so. */
async function startFloorProxy(upstreamPort: number): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const child = spawn(process.execPath, [FLOOR_PROXY, String(upstreamPort), String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await Promise.race([once(child.stdout!, 'data'), once(child, 'exit').then(() => Promise.reject(new Error('the floor proxy exited')))]);
  return { child, url: `http://127.0.0.1:${port}${PATH}` };
}

async function stopBerth(berth: Berth, problems: string[]): Promise<void> {
  try {
    await call(berth.child.apiUrl, berth.token, 'POST', `/v2/backend/${berth.backendId}/terminate`, { hard: true });
    for (let tries = 0; tries < 100; tries++) {
      const { status } = await call<{ status: string }>(berth.child.apiUrl, '', 'GET', `/v2/backend/${berth.backendId}/status`);
      if (status === 'terminated') break;
      await sleep(200);
    }
  } catch (error) {
    problems.push(`terminating ${berth.backendId}: ${String(error)}`);
  }
  await berth.child.stop();
}

/** One GET: the app must see `/bench`, and through berth, berth's verified headers. */
async function sanityCheck(path: Path): Promise<void> {
  const response = await fetch(path.url, { signal: AbortSignal.timeout(10_000) });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${path.label}: GET ${path.url} → ${response.status} ${text.slice(0, 300)}`);
  const echo = JSON.parse(text) as { url: string; headers: Record<string, string> };
  if (echo.url !== PATH) throw new Error(`${path.label}: the app saw ${echo.url}, expected ${PATH}`);
  if ((path.label.startsWith('berth') || path.label === 'nginx + headers') && echo.headers['x-verified-backend'] !== path.backendId) throw new Error(`${path.label}: x-verified-backend missing or wrong`);
}

async function measure(wrk: string, path: Path): Promise<MeasuredRun> {
  await runWrk(wrk, { url: path.url, connections: CONNECTIONS, seconds: 1 });
  const before = path.cpuTicks();
  const machineBefore = machineTicks();
  const result = await runWrk(wrk, { url: path.url, connections: CONNECTIONS, seconds: SECONDS });
  const ticks = path.cpuTicks() - before;
  const machineAfter = machineTicks();
  const machineBusy = (machineAfter.busy - machineBefore.busy) / Math.max(1, machineAfter.total - machineBefore.total);
  return { ...result, cpuUsPerRequest: ((ticks / CLK_TCK) * 1e6) / Math.max(1, result.requests), machineBusy };
}

async function main(): Promise<number> {
  const wrk = findWrk();
  if (!wrk) {
    console.error('wrk is not installed (apt-get install wrk; .ci/run installs it)');
    return 1;
  }
  const nginxBinary = findNginx();
  console.log('## Proxy: HTTP\n');
  console.log('```');
  for (const line of machine(await dockerVersion(docker), wrkVersion(wrk))) console.log(line);
  console.log(`wrk -t1 -c${CONNECTIONS}, 1 s warm-up then ${SECONDS} s per run, ${ROUNDS} round(s), medians of the rounds; GET ${PATH}`);
  console.log(
    `nginx: ${nginxBinary ? `${nginxBinary} (${nginxVersion(nginxBinary)}), worker_processes ${WORKERS}, keepalive 64 upstream, proxy_http_version 1.1, access_log off` : 'not found'}`,
  );
  console.log('```');
  console.error('building or checking the test image…');
  await ensureTestImage(docker);

  const problems: string[] = [];
  const berths: Berth[] = [];
  const nginxes: Nginx[] = [];
  const results = new Map<string, MeasuredRun[]>();
  const loads: string[] = [];
  const paths: Path[] = [];
  let floor: ChildProcess | undefined;
  try {
    console.error('starting berth (PGlite, one process)…');
    const single = await startBerth();
    berths.push(single);
    paths.push({ label: 'direct', url: `http://127.0.0.1:${single.hostPort}${PATH}`, backendId: single.backendId, cpuTicks: () => NaN });
    paths.push({ label: 'berth', url: single.url, backendId: single.backendId, cpuTicks: treeCpu(single.child.pid) });
    if (nginxBinary) {
      console.error('starting berth with the nginx edge (PGlite)…');
      const edged = await startBerth(undefined, { BERTH_PROXY_EDGE: 'nginx', BERTH_PROXY_NGINX: nginxBinary, BERTH_PROXY_WORKERS: String(WORKERS) });
      berths.push(edged);
      paths.push({ label: 'berth edge', url: edged.url, backendId: edged.backendId, cpuTicks: treeCpu(edged.child.pid) });
      const one = await startNginx(nginxBinary, { upstreamPort: single.hostPort, workers: String(WORKERS), checkPath: PATH });
      nginxes.push(one);
      paths.push({ label: 'nginx', url: `http://127.0.0.1:${one.port}${PATH}`, backendId: single.backendId, cpuTicks: treeCpu(one.child.pid!) });
      const headers = { 'x-verified-secret': single.secretToken, 'x-verified-backend': single.backendId };
      const same = await startNginx(nginxBinary, { upstreamPort: single.hostPort, workers: String(WORKERS), checkPath: PATH, headers });
      nginxes.push(same);
      paths.push({ label: 'nginx + headers', url: `http://127.0.0.1:${same.port}${PATH}`, backendId: single.backendId, cpuTicks: treeCpu(same.child.pid!) });
    }
    const floorProxy = await startFloorProxy(single.hostPort);
    floor = floorProxy.child;
    paths.push({ label: 'node floor', url: floorProxy.url, backendId: single.backendId, cpuTicks: processCpu(floorProxy.child.pid!) });
    if (BEFORE) {
      console.error(`starting berth (PGlite, one process) from ${BEFORE}…`);
      const before = await startBerth(`${BEFORE.replace(/\/$/, '')}/bin/berth.js`);
      berths.push(before);
      paths.splice(2, 0, { label: 'berth (before)', url: before.url, backendId: before.backendId, cpuTicks: treeCpu(before.child.pid) });
    }
    for (const path of paths) await sanityCheck(path);

    for (let round = 0; round < ROUNDS && !interrupted(); round++) {
      loads.push(loadavg(1));
      for (const path of paths) {
        if (interrupted()) break;
        console.error(`round ${round + 1}: ${path.label}…`);
        results.set(path.label, [...(results.get(path.label) ?? []), await measure(wrk, path)]);
      }
    }
  } catch (error) {
    problems.push((error as Error).stack ?? String(error));
  } finally {
    floor?.kill();
    for (const nginx of nginxes) await nginx.stop().catch((error: unknown) => problems.push(`stopping nginx: ${String(error)}`));
    for (const berth of berths) await stopBerth(berth, problems);
  }

  const rows = paths.flatMap((path) => {
    const runs = results.get(path.label);
    return runs?.length ? [{ label: path.label, result: medianOf(runs) }] : [];
  });
  console.log(`\nload average (1 min) at each round's start: ${loads.join(', ')}; at the end: ${loadavg()}\n`);
  printTable(
    ['path', 'requests/s', 'p50 ms', 'p90 ms', 'p99 ms', 'non-2xx', 'errors', 'proxy CPU µs/request', 'machine busy'],
    'lrrrrrrrr',
    rows.map(({ label, result: r }) => [
      label, r.requestsPerSecond.toFixed(0), fmt(r.p50), fmt(r.p90), fmt(r.p99), r.non2xx, r.errors, fmt(r.cpuUsPerRequest, 0), `${fmt((r.machineBusy ?? NaN) * 100, 0)} %`,
    ]),
  );
  const find = (label: string) => rows.find((row) => row.label === label)?.result;
  const ratioRows: string[][] = [];
  const berth = find('berth');
  const nginx = find('nginx');
  if (berth && nginx) ratioRows.push(['berth / nginx', ratio(berth.requestsPerSecond, nginx.requestsPerSecond), fmt(berth.p99 - nginx.p99), ratio(berth.cpuUsPerRequest, nginx.cpuUsPerRequest)]);
  const edge = find('berth edge');
  if (edge && nginx) ratioRows.push(['berth edge / nginx', ratio(edge.requestsPerSecond, nginx.requestsPerSecond), fmt(edge.p99 - nginx.p99), ratio(edge.cpuUsPerRequest, nginx.cpuUsPerRequest)]);
  const nginxSame = find('nginx + headers');
  if (edge && nginxSame) ratioRows.push(['berth edge / nginx + headers', ratio(edge.requestsPerSecond, nginxSame.requestsPerSecond), fmt(edge.p99 - nginxSame.p99), ratio(edge.cpuUsPerRequest, nginxSame.cpuUsPerRequest)]);
  if (berth && nginxSame) ratioRows.push(['berth / nginx + headers', ratio(berth.requestsPerSecond, nginxSame.requestsPerSecond), fmt(berth.p99 - nginxSame.p99), ratio(berth.cpuUsPerRequest, nginxSame.cpuUsPerRequest)]);
  if (edge && berth) ratioRows.push(['berth edge / berth', ratio(edge.requestsPerSecond, berth.requestsPerSecond), fmt(edge.p99 - berth.p99), ratio(edge.cpuUsPerRequest, berth.cpuUsPerRequest)]);
  const before = find('berth (before)');
  if (berth && before) ratioRows.push(['berth / berth (before)', ratio(berth.requestsPerSecond, before.requestsPerSecond), fmt(berth.p99 - before.p99), ratio(berth.cpuUsPerRequest, before.cpuUsPerRequest)]);
  if (before && nginx) ratioRows.push(['berth (before) / nginx', ratio(before.requestsPerSecond, nginx.requestsPerSecond), fmt(before.p99 - nginx.p99), ratio(before.cpuUsPerRequest, nginx.cpuUsPerRequest)]);
  const floorRun = find('node floor');
  if (floorRun && nginx) ratioRows.push(['node floor / nginx', ratio(floorRun.requestsPerSecond, nginx.requestsPerSecond), fmt(floorRun.p99 - nginx.p99), ratio(floorRun.cpuUsPerRequest, nginx.cpuUsPerRequest)]);
  if (berth && floorRun) ratioRows.push(['berth / node floor', ratio(berth.requestsPerSecond, floorRun.requestsPerSecond), fmt(berth.p99 - floorRun.p99), ratio(berth.cpuUsPerRequest, floorRun.cpuUsPerRequest)]);
  const direct = find('direct');
  for (const label of ['berth', 'berth edge', 'berth (before)', 'nginx']) {
    const r = find(label);
    if (r && direct) ratioRows.push([`${label} / direct`, ratio(r.requestsPerSecond, direct.requestsPerSecond), fmt(r.p99 - direct.p99), '']);
  }
  console.log('');
  printTable(['ratio', 'requests/s', 'p99 difference ms', 'CPU/request'], 'lrrr', ratioRows);
  console.log(`\ngoal: berth / nginx ≥ 0.9 at equal workers (${WORKERS} each for nginx and the edge), p99 within 1 ms of nginx`);
  for (const row of rows) if (row.result.non2xx > 0 || row.result.errors > 0) problems.push(`${row.label}: ${row.result.non2xx} non-2xx, ${row.result.errors} socket errors`);
  return reportProblems(problems, interrupted());
}

process.exitCode = await main();
