// Issue 10, "images and registries": an account token could give its service
// another account's repository, list and run its images, run any image by
// digest, and make the engine dial any registry host (127.0.0.1 included).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImagePolicy, registryOf } from '../src/services/image-policy.ts';
import { apiClient, errorBodyMatching, type ApiClient } from './support/api.ts';
import { waitForStatus } from './support/backends.ts';
import { ADMIN_TOKEN, TestBerth } from './support/berth.ts';
import { testDatabases } from './support/databases.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage, tagTestImage } from './support/test-image.ts';

const docker = createTestDocker();

describe.each(testDatabases())('image policy on $kind', (database) => {
  let berth: TestBerth;
  let admin: ApiClient;
  let evil: ApiClient;
  let imageId: string;
  // Per run: repositories tagged here must not collide with another run's on the same engine.
  const run = Date.now().toString(36);
  const victim = `victim${run}`;
  const attacker = `evil${run}`;
  const victimRepository = `${victim}/app`;
  const attackerRepository = `${attacker}/app`;

  async function accountClient(name: string): Promise<ApiClient> {
    await admin.post('/v2/accounts', { name });
    return apiClient(berth.apiUrl, (await admin.post(`/v2/account/${name}/tokens`)).body.token as string);
  }

  beforeAll(async () => {
    imageId = (await ensureTestImage(docker)).id;
    berth = await TestBerth.start({ database, env: { BERTH_ALLOWED_REGISTRIES: 'registry.internal:5000' } });
    admin = apiClient(berth.apiUrl, ADMIN_TOKEN);
    const victimApi = await accountClient(victim);
    expect((await victimApi.post(`/v2/account/${victim}/service`, { name: 'app' })).status).toBe(200);
    await tagTestImage(docker, imageId, victimRepository, 'secret');
    evil = await accountClient(attacker);
  });
  afterAll(async () => {
    await berth?.stop();
    for (const reference of [`${victimRepository}:secret`, `${attackerRepository}:mine`]) {
      await docker.getImage(reference).remove().catch(() => undefined);
    }
  });

  it("refuses an account token naming another account's repository, and writes nothing", async () => {
    const response = await evil.post(`/v2/account/${attacker}/service`, { name: 'stolen', image: victimRepository });
    expect(response.status).toBe(403);
    expect(response.body).toEqual(
      errorBodyMatching(403, 'forbidden_error', 'image_requires_admin', {
        message: `"body.image" may only be "${attacker}/stolen" (the service's own repository) unless the admin token sets it`,
        details: { param: 'body.image' },
      }),
    );
    expect((await evil.get(`/v2/service/${attacker}/stolen`)).status).toBe(404);
  });

  it('lets an account name its own default repository, and the admin any repository on an allowed registry', async () => {
    expect((await evil.post(`/v2/account/${attacker}/service`, { name: 'app', image: attackerRepository })).status).toBe(200);
    expect((await admin.post(`/v2/account/${attacker}/service`, { name: 'shared', image: 'berth-test/app' })).status).toBe(200);
    expect((await evil.get(`/v2/service/${attacker}/shared`)).body.image_name).toBe('berth-test/app');
    const allowed = await admin.post(`/v2/account/${attacker}/service`, { name: 'internal', image: 'registry.internal:5000/team/app' });
    expect(allowed.status).toBe(200);
  });

  it.each(['127.0.0.1:35500/anything', 'localhost/anything', 'registry.example.com/acme/app', 'docker.io/library/nginx'])(
    'refuses the registry of %s with a 400 naming body.image, before the engine dials it',
    async (image) => {
      const response = await admin.post(`/v2/account/${attacker}/service`, { name: 'ssrf', image });
      expect(response.status).toBe(400);
      expect(response.body).toEqual(
        errorBodyMatching(400, 'invalid_request_error', 'registry_not_allowed', { details: { param: 'body.image' } }),
      );
      expect((await admin.get(`/v2/service/${attacker}/ssrf`)).status).toBe(404);
    },
  );

  it("refuses spawn.tag with the digest of another repository's image, as it refuses an unknown digest", async () => {
    const foreign = await evil.post(`/v2/service/${attacker}/app/connect`, { spawn: { tag: imageId } });
    expect(foreign.status).toBe(400);
    const body = errorBodyMatching(400, 'invalid_request_error', 'image_not_in_repository', {
      message: `"body.spawn.tag" is not the digest of an image of repository "${attackerRepository}" on this engine`,
      details: { param: 'body.spawn.tag' },
    });
    expect(foreign.body).toEqual(body);
    const unknown = await evil.post(`/v2/service/${attacker}/app/connect`, { spawn: { tag: `sha256:${'0'.repeat(64)}` } });
    expect(unknown.body).toEqual(body);
    expect((await evil.get(`/v2/account/${attacker}/backends`)).body.running_backends).toEqual([]);
  });

  it('refuses the same digest written into an environment', async () => {
    const response = await evil.post(`/v2/service/${attacker}/app/staging/update`, { image_tag: imageId });
    expect(response.status).toBe(400);
    expect(response.body).toEqual(
      errorBodyMatching(400, 'invalid_request_error', 'image_not_in_repository', { details: { param: 'body.image_tag' } }),
    );
  });

  it("runs a digest once the image is in the service's own repository", async () => {
    await tagTestImage(docker, imageId, attackerRepository, 'mine');
    expect((await evil.post(`/v2/service/${attacker}/app/staging/update`, { image_tag: imageId })).status).toBe(200);
    const response = await evil.post(`/v2/service/${attacker}/app/connect`, { spawn: { tag: imageId } });
    expect(response.status).toBe(200);
    await waitForStatus(evil, response.body.backend_id, 'ready');
    expect((await evil.get(`/v2/backend/${response.body.backend_id}`)).body.image_digest).toBe(imageId);
    await evil.post(`/v2/backend/${response.body.backend_id}/terminate`, { hard: true });
    await waitForStatus(evil, response.body.backend_id, 'terminated');
  });

  it("lists only the service's own repository", async () => {
    const images = (await evil.get(`/v2/service/${attacker}/app/images`)).body.images as Array<{ repository: string }>;
    expect(images.length).toBeGreaterThan(0);
    expect(images.every((image) => image.repository === attackerRepository)).toBe(true);
  });
});

