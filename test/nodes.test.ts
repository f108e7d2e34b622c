// One berth process is one node: it registers, places backends on itself, and
// an admin can list it and drain it, through the API and the CLI.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './support/cli.ts';
import { apiClient, errorBodyMatching, type ApiClient } from './support/api.ts';
import { createTestService, waitForStatus } from './support/backends.ts';
import { ADMIN_TOKEN, TestBerth } from './support/berth.ts';
import { testDatabases } from './support/databases.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();


describe.each(testDatabases())('nodes on $kind', (database) => {
  let berth: TestBerth;
  let api: ApiClient;
  let admin: ApiClient;

  beforeAll(async () => {
    await ensureTestImage(docker);
    berth = await TestBerth.start({ database, env: { BERTH_NODE_NAME: 'node-a', BERTH_TERMINATION_GRACE_SECONDS: '2' } });
    api = await createTestService(berth, 'acme');
    admin = apiClient(berth.apiUrl, ADMIN_TOKEN);
  });
  afterAll(async () => {
    await berth?.stop();
  });

  it('lists the node, places backends on it and shows where each runs', async () => {
    const connected = await api.post('/v2/service/acme/echo/connect', { key: 'n1' });
    await waitForStatus(api, connected.body.backend_id, 'ready');
    expect((await api.get(`/v2/backend/${connected.body.backend_id}`)).body.node).toBe('node-a');

    const listed = await admin.get('/v2/nodes');
    expect(listed.status).toBe(200);
    expect(listed.body.nodes).toEqual([
      expect.objectContaining({ name: 'node-a', address: '127.0.0.1', status: 'ready', live_backends: 1, engine: { ok: true, error: null } }),
    ]);
    expect(Date.now() - new Date(listed.body.nodes[0].last_heartbeat).getTime()).toBeLessThan(10_000);
    await api.post(`/v2/backend/${connected.body.backend_id}/terminate`, { hard: true });
  });

  it('keeps the nodes behind the admin token', async () => {
    expect((await api.get('/v2/nodes')).body).toEqual(errorBodyMatching(403, 'forbidden_error', 'admin_required'));
    expect((await admin.post('/v2/node/no-such-node/drain', {})).body).toEqual(errorBodyMatching(404, 'not_found_error', 'node_not_found', { details: { node: 'no-such-node' } }));
  });

  it('gives a drained node no new backends, keeps its running ones, and takes new ones once ready again', async () => {
    const running = await api.post('/v2/service/acme/echo/connect', { key: 'kept' });
    await waitForStatus(api, running.body.backend_id, 'ready');
    const env = { PATH: process.env.PATH ?? '', HOME: '/nonexistent', BERTH_URL: berth.apiUrl, BERTH_TOKEN: ADMIN_TOKEN };
    const drained = await runCli(['node', 'drain', 'node-a'], env);
    expect(drained.stdout).toContain('node node-a is draining');

    const refused = await api.post('/v2/service/acme/echo/connect', { key: 'new' });
    expect(refused.status).toBe(503);
    expect(refused.body).toEqual(errorBodyMatching(503, 'unavailable_error', 'no_ready_node'));
    expect(refused.headers.get('retry-after')).not.toBeNull();
    // The held key still answers; its backend stays.
    expect((await api.post('/v2/service/acme/echo/connect', { key: 'kept' })).body).toMatchObject({ spawned: false, backend_id: running.body.backend_id });

    const table = await runCli(['nodes'], env);
    expect(table.stdout).toMatch(/node-a\s+127\.0\.0\.1\s+draining\s+ok\s+1/);

    await runCli(['node', 'ready', 'node-a'], env);
    const placed = await api.post('/v2/service/acme/echo/connect', { key: 'new' });
    expect(placed.body).toMatchObject({ spawned: true });
    await api.post(`/v2/backend/${placed.body.backend_id}/terminate`, { hard: true });
    await api.post(`/v2/backend/${running.body.backend_id}/terminate`, { hard: true });
  });
});
