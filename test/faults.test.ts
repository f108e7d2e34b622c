// Lost notifications and outages leave no wrong state: with the database or
// the engine away for a while, and with berth killed mid-spawn, every
// backend's status comes to match its container, without restarting berth.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, type ApiClient } from './support/api.ts';
import { createTestService, inspectBackendContainer, waitForStatus, waitUntil } from './support/backends.ts';
import { BerthProcess } from './support/berth-process.ts';
import { ADMIN_TOKEN, freePort, TestBerth } from './support/berth.ts';
import { createPostgresDatabase } from './support/databases.ts';
import { DockerLab } from './support/docker-hosts.ts';
import { createTestDocker } from './support/docker.ts';
import { PgCluster } from './support/pg-cluster.ts';
import { readSse } from './support/sse.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();
const CONVERGE_MS = 30_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function lastStatus(api: ApiClient, id: string): Promise<Record<string, unknown>> {
  return (await api.get(`/v2/backend/${id}`)).body.statuses.at(-1);
}

describe('PostgreSQL stopped for 10 s while backends run, exit, start and are terminated', () => {
  let cluster: PgCluster;
  let berth: TestBerth;
  let api: ApiClient;

  beforeAll(async () => {
    await ensureTestImage(docker);
    cluster = await PgCluster.create();
    berth = await TestBerth.start({
      database: { kind: 'pglite' },
      env: { DATABASE_URL: cluster.url, BERTH_RECONCILE_INTERVAL_SECONDS: '2', BERTH_TERMINATION_GRACE_SECONDS: '2' },
    });
    api = await createTestService(berth, 'acme');
  });
  afterAll(async () => {
    await berth?.stop().catch(() => undefined);
    await cluster?.destroy();
  });

  it('converges every backend to its container and keeps what they wrote', async () => {
    const connect = async (key: string, env: Record<string, string> = {}) =>
      (await api.post('/v2/service/acme/echo/connect', { key, spawn: { executable: { env } } })).body as { backend_id: string; url: string };
    const steady = await connect('steady');
    const exiting = await connect('exiting', { APP_EXIT_AFTER_MS: '5000', APP_EXIT_CODE: '3' });
    const doomed = await connect('doomed');
    for (const backend of [steady, exiting, doomed]) await waitForStatus(api, backend.backend_id, 'ready');
    // The proxy learns the route now; during the outage it serves it from memory.
    expect((await fetch(`${steady.url}env`)).status).toBe(200);
    const slow = await connect('slow', { APP_STARTUP_DELAY_MS: '3000' });

    await cluster.stop();
    try {
      // Written while nobody can store it: it must not be lost.
      const printed = await fetch(`${steady.url}print?marker=written-during-the-outage`);
      expect(printed.status).toBe(200);
      const refused = await api.get(`/v2/backend/${steady.backend_id}`);
      expect(refused.status).toBe(503);
      await sleep(10_000);
    } finally {
      await cluster.start();
    }
    // A terminate as the database comes back: its notification may find nobody listening yet.
    await waitUntil(async () => (await api.post(`/v2/backend/${doomed.backend_id}/terminate`, {})).status === 200, CONVERGE_MS, 'the terminate to be taken');

    await waitForStatus(api, slow.backend_id, 'ready', CONVERGE_MS);
    await waitForStatus(api, exiting.backend_id, 'terminated', CONVERGE_MS);
    await waitForStatus(api, doomed.backend_id, 'terminated', CONVERGE_MS);
    expect(await lastStatus(api, exiting.backend_id)).toMatchObject({ status: 'terminated', exit_code: 3, exit_error: true });
    expect((await api.get(`/v2/backend/${steady.backend_id}/status`)).body.status).toBe('ready');
    for (const backend of [steady, slow]) expect((await inspectBackendContainer(docker, backend.backend_id))?.State.Running).toBe(true);
    await waitUntil(async () => (await inspectBackendContainer(docker, exiting.backend_id)) === undefined, CONVERGE_MS, 'the exited container to go');
    await waitUntil(async () => (await inspectBackendContainer(docker, doomed.backend_id)) === undefined, CONVERGE_MS, 'the terminated container to go');

    await waitUntil(
      async () => {
        const logs = await readSse(`${berth.apiUrl}/v2/backend/${steady.backend_id}/logs/stream?follow=false`, { headers: { Authorization: `Bearer ${api.token}` } });
        return logs.events.some((event) => event.data === 'written-during-the-outage');
      },
      CONVERGE_MS,
      'the line written during the outage to be stored',
    );
  });
});

