import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './support/api.ts';
import { ADMIN_TOKEN, TestBerth } from './support/berth.ts';
import { testDatabases } from './support/databases.ts';

describe.each(testDatabases())('persistence across a restart on $kind', (database) => {
  let berth: TestBerth;

  beforeAll(async () => {
    berth = await TestBerth.start({ database });
  });
  afterAll(() => berth?.stop());

  it('keeps accounts, tokens, services and environments', async () => {
    const admin = apiClient(berth.apiUrl, ADMIN_TOKEN);
    await admin.post('/v2/accounts', { name: 'acme' });
    const token = (await admin.post('/v2/account/acme/tokens')).body.token as string;
    const acme = apiClient(berth.apiUrl, token);
    await acme.post('/v2/account/acme/service', { name: 'chat' });
    await acme.post('/v2/service/acme/chat/staging/update', { image_tag: 'v7' });
    const before = (await acme.get('/v2/service/acme/chat')).body;

    await berth.restart();

    const after = apiClient(berth.apiUrl, token);
    expect((await after.get('/auth')).body).toEqual({ status: 'ok', accounts: ['acme'], is_admin: false });
    expect((await after.get('/v2/account/acme/services')).body).toEqual({ services: ['chat'] });
    expect((await after.get('/v2/service/acme/chat')).body).toEqual(before);
  });
});
