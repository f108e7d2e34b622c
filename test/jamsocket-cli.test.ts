// Drives the published Jamsocket CLI (npm `jamsocket` 0.10.x) against a real
// berth and real containers: with JAMSOCKET_SERVER_API pointing at berth, its
// commands must work unchanged. What the CLI sends and expects is in
// docs/compat/jamsocket-cli.md. The steps build on each other (log in, create a
// service, connect, …), so they run in order on one berth. Only the default
// storage is used: the CLI sees HTTP, which does not change with the database.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, type ApiClient } from './support/api.ts';
import { containerEnv, inspectBackendContainer, waitForStatus } from './support/backends.ts';
import { ADMIN_TOKEN, TestBerth } from './support/berth.ts';
import { createTestDocker } from './support/docker.ts';
import { JamsocketCli, type CliResult } from './support/jamsocket-cli.ts';
import { ensureTestImage, tagTestImage } from './support/test-image.ts';

const docker = createTestDocker();
// Per run: the images tagged into this repository must not collide with another run's on the same engine.
const ACCOUNT = `jamcli${Date.now().toString(36)}`;
const SERVICE = 'chat';
/** berth's default repository for the service: `{BERTH_IMAGE_PREFIX}{account}/{service}`, the prefix being empty here. */
const REPOSITORY = `${ACCOUNT}/${SERVICE}`;
const TAGS = ['v1', 'v2'];

/** The value printed after `label:` on a line of the CLI's output. */
function field(output: string, label: string): string {
  const match = new RegExp(`^\\s*${label}:\\s+(.*?)\\s*$`, 'm').exec(output);
  if (!match) throw new Error(`no "${label}:" line in:\n${output}`);
  return match[1]!;
}

function lines(output: string): string[] {
  return output.split('\n').map((line) => line.trimEnd());
}

/** A run that must succeed; on failure the assertion shows everything the CLI printed. */
function expectSuccess(result: CliResult): void {
  expect({ code: result.code, timedOut: result.timedOut, stderr: result.stderr }).toEqual({
    code: 0,
    timedOut: false,
    stderr: expect.any(String),
  });
  expect(result.stderr).not.toMatch(/Error/);
}

