import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, errorBodyMatching, type ApiClient } from './support/api.ts';
import { createTestService, waitForStatus } from './support/backends.ts';
import { ADMIN_TOKEN, TestBerth } from './support/berth.ts';
import { testDatabases } from './support/databases.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();
const CONNECT = '/v2/service/acme/echo/connect';
const INVALID_TOKEN = errorBodyMatching(401, 'authentication_error', 'invalid_token', { message: 'the token is not valid' });

/**
 * Connect takes its principal from a per-process cache of token rows (no
 * query) and checks the token in the statement that serves a held key: these
 * pin down that a revocation still takes effect on the very next request, in
 * the process that revoked and in every other one.
 */
describe.each(testDatabases())('token revocation on $kind', (database) => {
  // PostgreSQL: a scheduler process and two API processes on one database. PGlite has one process.
  const berths: TestBerth[] = [];
  let apis: TestBerth[];
  let owner: ApiClient;

  beforeAll(async () => {
    await ensureTestImage(docker);
    const first = await TestBerth.start({ database, env: { BERTH_TERMINATION_GRACE_SECONDS: '1' } });
    berths.push(first);
    if (database.kind === 'postgres') {
      const env = { DATABASE_URL: first.berth.config.databaseUrl! };
      await first.restart({ role: 'scheduler' });
      berths.push(await TestBerth.start({ database, role: 'api', env }), await TestBerth.start({ database, role: 'api', env }));
      apis = berths.slice(1);
    } else {
      apis = [first, first];
    }
    owner = await createTestService(apis[0]!, 'acme');
  });
  afterAll(async () => {
    if (owner) {
      const running = (await owner.get('/v2/account/acme/backends')).body.running_backends as Array<{ id: string }>;
      for (const backend of running) await owner.post(`/v2/backend/${backend.id}/terminate`, { hard: true });
      for (const backend of running) await waitForStatus(owner, backend.id, 'terminated');
    }
    for (const berth of berths.reverse()) await berth.stop();
  });

  it('refuses a revoked token on the next connect in every API process, cached or not', async () => {
    const [a, b] = apis as [TestBerth, TestBerth];
    const admin = apiClient(a.apiUrl, ADMIN_TOKEN);
    const minted = (await admin.post('/v2/account/acme/tokens')).body.token as string;
    const viaA = apiClient(a.apiUrl, minted);
    const viaB = apiClient(b.apiUrl, minted);
    // Both processes serve the held key with this token, so both have it cached.
    const spawned = await viaA.post(CONNECT, { key: 'revocation' });
    expect(spawned.status).toBe(200);
    for (const client of [viaA, viaB, viaB]) {
      const held = await client.post(CONNECT, { key: 'revocation' });
      expect(held.status).toBe(200);
      expect(held.body).toMatchObject({ backend_id: spawned.body.backend_id, spawned: false });
    }

    const tokenId = minted.split('.')[0]!;
    expect((await admin.delete(`/v2/account/acme/tokens/${tokenId}`)).status).toBe(200);

    // Held key, new key, no key, in the other process first (it heard nothing yet but the statement checks), then in the revoking one.
    for (const client of [viaB, viaA]) {
      for (const body of [{ key: 'revocation' }, { key: 'revocation-new' }, {}]) {
        const refused = await client.post(CONNECT, body);
        expect(refused.status).toBe(401);
        expect(refused.headers.get('content-type')).toBe('application/json');
        expect(refused.headers.get('www-authenticate')).toBe('Bearer realm="berth"');
        expect(refused.body).toEqual(INVALID_TOKEN);
      }
      expect((await client.get('/auth')).body).toEqual(INVALID_TOKEN);
    }
    // Nothing was minted or spawned for the revoked token: the key still has its one backend.
    const backends = (await owner.get('/v2/service/acme/echo/backends')).body.backends as Array<{ key: string }>;
    expect(backends.filter((backend) => backend.key.startsWith('revocation')).map((backend) => backend.key)).toEqual(['revocation']);
    // Another token of the account is untouched, in both processes.
    for (const berth of [a, b]) {
      const held = await apiClient(berth.apiUrl, owner.token).post(CONNECT, { key: 'revocation' });
      expect(held.status).toBe(200);
      expect(held.body).toMatchObject({ backend_id: spawned.body.backend_id, spawned: false });
      expect(held.headers.get('x-ratelimit-limit')).toEqual(expect.stringMatching(/^\d+$/));
    }
  });

  it('answers a malformed or unknown token on connect as before, without caching it', async () => {
    const client = apiClient(apis[1]!.apiUrl);
    const unknown = await client.post(CONNECT, { key: 'revocation' }, { token: 'nobody.0123456789abcdef0123456789' });
    expect(unknown.status).toBe(401);
    expect(unknown.body).toEqual(INVALID_TOKEN);
    const wrongSecret = await client.post(CONNECT, { key: 'revocation' }, { token: `${owner.token!.split('.')[0]}.wrong-secret` });
    expect(wrongSecret.body).toEqual(INVALID_TOKEN);
    const malformed = await client.post(CONNECT, { key: 'revocation' }, { token: 'no-dot' });
    expect(malformed.body).toEqual(errorBodyMatching(401, 'authentication_error', 'invalid_token'));
  });
});
