import pg from 'pg';
import { customAlphabet } from 'nanoid';

export interface TestDatabase {
  kind: 'pglite' | 'postgres';
}

const suffix = customAlphabet('abcdefghijklmnopqrstuvwxyz0123456789', 10);

/**
 * The storages every storage and API test runs against. PostgreSQL comes from
 * TEST_DATABASE_URL (.ci/run starts one); in CI its absence is an error, not a skip.
 */
export function testDatabases(): TestDatabase[] {
  if (process.env.TEST_DATABASE_URL) return [{ kind: 'pglite' }, { kind: 'postgres' }];
  if (process.env.CI) throw new Error('TEST_DATABASE_URL must be set in CI: .ci/run starts a PostgreSQL for the tests');
  console.warn('TEST_DATABASE_URL is not set: running the PostgreSQL variants is skipped (see .ci/run)');
  return [{ kind: 'pglite' }];
}

/** Creates a fresh database on the test PostgreSQL server and returns its URL. */
export async function createPostgresDatabase(): Promise<string> {
  const serverUrl = process.env.TEST_DATABASE_URL;
  if (!serverUrl) throw new Error('TEST_DATABASE_URL is not set');
  const name = `berth_test_${suffix()}`;
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
