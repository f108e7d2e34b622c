// The integration-test session backend image: test/fixtures/app built with the
// shared FROM scratch builder (examples/lib/node-image.ts), since no registry is
// reachable here.
import type Dockerode from 'dockerode';
import { fileURLToPath } from 'node:url';
import { ensureNodeImage } from '../../examples/lib/node-image.ts';

const APP_DIR = fileURLToPath(new URL('../fixtures/app/', import.meta.url));

export function ensureTestImage(docker: Dockerode, reference = 'berth-test/app:latest'): Promise<{ reference: string; id: string }> {
  return ensureNodeImage(docker, { reference, appDir: APP_DIR, entry: 'server.mjs', packages: ['ws'] });
}

export async function tagTestImage(docker: Dockerode, id: string, repository: string, tag: string): Promise<void> {
  await docker.getImage(id).tag({ repo: repository, tag });
}
