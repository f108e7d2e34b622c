import { mkdir, mkdtemp, readFile, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorBodyMatching, type ApiClient } from './support/api.ts';
import { createTestService, inspectBackendContainer, waitForStatus } from './support/backends.ts';
import { TestBerth } from './support/berth.ts';
import { testDatabases } from './support/databases.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();
const PARAM = 'body.spawn.executable.mount';

/** Runs a node script inside a backend's container and returns what it printed. */
async function runInContainer(containerId: string, script: string): Promise<string> {
  const exec = await docker.getContainer(containerId).exec({ Cmd: ['/usr/bin/node', '-e', script], AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({});
  return new Promise((resolve) => {
    let text = '';
    stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
    stream.on('end', () => resolve(text));
  });
}

// Mount paths do not depend on the storage: one database is enough.
describe('mounts (issue 10: tenants cannot mount each other or the host)', () => {
  let berth: TestBerth;
  let acme: ApiClient;
  let evil: ApiClient;
  let base: string;

  async function connect(api: ApiClient, account: string, mount: unknown, key?: string) {
    return api.post(`/v2/service/${account}/app/connect`, { ...(key ? { key } : {}), spawn: { executable: { mount } } });
  }

  beforeAll(async () => {
    await ensureTestImage(docker);
    base = await mkdtemp(join(tmpdir(), 'berth-mount-base-'));
    berth = await TestBerth.start({
      database: testDatabases()[0]!,
      env: { BERTH_MOUNT_BASE_DIR: base, BERTH_STARTUP_TIMEOUT_SECONDS: '20', BERTH_TERMINATION_GRACE_SECONDS: '1' },
    });
    acme = await createTestService(berth, 'acme', 'app');
    evil = await createTestService(berth, 'evil', 'app');
  });
  afterAll(async () => {
    await berth?.stop();
    await rm(base, { recursive: true, force: true });
  });

  it('puts a named mount at {base}/{account}/{service}/{name}, seen at /data in the container', async () => {
    const response = await connect(evil, 'evil', 'notes');
    expect(response.status).toBe(200);
    const id = response.body.backend_id as string;
    await waitForStatus(evil, id, 'ready');
    const source = join(base, 'evil', 'app', 'notes');
    const info = (await inspectBackendContainer(docker, id))!;
    expect(info.HostConfig.Binds).toEqual([`${source}:/data`]);
    await writeFile(join(source, 'hello.txt'), 'from the host');
    expect(await runInContainer(info.Id, 'process.stdout.write(require("fs").readFileSync("/data/hello.txt"))')).toContain('from the host');
    await evil.post(`/v2/backend/${id}/terminate`, { hard: true });
  });

  it('gives `mount: true` a directory of its own per key, below the service', async () => {
    const response = await connect(evil, 'evil', true, 'notebook');
    const id = response.body.backend_id as string;
    await waitForStatus(evil, id, 'ready');
    const source = join(base, 'evil', 'app', Buffer.from('notebook').toString('base64url'));
    expect((await inspectBackendContainer(docker, id))!.HostConfig.Binds).toEqual([`${source}:/data`]);
    await evil.post(`/v2/backend/${id}/terminate`, { hard: true });
  });

  it("refuses names that reach another account's files, the whole base or the host, with a 400 naming the field", async () => {
    // What account `evil` reached before: acme's directory, the base itself, anything absolute.
    await mkdir(join(base, 'acme', 'app', 'secret'), { recursive: true });
    await writeFile(join(base, 'acme', 'app', 'secret', 'data.txt'), 'acme only');
    const refused: Array<[unknown, string]> = [
      ['acme/app/secret', 'invalid_mount_name'],
      ['../../acme/app/secret', 'mount_outside_base'],
      ['.', 'mount_outside_base'],
      ['..', 'mount_outside_base'],
      ['./notes', 'mount_outside_base'],
      [base, 'mount_outside_base'],
      [join(base, 'acme', 'app', 'secret'), 'mount_outside_base'],
      ['/', 'mount_outside_base'],
      ['notes/', 'invalid_mount_name'],
      ['a//b', 'invalid_mount_name'],
      ['a\\b', 'invalid_mount_name'],
      ['x\0y', 'invalid_mount_name'],
      // Used to reach mkdir and fail there with ENAMETOOLONG: a 500.
      ['a'.repeat(300), 'invalid_mount_name'],
      ['notes:/etc', 'invalid_mount_name'],
    ];
    for (const [mount, code] of refused) {
      const response = await connect(evil, 'evil', mount);
      expect({ mount, status: response.status, body: response.body }).toEqual({
        mount,
        status: 400,
        body: errorBodyMatching(400, 'invalid_request_error', code, { details: { param: PARAM } }),
      });
    }
    // Nothing was made for any of them.
    expect((await readdir(base)).sort()).toEqual(['acme', 'evil']);
    expect((await readdir(join(base, 'evil', 'app'))).sort()).toEqual([Buffer.from('notebook').toString('base64url'), 'notes']);
  });

  it('refuses a mount name that is a symlink on the host, at connect', async () => {
    await mkdir(join(base, 'evil', 'app'), { recursive: true });
    await symlink('/', join(base, 'evil', 'app', 'escape'));
    const response = await connect(evil, 'evil', 'escape');
    expect(response.status).toBe(400);
    expect(response.body).toEqual(
      errorBodyMatching(400, 'invalid_request_error', 'mount_outside_base', {
        message: `"${PARAM}" names "escape", which is a symlink; berth mounts only directories it made`,
        details: { param: PARAM },
      }),
    );
  });

  it('refuses at container creation a mount swapped for a symlink after connect (issue 10: the next backend got the host\'s /)', async () => {
    // The tenant's running backend, as in the attack; its container sees only its own leaf.
    const holder = (await connect(evil, 'evil', 'a')).body.backend_id as string;
    await waitForStatus(evil, holder, 'ready');
    const holderInfo = (await inspectBackendContainer(docker, holder))!;
    expect(holderInfo.HostConfig.Binds).toEqual([`${join(base, 'evil', 'app', 'a')}:/data`]);
    // From inside, ".." of the mount is the container's own root, not the service's directory.
    await runInContainer(holderInfo.Id, 'require("fs").symlinkSync("/", "/data/../b")');
    expect(await readdir(join(base, 'evil', 'app'))).not.toContain('b');

    // Only the API runs, so the next backend waits between connect and container creation:
    // the window of the race, held open. The swap is done on the host, standing in for a
    // process that could write above the leaf.
    await berth.restart({ role: 'api' });
    const response = await connect(evil, 'evil', 'b');
    expect(response.status).toBe(200);
    const victim = response.body.backend_id as string;
    const leaf = join(base, 'evil', 'app', 'b');
    await rename(leaf, `${leaf}-checked`);
    await symlink('/', leaf);
    await berth.restart();

    const final = await waitForStatus(evil, victim, 'terminated');
    expect(final).toMatchObject({ status: 'terminated', termination_reason: 'internalerror', exit_error: true });
    expect(await inspectBackendContainer(docker, victim)).toBeUndefined();
    expect(await readFile(join(base, 'acme', 'app', 'secret', 'data.txt'), 'utf8')).toBe('acme only');
    await evil.post(`/v2/backend/${holder}/terminate`, { hard: true });
  });
});
