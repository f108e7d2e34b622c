import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from './support/api.ts';
import { containerEnv, createTestService, inspectBackendContainer, waitForStatus } from './support/backends.ts';
import { TestBerth } from './support/berth.ts';
import { testDatabases } from './support/databases.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();

describe.each(testDatabases())('keys and termination on $kind', (database) => {
  let berth: TestBerth;
  let api: ApiClient;

  beforeAll(async () => {
    await ensureTestImage(docker);
    berth = await TestBerth.start({ database, env: { BERTH_TERMINATION_GRACE_SECONDS: '3', BERTH_SWEEP_INTERVAL_SECONDS: '0.5' } });
    api = await createTestService(berth, 'acme');
  });
  afterAll(async () => {
    await berth?.stop();
  });

  it('gives a key whose backend is terminating to a new backend, started only once the old one has ended', async () => {
    // The app takes 2 s to stop after SIGTERM: long enough to see the old backend terminating.
    const spawn = { executable: { env: { APP_SIGTERM_DELAY_MS: '2000' } } };
    const first = await api.post('/v2/service/acme/echo/connect', { key: 'doc-1', spawn });
    expect(first.body).toMatchObject({ spawned: true });
    await waitForStatus(api, first.body.backend_id, 'ready');
    expect((await api.post(`/v2/backend/${first.body.backend_id}/terminate`, {})).status).toBe(200);
    expect((await api.get(`/v2/backend/${first.body.backend_id}/status`)).body.status).toBe('terminating');

    const second = await api.post('/v2/service/acme/echo/connect', { key: 'doc-1', spawn });
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({ spawned: true, status: 'scheduled' });
    expect(second.body.backend_id).not.toBe(first.body.backend_id);

    // Its URL already works: the proxy holds the request until the new backend is ready.
    const viaProxy = fetch(`${second.body.url}env`);
    // Meanwhile one key never has two live containers.
    expect(await inspectBackendContainer(docker, second.body.backend_id)).toBeUndefined();
    const answer = await viaProxy;
    expect(answer.status).toBe(200);
    const env = (await answer.json()) as Record<string, string>;
    expect(env.SESSION_BACKEND_ID).toBe(second.body.backend_id);
    expect(env.SESSION_BACKEND_FENCING_TOKEN).toBe('2');

    const old = await api.get(`/v2/backend/${first.body.backend_id}`);
    const oldEnd = new Date(old.body.statuses.at(-1).time).getTime();
    expect(old.body.statuses.at(-1)).toMatchObject({ status: 'terminated', termination_reason: 'external' });
    const fresh = await api.get(`/v2/backend/${second.body.backend_id}`);
    const started = fresh.body.statuses.find((s: { status: string }) => s.status === 'starting');
    expect(new Date(started.time).getTime()).toBeGreaterThanOrEqual(oldEnd);

    // A third connect joins the new backend.
    const third = await api.post('/v2/service/acme/echo/connect', { key: 'doc-1', spawn });
    expect(third.body).toMatchObject({ spawned: false, backend_id: second.body.backend_id });
  });

  it('gives a key-less backend its id as key and fencing token 1', async () => {
    const connected = await api.post('/v2/service/acme/echo/connect', {});
    expect(connected.status).toBe(200);
    const id = connected.body.backend_id as string;
    await waitForStatus(api, id, 'ready');
    const env = containerEnv((await inspectBackendContainer(docker, id))!);
    expect(env.SESSION_BACKEND_KEY).toBe(id);
    expect(env.SESSION_BACKEND_FENCING_TOKEN).toBe('1');
    expect((await api.get(`/v2/backend/${id}`)).body.key).toBe(id);
  });
});