describe.skipIf(process.getuid?.() !== 0)('the Docker engine restarted while backends run', () => {
  let lab: DockerLab;
  let berth: TestBerth;
  let api: ApiClient;

  beforeAll(async () => {
    await ensureTestImage(docker);
    lab = await DockerLab.create({ hosts: 1 });
    await lab.loadImage('berth-test/app:latest');
    const host = lab.hosts[0]!;
    berth = await TestBerth.start({
      database: { kind: 'pglite' },
      docker: host.docker,
      env: { BERTH_NODE_ADDRESS: host.address, BERTH_RECONCILE_INTERVAL_SECONDS: '2' },
    });
    api = await createTestService(berth, 'acme');
  }, 180_000);
  afterAll(async () => {
    await berth?.stop().catch(() => undefined);
    await lab?.destroy();
  }, 120_000);

  it('records every backend whose container stopped, with its exit code, and serves new ones', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await api.post('/v2/service/acme/echo/connect', { key: `k${i}` })).body.backend_id);
    for (const id of ids) await waitForStatus(api, id, 'ready');

    await lab.hosts[0]!.restart();
    for (const id of ids) {
      await waitForStatus(api, id, 'terminated', CONVERGE_MS);
      expect(await lastStatus(api, id)).toMatchObject({ status: 'terminated', exit_code: expect.any(Number) });
    }
    // Their exited containers are removed once recorded.
    await waitUntil(
      async () => {
        const managed = await lab.hosts[0]!.docker.listContainers({ all: true, filters: { label: ['berth.managed=true'] } });
        return managed.every((container) => !ids.includes(container.Labels['berth.backend-id'] ?? ''));
      },
      CONVERGE_MS,
      'the stopped containers to be removed',
    );

    // Until the node's next heartbeat says its engine is back, connect answers 503 docker_unavailable.
    let fresh: { spawned?: boolean; backend_id: string } = { backend_id: '' };
    await waitUntil(async () => {
      const answer = await api.post('/v2/service/acme/echo/connect', { key: 'k0' });
      fresh = answer.body;
      return answer.status === 200;
    }, CONVERGE_MS, 'a connect to be placed again');
    expect(fresh.spawned).toBe(true);
    await waitForStatus(api, fresh.backend_id, 'ready', CONVERGE_MS);
  });
});

describe.skipIf(!process.env.TEST_DATABASE_URL)('berth killed with SIGKILL mid-spawn, 20 times', () => {
  let berth: BerthProcess | undefined;
  let env: Record<string, string>;
  let apiUrl = '';

  beforeAll(async () => {
    await ensureTestImage(docker);
    const port = await freePort();
    apiUrl = `http://127.0.0.1:${port}`;
    env = {
      DATABASE_URL: await createPostgresDatabase(),
      BERTH_ADMIN_TOKEN: ADMIN_TOKEN,
      BERTH_API_PORT: String(port),
      BERTH_PROXY_PORT: String(await freePort()),
      BERTH_NODE_NAME: 'killed',
      BERTH_RECONCILE_INTERVAL_SECONDS: '2',
    };
  });
  afterAll(async () => {
    await berth?.stop();
    // Its containers, whatever state the kills left them in.
    const left = await docker.listContainers({ all: true, filters: { label: ['berth.node=killed'] } });
    await Promise.all(left.map((container) => docker.getContainer(container.Id).remove({ force: true }).catch(() => undefined)));
  });

  async function startBerth(): Promise<ApiClient> {
    berth = await BerthProcess.start('all', env);
    await waitUntil(async () => (await fetch(`${apiUrl}/healthcheck`).catch(() => undefined))?.status === 200, 60_000, 'berth to serve');
    return apiClient(apiUrl, ADMIN_TOKEN);
  }

  it('ends every backend ready, or terminated with a reason', async () => {
    let admin = await startBerth();
    await admin.post('/v2/accounts', { name: 'acme' });
    await admin.post('/v2/account/acme/service', { name: 'echo', image: 'berth-test/app' });
    const ids: string[] = [];
    for (let round = 0; round < 20; round++) {
      if (round > 0) admin = await startBerth();
      const connected = await admin.post('/v2/service/acme/echo/connect', { key: `round-${round}` });
      expect(connected.status, connected.text).toBe(200);
      ids.push(connected.body.backend_id);
      // Somewhere in the spawn: pulling nothing, creating, starting, waiting for HTTP.
      await sleep(50 + ((round * 97) % 400));
      await berth!.kill();
    }
    admin = await startBerth();
    const settled = async () => {
      const statuses = await Promise.all(ids.map((id) => admin.get(`/v2/backend/${id}/status`)));
      return statuses.every(({ body }) => body.status === 'ready' || (body.status === 'terminated' && typeof body.termination_reason === 'string'));
    };
    await waitUntil(settled, CONVERGE_MS, 'every backend to settle');
    for (const id of ids) {
      const status = (await admin.get(`/v2/backend/${id}/status`)).body;
      if (status.status === 'ready') expect((await inspectBackendContainer(docker, id))?.State.Running).toBe(true);
    }
  });
});
