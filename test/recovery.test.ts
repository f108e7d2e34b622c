import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from './support/api.ts';
import { createTestService, inspectBackendContainer, waitForStatus, waitUntil } from './support/backends.ts';
import { TestBerth } from './support/berth.ts';
import { testDatabases } from './support/databases.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();

describe.each(testDatabases())('recovery after a restart on $kind', (database) => {
  let berth: TestBerth;
  let api: ApiClient;

  async function spawn(key: string, env: Record<string, string> = {}): Promise<string> {
    const response = await api.post('/v2/service/acme/echo/connect', { key, spawn: { executable: { env } } });
    await waitForStatus(api, response.body.backend_id, 'ready');
    return response.body.backend_id as string;
  }

  beforeAll(async () => {
    await ensureTestImage(docker);
    berth = await TestBerth.start({ database, env: { BERTH_TERMINATION_GRACE_SECONDS: '1' } });
    // A restart keeps the ports and the storage, so this client (and its token) works throughout.
    api = await createTestService(berth, 'acme');
  });
  afterAll(() => berth?.stop());

  it('leaves backends running when berth stops, adopts them on start, and settles what changed meanwhile', async () => {
    const kept = await spawn('kept');
    const removed = await spawn('removed');
    const exits = await spawn('exits', { APP_EXIT_AFTER_MS: '1500', APP_EXIT_CODE: '4' });
    const keptContainer = (await inspectBackendContainer(docker, kept))!;

    await berth.berth.stop();
    // berth is down: its backends are not.
    expect((await inspectBackendContainer(docker, kept))?.State.Running).toBe(true);
    await docker.getContainer(`berth-${removed}`).remove({ force: true });
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect((await inspectBackendContainer(docker, exits))?.State.ExitCode).toBe(4);

    await berth.restart();

    // Adopted: still ready, same container, the key still held.
    expect((await api.get(`/v2/backend/${kept}/status`)).body.status).toBe('ready');
    expect((await inspectBackendContainer(docker, kept))?.Id).toBe(keptContainer.Id);
    const again = await api.post('/v2/service/acme/echo/connect', { key: 'kept' });
    expect(again.body).toMatchObject({ backend_id: kept, spawned: false });

    // Vanished while berth was down: lost. Exited meanwhile: terminated with its code.
    expect((await api.get(`/v2/backend/${removed}/status`)).body).toMatchObject({ status: 'terminated', termination_reason: 'lost' });
    expect((await api.get(`/v2/backend/${exits}/status`)).body).toMatchObject({ status: 'terminated', exit_error: true });
    expect((await api.get(`/v2/backend/${exits}`)).body.statuses.at(-1)).toMatchObject({ exit_code: 4 });
    await waitUntil(async () => (await inspectBackendContainer(docker, exits)) === undefined, 10_000, 'removal of the exited container');

    // The adopted backend is still under berth's control.
    await api.post(`/v2/backend/${kept}/terminate`, {});
    await waitForStatus(api, kept, 'terminated');
    // Removal follows the recorded exit.
    await waitUntil(async () => (await inspectBackendContainer(docker, kept)) === undefined, 10_000, 'removal of the terminated container');
  });

  it('finishes a termination that was under way when berth stopped', async () => {
    const id = await spawn('stubborn', { APP_IGNORE_SIGTERM: '1' });
    await api.post(`/v2/backend/${id}/terminate`, {});
    await berth.restart();
    const final = await waitForStatus(api, id, 'terminated', 15_000);
    expect(final).toMatchObject({ termination_reason: 'external', termination_kind: 'hard' });
  });
});

