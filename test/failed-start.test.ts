// A backend berth cannot start ends `terminated` with reason `internalerror`
// (never `lost`), and its owner can read why without the server log.
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './support/cli.ts';
import { apiClient, type ApiClient } from './support/api.ts';
import { createTestService, waitForStatus } from './support/backends.ts';
import { ADMIN_TOKEN, TestBerth } from './support/berth.ts';
import { testDatabases } from './support/databases.ts';
import { createTestDocker } from './support/docker.ts';
import { readSse } from './support/sse.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();
const BROKEN_REPOSITORY = 'berth-test/no-such-command';

/** The test image with a command that does not exist: create succeeds, start fails. */
async function ensureBrokenImage(docker: Dockerode): Promise<void> {
  const { reference } = await ensureTestImage(docker);
  const container = await docker.createContainer({ Image: reference, Entrypoint: ['/no-such-command'], Cmd: [] });
  try {
    await container.commit({ repo: BROKEN_REPOSITORY, tag: 'latest' });
  } finally {
    await container.remove({ force: true });
  }
}


describe.each(testDatabases())('a backend that fails to start, on $kind', (database) => {
  let berth: TestBerth;
  let api: ApiClient;

  beforeAll(async () => {
    await ensureBrokenImage(docker);
    berth = await TestBerth.start({ database });
    api = await createTestService(berth, 'acme');
    const admin = apiClient(berth.apiUrl, ADMIN_TOKEN);
    for (const [name, image] of [
      ['broken', BROKEN_REPOSITORY],
      ['missing', 'berth-test/never-built-anywhere'],
    ]) {
      const created = await admin.post('/v2/account/acme/service', { name, image });
      expect(created.status, created.text).toBe(200);
    }
  });
  afterAll(async () => {
    await berth?.stop();
  });

  async function failedBackend(service: string): Promise<{ id: string; readyUrl: string; statuses: any[] }> {
    const connected = await api.post(`/v2/service/acme/${service}/connect`, {});
    expect(connected.status).toBe(200);
    const id = connected.body.backend_id as string;
    await waitForStatus(api, id, 'terminated', 60_000);
    const info = await api.get(`/v2/backend/${id}`);
    return { id, readyUrl: connected.body.ready_url as string, statuses: info.body.statuses };
  }

  it('records a command that does not exist as internalerror with the cause, never as lost', async () => {
    // The removal of the failed container used to race the failure and win about half the time.
    const results = await Promise.all([1, 2, 3, 4, 5, 6].map(() => failedBackend('broken')));
    for (const { statuses } of results) {
      const last = statuses.at(-1);
      expect(last).toMatchObject({ status: 'terminated', termination_reason: 'internalerror', exit_error: true });
      expect(last.message).toMatch(/^starting container berth-[a-z0-9]+ failed: .*no-such-command/);
      expect(statuses.map((s: { termination_reason?: string }) => s.termination_reason)).not.toContain('lost');
    }
  });

  it('says why on the ready page, in the logs stream and in berth status', async () => {
    const { id, readyUrl, statuses } = await failedBackend('missing');
    const cause = statuses.at(-1).message as string;
    expect(cause).toMatch(/^pulling berth-test\/never-built-anywhere:latest failed: /);

    const page = await fetch(readyUrl);
    const html = await page.text();
    expect(html).toContain('<h1>Backend stopped');
    expect(html).not.toContain('Starting');
    expect(html).toContain('(internalerror)');
    expect(html).toContain(cause.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`));

    const logs = await readSse(`${berth.apiUrl}/v2/backend/${id}/logs/stream`, { headers: { Authorization: `Bearer ${api.token}` } });
    expect(logs.ended).toBe(true);
    expect(logs.events.map((event) => event.data)).toEqual([`berth: the backend could not be started: ${cause}`]);

    const env = { PATH: process.env.PATH ?? '', HOME: '/nonexistent', BERTH_URL: berth.apiUrl, BERTH_TOKEN: api.token! };
    const status = await runCli(['status', id], env);
    expect(status.stdout).toContain('internalerror');
    expect(status.stdout).toContain(`cause: ${cause}`);
  });
});
