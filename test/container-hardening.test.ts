// Issue 10, "containers": backends ran as root with Docker's default
// capabilities, no no-new-privileges, no pids, memory or CPU limit unless asked,
// unrotated logs, on the default bridge where one tenant's backend could call
// another's port 8080 around the proxy; any limit a caller asked for was taken.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, errorBodyMatching, type ApiClient } from './support/api.ts';
import { createTestService, inspectBackendContainer, waitForStatus } from './support/backends.ts';
import { ADMIN_TOKEN, TestBerth } from './support/berth.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();
const GIB = 1024 ** 3;
const NETWORK = 'berth-backends';
const MAX_BACKENDS = 3;

interface Connection {
  backend_id: string;
  url: string;
  spawned: boolean;
}

describe('container hardening', () => {
  let berth: TestBerth;
  let api: ApiClient;
  let admin: ApiClient;

  async function connect(body: Record<string, unknown> = {}, service = 'echo'): Promise<Connection> {
    const response = await api.post<Connection>(`/v2/service/acme/${service}/connect`, body);
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    return response.body;
  }

  /** Asks the app inside the backend, through berth's proxy: the test process never dials a container address. */
  async function fromInside<T>(connection: Connection, path: string): Promise<T> {
    const response = await fetch(`${connection.url}${path.replace(/^\//, '')}`);
    expect(response.status).toBe(200);
    return (await response.json()) as T;
  }

  async function stop(...ids: string[]): Promise<void> {
    for (const id of ids) await api.post(`/v2/backend/${id}/terminate`, { hard: true });
    for (const id of ids) await waitForStatus(api, id, 'terminated');
  }

  beforeAll(async () => {
    await ensureTestImage(docker);
    berth = await TestBerth.start({
      database: { kind: 'pglite' },
      env: { BERTH_MAX_CPU_PERCENT: '100', BERTH_MAX_BACKENDS_PER_ACCOUNT: String(MAX_BACKENDS), BERTH_TERMINATION_GRACE_SECONDS: '1' },
    });
    admin = apiClient(berth.apiUrl, ADMIN_TOKEN);
    api = await createTestService(berth, 'acme');
  });
  afterAll(() => berth?.stop());

  it('drops every capability, forbids new privileges, limits pids, memory and CPU by default, and rotates logs', async () => {
    const backend = await connect();
    await waitForStatus(api, backend.backend_id, 'ready');
    const info = (await inspectBackendContainer(docker, backend.backend_id))!;
    expect(info.HostConfig).toMatchObject({
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      PidsLimit: 512,
      Memory: GIB,
      MemorySwap: GIB,
      CpuPeriod: 100_000,
      CpuQuota: 100_000,
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10240k', 'max-file': '3' } },
      NetworkMode: NETWORK,
    });
    expect(info.HostConfig.CapAdd ?? null).toBeNull();
    expect(info.NetworkSettings.Ports['8080/tcp']?.[0]?.HostIp).toBe('127.0.0.1');
    // The kernel agrees: no effective capability, and no_new_privs set.
    expect(await fromInside(backend, '/self')).toMatchObject({ uid: 0, cap_eff: '0000000000000000', no_new_privs: '1', root_writable: true });
    await stop(backend.backend_id);
  });

  it('puts backends on a berth network without inter-container communication: one cannot reach another', async () => {
    const network = await docker.getNetwork(NETWORK).inspect();
    expect(network).toMatchObject({ Driver: 'bridge', Options: { 'com.docker.network.bridge.enable_icc': 'false' } });

    const env = { APP_FETCH_TIMEOUT_MS: '2000' };
    const [a, b] = [await connect({ spawn: { executable: { env } } }), await connect({ spawn: { executable: { env } } })];
    await waitForStatus(api, a.backend_id, 'ready');
    await waitForStatus(api, b.backend_id, 'ready');
    const addressOfB = (await inspectBackendContainer(docker, b.backend_id))!.NetworkSettings.Networks[NETWORK]?.IPAddress;
    expect(addressOfB).toMatch(/^\d+\.\d+\.\d+\.\d+$/);

    // The probe works: A reaches itself.
    expect(await fromInside(a, `/fetch?url=${encodeURIComponent('http://127.0.0.1:8080/env')}`)).toMatchObject({ ok: true, status: 200 });
    // But not B, which berth's proxy (and its x-verified-* headers) would otherwise be bypassed for.
    const reach = await fromInside<{ ok: boolean; error?: string }>(a, `/fetch?url=${encodeURIComponent(`http://${addressOfB}:8080/env`)}`);
    expect(reach).toMatchObject({ ok: false });
    await stop(a.backend_id, b.backend_id);
  });

  it.each([
    [{ memory_limit_bytes: 2 ** 52 }, 'memory_limit_bytes', 'BERTH_MAX_MEMORY_BYTES'],
    [{ memory_limit_bytes: 9 * GIB }, 'memory_limit_bytes', 'BERTH_MAX_MEMORY_BYTES'],
    [{ cpu_period_percent: 200 }, 'cpu_period_percent', 'BERTH_MAX_CPU_PERCENT'],
  ])('refuses limits %j above the ceiling, naming the field', async (limits, field, variable) => {
    const response = await api.post('/v2/service/acme/echo/connect', { spawn: { executable: { resource_limits: limits } } });
    const param = `body.spawn.executable.resource_limits.${field}`;
    expect(response.status).toBe(400);
    expect(response.body).toEqual(
      errorBodyMatching(400, 'invalid_request_error', 'limit_above_ceiling', { message: expect.stringContaining(variable), details: { param } }),
    );
    expect((await api.get('/v2/account/acme/backends')).body.running_backends).toEqual([]);
  });

  it('keeps the limits a caller asks for within the ceilings', async () => {
    const backend = await connect({ spawn: { executable: { resource_limits: { memory_limit_bytes: 256 * 1024 * 1024, cpu_period_percent: 50 } } } });
    await waitForStatus(api, backend.backend_id, 'ready');
    expect((await inspectBackendContainer(docker, backend.backend_id))!.HostConfig).toMatchObject({
      Memory: 256 * 1024 * 1024,
      CpuQuota: 50_000,
    });
    await stop(backend.backend_id);
  });

  it('runs a service as the user, read-only and with the capabilities the admin set, and refuses those settings from an account token', async () => {
    const refused = await api.post('/v2/account/acme/service', { name: 'locked', user: '0' });
    expect(refused.status).toBe(403);
    expect(refused.body).toEqual(errorBodyMatching(403, 'forbidden_error', 'admin_required', { details: { param: 'body.user' } }));

    const settings = { user: '1000:1000', read_only_root: true, cap_add: ['NET_BIND_SERVICE'] };
    expect((await admin.post('/v2/account/acme/service', { name: 'locked', image: 'berth-test/app', ...settings })).status).toBe(200);
    expect((await api.get('/v2/service/acme/locked')).body.container).toEqual(settings);
    const backend = await connect({}, 'locked');
    await waitForStatus(api, backend.backend_id, 'ready');
    const info = (await inspectBackendContainer(docker, backend.backend_id))!;
    expect(info.Config.User).toBe('1000:1000');
    expect(info.HostConfig).toMatchObject({ ReadonlyRootfs: true, CapAdd: ['NET_BIND_SERVICE'], CapDrop: ['ALL'], Tmpfs: { '/tmp': expect.any(String) } });
    expect(await fromInside(backend, '/self')).toMatchObject({ uid: 1000, gid: 1000, root_writable: false });
    await stop(backend.backend_id);

    const byAccount = await api.post('/v2/service/acme/locked/container', { read_only_root: false });
    expect(byAccount.status).toBe(403);
    expect(byAccount.body).toEqual(errorBodyMatching(403, 'forbidden_error', 'admin_required'));
    const bad = await admin.post('/v2/service/acme/locked/container', { cap_add: ['CAP_SYS_ADMIN'] });
    expect(bad.body).toEqual(errorBodyMatching(400, 'invalid_request_error', 'invalid_parameter', { details: { param: 'body.cap_add.0' } }));
    expect((await admin.post('/v2/service/acme/locked/container', { user: null, read_only_root: false, cap_add: [] })).status).toBe(200);
    expect((await api.get('/v2/service/acme/locked')).body.container).toEqual({ user: null, read_only_root: false, cap_add: [] });
  });

  it(`caps an account at ${MAX_BACKENDS} live backends with a typed 429, counting only new backends`, async () => {
    const held: Connection[] = [];
    for (let i = 0; i < MAX_BACKENDS; i++) held.push(await connect({ key: `room-${i}` }));
    const refused = await api.post('/v2/service/acme/echo/connect', { key: 'one-too-many' });
    expect(refused.status).toBe(429);
    expect(refused.body).toEqual(
      errorBodyMatching(429, 'rate_limit_error', 'account_backend_limit', { details: { account: 'acme', limit: MAX_BACKENDS } }),
    );
    // A key already held is no new backend.
    expect(await connect({ key: 'room-0' })).toMatchObject({ backend_id: held[0]!.backend_id, spawned: false });
    await stop(held[0]!.backend_id);
    expect(await connect({ key: 'one-too-many' })).toMatchObject({ spawned: true });
    const running = (await api.get('/v2/account/acme/backends')).body.running_backends as Array<{ id: string }>;
    await stop(...running.map((backend) => backend.id));
  });
});
