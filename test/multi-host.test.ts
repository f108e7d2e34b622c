// berth across hosts: two Docker engines, each in its own network namespace
// with its own address (test/support/docker-hosts.ts), one scheduler (node)
// per engine, two API processes, two proxies, one PostgreSQL.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, type ApiClient } from './support/api.ts';
import { waitForStatus, waitUntil } from './support/backends.ts';
import { BerthProcess } from './support/berth-process.ts';
import { ADMIN_TOKEN, freePort } from './support/berth.ts';
import { createPostgresDatabase } from './support/databases.ts';
import { DockerLab } from './support/docker-hosts.ts';
import { createTestDocker } from './support/docker.ts';
import { readSse } from './support/sse.ts';
import { ensureTestImage } from './support/test-image.ts';

const LEASE_SECONDS = 6;
const runnable = process.env.TEST_DATABASE_URL !== undefined && process.getuid?.() === 0;

describe.skipIf(!runnable)('berth on two Docker hosts', () => {
  let lab: DockerLab;
  const processes: BerthProcess[] = [];
  let schedulers: BerthProcess[] = [];
  let apis: ApiClient[] = [];
  let proxyUrls: string[] = [];
  let admin: ApiClient;
  let account: ApiClient;

  async function nodes(): Promise<Array<{ name: string; status: string; live_backends: number }>> {
    return (await admin.get('/v2/nodes')).body.nodes;
  }

  async function connect(api: ApiClient, key: string) {
    const connected = await api.post('/v2/service/acme/echo/connect', { key });
    expect(connected.status, connected.text).toBe(200);
    return connected.body as { backend_id: string; url: string; spawned: boolean };
  }

  async function nodeOf(id: string): Promise<string> {
    return (await account.get(`/v2/backend/${id}`)).body.node as string;
  }

  beforeAll(async () => {
    await ensureTestImage(createTestDocker());
    lab = await DockerLab.create({ hosts: 2 });
    await lab.loadImage('berth-test/app:latest');
    const common = {
      DATABASE_URL: await createPostgresDatabase(),
      BERTH_ADMIN_TOKEN: ADMIN_TOKEN,
      BERTH_NODE_LEASE_SECONDS: String(LEASE_SECONDS),
      BERTH_RECONCILE_INTERVAL_SECONDS: '2',
      BERTH_TERMINATION_GRACE_SECONDS: '2',
    };
    const proxyPorts = [await freePort(), await freePort()];
    proxyUrls = proxyPorts.map((port) => `http://127.0.0.1:${port}`);
    // The first process migrates the database; the others start once it has.
    schedulers = [];
    for (const [i, host] of lab.hosts.entries()) {
      const scheduler = await BerthProcess.start('scheduler', {
        ...common,
        DOCKER_HOST: host.dockerHost,
        BERTH_NODE_NAME: `node-${i + 1}`,
        BERTH_NODE_ADDRESS: host.address,
      });
      schedulers.push(scheduler);
      processes.push(scheduler);
      if (i === 0) await new Promise((resolve) => setTimeout(resolve, 3000));
    }
    for (const port of proxyPorts) processes.push(await BerthProcess.start('proxy', { ...common, BERTH_PROXY_PORT: String(port) }));
    apis = [];
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      processes.push(await BerthProcess.start('api', { ...common, BERTH_API_PORT: String(port), BERTH_PUBLIC_PROXY_URL: proxyUrls[0]! }));
      apis.push(apiClient(`http://127.0.0.1:${port}`, ADMIN_TOKEN));
    }
    for (const api of apis) {
      await waitUntil(async () => (await fetch(`${api.baseUrl}/healthcheck`).catch(() => undefined))?.status === 200, 60_000, 'an API process');
    }
    for (const url of proxyUrls) await waitUntil(async () => (await fetch(`${url}/x/`).catch(() => undefined))?.status === 404, 60_000, 'a proxy process');
    admin = apis[0]!;
    await waitUntil(async () => (await nodes()).filter((node) => node.status === 'ready').length === 2, 60_000, 'both nodes to register');
    await admin.post('/v2/accounts', { name: 'acme' });
    const token = (await admin.post('/v2/account/acme/tokens')).body.token as string;
    await admin.post('/v2/account/acme/service', { name: 'echo', image: 'berth-test/app' });
    account = apiClient(apis[0]!.baseUrl, token);
    apis = apis.map((api) => apiClient(api.baseUrl, token));
  }, 240_000);

  afterAll(async () => {
    await Promise.all(processes.map((process) => process.stop().catch(() => undefined)));
    await lab?.destroy();
  }, 120_000);

  it('spreads backends over the nodes, serves every URL through either proxy, and terminates across API processes', async () => {
    const backends = [];
    for (let i = 0; i < 8; i++) backends.push(await connect(apis[i % 2]!, `spread-${i}`));
    for (const backend of backends) await waitForStatus(account, backend.backend_id, 'ready', 60_000);
    const placed = await Promise.all(backends.map((backend) => nodeOf(backend.backend_id)));
    expect(new Set(placed)).toEqual(new Set(['node-1', 'node-2']));

    for (const backend of backends) {
      const path = new URL(backend.url).pathname;
      for (const proxyUrl of proxyUrls) {
        const answer = await fetch(`${proxyUrl}${path}env`);
        expect(answer.status).toBe(200);
        expect(((await answer.json()) as Record<string, string>).SESSION_BACKEND_ID).toBe(backend.backend_id);
      }
    }

    // Connect on one API process, terminate on the other.
    const first = backends[0]!;
    expect((await apis[1]!.post(`/v2/backend/${first.backend_id}/terminate`, { hard: true })).status).toBe(200);
    await waitForStatus(account, first.backend_id, 'terminated', 30_000);
    for (const backend of backends.slice(1)) await apis[0]!.post(`/v2/backend/${backend.backend_id}/terminate`, { hard: true });
  });

  it('serves images, health and metrics from API processes that have no engine of their own', async () => {
    const images = (await apis[1]!.get('/v2/service/acme/echo/images')).body.images as Array<{ digest: string; tag: string }>;
    expect(images.map((image) => image.tag)).toContain('latest');
    const health = await admin.get('/health/status');
    expect(health.status).toBe(200);
    // A digest in spawn.tag resolves through the images the nodes reported.
    const pinned = await apis[1]!.post('/v2/service/acme/echo/connect', { key: 'pinned', spawn: { tag: images[0]!.digest } });
    expect(pinned.status, pinned.text).toBe(200);
    await waitForStatus(account, pinned.body.backend_id, 'ready', 60_000);
    // Metrics: the API process asks through the database; the backend's node samples and announces.
    const metrics = await readSse(`${apis[1]!.baseUrl}/v2/backend/${pinned.body.backend_id}/metrics/stream`, {
      headers: { Authorization: `Bearer ${apis[1]!.token}` },
      count: 2,
      timeoutMs: 20_000,
    });
    expect(metrics.status).toBe(200);
    expect(metrics.events.map((event) => JSON.parse(event.data) as { backend_id: string; mem_used: number })).toEqual([
      expect.objectContaining({ backend_id: pinned.body.backend_id, mem_used: expect.any(Number) }),
      expect.objectContaining({ backend_id: pinned.body.backend_id }),
    ]);
    await apis[0]!.post(`/v2/backend/${pinned.body.backend_id}/terminate`, { hard: true });
  });

  it('places nothing on a drained node', async () => {
    expect((await admin.post('/v2/node/node-1/drain', {})).body.status).toBe('draining');
    const placed = [];
    for (let i = 0; i < 4; i++) placed.push(await nodeOf((await connect(apis[i % 2]!, `drained-${i}`)).backend_id));
    expect(placed).toEqual(['node-2', 'node-2', 'node-2', 'node-2']);
    expect((await admin.post('/v2/node/node-1/ready', {})).body.status).toBe('ready');
  });

  it('ends a killed node\'s backends as lost within the lease, places elsewhere, and lets the node rejoin cleanly', async () => {
    const onTwo = [];
    for (let i = 0; i < 4; i++) {
      const connected = await connect(apis[0]!, `drained-${i}`);
      onTwo.push(connected.backend_id);
    }
    for (const id of onTwo) await waitForStatus(account, id, 'ready', 60_000);
    expect(await Promise.all(onTwo.map(nodeOf))).toEqual(['node-2', 'node-2', 'node-2', 'node-2']);

    const killedAt = Date.now();
    await schedulers[1]!.kill();
    await lab.hosts[1]!.kill();
    for (const id of onTwo) {
      const ended = await waitForStatus(account, id, 'terminated', (LEASE_SECONDS + 20) * 1000);
      expect(ended).toMatchObject({ termination_reason: 'lost' });
    }
    expect(Date.now() - killedAt).toBeLessThan((LEASE_SECONDS + 20) * 1000);
    await waitUntil(async () => (await nodes()).find((node) => node.name === 'node-2')?.status === 'lost', 10_000, 'node-2 to show as lost');
    // The keys are free, and new backends go to the node that is left.
    const replacement = await connect(apis[1]!, 'drained-0');
    expect(replacement.spawned).toBe(true);
    expect(await nodeOf(replacement.backend_id)).toBe('node-1');
    await waitForStatus(account, replacement.backend_id, 'ready', 60_000);

    // Back again: first it removes the containers of the backends that ended while it was away.
    await lab.hosts[1]!.restart();
    await schedulers[1]!.restart();
    await waitUntil(async () => (await nodes()).find((node) => node.name === 'node-2')?.status === 'ready', 60_000, 'node-2 to rejoin');
    const leftovers = await lab.hosts[1]!.docker.listContainers({ all: true, filters: { label: ['berth.managed=true'] } });
    expect(leftovers.map((container) => container.Labels['berth.backend-id'])).toEqual([]);
    const placed = new Set<string>();
    for (let i = 0; i < 6; i++) placed.add(await nodeOf((await connect(apis[i % 2]!, `rejoined-${i}`)).backend_id));
    expect(placed.has('node-2')).toBe(true);
  });
});
