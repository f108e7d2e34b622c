import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, errorBodyMatching, type ApiClient } from './support/api.ts';
import { createTestService, inspectBackendContainer, waitForStatus, waitUntil } from './support/backends.ts';
import { ADMIN_TOKEN, TestBerth } from './support/berth.ts';
import { testDatabases } from './support/databases.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();

interface Status {
  status: string;
  time: string;
  termination_reason?: string;
  termination_kind?: string;
  exit_error?: boolean;
  exit_code?: number | null;
  last_status?: string;
}

// The whole lifecycle runs on both storages: status events travel through
// LISTEN/NOTIFY on each, and the scheduler acts on nothing else.
describe.each(testDatabases())('backend lifecycle on $kind', (database) => {
  let berth: TestBerth;
  let api: ApiClient;
  let mountBase: string;

  async function spawn(spawnConfig: Record<string, unknown> = {}, key?: string): Promise<string> {
    const response = await api.post('/v2/service/acme/echo/connect', { ...(key ? { key } : {}), spawn: spawnConfig });
    expect(response.status).toBe(200);
    return response.body.backend_id as string;
  }

  async function statuses(id: string): Promise<Status[]> {
    return (await api.get(`/v2/backend/${id}`)).body.statuses as Status[];
  }

  beforeAll(async () => {
    await ensureTestImage(docker);
    mountBase = await mkdtemp(join(tmpdir(), 'berth-mounts-'));
    berth = await TestBerth.start({
      database,
      env: {
        BERTH_TERMINATION_GRACE_SECONDS: '2',
        BERTH_STARTUP_TIMEOUT_SECONDS: '4',
        BERTH_SWEEP_INTERVAL_SECONDS: '0.5',
        BERTH_MOUNT_BASE_DIR: mountBase,
        // The pull-failure test's registry: any other host is refused before the engine dials it.
        BERTH_ALLOWED_REGISTRIES: '127.0.0.1:1',
      },
    });
    api = await createTestService(berth, 'acme');
  });
  afterAll(async () => {
    await berth?.stop();
    await rm(mountBase, { recursive: true, force: true });
  });

  it('terminates softly: SIGTERM, then terminated with the app exit code, and the container removed', async () => {
    const id = await spawn();
    await waitForStatus(api, id, 'ready');
    expect((await api.post(`/v2/backend/${id}/terminate`, {})).body).toEqual({ status: 'ok' });
    const final = await waitForStatus(api, id, 'terminated');
    expect(final).toEqual({ status: 'terminated', time: expect.any(String), termination_reason: 'external', termination_kind: 'soft', exit_error: false });
    expect((await statuses(id)).slice(-2)).toEqual([
      { status: 'terminating', time: expect.any(String), last_status: 'ready', termination_reason: 'external', termination_kind: 'soft' },
      { status: 'terminated', time: expect.any(String), last_status: 'terminating', termination_reason: 'external', termination_kind: 'soft', exit_error: false, exit_code: 0 },
    ]);
    await waitUntil(async () => (await inspectBackendContainer(docker, id)) === undefined, 10_000, 'container removal');
  });

  it('goes hard after the grace period when the app ignores SIGTERM', async () => {
    const id = await spawn({ executable: { env: { APP_IGNORE_SIGTERM: '1' } } });
    await waitForStatus(api, id, 'ready');
    const started = Date.now();
    await api.post(`/v2/backend/${id}/terminate`, { hard: false });
    await waitForStatus(api, id, 'terminated');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    expect((await statuses(id)).slice(-3).map((s) => [s.status, s.termination_reason, s.termination_kind, s.exit_code])).toEqual([
      ['terminating', 'external', 'soft', undefined],
      ['hard-terminating', 'external', 'hard', undefined],
      ['terminated', 'external', 'hard', 137],
    ]);
  });

  it('terminates hard at once, and answers a second terminate with 409 BackendNotRunning', async () => {
    const id = await spawn({ executable: { env: { APP_IGNORE_SIGTERM: '1' } } });
    await waitForStatus(api, id, 'ready');
    await api.post(`/v2/backend/${id}/terminate`, { hard: true });
    const final = await waitForStatus(api, id, 'terminated', 1500);
    expect(final).toMatchObject({ termination_reason: 'external', termination_kind: 'hard', exit_error: true });
    expect((await statuses(id)).map((s) => s.status)).toEqual(['scheduled', 'starting', 'waiting', 'ready', 'hard-terminating', 'terminated']);

    const again = await api.post(`/v2/backend/${id}/terminate`, {});
    expect(again.status).toBe(409);
    expect(again.body).toEqual(errorBodyMatching(409, 'conflict_error', 'BackendNotRunning', { details: { backend_id: id } }));
    expect((await api.post(`/v2/backend/${id}/terminate`, { hard: 'yes' })).status).toBe(400);
  });

  it('answers 404 for terminating a backend that does not exist', async () => {
    const response = await api.post('/v2/backend/doesnotexist/terminate', {});
    expect(response.status).toBe(404);
    expect(response.body).toEqual(errorBodyMatching(404, 'not_found_error', 'backend_not_found', { details: { backend_id: 'doesnotexist' } }));
  });

  it('records an app exiting on its own with its exit code and no termination reason', async () => {
    const id = await spawn({ executable: { env: { APP_EXIT_AFTER_MS: '500', APP_EXIT_CODE: '3' } } });
    const final = await waitForStatus(api, id, 'terminated');
    expect(final).toEqual({ status: 'terminated', time: expect.any(String), exit_error: true });
    expect((await statuses(id)).at(-1)).toMatchObject({ status: 'terminated', exit_code: 3, exit_error: true });
    expect((await statuses(id)).at(-1)?.termination_reason).toBeUndefined();
  });

  it('records an app killed for exceeding its memory limit', async () => {
    const id = await spawn({ executable: { env: { APP_ALLOCATE_MB: '200' }, resource_limits: { memory_limit_bytes: 64 * 1024 * 1024 } } });
    await waitForStatus(api, id, 'terminated');
    expect((await statuses(id)).at(-1)).toMatchObject({ status: 'terminated', exit_code: 137, exit_error: true });
  });

  it('terminates an app that never listens when the startup timeout passes', async () => {
    const id = await spawn({ executable: { env: { APP_NEVER_LISTEN: '1' } } });
    await waitForStatus(api, id, 'waiting', 10_000);
    const final = await waitForStatus(api, id, 'terminated', 15_000);
    expect(final).toMatchObject({ termination_reason: 'startuptimeout', termination_kind: 'hard', exit_error: true });
    expect((await statuses(id)).map((s) => s.status)).toEqual(['scheduled', 'starting', 'waiting', 'hard-terminating', 'terminated']);
  });

  it('marks a backend whose container is removed behind its back as lost', async () => {
    const id = await spawn();
    await waitForStatus(api, id, 'ready');
    await docker.getContainer(`berth-${id}`).remove({ force: true });
    const final = await waitForStatus(api, id, 'terminated', 10_000);
    expect(final).toMatchObject({ termination_reason: 'lost', exit_error: true });
    expect((await statuses(id)).at(-1)).toMatchObject({ exit_code: 137 });
  });

  it('sweeps a backend idle past max_idle_seconds', async () => {
    const id = await spawn({ max_idle_seconds: 1 });
    await waitForStatus(api, id, 'ready');
    const final = await waitForStatus(api, id, 'terminated', 10_000);
    expect(final).toMatchObject({ termination_reason: 'swept', termination_kind: 'soft', exit_error: false });
  });

  it('sweeps a backend at its lifetime limit even while it is in use', async () => {
    const id = await spawn({ lifetime_limit_seconds: 3, max_idle_seconds: 60 }, 'busy');
    await waitForStatus(api, id, 'ready');
    const deadline = Date.now() + 12_000;
    let status = 'ready';
    while (status !== 'terminated' && Date.now() < deadline) {
      // Connects count as activity: they keep the idle clock at zero, not the lifetime one.
      await api.post('/v2/service/acme/echo/connect', { key: 'busy', spawn: false });
      status = (await api.get(`/v2/backend/${id}/status`)).body.status;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    const final = (await api.get(`/v2/backend/${id}/status`)).body;
    expect(final).toMatchObject({ status: 'terminated', termination_reason: 'swept' });
    const history = await statuses(id);
    // The lifetime runs from when the backend was made, whatever its activity.
    const created = Date.parse(history.find((s) => s.status === 'scheduled')!.time);
    const swept = Date.parse(history.find((s) => s.status === 'terminating')!.time);
    expect(swept - created).toBeGreaterThanOrEqual(3000);
  });

  it('records loading and then an internal error when the image cannot be pulled', async () => {
    const admin = apiClient(berth.apiUrl, ADMIN_TOKEN);
    // A registry on a closed loopback port: the pull fails at once and nothing leaves the machine.
    await admin.post('/v2/account/acme/service', { name: 'missing', image: '127.0.0.1:1/acme/missing' });
    const response = await api.post('/v2/service/acme/missing/connect', {});
    const final = await waitForStatus(api, response.body.backend_id, 'terminated');
    expect(final).toMatchObject({ termination_reason: 'internalerror', exit_error: true });
    expect((await statuses(response.body.backend_id)).map((s) => s.status)).toEqual(['scheduled', 'loading', 'terminated']);
  });

  it('mounts a directory under the base, per key, and refuses paths outside it', async () => {
    const id = await spawn({ executable: { mount: true } }, 'notebook');
    await waitForStatus(api, id, 'ready');
    const info = (await inspectBackendContainer(docker, id))!;
    const source = join(mountBase, 'acme', 'echo', Buffer.from('notebook').toString('base64url'));
    expect(info.HostConfig.Binds).toEqual([`${source}:/data`]);
    await writeFile(join(source, 'hello.txt'), 'from the host');
    const exec = await docker.getContainer(info.Id).exec({ Cmd: ['/usr/bin/node', '-e', 'process.stdout.write(require("fs").readFileSync("/data/hello.txt"))'], AttachStdout: true });
    const stream = await exec.start({});
    const output = await new Promise<string>((resolve) => {
      let text = '';
      stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
      stream.on('end', () => resolve(text));
    });
    expect(output).toContain('from the host');
    await api.post(`/v2/backend/${id}/terminate`, { hard: true });
    expect(await readFile(join(source, 'hello.txt'), 'utf8')).toBe('from the host');

    const named = await spawn({ executable: { mount: 'room-1' } });
    await waitForStatus(api, named, 'ready');
    expect((await inspectBackendContainer(docker, named))!.HostConfig.Binds).toEqual([`${join(mountBase, 'acme', 'echo', 'room-1')}:/data`]);
    await api.post(`/v2/backend/${named}/terminate`, { hard: true });

    await symlink('/etc', join(mountBase, 'acme', 'echo', 'escape'));
    for (const mount of ['../outside', 'a/../../outside', '/etc', 'escape']) {
      const refused = await api.post('/v2/service/acme/echo/connect', { spawn: { executable: { mount } } });
      expect(refused.status).toBe(400);
      expect(refused.body).toEqual(
        errorBodyMatching(400, 'invalid_request_error', 'mount_outside_base', { details: { param: 'body.spawn.executable.mount' } }),
      );
    }
  });

  it('counts backends by status in /health/status', async () => {
    const response = await apiClient(berth.apiUrl, ADMIN_TOKEN).get('/health/status');
    expect(response.body.backends.terminated).toBeGreaterThanOrEqual(8);
    const total = Object.values(response.body.backends as Record<string, number>).reduce((a, b) => a + b, 0);
    expect(total).toBe((await api.get('/v2/service/acme/echo/backends')).body.backends.length + 1);
  });
});
