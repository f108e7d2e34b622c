import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, errorBodyMatching, type ApiClient } from './support/api.ts';
import { ADMIN_TOKEN, TestBerth } from './support/berth.ts';
import { testDatabases } from './support/databases.ts';

describe.each(testDatabases())('error bodies on $kind', (database) => {
  let berth: TestBerth;
  let admin: ApiClient;

  beforeAll(async () => {
    berth = await TestBerth.start({ database, env: { BERTH_RATE_LIMIT: '5', BERTH_RATE_LIMIT_WINDOW_SECONDS: '60' } });
    admin = apiClient(berth.apiUrl, ADMIN_TOKEN);
  });
  afterAll(() => berth?.stop());

  it('answers an unknown route with a JSON 404', async () => {
    const response = await apiClient(berth.apiUrl).get('/v2/nothing/here');
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(response.body).toEqual(
      errorBodyMatching(404, 'not_found_error', 'route_not_found', { message: 'no route for GET /v2/nothing/here' }),
    );
    // The request id in the body is the one in the response header (and the log line).
    expect(response.body.error.id).toBe(response.headers.get('x-request-id'));
  });

  it('answers a wrong method with a JSON 405', async () => {
    const response = await apiClient(berth.apiUrl).request('PUT', '/healthcheck');
    expect(response.status).toBe(405);
    expect(response.body).toEqual(errorBodyMatching(405, 'method_not_allowed_error', 'method_not_allowed'));
  });

  it('routes a path with a doubled leading slash, as the Jamsocket CLI sends for a server URL ending in "/"', async () => {
    const health = await apiClient(berth.apiUrl).get('//healthcheck');
    expect(health.status).toBe(200);
    expect(health.body).toBe('ok');
    const auth = await apiClient(berth.apiUrl).get('//auth');
    expect(auth.status).toBe(401);
    expect(auth.body).toEqual(errorBodyMatching(401, 'authentication_error', 'missing_token'));
  });

  it('answers malformed JSON with a 400 naming the body', async () => {
    const response = await admin.request('POST', '/v2/accounts', {
      rawBody: '{"name":',
      headers: { 'Content-Type': 'application/json' },
    });
    expect(response.status).toBe(400);
    expect(response.body).toEqual(errorBodyMatching(400, 'invalid_request_error', 'invalid_json', { details: { param: 'body' } }));
  });

  it('answers a JSON body that is not an object with a 400', async () => {
    const response = await admin.request('POST', '/v2/accounts', { rawBody: '"acme"', headers: { 'Content-Type': 'application/json' } });
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe('invalid_json');
  });

  it('refuses a body in another media type instead of ignoring it', async () => {
    const response = await admin.request('POST', '/v2/accounts', { rawBody: 'name=acme', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    expect(response.status).toBe(415);
    expect(response.body).toEqual(errorBodyMatching(415, 'unsupported_media_type_error', 'unsupported_media_type'));
  });

  it('limits requests per token, with the headers on every authenticated response', async () => {
    // This berth allows 5 requests per token and minute; other tests here used some of the admin's.
    await admin.post('/v2/accounts', { name: 'limited' });
    const token = (await admin.post('/v2/account/limited/tokens')).body.token as string;
    const client = apiClient(berth.apiUrl, token);
    const statuses: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      const response = await client.get('/auth');
      statuses.push(response.status);
      expect(response.headers.get('x-ratelimit-limit')).toBe('5');
      expect(response.headers.get('x-ratelimit-remaining')).toBe(String(4 - i));
      expect(Number(response.headers.get('x-ratelimit-reset'))).toBeGreaterThan(Date.now() / 1000);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    const limited = await client.get('/auth');
    expect(limited.status).toBe(429);
    expect(limited.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(limited.body).toEqual(errorBodyMatching(429, 'rate_limit_error', 'rate_limited'));
    // Unauthenticated endpoints are not limited and carry no such headers.
    const health = await apiClient(berth.apiUrl).get('/healthcheck');
    expect(health.status).toBe(200);
    expect(health.headers.get('x-ratelimit-limit')).toBeNull();
  });
});