describe('registryOf and the allow-list', () => {
  const lookup = async () => undefined;

  it('reads a host only from a first component with ".", ":" or "localhost", as Docker does', () => {
    expect(registryOf('acme/app')).toBeNull();
    expect(registryOf('app')).toBeNull();
    expect(registryOf('localhost/app')).toBe('localhost');
    expect(registryOf('127.0.0.1:35500/anything')).toBe('127.0.0.1:35500');
    expect(registryOf('registry.example.com/a/b')).toBe('registry.example.com');
  });

  it("trusts BERTH_IMAGE_PREFIX's registry and the configured hosts, nothing else", () => {
    const policy = new ImagePolicy({ imagePrefix: 'registry.example.com:5000/tenants/', allowedRegistries: ['mirror.internal'], lookup });
    expect(policy.defaultRepository('acme', 'chat')).toBe('registry.example.com:5000/tenants/acme/chat');
    expect(() => policy.checkRegistry('registry.example.com:5000/other/app', 'body.image')).not.toThrow();
    expect(() => policy.checkRegistry('mirror.internal/app', 'body.image')).not.toThrow();
    expect(() => policy.checkRegistry('registry.example.com/other/app', 'body.image')).toThrow(/registry "registry.example.com"/);
    expect(() => policy.checkRegistry('127.0.0.1:35500/x', 'body.image')).toThrow(/registry "127.0.0.1:35500"/);
  });
});
