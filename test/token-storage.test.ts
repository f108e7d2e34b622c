import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tokenHashes from '../src/migrations/0006-token-hashes.ts';
import { type ApiClient } from './support/api.ts';
import { createTestService, waitForStatus } from './support/backends.ts';
import { TestBerth } from './support/berth.ts';
import { testDatabases } from './support/databases.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

interface Connected {
  backend_id: string;
  token: string;
  url: string;
  ready_url: string;
}

// Issue 10 (medium): connection tokens were logged through ready_url and stored in plaintext.
describe.each(testDatabases())('connection tokens on $kind', (database) => {
  let berth: TestBerth;
  let api: ApiClient;
  const logLines: string[] = [];

  /** berth's own storage: what a read of the database (a dump, a replica) would show. */
  const db = () => berth.berth['storage'].db;

  beforeAll(async () => {
    await ensureTestImage(docker);
    berth = await TestBerth.start({
      database,
      env: { BERTH_LOG_LEVEL: 'info' },
      logDestination: { write: (line: string) => void logLines.push(line) },
    });
    api = await createTestService(berth, 'acme');
  });
  afterAll(() => berth?.stop());

  it('stores only hashes of tokens, and their URLs still work through the proxy', async () => {
    const spawned = (await api.post('/v2/service/acme/echo/connect', { key: 'room' })).body as Connected;
    const joined = (await api.post('/v2/service/acme/echo/connect', { key: 'room' })).body as Connected;
    expect(joined.backend_id).toBe(spawned.backend_id);
    await waitForStatus(api, spawned.backend_id, 'ready');

    const rows = await db().selectFrom('connection_tokens').selectAll().where('backend_id', '=', spawned.backend_id).execute();
    expect(rows.map((row) => row.token_hash).sort()).toEqual([sha256(spawned.token), sha256(joined.token)].sort());
    const stored = JSON.stringify(rows);
    expect(stored).not.toContain(spawned.token);
    expect(stored).not.toContain(joined.token);

    for (const { url } of [spawned, joined]) {
      const response = await fetch(`${url}hello`);
      expect(response.status).toBe(200);
      expect(((await response.json()) as { url: string }).url).toBe('/hello');
    }
  });

  it('keeps tokens of before the migration working: existing rows are hashed in place', async () => {
    const { backend_id: backendId } = (await api.post('/v2/service/acme/echo/connect', { key: 'old' })).body as Connected;
    await waitForStatus(api, backendId, 'ready');
    // Back to the plaintext schema, with a token minted then; down forgets the others.
    await tokenHashes.down(db());
    const oldToken = 'pre-migration-token-0123456789abcd';
    await sql`insert into connection_tokens (token, backend_id) values (${oldToken}, ${backendId})`.execute(db());
    await tokenHashes.up(db());

    const rows = await db().selectFrom('connection_tokens').selectAll().execute();
    expect(rows).toEqual([expect.objectContaining({ token_hash: sha256(oldToken), backend_id: backendId })]);
    const response = await fetch(`${berth.proxyUrl}/${oldToken}/hello`);
    expect(response.status).toBe(200);
  });

  it('logs a ready_url request with its token replaced by [token]', async () => {
    const connected = (await api.post('/v2/service/acme/echo/connect', { key: 'page' })).body as Connected;
    logLines.length = 0;
    expect((await fetch(connected.ready_url)).status).toBe(200);
    // Also the forms the router accepts, or refuses, without a route answering.
    const { pathname } = new URL(connected.ready_url);
    const origin = new URL(connected.ready_url).origin;
    expect((await fetch(`${origin}${pathname.replace('/ready/', '/READY/')}`)).status).toBe(200);
    expect((await fetch(`${origin}${pathname}extra/path`)).status).toBe(404);
    expect((await fetch(`${origin}/ready/nosuchbackend/${connected.token}`)).status).toBe(404);

    const requests = logLines.map((line) => JSON.parse(line) as { msg: string; path?: string }).filter((line) => line.msg === 'request');
    expect(requests.map((line) => line.path)).toEqual([
      `/ready/${connected.backend_id}/[token]/`,
      `/READY/${connected.backend_id}/[token]/`,
      `/ready/${connected.backend_id}/[token]/extra/path`,
      '/ready/nosuchbackend/[token]',
    ]);
    expect(logLines.join('')).not.toContain(connected.token);
  });
});
