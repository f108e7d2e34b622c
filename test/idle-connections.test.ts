// An open WebSocket keeps its backend alive however late the proxy's reports
// are (here: its process frozen with SIGSTOP, as on a loaded host); once the
// proxy process is dead, its connections stop counting after its lease.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { ApiClient } from './support/api.ts';
import { createTestService, waitForStatus, waitUntil } from './support/backends.ts';
import { freePort, TestBerth } from './support/berth.ts';
import { createPostgresDatabase } from './support/databases.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();
const BIN = new URL('../bin/berth.js', import.meta.url).pathname;
const LEASE_SECONDS = 8;

/** Roles across processes need PostgreSQL (PGlite is one process's). */
describe.skipIf(!process.env.TEST_DATABASE_URL)('open connections and the sweeper', () => {
  let berth: TestBerth;
  let api: ApiClient;
  let proxy: ChildProcess | undefined;
  let proxyUrl = '';

  beforeAll(async () => {
    await ensureTestImage(docker);
    const databaseUrl = await createPostgresDatabase();
    const env = { DATABASE_URL: databaseUrl, BERTH_SWEEP_INTERVAL_SECONDS: '0.5', BERTH_PROXY_LEASE_SECONDS: String(LEASE_SECONDS) };
    berth = await TestBerth.start({ database: { kind: 'pglite' }, env });
    api = await createTestService(berth, 'acme');
    const port = await freePort();
    proxyUrl = `http://127.0.0.1:${port}`;
    proxy = spawn(process.execPath, [BIN, 'serve', '--role', 'proxy'], {
      env: { ...process.env, ...env, BERTH_PROXY_PORT: String(port), BERTH_LOG_LEVEL: 'warn' },
      stdio: 'ignore',
    });
    await waitUntil(async () => (await fetch(`${proxyUrl}/x/`).catch(() => undefined))?.status === 404, 30_000, 'the proxy process to listen');
  });
  afterAll(async () => {
    proxy?.kill('SIGCONT');
    proxy?.kill('SIGKILL');
    await berth?.stop();
  });

  it('never sweeps a backend with an open WebSocket while its proxy is frozen, and sweeps it once the proxy is dead past its lease', async () => {
    const connected = await api.post('/v2/service/acme/echo/connect', { spawn: { max_idle_seconds: 1 } });
    const id = connected.body.backend_id as string;
    await waitForStatus(api, id, 'ready');
    const path = new URL(connected.body.url as string).pathname;
    const socket = new WebSocket(`${proxyUrl.replace('http', 'ws')}${path}`);
    const messages: string[] = [];
    socket.on('message', (data) => messages.push(data.toString()));
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });

    // Frozen for well past max_idle_seconds, but within the lease.
    proxy!.kill('SIGSTOP');
    await new Promise((resolve) => setTimeout(resolve, 4000));
    expect((await api.get(`/v2/backend/${id}/status`)).body.status).toBe('ready');
    proxy!.kill('SIGCONT');
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect((await api.get(`/v2/backend/${id}/status`)).body.status).toBe('ready');
    socket.send('still here');
    await waitUntil(async () => messages.some((message) => message.includes('still here')), 5000, 'the echo');

    const killedAt = Date.now();
    proxy!.kill('SIGKILL');
    const ended = await waitForStatus(api, id, 'terminated', (LEASE_SECONDS + 20) * 1000);
    expect(ended).toMatchObject({ termination_reason: 'swept' });
    // Its connections counted for at most its lease (plus the sweep and the grace period).
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual((LEASE_SECONDS - 3) * 1000);
    socket.terminate();
  });
});
