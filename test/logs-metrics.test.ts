import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, errorBodyMatching, type ApiClient } from './support/api.ts';
import { createTestService, waitForStatus, waitUntil } from './support/backends.ts';
import { TestBerth } from './support/berth.ts';
import { testDatabases } from './support/databases.ts';
import { createTestDocker } from './support/docker.ts';
import { readSse } from './support/sse.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();

describe.each(testDatabases())('logs and metrics streams on $kind', (database) => {
  let berth: TestBerth;
  let api: ApiClient;

  beforeAll(async () => {
    await ensureTestImage(docker);
    berth = await TestBerth.start({ database, env: { BERTH_TERMINATION_GRACE_SECONDS: '2' } });
    api = await createTestService(berth, 'acme');
  });
  afterAll(() => berth?.stop());

  function logsUrl(id: string): string {
    return `${berth.apiUrl}/v2/backend/${id}/logs/stream`;
  }

  it('streams earlier lines, then new ones, stdout and stderr, and ends when the backend terminates', async () => {
    const { backend_id: id } = (await api.post('/v2/service/acme/echo/connect', { spawn: { executable: { env: { APP_LOG_EVERY_MS: '300' } } } })).body;
    await waitForStatus(api, id, 'ready');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const auth = { Authorization: `Bearer ${api.token}` };

    // Lines written before the stream was opened come first.
    const early = await readSse(logsUrl(id), { headers: auth, count: 4 });
    const earlyLines = early.events.map((event) => event.data);
    expect(early.headers.get('content-type')).toBe('text/event-stream');
    expect(earlyLines).toEqual(expect.arrayContaining(['stderr hello', 'listening on 8080']));
    expect(earlyLines).toContain('tick 1');

    // A stream left open sees new lines, then ends after the terminate.
    const following = readSse(logsUrl(id), { headers: auth, timeoutMs: 20_000 });
    await new Promise((resolve) => setTimeout(resolve, 1200));
    await api.post(`/v2/backend/${id}/terminate`, {});
    const all = await following;
    expect(all.ended).toBe(true);
    const lines = all.events.map((event) => event.data);
    const ticks = lines.filter((line) => line.startsWith('tick ')).map((line) => Number(line.slice(5)));
    expect(ticks.length).toBeGreaterThan(4);
    expect(ticks).toEqual([...ticks].sort((a, b) => a - b));
    // The app's last words, written on SIGTERM, made it in before the end.
    expect(lines.at(-1)).toBe('got SIGTERM');

    // After termination (the container is gone) the logs stay readable, and the stream ends at once.
    await waitForStatus(api, id, 'terminated');
    const after = await readSse(logsUrl(id), { headers: auth, timeoutMs: 5000 });
    expect(after.ended).toBe(true);
    expect(after.events.map((event) => event.data)).toEqual(lines);
    // Resuming after an event id gives only what followed it.
    const resumed = await readSse(logsUrl(id), { headers: { ...auth, 'Last-Event-ID': all.events[2]!.id! }, timeoutMs: 5000 });
    expect(resumed.events.map((event) => event.data)).toEqual(lines.slice(3));
  });

  it('with follow=false sends the stored lines and ends while the backend goes on logging', async () => {
    const { backend_id: id } = (await api.post('/v2/service/acme/echo/connect', { spawn: { executable: { env: { APP_LOG_EVERY_MS: '100' } } } })).body;
    await waitForStatus(api, id, 'ready');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const auth = { Authorization: `Bearer ${api.token}` };
    const stored = await readSse(`${logsUrl(id)}?follow=false`, { headers: auth, timeoutMs: 5000 });
    expect(stored.ended).toBe(true);
    expect(stored.events.map((event) => event.data)).toEqual(expect.arrayContaining(['stderr hello', 'listening on 8080', 'tick 1']));
    const bad = await api.get(`/v2/backend/${id}/logs/stream?follow=maybe`);
    expect(bad.status).toBe(400);
    expect(bad.body).toEqual(errorBodyMatching(400, 'invalid_request_error', 'invalid_parameter', { details: { param: 'query.follow' } }));
    await api.post(`/v2/backend/${id}/terminate`, { hard: true });
  });

  it('keeps logs across a restart of berth, including lines written while it was down', async () => {
    const { backend_id: id } = (await api.post('/v2/service/acme/echo/connect', { spawn: { executable: { env: { APP_LOG_EVERY_MS: '200' } } } })).body;
    await waitForStatus(api, id, 'ready');
    await berth.berth.stop();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await berth.restart();
    await new Promise((resolve) => setTimeout(resolve, 800));
    const auth = { Authorization: `Bearer ${api.token}` };
    const read = await readSse(logsUrl(id), { headers: auth, timeoutMs: 1500 });
    const ticks = read.events.map((event) => event.data).filter((line) => line.startsWith('tick ')).map((line) => Number(line.slice(5)));
    // Continuous numbering: nothing lost while berth was down, nothing stored twice.
    expect(ticks.length).toBeGreaterThan(8);
    expect(ticks).toEqual(Array.from({ length: ticks.length }, (_, i) => i + 1));
    await api.post(`/v2/backend/${id}/terminate`, { hard: true });
    await waitForStatus(api, id, 'terminated');
  });

  it('streams metrics samples with memory in use, and records the peak as max_mem_bytes', async () => {
    const { backend_id: id } = (await api.post('/v2/service/acme/echo/connect', { spawn: { executable: { resource_limits: { memory_limit_bytes: 256 * 1024 * 1024 } } } })).body;
    await waitForStatus(api, id, 'ready');
    const auth = { Authorization: `Bearer ${api.token}` };
    const read = await readSse(`${berth.apiUrl}/v2/backend/${id}/metrics/stream`, { headers: auth, count: 2, timeoutMs: 15_000 });
    expect(read.status).toBe(200);
    expect(read.events).toHaveLength(2);
    for (const event of read.events) {
      const sample = JSON.parse(event.data);
      expect(sample).toEqual({
        backend_id: id,
        cpu_used: expect.any(Number),
        mem_available: expect.any(Number),
        mem_limit: 256 * 1024 * 1024,
        mem_used: expect.any(Number),
        sys_cpu: expect.any(Number),
      });
      expect(sample.mem_used).toBeGreaterThan(0);
      expect(sample.mem_available).toBe(sample.mem_limit - sample.mem_used);
      expect(sample.cpu_used).toBeGreaterThan(0);
    }
    await waitUntil(async () => ((await api.get(`/v2/backend/${id}`)).body.max_mem_bytes ?? 0) > 0, 10_000, 'max_mem_bytes');

    await api.post(`/v2/backend/${id}/terminate`, { hard: true });
    await waitForStatus(api, id, 'terminated');
    const gone = await api.get(`/v2/backend/${id}/metrics/stream`);
    expect(gone.status).toBe(409);
    expect(gone.body).toEqual(errorBodyMatching(409, 'conflict_error', 'BackendNotRunning', { details: { backend_id: id } }));
  });

  it('keeps both streams behind auth', async () => {
    const { backend_id: id } = (await api.post('/v2/service/acme/echo/connect', {})).body;
    expect((await apiClient(berth.apiUrl).get(`/v2/backend/${id}/logs/stream`)).status).toBe(401);
    expect((await apiClient(berth.apiUrl).get(`/v2/backend/${id}/metrics/stream`)).status).toBe(401);
    const other = await createTestService(berth, 'other');
    expect((await other.get(`/v2/backend/${id}/logs/stream`)).status).toBe(403);
    await api.post(`/v2/backend/${id}/terminate`, { hard: true });
  });
});
