// BERTH_PROXY_EDGE=nginx: nginx serves the proxy port and forwards ready
// routes itself. What the shared proxy suite (test/proxy.test.ts) cannot see
// from outside is checked here: that the edge really forwards alone once it
// has learned a route, that nothing a client sends can pass for the edge,
// and that nginx lives and dies with berth.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { findNginx, NginxEdge } from '../proxy/edge/nginx-process.ts';
import { createLogger } from '../src/core/logger.ts';
import type { ApiClient } from './support/api.ts';
import { createTestService, waitForStatus, waitUntil } from './support/backends.ts';
import { ADMIN_TOKEN, freePort, TestBerth } from './support/berth.ts';
import { BerthProcess } from './support/berth-process.ts';
import { testDatabases } from './support/databases.ts';
import { createTestDocker } from './support/docker.ts';
import { scrape } from './support/metrics.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();
const EDGE = { BERTH_PROXY_EDGE: 'nginx' };

interface Echo {
  url: string;
  headers: Record<string, string>;
}

/** GET with headers exactly as given (fetch would add and merge some). */
function get(base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, json: res.headers['content-type']?.startsWith('application/json') && text ? JSON.parse(text) : undefined });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** The nginx edge inside a running berth: a test reaches in for its pid, nothing else. */
function edgeOf(berth: TestBerth): NginxEdge {
  return (berth.berth as unknown as { proxy: { edge: NginxEdge } }).proxy.edge;
}

describe('the nginx edge', () => {
  let berth: TestBerth;
  let api: ApiClient;
  const backends: string[] = [];

  async function connectReady(body: Record<string, unknown> = {}): Promise<{ backend_id: string; url: string }> {
    const response = await api.post<{ backend_id: string; url: string }>('/v2/service/edged/echo/connect', body);
    expect(response.status).toBe(200);
    backends.push(response.body.backend_id);
    await waitForStatus(api, response.body.backend_id, 'ready');
    return response.body;
  }

  /** Requests answered by the edge alone, and by berth's proxy process, so far (both reported once a second). */
  async function served(): Promise<{ edge: number; berth: number; failedActivityWrites: number }> {
    const metrics = await scrape(berth);
    return {
      edge: metrics('berth_proxy_edge_requests_total', { status_class: '2xx' }) ?? 0,
      berth: metrics('berth_proxy_request_duration_seconds_count', { status_class: '2xx' }) ?? 0,
      // The edge's activity is read before each write: a failed read fails the write.
      failedActivityWrites: metrics('berth_proxy_activity_writes_total', { result: 'error' }) ?? 0,
    };
  }

  /** Sends requests until the edge reports one it answered itself: the route has reached nginx. */
  async function untilLearned(path: string): Promise<void> {
    const start = (await served()).edge;
    await waitUntil(
      async () => {
        expect((await get(berth.proxyUrl, path)).status).toBe(200);
        return (await served()).edge > start;
      },
      15_000,
      'the edge to learn the route',
    );
  }

  beforeAll(async () => {
    await ensureTestImage(docker);
    berth = await TestBerth.start({ database: testDatabases().at(-1)!, env: EDGE });
    api = await createTestService(berth, 'edged');
  });
  afterAll(async () => {
    await berth?.stop();
    await Promise.all(backends.map((id) => docker.getContainer(`berth-${id}`).remove({ force: true }).catch(() => undefined)));
  });

  it('forwards a route it has learned by itself: berth’s proxy sees only the first request', async () => {
    const connection = await connectReady({ user: 'ada' });
    const path = new URL(connection.url).pathname;
    await untilLearned(path);
    const before = await served();
    for (let i = 0; i < 20; i++) {
      const response = await get(berth.proxyUrl, `${path}n/${i}`);
      expect(response.json as Echo).toMatchObject({ url: `/n/${i}`, headers: { 'x-verified-username': 'ada', 'x-verified-backend': connection.backend_id } });
    }
    await waitUntil(async () => (await served()).edge >= before.edge + 20, 10_000, 'the edge to report its requests');
    expect(await served()).toMatchObject({ berth: before.berth, failedActivityWrites: 0 });
  });

  it('takes nothing a client sends for the edge’s word, on either path', async () => {
    const forged = { 'X-Berth-Edge': 'guess 6.6.6.6', 'X-Forwarded-For': '1.2.3.4', Connection: 'x-drop', 'X-Drop': '1' };
    // A fresh token: its first request goes through berth's proxy, the later ones through nginx alone.
    const connection = await connectReady();
    const path = new URL(connection.url).pathname;
    const throughBerth = (await get(berth.proxyUrl, path, forged)).json as Echo;
    await untilLearned(path);
    const throughEdge = (await get(berth.proxyUrl, path, forged)).json as Echo;
    for (const echo of [throughBerth, throughEdge]) {
      expect(echo.headers['x-forwarded-for']).toBe('1.2.3.4, 127.0.0.1');
      expect(echo.headers['x-berth-edge']).toBeUndefined();
      expect(echo.headers['x-drop']).toBeUndefined();
      expect(echo.headers['x-verified-backend']).toBe(connection.backend_id);
    }
  });

  it('leaves a token with an empty user to berth’s proxy, which sends the header empty as without the edge', async () => {
    const connection = await connectReady({ user: '' });
    const path = new URL(connection.url).pathname;
    const before = await served();
    for (let i = 0; i < 3; i++) {
      const echo = (await get(berth.proxyUrl, path)).json as Echo;
      expect(echo.headers['x-verified-username']).toBe('');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await waitUntil(async () => (await served()).berth >= before.berth + 3, 10_000, 'berth’s proxy to count the requests');
  });

  it('starts nginx again when it dies, and learns its routes again', async () => {
    const connection = await connectReady();
    const path = new URL(connection.url).pathname;
    expect((await get(berth.proxyUrl, path)).status).toBe(200);
    const pid = Number(await readFile(`${edgeOf(berth).prefixDir}/nginx.pid`, 'utf8'));
    process.kill(pid, 'SIGKILL');
    // Its workers outlive a killed master (and serve meanwhile); berth clears them and starts nginx afresh.
    const restarted = async () => Number(await readFile(`${edgeOf(berth).prefixDir}/nginx.pid`, 'utf8').catch(() => '0'));
    await waitUntil(async () => ![0, pid].includes(await restarted()), 20_000, 'a new nginx');
    await waitUntil(async () => (await get(berth.proxyUrl, path).catch(() => undefined))?.status === 200, 20_000, 'the edge to serve again');
    await untilLearned(path);
    const before = await served();
    for (let i = 0; i < 5; i++) expect((await get(berth.proxyUrl, path)).status).toBe(200);
    await waitUntil(async () => (await served()).edge >= before.edge + 5, 10_000, 'the new edge to forward alone');
    expect((await served()).berth).toBe(before.berth);
  });
});

describe('the nginx edge starting', () => {
  it('says why when it cannot take the port, and neither retries nor leaves its prefix behind', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const lines: string[] = [];
    const edge = new NginxEdge({
      binary: findNginx(undefined),
      workers: 1,
      host: '127.0.0.1',
      port: (taken.address() as net.AddressInfo).port,
      berthPort: 1,
      limits: { headerTimeoutMs: 30_000, idleTimeoutMs: 60_000, maxConnections: 100, maxConnectionsPerClient: 100 },
      domainHasPort: false,
      logger: createLogger('info', { write: (line: string) => lines.push(line) }),
      onRestart: () => undefined,
    });
    try {
      await expect(edge.start()).rejects.toThrow(/the nginx edge did not start: .*Address already in use/s);
    } finally {
      taken.close();
    }
    // Longer than the first restart delay: a failed start is reported, not retried.
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(lines.filter((line) => line.includes('starting it again'))).toEqual([]);
    expect(existsSync(edge.prefixDir)).toBe(false);
  });
});

