import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { errorBodyMatching, type ApiClient } from './support/api.ts';
import { createTestService, waitForStatus, waitUntil } from './support/backends.ts';
import { TestBerth } from './support/berth.ts';
import { testDatabases } from './support/databases.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();

interface Connection {
  backend_id: string;
  spawned: boolean;
  status: string;
  token: string;
  url: string;
  secret_token: string;
  ready_url: string;
}

/** What the test app echoes for every HTTP request. */
interface Echo {
  method: string;
  url: string;
  headers: Record<string, string>;
  body_length: number;
  body_sha256: string;
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

/** One HTTP request with its path sent exactly as written (fetch would normalize it). */
function request(
  base: string,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: Buffer | Buffer[] } = {},
): Promise<RawResponse> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, method: options.method ?? 'GET', path, headers: options.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const json = res.headers['content-type']?.startsWith('application/json') && text ? JSON.parse(text) : undefined;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    // An array goes out in chunks (Transfer-Encoding: chunked), a buffer with a Content-Length.
    if (Array.isArray(options.body)) for (const chunk of options.body) req.write(chunk);
    else if (options.body) req.setHeader('Content-Length', options.body.length), req.write(options.body);
    req.end();
  });
}

/** The path part of a connection URL: `/{token}/`. */
function pathOf(connection: Connection): string {
  return new URL(connection.url).pathname;
}

function openSocket(url: string, headers: Record<string, string> = {}): Promise<{ socket: WebSocket; hello: any }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers });
    socket.once('message', (data) => resolve({ socket, hello: JSON.parse(String(data)) }));
    socket.once('error', reject);
    socket.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
  });
}

function nextMessage(socket: WebSocket): Promise<string> {
  return new Promise((resolve) => socket.once('message', (data) => resolve(String(data))));
}

