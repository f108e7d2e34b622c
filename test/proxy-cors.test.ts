// The proxy's own answers (unknown token, terminated backend, not ready,
// unreachable, host mismatch) are readable from another origin, and their
// preflights succeed, so that a page sees why instead of a CORS failure.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from './support/api.ts';
import { createTestService, waitForStatus } from './support/backends.ts';
import { TestBerth } from './support/berth.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();
const ORIGIN = 'https://app.example';

describe('proxy answers across origins', () => {
  let berth: TestBerth;
  let api: ApiClient;

  beforeAll(async () => {
    await ensureTestImage(docker);
    berth = await TestBerth.start({ database: { kind: 'pglite' }, env: { BERTH_PROXY_WAIT_SECONDS: '1' } });
    api = await createTestService(berth, 'acme');
  });
  afterAll(async () => {
    await berth?.stop();
  });

  it('carries Access-Control-Allow-Origin on 404 and 410, and on the preflights of such URLs', async () => {
    const unknown = await fetch(`${berth.proxyUrl}/no-such-token-here/socket.io/?EIO=4`, { headers: { Origin: ORIGIN } });
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('access-control-allow-origin')).toBe('*');
    expect((await unknown.json()).error.code).toBe('token_not_found');

    const preflight = await fetch(`${berth.proxyUrl}/no-such-token-here/socket.io/?EIO=4`, {
      method: 'OPTIONS',
      headers: { Origin: ORIGIN, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflight.headers.get('access-control-allow-methods')).toBe('POST');
    expect(preflight.headers.get('access-control-allow-headers')).toBe('content-type');

    const connected = await api.post('/v2/service/acme/echo/connect', {});
    await waitForStatus(api, connected.body.backend_id, 'ready');
    await api.post(`/v2/backend/${connected.body.backend_id}/terminate`, { hard: true });
    await waitForStatus(api, connected.body.backend_id, 'terminated');
    const gone = await fetch(connected.body.url, { headers: { Origin: ORIGIN } });
    expect(gone.status).toBe(410);
    expect(gone.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('carries it on 503 for a backend that is not ready in time', async () => {
    // The app waits 5 s before it listens; the proxy holds requests for 1 s.
    const connected = await api.post('/v2/service/acme/echo/connect', { spawn: { executable: { env: { APP_STARTUP_DELAY_MS: '5000' } } } });
    const waiting = await fetch(connected.body.url, { headers: { Origin: ORIGIN } });
    expect(waiting.status).toBe(503);
    expect(waiting.headers.get('access-control-allow-origin')).toBe('*');
    expect(waiting.headers.get('retry-after')).not.toBeNull();
    await api.post(`/v2/backend/${connected.body.backend_id}/terminate`, { hard: true });
  });
});
