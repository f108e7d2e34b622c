// Outages answer 503 with Retry-After and a code saying what is away, and write nothing.
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Berth } from '../src/berth.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/core/logger.ts';
import { apiClient, errorBodyMatching, type ApiClient } from './support/api.ts';
import { createTestService } from './support/backends.ts';
import { ADMIN_TOKEN, freePort, TestBerth } from './support/berth.ts';
import { PgCluster } from './support/pg-cluster.ts';

describe('with the Docker engine unreachable', () => {
  let berth: TestBerth;
  let api: ApiClient;

  beforeAll(async () => {
    berth = await TestBerth.start({ database: { kind: 'pglite' }, docker: new Dockerode({ socketPath: '/nonexistent/docker.sock' }) });
    api = await createTestService(berth, 'acme');
  });
  afterAll(async () => {
    await berth?.stop();
  });

  it('answers a connect that needs a new backend with 503 docker_unavailable and writes nothing', async () => {
    const response = await api.post('/v2/service/acme/echo/connect', { key: 'k' });
    expect(response.status).toBe(503);
    expect(response.body).toEqual(errorBodyMatching(503, 'unavailable_error', 'docker_unavailable'));
    expect(response.headers.get('retry-after')).not.toBeNull();
    expect((await api.get('/v2/service/acme/echo/backends')).body.backends).toEqual([]);
  });
});

describe('with PostgreSQL away', () => {
  let cluster: PgCluster;
  let berth: TestBerth;
  let api: ApiClient;

  beforeAll(async () => {
    cluster = await PgCluster.create();
    berth = await TestBerth.start({ database: { kind: 'pglite' }, env: { DATABASE_URL: cluster.url } });
    api = await createTestService(berth, 'acme');
  });
  afterAll(async () => {
    await berth?.stop().catch(() => undefined);
    await cluster?.destroy();
  });

  it('answers every endpoint with 503 and Retry-After, never 500, and serves again once it is back', async () => {
    const calls: Array<() => Promise<{ status: number; body: any; headers: Headers }>> = [
      () => api.post('/v2/service/acme/echo/connect', { key: 'k' }),
      () => api.get('/v2/service/acme/echo'),
      () => api.get('/v2/account/acme/services'),
      () => api.get('/v2/service/acme/echo/backends'),
      () => api.get('/v2/backend/abcdefghij/status'),
      () => api.get('/auth'),
      () => apiClient(berth.apiUrl, ADMIN_TOKEN).post('/v2/accounts', { name: 'other' }),
    ];
    await cluster.stop();
    try {
      for (const call of calls) {
        const response = await call();
        expect(response.status, JSON.stringify(response.body)).toBe(503);
        expect(response.body).toEqual(errorBodyMatching(503, 'unavailable_error', 'database_unavailable'));
        expect(response.headers.get('retry-after')).not.toBeNull();
      }
    } finally {
      await cluster.start();
    }
    const back = await api.get('/v2/service/acme/echo');
    expect(back.status).toBe(200);
  });
});

describe('the generated admin token', () => {
  it('is generated and shown only by a start that really serves', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'berth-admin-'));
    const blocker = net.createServer();
    const blockedPort = await freePort();
    await new Promise<void>((resolve) => blocker.listen(blockedPort, '127.0.0.1', resolve));
    const env = { BERTH_API_PORT: String(blockedPort), BERTH_PROXY_PORT: String(await freePort()), BERTH_DATA_DIR: dataDir, BERTH_LOG_LEVEL: 'silent' };
    const startBerth = async (apiPort: number) => {
      const config = loadConfig({ ...env, BERTH_API_PORT: String(apiPort) });
      return Berth.create({ config, logger: createLogger('silent'), role: 'api' });
    };
    try {
      const failed = await startBerth(blockedPort);
      await expect(failed.start()).rejects.toThrow(/EADDRINUSE/);
      expect(failed.generatedAdminToken).toBeUndefined();
      await failed.stop();

      const serving = await startBerth(await freePort());
      await serving.start();
      try {
        expect(serving.generatedAdminToken).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
        const auth = await apiClient(`http://127.0.0.1:${serving.apiPort}`, serving.generatedAdminToken).get('/auth');
        expect(auth.body).toMatchObject({ status: 'ok', is_admin: true });
      } finally {
        await serving.stop();
      }
    } finally {
      blocker.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