describe('the nginx edge of a berth process', () => {
  let berthProcess: BerthProcess | undefined;
  let dataDir = '';
  afterAll(async () => {
    await berthProcess?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('goes with berth: a berth killed outright leaves no nginx serving its port', async () => {
    const [apiPort, proxyPort] = await Promise.all([freePort(), freePort()]);
    dataDir = await mkdtemp(join(tmpdir(), 'berth-edge-killed-'));
    // Its own TMPDIR, where the edge's prefix goes: this test's alone to look at.
    const env = { ...EDGE, TMPDIR: dataDir, BERTH_DATA_DIR: join(dataDir, 'data'), BERTH_ADMIN_TOKEN: ADMIN_TOKEN, BERTH_API_PORT: String(apiPort), BERTH_PROXY_PORT: String(proxyPort) };
    berthProcess = await BerthProcess.start('all', env);
    const proxyUrl = `http://127.0.0.1:${proxyPort}`;
    await waitUntil(async () => (await get(proxyUrl, '/noSuchToken_0123456789/').catch(() => undefined))?.status === 404, 60_000, 'the edge to serve');
    const prefixes = async () => (await readdir(dataDir)).filter((name) => name.startsWith('berth-edge-'));
    expect(await prefixes()).toHaveLength(1);
    await berthProcess.kill();
    await waitUntil(async () => (await get(proxyUrl, '/noSuchToken_0123456789/').catch(() => undefined)) === undefined, 10_000, 'nginx to go');
    // …and its temporary prefix with it.
    await waitUntil(async () => (await prefixes()).length === 0, 10_000, 'the edge’s prefix to be removed');
  });
});
