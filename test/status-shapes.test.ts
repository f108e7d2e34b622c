// Every status object berth sends, wherever it sends it, is one that
// Jamsocket's own clients accept: read the way they read it (split on "\n",
// `data:` lines) and checked with @jamsocket/types' guard.
import { isBackendState } from '@jamsocket/types';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from './support/api.ts';
import { createTestService, waitForStatus } from './support/backends.ts';
import { TestBerth } from './support/berth.ts';
import { testDatabases } from './support/databases.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();

/** What @jamsocket/client does with a status stream: split the text on newlines and parse each `data:` line. */
async function readStatusStreamLikeJamsocket(url: string, headers: Record<string, string> = {}): Promise<{ status: number; states: unknown[] }> {
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(30_000) });
  const text = await response.text();
  const states = text
    .split('\n')
    .filter((line) => line.startsWith('data:'))
    .map((line) => JSON.parse(line.slice('data:'.length)) as unknown);
  return { status: response.status, states };
}

describe.each(testDatabases())('status shapes on $kind', (database) => {
  let berth: TestBerth;
  let api: ApiClient;

  beforeAll(async () => {
    await ensureTestImage(docker);
    // A grace period well past the app's 1.5 s shutdown: the soft path must not escalate on a busy machine.
    berth = await TestBerth.start({ database, env: { BERTH_TERMINATION_GRACE_SECONDS: '10' } });
    api = await createTestService(berth, 'acme');
  });
  afterAll(async () => {
    await berth?.stop();
  });

  it('sends only states @jamsocket/types accepts, and the lists speak the status endpoint shape', async () => {
    const connected = await api.post('/v2/service/acme/echo/connect', { key: 'shapes', spawn: { executable: { env: { APP_SIGTERM_DELAY_MS: '1500' } } } });
    const id = connected.body.backend_id as string;
    await waitForStatus(api, id, 'ready');
    await api.post(`/v2/backend/${id}/terminate`, {});

    // While terminating, a list entry carries the reason exactly as the status endpoint does.
    const single = (await api.get(`/v2/backend/${id}/status`)).body;
    expect(single).toMatchObject({ status: 'terminating', termination_reason: 'external' });
    const serviceList = (await api.get('/v2/service/acme/echo/backends')).body.backends;
    const accountList = (await api.get('/v2/account/acme/backends')).body.running_backends;
    for (const list of [serviceList, accountList]) {
      const entry = list.find((backend: { id: string }) => backend.id === id);
      expect(entry.status).toEqual(single);
      expect(isBackendState(entry.status)).toBe(true);
    }

    const stream = await readStatusStreamLikeJamsocket(`${berth.apiUrl}/v2/backend/${id}/status/stream`);
    expect(stream.status).toBe(200);
    // `loading` appears only when the image had to be pulled.
    const names = stream.states.map((state) => (state as { status: string }).status).filter((status) => status !== 'loading');
    expect(names).toEqual(['scheduled', 'starting', 'waiting', 'ready', 'terminating', 'terminated']);
    const history = (await api.get(`/v2/backend/${id}`)).body.statuses as unknown[];
    const lists = [
      ...(await api.get('/v2/service/acme/echo/backends')).body.backends.map((backend: { status: unknown }) => backend.status),
    ];
    for (const state of [...stream.states, ...history, ...lists, (await api.get(`/v2/backend/${id}/status`)).body]) {
      expect(isBackendState(state), JSON.stringify(state)).toBe(true);
    }
  });

  it('answers 204 to an EventSource that reconnects after the last event of a terminated backend', async () => {
    const connected = await api.post('/v2/service/acme/echo/connect', {});
    const id = connected.body.backend_id as string;
    await waitForStatus(api, id, 'ready');
    await api.post(`/v2/backend/${id}/terminate`, { hard: true });
    await waitForStatus(api, id, 'terminated');
    const response = await fetch(`${berth.apiUrl}/v2/backend/${id}/status/stream`);
    const text = await response.text();
    const lastId = [...text.matchAll(/^id: ?(\d+)$/gm)].at(-1)![1]!;

    const again = await fetch(`${berth.apiUrl}/v2/backend/${id}/status/stream`, { headers: { 'Last-Event-ID': lastId } });
    expect(again.status).toBe(204);
    expect(again.headers.get('access-control-allow-origin')).toBe('*');
    expect(await again.text()).toBe('');

    // Resuming from before the end still replays what is left.
    const earlier = await fetch(`${berth.apiUrl}/v2/backend/${id}/status/stream`, { headers: { 'Last-Event-ID': String(Number(lastId) - 1) } });
    expect(earlier.status).toBe(200);
    expect(await earlier.text()).toContain('"status":"terminated"');
  });
});
