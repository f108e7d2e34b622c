import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createGuardedServer } from '../src/core/listener-guard.ts';
import type { ApiClient } from './support/api.ts';
import { createTestService, waitForStatus } from './support/backends.ts';
import { TestBerth } from './support/berth.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();

const HEADER_TIMEOUT_S = 2;
const IDLE_TIMEOUT_S = 3;
const MAX_CONNECTIONS = 8;
const MAX_CONNECTIONS_PER_CLIENT = 5;

/** A raw TCP client: what it received, and when the server closed it. */
interface RawClient {
  socket: net.Socket;
  received: () => string;
  /** Milliseconds from connect until the socket closed. */
  closed: Promise<number>;
}

/**
 * Connects from `localAddress` (any 127.x address reaches a listener on
 * 127.0.0.1), so a test owns the per-address count whatever other clients of
 * this process hold open.
 */
async function connectRaw(url: string, localAddress = '127.0.0.1'): Promise<RawClient> {
  const { port } = new URL(url);
  const socket = net.connect({ host: '127.0.0.1', port: Number(port), localAddress });
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => undefined);
  const started = performance.now();
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now() - started)));
  await once(socket, 'connect');
  return { socket, received: () => Buffer.concat(chunks).toString('utf8'), closed };
}

/** Resolves to the elapsed time if the client was closed within `ms`, else to undefined. */
async function closedWithin(client: RawClient, ms: number): Promise<number | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const result = await Promise.race([client.closed, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
  clearTimeout(timer);
  return result;
}

/** Sends one keep-alive GET on an open raw client and resolves to the status of its answer. */
async function statusOf(client: RawClient, path: string): Promise<number> {
  const before = client.received().length;
  client.socket.write(`GET ${path} HTTP/1.1\r\nHost: berth\r\n\r\n`);
  for (let waited = 0; waited < 5000; waited += 20) {
    const text = client.received().slice(before);
    const match = /^HTTP\/1\.1 (\d{3})/.exec(text);
    if (match && text.includes('\r\n\r\n')) return Number(match[1]);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no answer to GET ${path}`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('listener deadlines and connection caps', () => {
  let berth: TestBerth;
  let api: ApiClient;
  let backend: { backend_id: string; url: string };

  beforeAll(async () => {
    await ensureTestImage(docker);
    berth = await TestBerth.start({
      database: { kind: 'pglite' },
      env: {
        BERTH_HEADER_TIMEOUT_SECONDS: String(HEADER_TIMEOUT_S),
        BERTH_IDLE_TIMEOUT_SECONDS: String(IDLE_TIMEOUT_S),
        BERTH_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
        BERTH_MAX_CONNECTIONS_PER_CLIENT: String(MAX_CONNECTIONS_PER_CLIENT),
      },
    });
    api = await createTestService(berth, 'acme');
    backend = (await api.post('/v2/service/acme/echo/connect', {})).body;
    await waitForStatus(api, backend.backend_id, 'ready');
  });
  afterAll(() => berth?.stop());

  // Regression: 400 sockets that never finished their request head were held for 100 s and more.
  it.each(['api', 'proxy'] as const)('closes %s connections whose request head is not complete within the header deadline', async (listener) => {
    const url = listener === 'api' ? berth.apiUrl : berth.proxyUrl;
    const silent = await connectRaw(url, '127.0.0.2');
    const partial = await connectRaw(url, '127.0.0.2');
    partial.socket.write('GET /healthcheck HTTP/1.1\r\nHost: berth\r\n');
    // Bytes that keep coming do not extend the header deadline, unlike an idle deadline.
    const trickle = await connectRaw(url, '127.0.0.2');
    const head = 'GET /healthcheck HTTP/1.1\r\nX-Slow: ' + 'a'.repeat(200);
    let sent = 0;
    const dripping = setInterval(() => trickle.socket.write(head[sent++ % head.length]!), 250);
    try {
      for (const client of [silent, partial, trickle]) {
        const elapsed = await closedWithin(client, HEADER_TIMEOUT_S * 1000 + 1500);
        expect(elapsed).toBeDefined();
        expect(elapsed!).toBeLessThanOrEqual(HEADER_TIMEOUT_S * 1000 + 1500);
      }
      // The client that sent part of a head is told why.
      expect(partial.received()).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      clearInterval(dripping);
    }
  });

  // Regression: 50 slow-body sockets through the proxy (which has no overall request deadline) were never closed.
  it('closes a request whose body stops arriving for the idle deadline, through the proxy and on the API', async () => {
    const path = new URL(backend.url).pathname;
    const proxied = await connectRaw(berth.proxyUrl, '127.0.0.2');
    proxied.socket.write(`POST ${path}upload HTTP/1.1\r\nHost: berth\r\nContent-Length: 1000\r\n\r\n${'x'.repeat(10)}`);
    const direct = await connectRaw(berth.apiUrl, '127.0.0.2');
    direct.socket.write(`POST /v2/accounts HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"name":`);
    for (const client of [proxied, direct]) {
      const elapsed = await closedWithin(client, IDLE_TIMEOUT_S * 1000 + 3000);
      expect(elapsed).toBeDefined();
      expect(elapsed!).toBeGreaterThanOrEqual(IDLE_TIMEOUT_S * 1000 - 500);
    }
  });

  it('lets an upload through the proxy take longer than every deadline while its bytes keep coming', async () => {
    const path = new URL(backend.url).pathname;
    const client = await connectRaw(berth.proxyUrl, '127.0.0.2');
    const parts = 8;
    client.socket.write(`POST ${path}upload HTTP/1.1\r\nHost: berth\r\nContent-Length: ${parts}\r\n\r\n`);
    for (let i = 0; i < parts; i++) {
      await sleep(700);
      client.socket.write('x');
    }
    for (let waited = 0; !client.received().includes('"body_length":8') && waited < 5000; waited += 50) await sleep(50);
    expect(client.received()).toMatch(/^HTTP\/1\.1 200 /);
    expect(client.received()).toContain('"body_length":8');
    client.socket.destroy();
  });

  it('closes a keep-alive connection left idle for the idle deadline', async () => {
    const client = await connectRaw(berth.apiUrl, '127.0.0.2');
    expect(await statusOf(client, '/healthcheck')).toBe(200);
    const elapsed = await closedWithin(client, IDLE_TIMEOUT_S * 1000 + 3000);
    expect(elapsed).toBeDefined();
  });

  it('keeps a WebSocket and an SSE stream open far past both deadlines once their heads are in', async () => {
    const socket = new WebSocket(backend.url.replace(/^http/, 'ws'));
    const messages: string[] = [];
    socket.on('message', (data) => messages.push(String(data)));
    await once(socket, 'open');
    const statusStream = await connectRaw(berth.apiUrl, '127.0.0.2');
    statusStream.socket.write(`GET /v2/backend/${backend.backend_id}/status/stream HTTP/1.1\r\nHost: berth\r\n\r\n`);

    // Quiet for longer than the header and the idle deadline together (the SSE heartbeat comes every 15 s).
    await sleep((HEADER_TIMEOUT_S + IDLE_TIMEOUT_S) * 1000 + 1000);

    expect(socket.readyState).toBe(WebSocket.OPEN);
    socket.send('still here');
    for (let waited = 0; !messages.includes('still here') && waited < 3000; waited += 50) await sleep(50);
    expect(messages).toContain('still here');
    socket.close();

    expect(await closedWithin(statusStream, 0)).toBeUndefined();
    expect(statusStream.received()).toMatch(/^HTTP\/1\.1 200 /);
    expect(statusStream.received()).toContain('"status":"ready"');
    statusStream.socket.destroy();
  });

  // Regression: about 21,000 idle connections exhausted the file descriptors and both listeners stopped answering.
  it.each(['api', 'proxy'] as const)('refuses %s connections over the per-client cap while earlier ones keep working', async (listener) => {
    const url = listener === 'api' ? berth.apiUrl : berth.proxyUrl;
    const path = listener === 'api' ? '/healthcheck' : `${new URL(backend.url).pathname}ok`;
    const held = await Promise.all(Array.from({ length: MAX_CONNECTIONS_PER_CLIENT }, () => connectRaw(url, '127.0.0.3')));
    try {
      const over = await connectRaw(url, '127.0.0.3');
      expect(await closedWithin(over, 2000)).toBeDefined();
      const [head, body] = over.received().split('\r\n\r\n');
      expect(head).toMatch(/^HTTP\/1\.1 503 /);
      expect(JSON.parse(body!)).toEqual({
        error: { message: expect.stringContaining('one client'), type: 'unavailable_error', code: 'too_many_connections', status: 503, id: expect.stringMatching(/^req_/) },
      });
      for (const client of held) expect(await statusOf(client, path)).toBe(200);

      // Another address is not held to this one's cap, but all of them to the listener's.
      const others: RawClient[] = [];
      let refused: RawClient | undefined;
      for (let i = 0; i < MAX_CONNECTIONS && !refused; i++) {
        const client = await connectRaw(url, `127.0.0.${10 + i}`);
        if ((await closedWithin(client, 300)) === undefined) others.push(client);
        else refused = client;
      }
      expect(others.length).toBeGreaterThanOrEqual(1);
      expect(others.length).toBeLessThanOrEqual(MAX_CONNECTIONS - MAX_CONNECTIONS_PER_CLIENT);
      expect(refused?.received()).toContain('as many connections as it allows');
      for (const client of others) expect(await statusOf(client, path)).toBe(200);
      for (const client of others) client.socket.destroy();

      // A freed place is free again.
      held.pop()!.socket.destroy();
      await sleep(200);
      const again = await connectRaw(url, '127.0.0.3');
      expect(await statusOf(again, path)).toBe(200);
      held.push(again);
    } finally {
      for (const client of held) client.socket.destroy();
    }
  });
});

describe('createGuardedServer', () => {
  it('logs one line when a cap is reached, not one per refused connection', async () => {
    const lines: object[] = [];
    const server = createGuardedServer(
      {
        name: 'test',
        limits: { headerTimeoutMs: 5000, idleTimeoutMs: 5000, maxConnections: 100, maxConnectionsPerClient: 1 },
        logger: { warn: (fields) => lines.push(fields) },
        requestTimeoutMs: 0,
      },
      (_req, res) => res.end('ok'),
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const first = await connectRaw(url, '127.0.0.4');
      const refused = await Promise.all(Array.from({ length: 20 }, () => connectRaw(url, '127.0.0.4')));
      await Promise.all(refused.map((client) => client.closed));
      expect(lines).toEqual([
        { listener: 'test', limit: 'per_client', client: '127.0.0.4', max_connections_per_client: 1, refused: 1, open_connections: 1 },
      ]);
      first.socket.destroy();
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

