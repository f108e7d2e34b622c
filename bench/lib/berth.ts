/** berth as the benches run it: in this process, on 127.0.0.1, with one account, service and token. */
import type Dockerode from 'dockerode';
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