describe('the Jamsocket CLI against berth', () => {
  let berth: TestBerth;
  let token: string;
  let api: ApiClient;
  let cli: JamsocketCli;
  let imageId: string;
  /** The backend spawned with key doc-1, followed through the later steps. */
  let backendId: string;

  beforeAll(async () => {
    imageId = (await ensureTestImage(docker)).id;
    // Stands in for `jamsocket push`: the images berth finds in the service's repository.
    for (const tag of TAGS) await tagTestImage(docker, imageId, REPOSITORY, tag);
    berth = await TestBerth.start({ database: { kind: 'pglite' }, env: { BERTH_TERMINATION_GRACE_SECONDS: '1' } });
    const admin = apiClient(berth.apiUrl, ADMIN_TOKEN);
    await admin.post('/v2/accounts', { name: ACCOUNT });
    token = (await admin.post(`/v2/account/${ACCOUNT}/tokens`)).body.token as string;
    api = apiClient(berth.apiUrl, token);
    cli = await JamsocketCli.create(berth.apiUrl);
  });

  afterAll(async () => {
    if (api) {
      const running = ((await api.get(`/v2/account/${ACCOUNT}/backends`)).body.running_backends ?? []) as Array<{ id: string }>;
      for (const backend of running) await api.post(`/v2/backend/${backend.id}/terminate`, { hard: true });
      for (const backend of running) await waitForStatus(api, backend.id, 'terminated');
    }
    await berth?.stop();
    await cli?.cleanup();
    for (const tag of TAGS) await docker.getImage(`${REPOSITORY}:${tag}`).remove().catch(() => {});
  });

  it('logs in with an API token through GET /auth and stores it in ~/.jamsocket/config.json', async () => {
    const refused = await cli.run(['login', '--token', 'nosuchid.nosuchsecret']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('AuthenticationError: jamsocket: 401 - invalid_token');
    await expect(readFile(cli.configPath, 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });

    const login = await cli.run(['login', '--token', token]);
    expectSuccess(login);
    expect(login.stderr).toContain(`Using Jamsocket server override: ${berth.apiUrl}`);
    expect(lines(login.stdout)).toContain(`Logged in using API token as "${ACCOUNT}"`);
    expect(JSON.parse(await readFile(cli.configPath, 'utf8'))).toEqual({ api_token: { account: ACCOUNT, token } });

    // With a saved token the CLI checks it against /auth again and keeps it.
    const again = await cli.run(['login', '--token', token]);
    expectSuccess(again);
    expect(again.stdout).toContain(`You are already logged in as account ${ACCOUNT}.`);
  });

  it('creates services, refuses a duplicate, and lists them', async () => {
    for (const name of [SERVICE, 'scratch']) {
      const created = await cli.run(['service', 'create', name]);
      expectSuccess(created);
      expect(lines(created.stdout)).toContain(`Created service: ${name}`);
    }
    const service = await api.get(`/v2/service/${ACCOUNT}/${SERVICE}`);
    expect(service.status).toBe(200);
    expect(service.body).toMatchObject({ name: SERVICE, account_name: ACCOUNT, image_name: REPOSITORY });

    const duplicate = await cli.run(['service', 'create', SERVICE]);
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr).toContain(`HTTPError: jamsocket: 409 - service_exists: service "${SERVICE}" already exists in account "${ACCOUNT}"`);

    const list = await cli.run(['service', 'list']);
    expectSuccess(list);
    expect(lines(list.stdout).filter(Boolean).sort()).toEqual([SERVICE, 'scratch']);
  });

  it('lists the images of the service repository with their digests', async () => {
    const images = await cli.run(['images', SERVICE]);
    expectSuccess(images);
    expect(images.stdout).toContain('Found the following images:');
    const rows = lines(images.stdout).filter((line) => line.includes(REPOSITORY));
    expect(rows).toHaveLength(TAGS.length);
    for (const tag of TAGS) {
      expect(rows.some((row) => row.split(/\s+/).filter(Boolean).join(' ').startsWith(`${imageId} ${tag} `))).toBe(true);
    }
  });

  it('describes a service and switches its image tag with use-image', async () => {
    const before = await cli.run(['service', 'info', SERVICE]);
    expectSuccess(before);
    expect(field(before.stdout, 'Service')).toBe(SERVICE);
    expect(field(before.stdout, 'account')).toBe(ACCOUNT);
    expect(field(before.stdout, 'last spawn')).toBe('-');
    expect(field(before.stdout, 'last image push')).toMatch(new RegExp(`^${imageId} \\(.+ ago\\)$`));
    expect(field(before.stdout, 'cluster')).toBe('local');
    expect(field(before.stdout, 'image tag/digest')).toBe('latest');

    const updated = await cli.run(['service', 'use-image', SERVICE, '-i', 'v2']);
    expectSuccess(updated);
    expect(lines(updated.stdout)).toContain(`Updated ${SERVICE} to use image v2`);
    expect((await api.get(`/v2/service/${ACCOUNT}/${SERVICE}`)).body.environments).toEqual([
      expect.objectContaining({ name: 'default', image_tag: 'v2', cluster: 'local' }),
    ]);
    expect(field((await cli.run(['service', 'info', SERVICE])).stdout, 'image tag/digest')).toBe('v2');
  });

  it('connects with -k, -u, -a, -e, -t, -i and -l, and berth runs the backend it asked for', async () => {
    const connect = await cli.run([
      'connect', SERVICE,
      '-k', 'doc-1',
      '-u', 'alice',
      '-a', '{"role":"editor","pages":[1,2]}',
      '-e', 'APP_GREETING=hello',
      '-e', 'APP_FORMULA=a=b',
      '-t', 'v1',
      '-i', '60',
      '-l', '3600',
    ]);
    expectSuccess(connect);
    expect(lines(connect.stdout)[0]).toBe('Backend spawned!');
    backendId = field(connect.stdout, 'backend id');
    expect(backendId).toMatch(/^[a-z0-9]+$/);
    expect(field(connect.stdout, 'backend status')).toBe('scheduled');
    expect(field(connect.stdout, 'spawned')).toBe('true');
    expect(field(connect.stdout, 'status url')).toBe(`${berth.apiUrl}/v2/backend/${backendId}/status`);
    const url = field(connect.stdout, 'backend url');
    expect(url.startsWith(`${berth.proxyUrl}/`)).toBe(true);
    expect(field(connect.stdout, 'ready url')).toBe(`${berth.apiUrl}/ready/${backendId}/${new URL(url).pathname.split('/')[1]}/`);

    await waitForStatus(api, backendId, 'ready');
    const container = await inspectBackendContainer(docker, backendId);
    expect(container?.Config.Image).toBe(`${REPOSITORY}:v1`);
    expect(containerEnv(container!)).toMatchObject({ APP_GREETING: 'hello', APP_FORMULA: 'a=b', SESSION_BACKEND_KEY: 'doc-1' });

    // The connection URL carries -u and -a to the backend as x-verified-* headers.
    const echoed = (await (await fetch(url)).json()) as { headers: Record<string, string> };
    expect(echoed.headers['x-verified-username']).toBe('alice');
    expect(JSON.parse(echoed.headers['x-verified-user-data']!)).toEqual({ role: 'editor', pages: [1, 2] });
  });

  it('returns the backend holding a key, with and without --no-spawn, and spawns nothing new', async () => {
    for (const args of [['connect', SERVICE, '-k', 'doc-1'], ['connect', SERVICE, '--no-spawn', '-k', 'doc-1']]) {
      const joined = await cli.run(args);
      expectSuccess(joined);
      expect(field(joined.stdout, 'backend id')).toBe(backendId);
      expect(field(joined.stdout, 'backend status')).toBe('ready');
      expect(field(joined.stdout, 'spawned')).toBe('false');
    }

    const unheld = await cli.run(['connect', SERVICE, '--no-spawn', '-k', 'nobody']);
    expect(unheld.code).toBe(1);
    expect(unheld.stderr).toContain('HTTPError: jamsocket: 404 - no_backend_for_key: no running backend holds key "nobody" and spawn is false');

    // The CLI sends any JSON for -a; the API takes an object and says so (it once said "is required").
    const listAuth = await cli.run(['connect', SERVICE, '-a', '[1,2]']);
    expect(listAuth.code).toBe(1);
    expect(listAuth.stderr).toContain('HTTPError: jamsocket: 400 - invalid_parameter: "body.auth" invalid input: expected record, received array');

    const running = (await api.get(`/v2/account/${ACCOUNT}/backends`)).body.running_backends as Array<{ id: string }>;
    expect(running.map((backend) => backend.id)).toEqual([backendId]);
  });

  it('lists running backends and shows one with its statuses', async () => {
    const list = await cli.run(['backend', 'list']);
    expectSuccess(list);
    expect(list.stdout).toContain('Found the following running backends:');
    // Columns: ID, Created ("… ago"), Account, Service, Status ("ready (…)"), Key.
    expect(list.stdout).toMatch(new RegExp(`^ ${backendId} +\\S.* ago +${ACCOUNT} +${SERVICE} +ready \\(.+\\) +doc-1 *$`, 'm'));

    const info = await cli.run(['backend', 'info', backendId]);
    expectSuccess(info);
    expect(lines(info.stdout)[0]).toBe(`Info for backend: ${backendId}`);
    expect(field(info.stdout, 'service')).toBe(SERVICE);
    expect(field(info.stdout, 'account')).toBe(ACCOUNT);
    expect(field(info.stdout, 'cluster')).toBe('local');
    expect(field(info.stdout, 'image digest')).toBe(imageId);
    expect(field(info.stdout, 'key')).toBe('doc-1');
    const statuses = lines(info.stdout.slice(info.stdout.indexOf('Statuses:'))).slice(1).filter(Boolean);
    expect(statuses.map((line) => line.split(/\s+/)[1])).toEqual(['scheduled', 'starting', 'waiting', 'ready']);

    const missing = await cli.run(['backend', 'info', 'nosuchbackend']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('HTTPError: jamsocket: 404 - backend_not_found: backend "nosuchbackend" does not exist');
  });

  it('passes -i and -l on to berth, which sweeps idle and over-lifetime backends by them', async () => {
    const idle = field((await cli.run(['connect', SERVICE, '-i', '1'])).stdout, 'backend id');
    const shortLived = field((await cli.run(['connect', SERVICE, '-l', '2', '-i', '600'])).stdout, 'backend id');

    // Only -i 1 can sweep the first one (its lifetime is unlimited), only -l 2 the second (idle limit 600 s).
    expect(await waitForStatus(api, idle, 'terminated', 30_000)).toMatchObject({ termination_reason: 'swept' });
    expect(await waitForStatus(api, shortLived, 'terminated', 30_000)).toMatchObject({ termination_reason: 'swept' });
    const history = (await api.get(`/v2/backend/${shortLived}`)).body as { created_at: string; statuses: Array<{ status: string; time: string }> };
    const sweptAt = Date.parse(history.statuses.find((status) => status.status === 'terminating')!.time);
    expect(sweptAt - Date.parse(history.created_at)).toBeGreaterThanOrEqual(2000);
  });

  it('streams logs until the backend terminates, and reports a second terminate as already terminated', async () => {
    const logs = cli.start(['logs', backendId]);
    await logs.waitForStdout(/^listening on 8080$/m);

    const terminate = await cli.run(['terminate', backendId]);
    expectSuccess(terminate);
    expect(lines(terminate.stdout)).toContain(`Termination requested for backend: ${backendId}`);

    // berth ends the stream once the backend has terminated and its last lines are out.
    const streamed = await logs.result;
    expectSuccess(streamed);
    const logLines = lines(streamed.stdout);
    expect(logLines[0]).toBe('Reminder: you can find help troubleshooting common issues at https://docs.jamsocket.com/platform/troubleshooting');
    expect(logLines).toEqual(expect.arrayContaining(['stderr hello', 'listening on 8080', 'got SIGTERM']));
    expect(await waitForStatus(api, backendId, 'terminated')).toMatchObject({ termination_reason: 'external', termination_kind: 'soft' });

    const again = await cli.run(['terminate', backendId]);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain(`Warning: Backend ${backendId} has already terminated. Skipping...`);
    expect(again.stdout).not.toContain('Termination requested');

    const info = await cli.run(['backend', 'info', backendId]);
    expectSuccess(info);
    expect(info.stdout).toMatch(/ terminating \(reason: external\)\n/);
    expect(info.stdout).toMatch(/ terminated \(reason: external, kind: soft, exit code: 0\)\n/);

    const list = await cli.run(['backend', 'list']);
    expectSuccess(list);
    expect(lines(list.stdout)).toContain('No running backends found.');
  });

  it('deletes a service with -y', async () => {
    for (const name of ['scratch', SERVICE]) {
      const deleted = await cli.run(['service', 'delete', name, '-y']);
      expectSuccess(deleted);
      expect(lines(deleted.stdout)).toContain(`Deleted service: ${name}`);
      expect((await api.get(`/v2/service/${ACCOUNT}/${name}`)).status).toBe(404);
    }
    const list = await cli.run(['service', 'list']);
    expectSuccess(list);
    expect(list.stdout.trim()).toBe('');
  });

  it('works with a server URL written with a trailing slash', async () => {
    // The CLI then asks for `//auth`, `//v2/…`: berth routes those as `/auth`, `/v2/…`.
    const slashed = await JamsocketCli.create(`${berth.apiUrl}/`);
    try {
      expectSuccess(await slashed.run(['login', '--token', token]));
      const created = await slashed.run(['service', 'create', 'slashed']);
      expectSuccess(created);
      expect((await api.get(`/v2/service/${ACCOUNT}/slashed`)).status).toBe(200);
      expect(lines((await slashed.run(['service', 'list'])).stdout)).toContain('slashed');
    } finally {
      await slashed.cleanup();
    }
  });

  it('never connected anywhere but loopback, save the npm version checks it refused', async () => {
    // bin/run asks the npm registry for a newer CLI after every failed command; the preload refused each.
    expect(new Set(await cli.blockedConnections())).toEqual(new Set(['registry.npmjs.org:443']));
  });
});
