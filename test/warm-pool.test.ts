// Warm pools with the real @jamsocket/session-backend package inside the
// container: pre-started containers say Warmed, a connect takes one and the
// backend gets its id, key, fencing token and env through the assignment.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureNodeImage } from '../examples/lib/node-image.ts';
import { apiClient, type ApiClient } from './support/api.ts';
import { createTestService, waitForStatus, waitUntil } from './support/backends.ts';
import { ADMIN_TOKEN, TestBerth } from './support/berth.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();
const WARM_REPOSITORY = 'berth-test/warm-app';

async function poolContainers(image?: string) {
  const containers = await docker.listContainers({ all: true, filters: { label: ['berth.pool'] } });
  return containers.filter((container) => image === undefined || container.Image === image);
}

describe('warm pools', () => {
  let berth: TestBerth;
  let api: ApiClient;
  let admin: ApiClient;

  beforeAll(async () => {
    await ensureTestImage(docker);
    const built = await ensureNodeImage(docker, {
      reference: `${WARM_REPOSITORY}:latest`,
      appDir: fileURLToPath(new URL('./fixtures/warm-app/', import.meta.url)),
      packages: ['@jamsocket/session-backend'],
    });
    await docker.getImage(built.id).tag({ repo: WARM_REPOSITORY, tag: 'v2' });
    berth = await TestBerth.start({ database: { kind: 'pglite' }, env: { BERTH_WARM_TIMEOUT_SECONDS: '4', BERTH_TERMINATION_GRACE_SECONDS: '2' } });
    api = await createTestService(berth, 'acme');
    admin = apiClient(berth.apiUrl, ADMIN_TOKEN);
    await admin.post('/v2/account/acme/service', { name: 'warm', image: WARM_REPOSITORY });
  }, 180_000);
  afterAll(async () => {
    await berth?.stop();
    for (const container of await poolContainers()) await docker.getContainer(container.Id).remove({ force: true }).catch(() => undefined);
  });

  async function warmed(service: string): Promise<number> {
    const nodes = (await admin.get('/v2/nodes')).body.nodes as Array<{ warm_pool: Record<string, { warmed: number }> }>;
    return nodes.reduce((sum, node) => sum + (node.warm_pool[`acme/${service}/default`]?.warmed ?? 0), 0);
  }

  it('keeps the pool, hands a warm container to a connect through the SDK, and refills', async () => {
    const update = await api.post('/v2/service/acme/warm/update', { warm_pool_size: 2 });
    expect(update.status, update.text).toBe(200);
    const info = (await api.get('/v2/service/acme/warm')).body;
    expect(info.environments[0]).toMatchObject({ name: 'default', warm_pool_size: 2, warm_pool: { warmable: true } });
    await waitUntil(async () => (await warmed('warm')) === 2, 60_000, 'two warm containers');

    const connected = await api.post('/v2/service/acme/warm/connect', { key: 'doc-7', spawn: { executable: { env: { CALLER_VAR: 'hello' } } } });
    expect(connected.body).toMatchObject({ spawned: true });
    const ready = await waitForStatus(api, connected.body.backend_id, 'ready', 20_000);
    expect(ready.status).toBe('ready');
    const history = (await api.get(`/v2/backend/${connected.body.backend_id}`)).body.statuses.map((s: { status: string }) => s.status);
    // A warm start skips pulling and creating: straight from scheduled to starting, waiting, ready.
    expect(history).toEqual(['scheduled', 'starting', 'waiting', 'ready']);

    const answer = await fetch(`${connected.body.url}assignment`);
    expect(answer.status).toBe(200);
    const assignment = (await answer.json()) as Record<string, any>;
    expect(assignment).toMatchObject({
      backend_id: connected.body.backend_id,
      key: 'doc-7',
      fencing_token: 1,
      warm: true,
      env: { CALLER_VAR: 'hello', SESSION_BACKEND_ID: connected.body.backend_id },
    });
    // It was started before the connect: that is the point.
    expect(assignment.started_at).toBeLessThan(new Date((await api.get(`/v2/backend/${connected.body.backend_id}`)).body.created_at).getTime());

    await waitUntil(async () => (await warmed('warm')) === 2, 60_000, 'the pool to refill');
    await api.post(`/v2/backend/${connected.body.backend_id}/terminate`, {});
    await waitForStatus(api, connected.body.backend_id, 'terminated', 20_000);
  });

  it('starts cold when the spawn asks for what a warm container was not started with', async () => {
    const connected = await api.post('/v2/service/acme/warm/connect', { spawn: { executable: { resource_limits: { memory_limit_bytes: 256 * 1024 * 1024 } } } });
    await waitForStatus(api, connected.body.backend_id, 'ready', 30_000);
    const assignment = (await (await fetch(`${connected.body.url}assignment`)).json()) as Record<string, unknown>;
    // Without a warm container the SDK reads the SESSION_BACKEND_* env of a cold start.
    expect(assignment).toMatchObject({ backend_id: connected.body.backend_id, warm: false });
    await api.post(`/v2/backend/${connected.body.backend_id}/terminate`, { hard: true });
  });

  it('replaces the pool when the environment moves to another image tag', async () => {
    await api.post('/v2/service/acme/warm/update', { image_tag: 'v2' });
    await waitUntil(
      async () => (await poolContainers(`${WARM_REPOSITORY}:latest`)).length === 0 && (await poolContainers(`${WARM_REPOSITORY}:v2`)).length === 2,
      60_000,
      'the pool to move to v2',
    );
    await waitUntil(async () => (await warmed('warm')) === 2, 60_000, 'the v2 pool to warm');
    await api.post('/v2/service/acme/warm/update', { warm_pool_size: 0 });
    await waitUntil(async () => (await poolContainers()).length === 0, 30_000, 'the pool to go');
  });

  it('marks an image that never speaks the SDK protocol as not warmable instead of churning', async () => {
    await api.post('/v2/service/acme/echo/update', { warm_pool_size: 1 });
    await waitUntil(
      async () => (await api.get('/v2/service/acme/echo')).body.environments[0].warm_pool.warmable === false,
      60_000,
      'the echo image to be marked not warmable',
    );
    const env = (await api.get('/v2/service/acme/echo')).body.environments[0];
    expect(env.warm_pool.reason).toMatch(/did not say Warmed/);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await poolContainers('berth-test/app:latest')).toEqual([]);
  });
});
