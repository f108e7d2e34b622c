// GET /metrics: Prometheus text exposition, admin only, and the numbers move
// with what berth does (connects, cold starts, proxied requests, WebSockets,
// activity writes, outages).
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { apiClient, errorBodyMatching, type ApiClient } from './support/api.ts';
import { createTestService, waitForStatus, waitUntil } from './support/backends.ts';
import { ADMIN_TOKEN, TestBerth } from './support/berth.ts';
import { parseExposition, scrape } from './support/metrics.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

describe('GET /metrics', () => {
  const docker = createTestDocker();
  let berth: TestBerth;
  let api: ApiClient;

  beforeAll(async () => {
    await ensureTestImage(docker);
    berth = await TestBerth.start({ database: { kind: 'pglite' }, docker });
    api = await createTestService(berth, 'metrics');
  });
  afterAll(() => berth?.stop());

  it('refuses a request without the admin token', async () => {
    const anonymous = await apiClient(berth.apiUrl).get('/metrics');
    expect(anonymous.status).toBe(401);
    const account = await api.get('/metrics');
    expect(account.body).toEqual(errorBodyMatching(403, 'forbidden_error', 'admin_required'));
  });

  it('declares every berth series with its type', async () => {
    const response = await fetch(`${berth.apiUrl}/metrics`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
    const { types } = parseExposition(await response.text());
    expect(Object.fromEntries([...types].filter(([name]) => name.startsWith('berth_') && !name.startsWith('berth_process_') && !name.startsWith('berth_nodejs_')))).toEqual({
      berth_connect_duration_seconds: 'histogram',
      berth_backend_cold_start_seconds: 'histogram',
      berth_backends: 'gauge',
      berth_proxy_request_duration_seconds: 'histogram',
      berth_proxy_open_websockets: 'gauge',
      berth_proxy_activity_writes_total: 'counter',
      berth_proxy_edge_requests_total: 'counter',
      berth_outage_errors_total: 'counter',
    });
  });

  it('counts connects by outcome, the cold start, backends by status, proxied requests, WebSockets and activity writes', async () => {
    const before = await scrape(berth);
    expect(before('berth_connect_duration_seconds_count', { outcome: 'spawned' })).toBeUndefined();
    expect(before('berth_backends', { status: 'ready' })).toBe(0);

    const spawned = await api.post('/v2/service/metrics/echo/connect', { key: 'k' });
    expect(spawned.body.spawned).toBe(true);
    await waitForStatus(api, spawned.body.backend_id, 'ready');
    const joined = await api.post('/v2/service/metrics/echo/connect', { key: 'k' });
    expect(joined.body.spawned).toBe(false);
    expect((await api.post('/v2/service/metrics/nosuchservice/connect', { key: 'k' })).status).toBe(404);

    const proxied = await fetch(`${joined.body.url}hello`);
    expect(proxied.status).toBe(200);
    await proxied.text();
    const unknownToken = await fetch(`${berth.proxyUrl}/nosuchtoken0123/`);
    expect(unknownToken.status).toBe(404);
    await unknownToken.text();

    const socket = new WebSocket(joined.body.url.replace(/^http/, 'ws'));
    await new Promise((resolve, reject) => {
      socket.once('message', resolve);
      socket.once('error', reject);
    });
    try {
      // Activity is written once a second.
      let after = await scrape(berth);
      await waitUntil(async () => {
        after = await scrape(berth);
        return (after('berth_proxy_activity_writes_total', { result: 'ok' }) ?? 0) > 0;
      }, 10_000, 'an activity write');
      expect(after('berth_connect_duration_seconds_count', { outcome: 'spawned' })).toBe(1);
      expect(after('berth_connect_duration_seconds_count', { outcome: 'joined' })).toBe(1);
      expect(after('berth_connect_duration_seconds_count', { outcome: 'error' })).toBe(1);
      expect(after('berth_connect_duration_seconds_sum', { outcome: 'spawned' })).toBeGreaterThan(0);
      expect(after('berth_backend_cold_start_seconds_count')).toBe(1);
      expect(after('berth_backend_cold_start_seconds_sum')).toBeGreaterThan(0);
      expect(after('berth_backends', { status: 'ready' })).toBe(1);
      expect(after('berth_backends', { status: 'terminated' })).toBe(0);
      expect(after('berth_proxy_request_duration_seconds_count', { status_class: '2xx' })).toBe(1);
      expect(after('berth_proxy_request_duration_seconds_count', { status_class: '4xx' })).toBe(1);
      expect(after('berth_proxy_request_duration_seconds_bucket', { status_class: '2xx', le: '+Inf' })).toBe(1);
      expect(after('berth_proxy_open_websockets')).toBe(1);
      expect(after('berth_outage_errors_total', { component: 'database' })).toBe(0);
    } finally {
      socket.close();
    }
    await waitUntil(async () => (await scrape(berth))('berth_proxy_open_websockets') === 0, 10_000, 'the WebSocket to close');
  });
});

describe('GET /metrics with the engine unreachable', () => {
  let berth: TestBerth;

  beforeAll(async () => {
    berth = await TestBerth.start({ database: { kind: 'pglite' }, docker: new Dockerode({ socketPath: '/nonexistent/docker.sock' }) });
  });
  afterAll(() => berth?.stop());

  it('counts the 503 as an engine outage and the connect as an error', async () => {
    const api = await createTestService(berth, 'acme');
    expect((await api.post('/v2/service/acme/echo/connect', { key: 'k' })).status).toBe(503);
    const after = await scrape(berth);
    expect(after('berth_outage_errors_total', { component: 'engine' })).toBe(1);
    expect(after('berth_outage_errors_total', { component: 'database' })).toBe(0);
    expect(after('berth_connect_duration_seconds_count', { outcome: 'error' })).toBe(1);
  });
});
