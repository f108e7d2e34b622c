// berth/client against a real berth (PGlite) and real containers. Imported
// through the package's own "exports", the way an application would.
import {
  BackendTerminatedError,
  BerthApiError,
  BerthClient,
  BerthConnectionError,
  BerthTimeoutError,
  isBackendNotFound,
  isBackendNotRunning,
  isServiceExists,
  type BackendStatus,
  type MetricsSample,
} from 'berth/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_REPOSITORY } from './support/backends.ts';
import { ADMIN_TOKEN, freePort, TestBerth } from './support/berth.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();
const REQUEST_ID = expect.stringMatching(/^req_[a-z0-9]{16}$/);
const ISO_TIME = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

/** The error a promise rejects with (fails the test when it resolves). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

describe('berth/client', () => {
  let berth: TestBerth;
  let admin: BerthClient;
  let client: BerthClient;

  beforeAll(async () => {
    await ensureTestImage(docker);
    berth = await TestBerth.start({ database: { kind: 'pglite' }, env: { BERTH_TERMINATION_GRACE_SECONDS: '2' } });
    admin = new BerthClient({ url: `${berth.apiUrl}/`, token: ADMIN_TOKEN });
    await admin.accounts.create('acme');
    client = new BerthClient({ url: berth.apiUrl, token: (await admin.accounts.createToken('acme')).token });
    // Only the admin may give a service a repository other than `{account}/{service}`.
    await admin.services.create('acme', 'echo', { image: TEST_REPOSITORY });
  });
  afterAll(() => berth?.stop());

  it('creates accounts and tokens, tells who a token is, and revokes tokens', async () => {
    expect(await admin.accounts.create('beta')).toEqual({ name: 'beta', created_at: ISO_TIME });
    const minted = await admin.accounts.createToken('beta');
    expect(minted).toEqual({ token: expect.stringMatching(/^[a-z0-9]+\.\S+$/), id: minted.token.split('.')[0] });
    const beta = new BerthClient({ url: berth.apiUrl, token: minted.token });
    expect(await beta.auth()).toEqual({ accounts: ['beta'], is_admin: false });
    expect(await admin.auth()).toEqual({ accounts: expect.arrayContaining(['acme', 'beta']), is_admin: true });

    await admin.accounts.revokeToken('beta', minted.id);
    const revoked = await rejection(beta.auth());
    expect(revoked).toBeInstanceOf(BerthApiError);
    expect(revoked).toMatchObject({ status: 401, type: 'authentication_error', code: 'invalid_token', requestId: REQUEST_ID });
  });

  it('creates, lists, reads, repoints and deletes services', async () => {
    await client.services.create('acme', 'scratch');
    expect(await client.services.list('acme')).toEqual(['echo', 'scratch']);
    expect(await client.services.imageName('acme', 'scratch')).toBe('acme/scratch');
    await client.services.useImage('acme', 'scratch', 'v2', { environment: 'staging' });
    const service = await client.services.get('acme', 'scratch');
    expect(service).toMatchObject({ name: 'scratch', account_name: 'acme', image_name: 'acme/scratch', last_image_digest: null });
    expect(service.environments.map((env) => [env.name, env.image_tag])).toEqual([
      ['default', 'latest'],
      ['staging', 'v2'],
    ]);
    expect(await client.services.images('acme', 'scratch')).toEqual([]);
    const images = await client.services.images('acme', 'echo');
    expect(images).toContainEqual({ digest: expect.stringMatching(/^sha256:/), tag: 'latest', repository: TEST_REPOSITORY, upload_time: ISO_TIME });

    const duplicate = await rejection(client.services.create('acme', 'scratch'));
    expect(isServiceExists(duplicate)).toBe(true);
    await client.services.delete('acme', 'scratch');
    expect(await client.services.list('acme')).toEqual(['echo']);
  });

  it('connects, waits until ready, and reads the status, the metadata and the listings', async () => {
    let fetches = 0;
    const counting = new BerthClient({
      url: berth.apiUrl,
      token: (await admin.accounts.createToken('acme')).token,
      fetch: (input, init) => {
        fetches += 1;
        return fetch(input, init);
      },
    });
    const connected = await counting.connect('acme', 'echo', { key: 'doc-1', user: 'ada', spawn: { executable: { env: { APP_GREETING: 'hi' } } } });
    expect(connected).toEqual({
      backend_id: expect.stringMatching(/^[a-z0-9]{10}$/),
      spawned: true,
      status: 'scheduled',
      token: expect.any(String),
      url: `${berth.proxyUrl}/${connected.token}/`,
      secret_token: expect.any(String),
      status_url: `${berth.apiUrl}/v2/backend/${connected.backend_id}/status`,
      ready_url: `${berth.apiUrl}/ready/${connected.backend_id}/${connected.token}/`,
    });
    const id = connected.backend_id;

    expect(await counting.waitUntilReady(id, { timeoutMs: 30_000 })).toEqual({ status: 'ready', time: ISO_TIME });
    expect(await counting.status(id)).toEqual({ status: 'ready', time: ISO_TIME });
    expect(fetches).toBeGreaterThanOrEqual(3);
    const echoed = await (await fetch(connected.url)).json();
    expect(echoed.headers['x-verified-username']).toBe('ada');
    expect(echoed.env.APP_GREETING).toBe('hi');

    const again = await client.connect('acme', 'echo', { key: 'doc-1', spawn: false });
    expect(again).toMatchObject({ backend_id: id, spawned: false, status: 'ready' });

    const info = await client.backend(id);
    expect(info).toMatchObject({ id, account_name: 'acme', service_name: 'echo', environment_name: 'default', key: 'doc-1', cluster_name: 'local' });
    expect(info.statuses.map((status) => status.status)).toEqual(['scheduled', 'starting', 'waiting', 'ready']);
    expect((await client.runningBackends('acme')).map((backend) => [backend.id, backend.status.status])).toContainEqual([id, 'ready']);
    const listed = (await client.serviceBackends('acme', 'echo', { start: new Date(Date.now() - 60_000) })).find((backend) => backend.id === id);
    expect(listed).toMatchObject({ id, key: 'doc-1', ready_timestamp: ISO_TIME, status: { status: 'ready', time: ISO_TIME } });
    expect(await client.serviceBackends('acme', 'echo', { end: new Date(Date.now() - 3_600_000) })).toEqual([]);

    await client.terminate(id, { hard: true });
    const terminated = await collect(client.statusStream(id));
    expect(terminated.at(-1)).toMatchObject({ status: 'terminated', termination_reason: 'external', termination_kind: 'hard' });
  });

  it('iterates the status stream from the history to the end, and resumes after an event id', async () => {
    const { backend_id: id } = await client.connect('acme', 'echo');
    const streamed = collect(client.statusStream(id));
    await client.waitUntilReady(id);
    await client.terminate(id);
    const statuses = await streamed;
    expect(statuses.map((status) => status.status)).toEqual(['scheduled', 'starting', 'waiting', 'ready', 'terminating', 'terminated']);
    expect(statuses[4]).toEqual({ id: expect.any(String), status: 'terminating', time: ISO_TIME, termination_reason: 'external', termination_kind: 'soft' });
    const ids = statuses.map((status) => Number(status.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));

    const resumed = await collect(client.statusStream(id, { lastEventId: statuses[3]!.id! }));
    expect(resumed.map((status) => status.status)).toEqual(['terminating', 'terminated']);
    // Once it has terminated, waiting for it says so.
    const late = await rejection(client.waitUntilReady(id));
    expect(late).toBeInstanceOf(BackendTerminatedError);
    expect(late).toMatchObject({ backendId: id, status: { status: 'terminated', termination_reason: 'external' } });
  });

  it('iterates log and metrics streams, stops on break and on abort, and reads stored lines without following', async () => {
    const { backend_id: id } = await client.connect('acme', 'echo', { spawn: { executable: { env: { APP_LOG_EVERY_MS: '200' } } } });
    await client.waitUntilReady(id);

    // Following: new lines arrive; leaving the loop closes the stream.
    const lines: string[] = [];
    for await (const { id: eventId, line } of client.logStream(id)) {
      expect(eventId).toMatch(/^\d+$/);
      lines.push(line);
      if (line === 'tick 3') break;
    }
    expect(lines).toEqual(expect.arrayContaining(['stderr hello', 'listening on 8080', 'tick 1', 'tick 2', 'tick 3']));

    // Not following: the stored lines, then the end, while the backend goes on logging.
    const stored = await collect(client.logStream(id, { follow: false }));
    expect(stored.map((entry) => entry.line)).toEqual(expect.arrayContaining(lines));
    // Each line with when it was read and from which stream (the stream's ?format=json).
    expect(stored.find((entry) => entry.line === 'stderr hello')).toEqual({ id: expect.stringMatching(/^\d+$/), time: expect.stringMatching(/^\d{4}-.*Z$/), stream: 'stderr', line: 'stderr hello' });
    const resumed = await collect(client.logStream(id, { follow: false, lastEventId: stored[1]!.id! }));
    expect(resumed[0]).toEqual(stored[2]);

    const samples: MetricsSample[] = [];
    for await (const sample of client.metricsStream(id)) {
      samples.push(sample);
      if (samples.length === 2) break;
    }
    for (const sample of samples) {
      expect(sample).toEqual({
        backend_id: id,
        cpu_used: expect.any(Number),
        mem_available: expect.any(Number),
        mem_limit: expect.any(Number),
        mem_used: expect.any(Number),
        sys_cpu: expect.any(Number),
      });
    }

    // An abort ends the iteration without an error.
    const controller = new AbortController();
    const aborted: MetricsSample[] = [];
    setTimeout(() => controller.abort(), 1500);
    for await (const sample of client.metricsStream(id, { signal: controller.signal })) aborted.push(sample);
    expect(aborted.length).toBeGreaterThanOrEqual(1);
    expect(await collect(client.logStream(id, { signal: AbortSignal.abort() }))).toEqual([]);

    // A followed log stream ends by itself once the backend has terminated.
    const following = collect(client.logStream(id));
    await client.terminate(id);
    const all = await following;
    expect(all.at(-1)?.line).toBe('got SIGTERM');
  });

  it('throws BerthApiError with the server message, code, type, request id and details', async () => {
    const missing = await rejection(client.status('nope'));
    expect(missing).toBeInstanceOf(BerthApiError);
    expect(missing).toMatchObject({
      status: 404,
      type: 'not_found_error',
      code: 'backend_not_found',
      message: 'backend "nope" does not exist',
      requestId: REQUEST_ID,
      details: { backend_id: 'nope' },
    });
    expect(isBackendNotFound(missing)).toBe(true);

    const { backend_id: id } = await client.connect('acme', 'echo');
    await client.terminate(id, { hard: true });
    await collect(client.statusStream(id));
    const twice = await rejection(client.terminate(id));
    expect(twice).toMatchObject({ status: 409, type: 'conflict_error', code: 'BackendNotRunning', message: `backend "${id}" is not running` });
    expect(isBackendNotRunning(twice)).toBe(true);
    // A stream that cannot open fails on the first step of the iteration.
    const metrics = await rejection(collect(client.metricsStream(id)));
    expect(isBackendNotRunning(metrics)).toBe(true);

    const invalid = await rejection(client.connect('acme', 'echo', { spawn: { max_idle_seconds: -1 } }));
    expect(invalid).toMatchObject({ status: 400, code: 'invalid_parameter', details: { param: 'body.spawn.max_idle_seconds' } });
    const forbidden = await rejection(client.services.list('beta'));
    expect(forbidden).toMatchObject({ status: 403, type: 'forbidden_error' });

    const unreachable = new BerthClient({ url: `http://127.0.0.1:${await freePort()}` });
    const refused = await rejection(unreachable.status('x'));
    expect(refused).toBeInstanceOf(BerthConnectionError);
    expect((refused as Error).message).toMatch(/could not reach berth at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
  });

  it('waitUntilReady throws BackendTerminatedError when the backend ends first, BerthTimeoutError on timeout, and the reason on abort', async () => {
    const exits = await client.connect('acme', 'echo', {
      spawn: { executable: { env: { APP_NEVER_LISTEN: '1', APP_EXIT_AFTER_MS: '300', APP_EXIT_CODE: '3' } } },
    });
    const ended = await rejection(client.waitUntilReady(exits.backend_id, { timeoutMs: 30_000 }));
    expect(ended).toBeInstanceOf(BackendTerminatedError);
    expect((ended as BackendTerminatedError).status).toMatchObject<Partial<BackendStatus>>({ status: 'terminated', exit_error: true });
    expect((ended as Error).message).toBe(`backend "${exits.backend_id}" is terminated (exit error) and will not become ready`);

    const { backend_id: id } = await client.connect('acme', 'echo', { spawn: { executable: { env: { APP_NEVER_LISTEN: '1' } } } });
    const started = Date.now();
    const slow = await rejection(client.waitUntilReady(id, { timeoutMs: 1500 }));
    expect(slow).toBeInstanceOf(BerthTimeoutError);
    expect(slow).toMatchObject({ timeoutMs: 1500, message: `backend "${id}" was not ready within 1500 ms` });
    expect(Date.now() - started).toBeLessThan(5000);

    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('gave up')), 300);
    expect(await rejection(client.waitUntilReady(id, { signal: controller.signal }))).toEqual(new Error('gave up'));
    await client.terminate(id, { hard: true });
  });
});
