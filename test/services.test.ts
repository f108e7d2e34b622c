import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, errorBodyMatching, type ApiClient } from './support/api.ts';
import { ADMIN_TOKEN, TestBerth } from './support/berth.ts';
import { testDatabases } from './support/databases.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage, tagTestImage } from './support/test-image.ts';

const docker = createTestDocker();

describe.each(testDatabases())('services on $kind', (database) => {
  let berth: TestBerth;
  let acme: ApiClient;
  let admin: ApiClient;
  let image: { id: string };
  // Repositories are per run so that images tagged by another run do not show up.
  const account = `acme${Date.now().toString(36)}`;

  beforeAll(async () => {
    image = await ensureTestImage(docker);
    berth = await TestBerth.start({ database });
    admin = apiClient(berth.apiUrl, ADMIN_TOKEN);
    await admin.post('/v2/accounts', { name: account });
    acme = apiClient(berth.apiUrl, (await admin.post(`/v2/account/${account}/tokens`)).body.token);
  });
  afterAll(async () => {
    await berth?.stop();
    for (const tag of ['v1', 'v2']) await docker.getImage(`${account}/chat:${tag}`).remove().catch(() => undefined);
  });

  it('creates, lists and describes a service with its default environment', async () => {
    const created = await acme.post(`/v2/account/${account}/service`, { name: 'chat' });
    expect(created.status).toBe(200);
    expect(created.body).toEqual({ status: 'ok' });
    expect(created.headers.get('content-type')).toBe('application/json');

    expect((await acme.get(`/v2/account/${account}/services`)).body).toEqual({ services: ['chat'] });

    const service = await acme.get(`/v2/service/${account}/chat`);
    expect(service.status).toBe(200);
    expect(service.body).toEqual({
      account_name: account,
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      environments: [
        { name: 'default', image_tag: 'latest', cluster: 'local', created_at: expect.any(String), last_spawned_at: null, warm_pool_size: 0, warm_pool: { warmable: true } },
      ],
      image_name: `${account}/chat`,
      container: { user: null, read_only_root: false, cap_add: [] },
      last_image_digest: null,
      last_image_upload_time: null,
      last_spawned_at: null,
      name: 'chat',
    });
    expect((await acme.get(`/service/${account}/chat/image-name`)).body).toEqual({ status: 'ok', imageName: `${account}/chat` });
  });

  it('refuses a duplicate service', async () => {
    const response = await acme.post(`/v2/account/${account}/service`, { name: 'chat' });
    expect(response.status).toBe(409);
    expect(response.body).toEqual(
      errorBodyMatching(409, 'conflict_error', 'service_exists', { details: { account, service: 'chat' } }),
    );
  });

  it.each([
    [{ name: 'Chat' }, 'body.name'],
    [{ name: 'chat_room' }, 'body.name'],
    [{ name: '' }, 'body.name'],
    [{ name: 'ok', image: 'UPPER/case' }, 'body.image'],
    [{ name: 'ok', image: 'repo:tag' }, 'body.image'],
    [{ name: 'ok', image: 7 }, 'body.image'],
    [{ name: 'ok', imgae: 'x' }, 'body.imgae'],
  ])('refuses the service %j naming %s, and writes nothing', async (body, param) => {
    const response = await acme.post(`/v2/account/${account}/service`, body);
    expect(response.status).toBe(400);
    expect(response.body).toEqual(errorBodyMatching(400, 'invalid_request_error', 'invalid_parameter', { details: { param } }));
    expect((await acme.get(`/v2/account/${account}/services`)).body).toEqual({ services: ['chat'] });
  });

  it('says a field of the wrong type has the wrong type, rather than that it is missing', async () => {
    // Regression: every type error used to read '"body.image" is required' (the Jamsocket CLI's `connect -a '[1]'` showed it).
    const wrongType = await acme.post(`/v2/account/${account}/service`, { name: 'ok', image: 7 });
    expect(wrongType.body.error.message).toBe('"body.image" invalid input: expected string, received number');
    const missing = await acme.post(`/v2/account/${account}/service`, {});
    expect(missing.body.error.message).toBe('"body.name" is required');
  });

  it('answers 400 for a malformed name in the path and 404 for a missing service', async () => {
    const bad = await acme.get(`/v2/service/${account}/Bad_Name`);
    expect(bad.status).toBe(400);
    expect(bad.body).toEqual(errorBodyMatching(400, 'invalid_request_error', 'invalid_parameter', { details: { param: 'service' } }));

    const missing = await acme.get(`/v2/service/${account}/nothing`);
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual(
      errorBodyMatching(404, 'not_found_error', 'service_not_found', { details: { account, service: 'nothing' } }),
    );
  });

  it('lists the images of the service repository from the Docker engine', async () => {
    await tagTestImage(docker, image.id, `${account}/chat`, 'v1');
    await tagTestImage(docker, image.id, `${account}/chat`, 'v2');
    const images = await acme.get(`/v2/service/${account}/chat/images`);
    expect(images.status).toBe(200);
    expect(images.body.images).toHaveLength(2);
    expect(images.body.images.map((i: { tag: string }) => i.tag).sort()).toEqual(['v1', 'v2']);
    for (const listed of images.body.images) {
      expect(listed).toEqual({
        digest: image.id,
        tag: expect.any(String),
        repository: `${account}/chat`,
        upload_time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      });
    }
    const service = await acme.get(`/v2/service/${account}/chat`);
    expect(service.body.last_image_digest).toBe(image.id);
    expect(service.body.last_image_upload_time).toEqual(images.body.images[0].upload_time);
  });

  it('names another repository at creation, with the admin token', async () => {
    await admin.post(`/v2/account/${account}/service`, { name: 'echo', image: 'berth-test/app' });
    const images = await acme.get(`/v2/service/${account}/echo/images`);
    expect(images.body.images).toContainEqual(expect.objectContaining({ tag: 'latest', repository: 'berth-test/app', digest: image.id }));
    expect((await acme.get(`/service/${account}/echo/image-name`)).body.imageName).toBe('berth-test/app');
  });

  it('points environments at an image tag or digest', async () => {
    expect((await acme.post(`/v2/service/${account}/chat/update`, { image_tag: 'v2' })).body).toEqual({ status: 'ok' });
    // A digest must name an image of the service's own repository (test/image-policy.test.ts).
    const digest = image.id;
    expect((await acme.post(`/v2/service/${account}/chat/staging/update`, { image_tag: digest })).status).toBe(200);
    const environments = (await acme.get(`/v2/service/${account}/chat`)).body.environments;
    expect(environments.map((e: { name: string; image_tag: string }) => [e.name, e.image_tag])).toEqual([
      ['default', 'v2'],
      ['staging', digest],
    ]);
  });

  it.each([
    [{ image_tag: 'bad tag' }, 'body.image_tag'],
    [{ image_tag: 'sha256:short' }, 'body.image_tag'],
    [{}, 'body.image_tag'],
    [{ image_tag: 'v3', extra: 1 }, 'body.extra'],
  ])('refuses the update %j naming %s', async (body, param) => {
    const response = await acme.post(`/v2/service/${account}/chat/update`, body);
    expect(response.status).toBe(400);
    expect(response.body).toEqual(errorBodyMatching(400, 'invalid_request_error', 'invalid_parameter', { details: { param } }));
    expect((await acme.get(`/v2/service/${account}/chat`)).body.environments[0].image_tag).toBe('v2');
  });

  it('deletes a service with its environments', async () => {
    expect((await acme.post(`/v2/service/${account}/echo/delete`)).body).toEqual({ status: 'ok' });
    expect((await acme.get(`/v2/account/${account}/services`)).body).toEqual({ services: ['chat'] });
    expect((await acme.get(`/v2/service/${account}/echo`)).status).toBe(404);
    expect((await acme.post(`/v2/service/${account}/echo/delete`)).status).toBe(404);
    // The name is free again, with a fresh default environment.
    await acme.post(`/v2/account/${account}/service`, { name: 'echo' });
    expect((await acme.get(`/v2/service/${account}/echo`)).body.environments).toHaveLength(1);
  });
});
