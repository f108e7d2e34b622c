import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from './support/api.ts';
import { containerEnv, createTestService, inspectBackendContainer, waitForStatus, waitUntil } from './support/backends.ts';
import { TestBerth } from './support/berth.ts';
import { testDatabases } from './support/databases.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();

interface Connected {
  backend_id: string;
  url: string;
}

// Issue 10 (medium): rows of terminated backends were never deleted.
describe.each(testDatabases())('backend retention on $kind', (database) => {
  let berth: TestBerth;
  let api: ApiClient;

  /** berth's own storage, to see what is left of a backend. */
  const db = () => berth.berth['storage'].db;

  async function rowsOf(backendId: string) {
    const [backends, statuses, tokens, logs] = await Promise.all([
      db().selectFrom('backends').select('id').where('id', '=', backendId).execute(),
      db().selectFrom('backend_statuses').select('id').where('backend_id', '=', backendId).execute(),
      db().selectFrom('connection_tokens').select('backend_id').where('backend_id', '=', backendId).execute(),
      db().selectFrom('backend_logs').select('id').where('backend_id', '=', backendId).execute(),
    ]);
    return { backends: backends.length, statuses: statuses.length, tokens: tokens.length, logs: logs.length };
  }

  async function fencingTokenOf(backendId: string): Promise<string | undefined> {
    return containerEnv((await inspectBackendContainer(docker, backendId))!).SESSION_BACKEND_FENCING_TOKEN;
  }

  beforeAll(async () => {
    await ensureTestImage(docker);
    berth = await TestBerth.start({
      database,
      env: { BERTH_BACKEND_RETENTION_SECONDS: '1', BERTH_TERMINATION_GRACE_SECONDS: '1' },
    });
    api = await createTestService(berth, 'acme');
  });
  afterAll(() => berth?.stop());

  it('deletes a terminated backend past the retention with its statuses, tokens and logs, and keeps its key rising', async () => {
    const live = (await api.post('/v2/service/acme/echo/connect', { key: 'stays' })).body as Connected;
    const gone = (await api.post('/v2/service/acme/echo/connect', { key: 'room' })).body as Connected;
    await waitForStatus(api, live.backend_id, 'ready');
    await waitForStatus(api, gone.backend_id, 'ready');
    expect(await fencingTokenOf(gone.backend_id)).toBe('1');
    await waitUntil(async () => (await rowsOf(gone.backend_id)).logs > 0, 10_000, 'the first log line to be stored');
    expect(await rowsOf(gone.backend_id)).toMatchObject({ backends: 1, tokens: 1 });

    await api.post(`/v2/backend/${gone.backend_id}/terminate`, {});
    await waitUntil(async () => (await api.get(`/v2/backend/${gone.backend_id}`)).status === 404, 15_000, 'the terminated backend to be pruned');
    expect(await rowsOf(gone.backend_id)).toEqual({ backends: 0, statuses: 0, tokens: 0, logs: 0 });
    expect((await fetch(`${gone.url}hello`)).status).not.toBe(200);

    // A running backend is never pruned, however old.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect((await api.get(`/v2/backend/${live.backend_id}`)).status).toBe(200);
    expect((await rowsOf(live.backend_id)).backends).toBe(1);

    // The key's row stays, so its next backend gets a higher fencing token than any before.
    const keyRow = await db().selectFrom('backend_keys').select('fencing_token').where('key', '=', 'room').executeTakeFirst();
    expect(Number(keyRow?.fencing_token)).toBe(1);
    const next = (await api.post('/v2/service/acme/echo/connect', { key: 'room' })).body as Connected;
    await waitForStatus(api, next.backend_id, 'ready');
    expect(await fencingTokenOf(next.backend_id)).toBe('2');
  });
});
