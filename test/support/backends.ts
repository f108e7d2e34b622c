import type Dockerode from 'dockerode';
import type { ApiClient } from './api.ts';
import { apiClient } from './api.ts';
import { ADMIN_TOKEN, type TestBerth } from './berth.ts';

export const TEST_REPOSITORY = 'berth-test/app';

/**
 * An account with a token and a service spawning the test image. The admin
 * creates the service, since only the admin may give it a repository other
 * than `{account}/{service}`.
 */
export async function createTestService(berth: TestBerth, account: string, service = 'echo'): Promise<ApiClient> {
  const admin = apiClient(berth.apiUrl, ADMIN_TOKEN);
  await admin.post('/v2/accounts', { name: account });
  const token = (await admin.post(`/v2/account/${account}/tokens`)).body.token as string;
  const client = apiClient(berth.apiUrl, token);
  const created = await admin.post(`/v2/account/${account}/service`, { name: service, image: TEST_REPOSITORY });
  if (created.status !== 200) throw new Error(`service create failed: ${created.text}`);
  return client;
}

export interface PublicStatus {
  status: string;
  time: string;
  termination_reason?: string;
  termination_kind?: string;
  exit_error?: boolean;
}

/** Polls the public status endpoint until the backend reaches `status` (or any later one, if `orLater`). */
export async function waitForStatus(api: ApiClient, backendId: string, status: string, timeoutMs = 30_000): Promise<PublicStatus> {
  const deadline = Date.now() + timeoutMs;
  let last: PublicStatus | undefined;
  while (Date.now() < deadline) {
    const response = await api.get<PublicStatus>(`/v2/backend/${backendId}/status`);
    last = response.body;
    if (last.status === status) return last;
    if (last.status === 'terminated' && status !== 'terminated') {
      throw new Error(`backend ${backendId} terminated while waiting for ${status}: ${JSON.stringify(last)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`backend ${backendId} did not reach ${status} within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
}

/** The container berth runs a backend in, as the engine reports it; undefined once it is gone. */
export async function inspectBackendContainer(docker: Dockerode, backendId: string): Promise<Dockerode.ContainerInspectInfo | undefined> {
  try {
    return await docker.getContainer(`berth-${backendId}`).inspect();
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return undefined;
    throw error;
  }
}

export function containerEnv(info: Dockerode.ContainerInspectInfo): Record<string, string> {
  return Object.fromEntries(info.Config.Env.map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]));
}

export async function waitUntil(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
