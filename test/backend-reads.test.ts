import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, errorBodyMatching, type ApiClient } from './support/api.ts';
import { createTestService, waitForStatus } from './support/backends.ts';
import { TestBerth } from './support/berth.ts';
import { testDatabases } from './support/databases.ts';
import { createTestDocker } from './support/docker.ts';
import { readSse } from './support/sse.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();

describe.each(testDatabases())('backend statuses and listings on $kind', (database) => {
  let berth: TestBerth;
  let api: ApiClient;

  beforeAll(async () => {
    await ensureTestImage(docker);
    berth = await TestBerth.start({ database, env: { BERTH_TERMINATION_GRACE_SECONDS: '1' } });
    api = await createTestService(berth, 'acme');
  });
  afterAll(() => berth?.stop());

  it('streams the status history, then live statuses, and ends after terminated', async () => {
    const { backend_id: id } = (await api.post('/v2/service/acme/echo/connect', {})).body;
    // Opened right away: the first events are replayed, the later ones followed live.
    const streaming = readSse(`${berth.apiUrl}/v2/backend/${id}/status/stream`, { timeoutMs: 20_000 });
    await waitForStatus(api, id, 'ready');
    await api.post(`/v2/backend/${id}/terminate`, { hard: true });
    const stream = await streaming;

    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toBe('text/event-stream');
    expect(stream.headers.get('access-control-allow-origin')).toBe('*');
    expect(stream.ended).toBe(true);
    const statuses = stream.events.map((event) => JSON.parse(event.data) as { status: string });
    expect(statuses.map((s) => s.status)).toEqual(['scheduled', 'starting', 'waiting', 'ready', 'hard-terminating', 'terminated']);
    expect(statuses.at(-1)).toEqual({ status: 'terminated', time: expect.any(String), termination_reason: 'external', termination_kind: 'hard', exit_error: true });
    const ids = stream.events.map((event) => Number(event.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(ids.length);

    // Resuming from an event id replays only what came after it.
    const resumed = await readSse(`${berth.apiUrl}/v2/backend/${id}/status/stream`, { headers: { 'Last-Event-ID': String(ids[3]) } });
    expect(resumed.events.map((event) => JSON.parse(event.data).status)).toEqual(['hard-terminating', 'terminated']);
    expect(resumed.ended).toBe(true);
  });

  it('serves the latest status publicly with CORS, and 404 for an unknown backend', async () => {
    const { backend_id: id } = (await api.post('/v2/service/acme/echo/connect', {})).body;
    await waitForStatus(api, id, 'ready');
    const publicClient = apiClient(berth.apiUrl);
    const status = await publicClient.get(`/v2/backend/${id}/status`);
    expect(status.status).toBe(200);
    expect(status.headers.get('access-control-allow-origin')).toBe('*');
    expect(status.body).toEqual({ status: 'ready', time: expect.any(String) });

    const preflight = await publicClient.request('OPTIONS', `/v2/backend/${id}/status/stream`);
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');

    const missing = await publicClient.get('/v2/backend/nosuchbackend/status');
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual(errorBodyMatching(404, 'not_found_error', 'backend_not_found', { details: { backend_id: 'nosuchbackend' } }));
    expect((await publicClient.get('/v2/backend/nosuchbackend/status/stream')).status).toBe(404);
    expect((await publicClient.get('/v2/backend/Bad!/status')).status).toBe(400);
    await api.post(`/v2/backend/${id}/terminate`, { hard: true });
  });

  it('keeps backend metadata behind auth and the account check', async () => {
    const { backend_id: id } = (await api.post('/v2/service/acme/echo/connect', { key: 'meta' })).body;
    await waitForStatus(api, id, 'ready');
    expect((await apiClient(berth.apiUrl).get(`/v2/backend/${id}`)).status).toBe(401);
    const other = await createTestService(berth, 'other');
    const forbidden = await other.get(`/v2/backend/${id}`);
    expect(forbidden.status).toBe(403);
    expect((await other.post(`/v2/backend/${id}/terminate`, {})).status).toBe(403);
    expect((await api.get(`/v2/backend/${id}/status`)).body.status).toBe('ready');

    const metadata = (await api.get(`/v2/backend/${id}`)).body;
    expect(metadata).toEqual({
      account_name: 'acme',
      cluster_name: 'local',
      created_at: expect.any(String),
      environment_name: 'default',
      id,
      image_digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      key: 'meta',
      max_mem_bytes: null,
      node: expect.any(String),
      service_name: 'echo',
      statuses: expect.any(Array),
    });
    await api.post(`/v2/backend/${id}/terminate`, { hard: true });
    await waitForStatus(api, id, 'terminated');
  });

  it('lists a service backends newest first within start and end, and an account running backends', async () => {
    const first = (await api.post('/v2/service/acme/echo/connect', { key: 'list-1' })).body.backend_id as string;
    const second = (await api.post('/v2/service/acme/echo/connect', { key: 'list-2' })).body.backend_id as string;
    await waitForStatus(api, first, 'ready');
    await waitForStatus(api, second, 'ready');

    const all = (await api.get('/v2/service/acme/echo/backends')).body.backends as Array<Record<string, any>>;
    expect(all[0]!.id).toBe(second);
    expect(all[1]!.id).toBe(first);
    expect(all[0]).toEqual({
      account_name: 'acme',
      cluster_name: 'local',
      created_at: expect.any(String),
      environment_name: 'default',
      id: second,
      image_digest: expect.any(String),
      key: 'list-2',
      max_mem_bytes: null,
      node: expect.any(String),
      ready_timestamp: expect.any(String),
      service_name: 'echo',
      status: { status: 'ready', time: expect.any(String) },
    });
    const secondCreated = all[0]!.created_at as string;
    const onlySecond = (await api.get(`/v2/service/acme/echo/backends?start=${encodeURIComponent(secondCreated)}`)).body.backends;
    expect(onlySecond.map((b: { id: string }) => b.id)).toEqual([second]);
    const beforeSecond = (await api.get(`/v2/service/acme/echo/backends?end=${encodeURIComponent(all[1]!.created_at)}`)).body.backends;
    expect(beforeSecond.map((b: { id: string }) => b.id)).not.toContain(second);

    const badQuery = await api.get('/v2/service/acme/echo/backends?start=yesterday');
    expect(badQuery.status).toBe(400);
    expect(badQuery.body).toEqual(errorBodyMatching(400, 'invalid_request_error', 'invalid_parameter', { details: { param: 'query.start' } }));

    await api.post(`/v2/backend/${first}/terminate`, { hard: true });
    await waitForStatus(api, first, 'terminated');
    const running = (await api.get('/v2/account/acme/backends')).body.running_backends as Array<{ id: string; status: { status: string } }>;
    expect(running.map((b) => b.id)).toEqual([second]);
    expect(running[0]!.status.status).toBe('ready');
    await api.post(`/v2/backend/${second}/terminate`, { hard: true });
    await waitForStatus(api, second, 'terminated');
    expect((await api.get('/v2/account/acme/backends')).body).toEqual({ running_backends: [] });
  });
});
