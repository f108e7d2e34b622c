import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStorage, type Storage } from '../src/database.ts';
import { createLogger } from '../src/core/logger.ts';
import { waitUntil } from './support/backends.ts';
import { createPostgresDatabase, testDatabases } from './support/databases.ts';

const postgres = testDatabases().some((database) => database.kind === 'postgres');

describe.runIf(postgres)('notifications on PostgreSQL', () => {
  let storage: Storage;

  beforeAll(async () => {
    storage = await openStorage({ databaseUrl: await createPostgresDatabase(), dataDir: '', logger: createLogger('silent') });
  });
  afterAll(() => storage?.close());

  it('keeps delivering after the LISTEN connection is killed', async () => {
    const received: string[] = [];
    await storage.listen('berth_test_channel', (payload) => received.push(payload));
    await sql`select pg_notify('berth_test_channel', 'before')`.execute(storage.db);
    await waitUntil(async () => received.includes('before'), 5000, 'the first notification');

    // What a database restart or a dropped connection does to the listener.
    const killed = await sql<{ killed: boolean }>`
      select pg_terminate_backend(pid) as killed from pg_stat_activity
      where datname = current_database() and query ilike 'LISTEN%' and pid <> pg_backend_pid()`.execute(storage.db);
    expect(killed.rows.length).toBeGreaterThan(0);

    await waitUntil(
      async () => {
        await sql`select pg_notify('berth_test_channel', 'after')`.execute(storage.db);
        return received.includes('after');
      },
      10_000,
      'a notification after the reconnect',
    );
  });
});
