/** berth as the benches run it: in this process, on 127.0.0.1, with one account, service and token. */
import type Dockerode from 'dockerode';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { BerthClient } from '../../src/client/index.ts';
import { ADMIN_TOKEN, TestBerth } from '../../test/support/berth.ts';
import type { TestDatabase } from '../../test/support/databases.ts';

export const ACCOUNT = 'bench';
export const SERVICE = 'app';
export const IMAGE_REPOSITORY = 'berth-test/app';
/** Upper bound for one API call, for one backend to become ready, or to be gone after a terminate. */
export const STEP_TIMEOUT_MS = 60_000;

/** A berth listening on 127.0.0.1 only, with rate limiting out of the way. */
export function startBerth(database: TestDatabase, docker: Dockerode, logLevel: string): Promise<TestBerth> {
  return TestBerth.start({
    database,
    docker,
    env: { BERTH_LOG_LEVEL: logLevel, BERTH_RATE_LIMIT: '100000000', BERTH_BIND: '127.0.0.1' },
  });
}

/** One API call with a bearer token and an optional JSON body; throws unless 2xx; the parsed JSON answer. */
export async function call<T>(baseUrl: string, token: string, method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} → ${response.status} ${text.slice(0, 400)}`);
  return JSON.parse(text) as T;
}

/** Creates ACCOUNT and its SERVICE (image IMAGE_REPOSITORY) as admin; returns a new account token. */
export async function setUpAccount(apiUrl: string): Promise<string> {
  await call(apiUrl, ADMIN_TOKEN, 'POST', '/v2/accounts', { name: ACCOUNT });
  await call(apiUrl, ADMIN_TOKEN, 'POST', `/v2/account/${ACCOUNT}/service`, { name: SERVICE, image: IMAGE_REPOSITORY });
  return (await call<{ token: string }>(apiUrl, ADMIN_TOKEN, 'POST', `/v2/account/${ACCOUNT}/tokens`, {})).token;
}

/** Waits until the backend's last status is `ready`; throws if it ends first or after STEP_TIMEOUT_MS. */
export async function waitReady(apiUrl: string, token: string, backendId: string): Promise<void> {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const backend = await call<{ statuses?: Array<{ status: string }> }>(apiUrl, token, 'GET', `/v2/backend/${backendId}`);
    if (!Array.isArray(backend.statuses)) throw new Error(`GET /v2/backend/${backendId} answered ${JSON.stringify(backend).slice(0, 300)}`);
    const last = backend.statuses.at(-1)?.status;
    if (last === 'ready') return;
    if (last === 'terminated') throw new Error(`backend ${backendId} terminated before ready`);
    await sleep(100);
  }
  throw new Error(`backend ${backendId} not ready within ${STEP_TIMEOUT_MS} ms`);
}

/** Drops a database createPostgresDatabase made (berth_test_…) on the TEST_DATABASE_URL server. */
export async function dropDatabase(databaseUrl: string): Promise<void> {
  const name = new URL(databaseUrl).pathname.slice(1);
  if (!/^berth_test_[a-z0-9]+$/.test(name)) return;
  const client = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

/**
 * Terminates the backends hard through the API, 50 requests at a time, and
 * waits until each is `terminated`; false when the time ran out first.
 */
export async function terminateAll(api: BerthClient, ids: readonly string[], timeoutMs: number): Promise<boolean> {
  for (let i = 0; i < ids.length; i += 50) await Promise.all(ids.slice(i, i + 50).map((id) => api.terminate(id, { hard: true }).catch(() => undefined)));
  const deadline = Date.now() + timeoutMs;
  for (const id of ids) {
    while ((await api.status(id).catch(() => ({ status: 'terminated' }))).status !== 'terminated') {
      if (Date.now() > deadline) return false;
      await sleep(250);
    }
  }
  return true;
}