function closed(socket: WebSocket): Promise<number> {
  return new Promise((resolve) => (socket.readyState === WebSocket.CLOSED ? resolve(0) : socket.once('close', (code) => resolve(code))));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * Each storage with berth's own proxy on the port, and PostgreSQL with the
 * nginx edge in front of it (BERTH_PROXY_EDGE=nginx): every guarantee below
 * holds for both.
 */
const variants = [
  ...testDatabases().map((database) => ({ database, label: database.kind, edge: {} })),
  { database: testDatabases().at(-1)!, label: `${testDatabases().at(-1)!.kind} behind the nginx edge`, edge: { BERTH_PROXY_EDGE: 'nginx' } },
];

describe.each(variants)('proxy on $label', ({ database, edge }) => {
  let berth: TestBerth;
  let api: ApiClient;
  const backends: string[] = [];
  const account = 'proxied';

  async function connect(body: Record<string, unknown> = {}): Promise<Connection> {
    const response = await api.post<Connection>(`/v2/service/${account}/echo/connect`, body);
    expect(response.status).toBe(200);
    backends.push(response.body.backend_id);
    return response.body;
  }

  async function connectReady(body: Record<string, unknown> = {}): Promise<Connection> {
    const connection = await connect(body);
    await waitForStatus(api, connection.backend_id, 'ready');
    return connection;
  }

  beforeAll(async () => {
    await ensureTestImage(docker);
    berth = await TestBerth.start({ database, env: { BERTH_SWEEP_INTERVAL_SECONDS: '1', BERTH_TERMINATION_GRACE_SECONDS: '2', ...edge } });
    api = await createTestService(berth, account);
  });
  afterAll(async () => {
    await berth?.stop();
    // Only this suite's containers: other suites may share the engine.
    await Promise.all(backends.map((id) => docker.getContainer(`berth-${id}`).remove({ force: true }).catch(() => undefined)));
  });

  describe('HTTP', () => {
    let alice: Connection;

    beforeAll(async () => {
      alice = await connectReady({ key: 'room-1', user: 'alice', auth: { role: 'editor', name: 'Zoë ✓', nested: { n: 1 } } });
    });

    it('forwards path and query exactly as sent, without the token segment', async () => {
      const base = pathOf(alice).slice(0, -1);
      for (const [sent, seen] of [
        ['/', '/'],
        ['/docs/a%20b//c/?q=1&q=2&x=%2F&empty=', '/docs/a%20b//c/?q=1&q=2&x=%2F&empty='],
        ['/redirect/http:/x/{y}', '/redirect/http:/x/{y}'],
        ['', '/'],
        ['?only=query', '/?only=query'],
      ]) {
        const response = await request(berth.proxyUrl, `${base}${sent}`);
        expect(response.status, sent).toBe(200);
        expect((response.json as Echo).url, sent).toBe(seen);
      }
      const posted = await request(berth.proxyUrl, `${base}/submit?id=7`, { method: 'PATCH', body: Buffer.from('{}') });
      expect(posted.json).toMatchObject({ method: 'PATCH', url: '/submit?id=7', body_length: 2 });
    });

    it('sets the four x-verified headers from the connect', async () => {
      const echo = (await request(berth.proxyUrl, pathOf(alice))).json as Echo;
      expect(echo.headers['x-verified-username']).toBe('alice');
      expect(JSON.parse(echo.headers['x-verified-user-data']!)).toEqual({ role: 'editor', name: 'Zoë ✓', nested: { n: 1 } });
      expect(echo.headers['x-verified-secret']).toBe(alice.secret_token);
      expect(echo.headers['x-verified-backend']).toBe(alice.backend_id);
    });

    it('strips forged x-verified headers whatever their case or spelling', async () => {
      const echo = (
        await request(berth.proxyUrl, pathOf(alice), {
          headers: {
            'X-Verified-Username': 'mallory',
            'x-VERIFIED-user-data': '{"role":"admin"}',
            'X-VERIFIED-SECRET': 'guess',
            'x-verified-backend': 'other',
            'X-Verified-Anything-Else': '1',
            X_Verified_Username: 'mallory',
            'X-Not-Verified': 'kept',
          },
        })
      ).json as Echo;
      const verified = Object.entries(echo.headers).filter(([name]) => /^x[-_]verified[-_]/i.test(name));
      expect(Object.fromEntries(verified)).toEqual({
        'x-verified-username': 'alice',
        'x-verified-user-data': expect.any(String),
        'x-verified-secret': alice.secret_token,
        'x-verified-backend': alice.backend_id,
      });
      expect(JSON.parse(echo.headers['x-verified-user-data']!).role).toBe('editor');
      expect(echo.headers['x-not-verified']).toBe('kept');
    });

    it('passes a 1 MiB body through intact, with a length or chunked', async () => {
      const body = randomBytes(1024 * 1024);
      const sized = await request(berth.proxyUrl, `${pathOf(alice)}upload`, { method: 'POST', body });
      expect(sized.json).toMatchObject({ method: 'POST', body_length: body.length, body_sha256: sha256(body) });
      const chunks = Array.from({ length: 16 }, (_, i) => body.subarray(i * 65536, (i + 1) * 65536));
      const chunked = await request(berth.proxyUrl, `${pathOf(alice)}upload`, { method: 'PUT', body: chunks });
      expect(chunked.json).toMatchObject({ method: 'PUT', body_length: body.length, body_sha256: sha256(body) });
      expect(chunked.json.headers['transfer-encoding']).toBe('chunked');
    });

    it('binds each connect’s token to its own user and auth on one backend', async () => {
      const bob = await connect({ key: 'room-1', user: 'bob', auth: { role: 'viewer' } });
      const anonymous = await connect({ key: 'room-1' });
      expect(bob).toMatchObject({ backend_id: alice.backend_id, spawned: false });
      expect(new Set([alice.token, bob.token, anonymous.token]).size).toBe(3);
      const [asAlice, asBob, asNobody] = await Promise.all([alice, bob, anonymous].map(async (c) => (await request(berth.proxyUrl, pathOf(c))).json as Echo));
      expect([asAlice!.headers['x-verified-username'], asAlice!.headers['x-verified-user-data']]).toEqual(['alice', expect.stringContaining('editor')]);
      expect([asBob!.headers['x-verified-username'], asBob!.headers['x-verified-user-data']]).toEqual(['bob', '{"role":"viewer"}']);
      // Without user or auth those headers are absent, never forgeable.
      expect(asNobody!.headers['x-verified-username']).toBeUndefined();
      expect(asNobody!.headers['x-verified-user-data']).toBeUndefined();
      expect(asNobody!.headers['x-verified-backend']).toBe(alice.backend_id);
    });

    it('relays WebSockets with the same headers, both ways', async () => {
      const wsUrl = `${alice.url.replace(/^http/, 'ws')}live/socket?room=1`;
      const { socket, hello } = await openSocket(wsUrl, { 'X-Verified-Username': 'mallory', 'x-verified-secret': 'guess' });
      expect(hello).toMatchObject({ type: 'hello', url: '/live/socket?room=1' });
      expect(hello.headers).toMatchObject({
        'x-verified-username': 'alice',
        'x-verified-secret': alice.secret_token,
        'x-verified-backend': alice.backend_id,
        upgrade: 'websocket',
      });
      expect(JSON.parse(hello.headers['x-verified-user-data'])).toMatchObject({ role: 'editor' });
      const reply = nextMessage(socket);
      socket.send('ping 1');
      expect(await reply).toBe('ping 1');
      socket.close();
      expect(await closed(socket)).toBe(1005);
    });

    it('closes the backend’s side of a WebSocket when the client vanishes', async () => {
      const openSockets = async () => (await request(berth.proxyUrl, `${pathOf(alice)}sockets`)).json.open as number;
      // The previous test's socket may still be closing on the backend.
      await waitUntil(async () => (await openSockets()) === 0, 5_000, 'earlier sockets to close');
      const { socket } = await openSocket(alice.url.replace(/^http/, 'ws'));
      expect(await openSockets()).toBe(1);
      // No close frame, no FIN: the connection is reset, as when a client vanishes mid-stream.
      (socket as unknown as { _socket: import('node:net').Socket })._socket.resetAndDestroy();
      await waitUntil(async () => (await openSockets()) === 0, 5_000, 'the backend to see its socket closed');
    });

    it('answers 404 with the JSON error body for an unknown token, over HTTP and WebSocket', async () => {
      for (const path of ['/', '/noSuchTokenAtAll_0123456789/', '/not%20a%20token/']) {
        const response = await request(berth.proxyUrl, path);
        expect(response.status, path).toBe(404);
        expect(response.headers['content-type']).toBe('application/json');
        expect(response.json).toEqual(errorBodyMatching(404, 'not_found_error', 'token_not_found'));
      }
      const status = await new Promise<number>((resolve) => {
        const socket = new WebSocket(`${berth.proxyUrl.replace(/^http/, 'ws')}/noSuchTokenAtAll_0123456789/`);
        socket.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        socket.on('error', () => undefined);
      });
      expect(status).toBe(404);
    });
  });

  it('holds a request until a slow-starting backend is ready', async () => {
    const slow = await connect({ spawn: { executable: { env: { APP_STARTUP_DELAY_MS: '2500' } } } });
    const started = Date.now();
    const [response, socket] = await Promise.all([request(berth.proxyUrl, `${pathOf(slow)}first`), openSocket(`${slow.url.replace(/^http/, 'ws')}ws`)]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    expect(response.status).toBe(200);
    expect(response.json).toMatchObject({ url: '/first' });
    expect(socket.hello).toMatchObject({ type: 'hello', url: '/ws' });
    socket.socket.close();
    expect((await api.get(`/v2/backend/${slow.backend_id}/status`)).body.status).toBe('ready');
  });

  it('answers 410 for a terminated backend, and closes its open WebSockets', async () => {
    const doomed = await connectReady();
    const { socket } = await openSocket(`${doomed.url.replace(/^http/, 'ws')}`);
    const socketClosed = closed(socket);
    await api.post(`/v2/backend/${doomed.backend_id}/terminate`, { hard: true });
    await waitForStatus(api, doomed.backend_id, 'terminated');
    await socketClosed;
    const response = await request(berth.proxyUrl, pathOf(doomed));
    expect(response.status).toBe(410);
    expect(response.headers['content-type']).toBe('application/json');
    expect(response.json).toEqual(errorBodyMatching(410, 'gone_error', 'backend_terminated', { details: { backend_id: doomed.backend_id } }));
  });

  it('answers fast, never hangs, when a backend’s container is killed under it', async () => {
    const victim = await connectReady();
    await docker.getContainer(`berth-${victim.backend_id}`).kill();
    const started = Date.now();
    const response = await request(berth.proxyUrl, pathOf(victim));
    // A bound that tells an answer from a hang, with room for a loaded machine.
    expect(Date.now() - started).toBeLessThan(5000);
    // 502 until the scheduler has recorded the exit, 410 after.
    expect([502, 410]).toContain(response.status);
  });

  it('keeps a backend with an open WebSocket alive past max_idle_seconds, and sweeps it once closed', async () => {
    const idle = await connectReady({ spawn: { max_idle_seconds: 2 } });
    // Requests count as activity…
    for (let i = 0; i < 6; i++) {
      expect((await request(berth.proxyUrl, pathOf(idle))).status).toBe(200);
      await sleep(500);
    }
    // …and so does a WebSocket that stays open without a word.
    const { socket } = await openSocket(idle.url.replace(/^http/, 'ws'));
    await sleep(4000);
    expect((await api.get(`/v2/backend/${idle.backend_id}/status`)).body.status).toBe('ready');
    socket.close();
    const closedAt = Date.now();
    const swept = await waitForStatus(api, idle.backend_id, 'terminated', 15_000);
    expect(swept).toMatchObject({ termination_reason: 'swept' });
    // Idle time counts from the close, not from the last flush before it.
    expect(Date.now() - closedAt).toBeGreaterThanOrEqual(1900);
  });

  it('serves the ready page, which names the backend and follows its status stream', async () => {
    const connection = await connect({ spawn: { executable: { env: { APP_STARTUP_DELAY_MS: '1000' } } } });
    const page = await fetch(connection.ready_url);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    const html = await page.text();
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain(`<title>Starting backend ${connection.backend_id}</title>`);
    expect(html).toContain(JSON.stringify(connection.url));
    expect(html).toContain(`/v2/backend/${connection.backend_id}/status/stream`);
    expect(html).toContain('new EventSource(');

    const other = await connect();
    for (const url of [
      connection.ready_url.replace(connection.backend_id, other.backend_id),
      connection.ready_url.replace(connection.token, other.token),
      `${berth.apiUrl}/ready/nosuchbackend/${connection.token}/`,
      `${berth.apiUrl}/ready/${connection.backend_id}/${connection.token}`.replace(/.$/, '!'),
    ]) {
      const missing = await fetch(url);
      expect(missing.status, url).toBe(404);
      expect(missing.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(await missing.text()).toContain('<title>Backend not found</title>');
    }
  });

  // .ci/run installs Chromium, so in CI a missing browser fails instead of skipping.
  it.skipIf(!existsSync('/usr/bin/chromium') && !process.env.CI)('takes a browser from the ready page to the backend once it is ready', async () => {
    const { execFile } = await import('node:child_process');
    const { mkdtemp, rm } = await import('node:fs/promises');
    const profile = await mkdtemp(join(tmpdir(), 'berth-chromium-'));
    const connection = await connect({ spawn: { executable: { env: { APP_STARTUP_DELAY_MS: '1500' } } } });
    // No background traffic: this machine's network is closed, and tests talk to 127.0.0.1 only.
    const flags = [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${profile}`,
    ];
    const dom = await new Promise<string>((resolve, reject) =>
      execFile(
        '/usr/bin/chromium',
        [...flags, '--virtual-time-budget=15000', '--dump-dom', connection.ready_url],
        { timeout: 60_000 },
        (error, stdout) => (error ? reject(error) : resolve(stdout)),
      ),
    );
    await rm(profile, { recursive: true, force: true });
    // The backend's echo, as the browser rendered it after the redirect.
    expect(dom).toContain(`"x-verified-backend":"${connection.backend_id}"`);
  });

  it('resolves tokens issued before a restart of berth', async () => {
    const before = await connectReady({ user: 'carol' });
    expect((await request(berth.proxyUrl, pathOf(before))).status).toBe(200);
    await berth.restart();
    const after = await request(berth.proxyUrl, `${pathOf(before)}again`);
    expect(after.status).toBe(200);
    expect(after.json).toMatchObject({ url: '/again', headers: { 'x-verified-username': 'carol', 'x-verified-backend': before.backend_id } });
  });

  it('answers a quick 502 when a backend it believes ready does not answer (proxy role alone)', async () => {
    const victim = await connectReady();
    // A proxy-only process: nothing there notices the container die, so berth still says ready.
    await berth.restart({ role: 'proxy' });
    try {
      await docker.getContainer(`berth-${victim.backend_id}`).kill();
      await waitUntil(async () => !(await docker.getContainer(`berth-${victim.backend_id}`).inspect()).State.Running, 10_000, 'container exit');
      const started = Date.now();
      const response = await request(berth.proxyUrl, pathOf(victim));
      // A bound that tells an answer from a hang, with room for a loaded machine.
    expect(Date.now() - started).toBeLessThan(5000);
      expect(response.status).toBe(502);
      expect(response.headers['content-type']).toBe('application/json');
      expect(response.json).toEqual(errorBodyMatching(502, 'bad_gateway_error', 'backend_unreachable', { details: { backend_id: victim.backend_id } }));
    } finally {
      await berth.restart();
    }
  });
});

describe.each<{ label: string; edge: Record<string, string> }>([
  { label: 'its own listener', edge: {} },
  { label: 'the nginx edge', edge: { BERTH_PROXY_EDGE: 'nginx' } },
])('proxy with BERTH_PROXY_DOMAIN and a short wait, on $label', ({ edge }) => {
  let berth: TestBerth;
  let api: ApiClient;
  const backends: string[] = [];

  async function connect(body: Record<string, unknown> = {}): Promise<Connection> {
    const response = await api.post<Connection>('/v2/service/domained/echo/connect', body);
    expect(response.status).toBe(200);
    backends.push(response.body.backend_id);
    return response.body;
  }

  beforeAll(async () => {
    await ensureTestImage(docker);
    berth = await TestBerth.start({ database: { kind: 'pglite' }, env: { BERTH_PROXY_DOMAIN: 'berth.example', BERTH_PROXY_WAIT_SECONDS: '1', ...edge } });
    api = await createTestService(berth, 'domained');
  });
  afterAll(async () => {
    await berth?.stop();
    await Promise.all(backends.map((id) => docker.getContainer(`berth-${id}`).remove({ force: true }).catch(() => undefined)));
  });

  it('serves a token only on its own backend’s subdomain', async () => {
    const [one, two] = await Promise.all([connect(), connect()]);
    await Promise.all([waitForStatus(api, one!.backend_id, 'ready'), waitForStatus(api, two!.backend_id, 'ready')]);
    expect(one!.url).toBe(`https://${one!.backend_id}.berth.example/${one!.token}/`);
    const path = new URL(one!.url).pathname;

    // Twice over: behind the edge, the first requests teach nginx the route and the later ones are its own.
    for (const round of [1, 2]) {
      for (const host of [`${one!.backend_id}.berth.example`, `${one!.backend_id}.Berth.Example:443`]) {
        const response = await request(berth.proxyUrl, `${path}x`, { headers: { Host: host } });
        expect(response.status, `${host}, round ${round}`).toBe(200);
        expect(response.json).toMatchObject({ url: '/x', headers: { 'x-verified-backend': one!.backend_id } });
      }
      await sleep(300);
    }
    for (const host of [`${two!.backend_id}.berth.example`, 'berth.example', `${one!.backend_id}.elsewhere.example`, '127.0.0.1']) {
      const response = await request(berth.proxyUrl, path, { headers: { Host: host } });
      expect(response.status, host).toBe(403);
      expect(response.json).toEqual(errorBodyMatching(403, 'forbidden_error', 'host_mismatch'));
    }
  });

  it('answers 503 with Retry-After when the backend is not ready within the wait', async () => {
    const never = await connect({ spawn: { executable: { env: { APP_NEVER_LISTEN: '1' } } } });
    const started = Date.now();
    const response = await request(berth.proxyUrl, new URL(never.url).pathname, { headers: { Host: `${never.backend_id}.berth.example` } });
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(Date.now() - started).toBeLessThan(8000);
    expect(response.status).toBe(503);
    expect(response.headers['retry-after']).toBe('5');
    expect(response.json).toEqual(errorBodyMatching(503, 'unavailable_error', 'backend_not_ready', { details: { backend_id: never.backend_id } }));
  });
});
