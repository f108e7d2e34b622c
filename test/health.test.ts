import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './support/api.ts';
import { ADMIN_TOKEN, TestBerth } from './support/berth.ts';
import { testDatabases } from './support/databases.ts';

describe.each(testDatabases())('system endpoints on $kind', (database) => {
  let berth: TestBerth;

  beforeAll(async () => {
    berth = await TestBerth.start({ database });
  });
  afterAll(() => berth?.stop());

  it('answers /healthcheck with "ok"', async () => {
    const response = await apiClient(berth.apiUrl).get('/healthcheck');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(response.text).toBe('"ok"');
  });

  it('answers /v1/version with the package version', async () => {
    const response = await apiClient(berth.apiUrl).get('/v1/version');
    expect(response.body).toEqual({ version: '0.1.0', env_reloaded_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
  });

  it('reports every component and the backend counts to the admin', async () => {
    const response = await apiClient(berth.apiUrl, ADMIN_TOKEN).get('/health/status');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      status: 'ok',
      components: { database: { status: 'ok' }, docker: { status: 'ok' } },
      version: '0.1.0',
      uptime: expect.stringMatching(/^(\d+h)?(\d+m)?\d+s$/),
      uptime_seconds: expect.any(Number),
      backends: {
        scheduled: 0,
        loading: 0,
        starting: 0,
        waiting: 0,
        ready: 0,
        terminating: 0,
        'hard-terminating': 0,
        terminated: 0,
      },
    });
  });

  it('asks for a token on /health/status', async () => {
    expect((await apiClient(berth.apiUrl).get('/health/status')).status).toBe(401);
  });
});

describe('berth without a Docker engine', () => {
  let berth: TestBerth;

  beforeAll(async () => {
    berth = await TestBerth.start({
      database: { kind: 'pglite' },
      docker: new Dockerode({ socketPath: '/nonexistent/docker.sock' }),
    });
  });
  afterAll(() => berth?.stop());

  it('starts, and /health/status says docker is down with a 503', async () => {
    const response = await apiClient(berth.apiUrl, ADMIN_TOKEN).get('/health/status');
    expect(response.status).toBe(503);
    expect(response.body.status).toBe('degraded');
    expect(response.body.components).toEqual({
      database: { status: 'ok' },
      docker: { status: 'down', error: expect.stringContaining('/nonexistent/docker.sock') },
    });
  });

  it('answers image listing with a clear 503', async () => {
    const admin = apiClient(berth.apiUrl, ADMIN_TOKEN);
    await admin.post('/v2/accounts', { name: 'acme' });
    await admin.post('/v2/account/acme/service', { name: 'chat' });
    const response = await admin.get('/v2/service/acme/chat/images');
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('5');
    expect(response.body.error).toMatchObject({ type: 'unavailable_error', code: 'docker_unavailable', status: 503 });
    // The service itself is still readable; only image facts are missing.
    expect((await admin.get('/v2/service/acme/chat')).body.last_image_digest).toBeNull();
  });
});
