import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, errorBodyMatching, type ApiClient } from './support/api.ts';
import { ADMIN_TOKEN, TestBerth } from './support/berth.ts';
import { testDatabases } from './support/databases.ts';

describe.each(testDatabases())('accounts and tokens on $kind', (database) => {
  let berth: TestBerth;
  let admin: ApiClient;

  beforeAll(async () => {
    berth = await TestBerth.start({ database });
    admin = apiClient(berth.apiUrl, ADMIN_TOKEN);
  });
  afterAll(() => berth?.stop());

  it('reports the admin on /auth', async () => {
    const response = await admin.get('/auth');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(response.body).toEqual({ status: 'ok', accounts: [], is_admin: true });
  });

  it('creates an account and refuses a second one with the same name', async () => {
    const created = await admin.post('/v2/accounts', { name: 'acme' });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({ status: 'ok', name: 'acme', created_at: expect.any(String) });

    const again = await admin.post('/v2/accounts', { name: 'acme' });
    expect(again.status).toBe(409);
    expect(again.body).toEqual(errorBodyMatching(409, 'conflict_error', 'account_exists', { details: { account: 'acme' } }));
  });

  it.each([
    [{ name: 'Acme' }, 'body.name'],
    [{ name: '-acme' }, 'body.name'],
    [{ name: 'a'.repeat(64) }, 'body.name'],
    [{ name: 42 }, 'body.name'],
    [{}, 'body.name'],
    [{ name: 'ok', extra: true }, 'body.extra'],
  ])('refuses the account %j naming %s, and writes nothing', async (body, param) => {
    const response = await admin.post('/v2/accounts', body);
    expect(response.status).toBe(400);
    expect(response.body).toEqual(errorBodyMatching(400, 'invalid_request_error', 'invalid_parameter', { details: { param } }));
    expect((await admin.get('/auth')).body.accounts).toEqual(['acme']);
  });

  it('mints account tokens of the form <id>.<secret> that act on their own account only', async () => {
    await admin.post('/v2/accounts', { name: 'globex' });
    const minted = await admin.post('/v2/account/acme/tokens');
    expect(minted.status).toBe(201);
    expect(minted.body.token).toMatch(/^[a-z0-9]{12}\.[A-Za-z0-9_-]{32}$/);
    const acme = apiClient(berth.apiUrl, minted.body.token);

    expect((await acme.get('/auth')).body).toEqual({ status: 'ok', accounts: ['acme'], is_admin: false });
    expect((await acme.get('/v2/account/acme/services')).status).toBe(200);

    const other = await acme.get('/v2/account/globex/services');
    expect(other.status).toBe(403);
    expect(other.body).toEqual(errorBodyMatching(403, 'forbidden_error', 'account_mismatch'));

    const createOther = await acme.post('/v2/account/globex/service', { name: 'chat' });
    expect(createOther.status).toBe(403);
    expect((await admin.get('/v2/account/globex/services')).body).toEqual({ services: [] });
  });

  it('keeps admin endpoints for the admin', async () => {
    const token = (await admin.post('/v2/account/acme/tokens')).body.token as string;
    const acme = apiClient(berth.apiUrl, token);
    for (const response of [
      await acme.post('/v2/accounts', { name: 'initech' }),
      await acme.post('/v2/account/acme/tokens'),
      await acme.get('/health/status'),
    ]) {
      expect(response.status).toBe(403);
      expect(response.body).toEqual(errorBodyMatching(403, 'forbidden_error', 'admin_required'));
    }
  });

  it('revokes a token, after which it no longer authenticates', async () => {
    const minted = (await admin.post('/v2/account/acme/tokens')).body as { token: string; id: string };
    const revoked = await admin.delete(`/v2/account/acme/tokens/${minted.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body).toEqual({ status: 'ok' });

    const after = await apiClient(berth.apiUrl, minted.token).get('/auth');
    expect(after.status).toBe(401);
    expect(after.body).toEqual(errorBodyMatching(401, 'authentication_error', 'invalid_token'));

    const again = await admin.delete(`/v2/account/acme/tokens/${minted.id}`);
    expect(again.status).toBe(404);
    expect(again.body).toEqual(errorBodyMatching(404, 'not_found_error', 'token_not_found', { details: { token_id: minted.id } }));
  });

  it('does not revoke a token through another account', async () => {
    const minted = (await admin.post('/v2/account/acme/tokens')).body as { token: string; id: string };
    expect((await admin.delete(`/v2/account/globex/tokens/${minted.id}`)).status).toBe(404);
    expect((await apiClient(berth.apiUrl, minted.token).get('/auth')).status).toBe(200);
  });

  it('answers 404 for tokens of an account that does not exist', async () => {
    const response = await admin.post('/v2/account/nobody/tokens');
    expect(response.status).toBe(404);
    expect(response.body).toEqual(errorBodyMatching(404, 'not_found_error', 'account_not_found', { details: { account: 'nobody' } }));
  });

  it.each([
    ['no header', undefined, 'missing_token'],
    ['a non-bearer header', 'Basic abc', 'invalid_authorization_header'],
    ['a malformed token', 'Bearer nodot', 'invalid_token'],
    ['an unknown token', 'Bearer abc.defghijklmnopqrstuvwxyz', 'invalid_token'],
    ['a wrong secret for the admin id', 'Bearer admin.wrong-secret-0123456789', 'invalid_token'],
  ])('answers 401 for %s', async (_, authorization, code) => {
    const response = await apiClient(berth.apiUrl).get('/auth', {
      headers: authorization ? { Authorization: authorization } : {},
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="berth"');
    expect(response.body).toEqual(errorBodyMatching(401, 'authentication_error', code));
  });
});
