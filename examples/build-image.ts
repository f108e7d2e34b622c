// Builds the counter example's image on a machine without a registry:
//
//   npx tsx examples/build-image.ts [--tag acme/counter:latest]
//
// The image is FROM scratch with this machine's node binary and its libraries,
// examples/counter at /app and the `ws` package from the repository's
// node_modules: the way the test suite builds its images. With a registry, the
// Dockerfile in examples/counter does the same job the usual way.
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Dockerode from 'dockerode';
import { ensureNodeImage, type NodeImageOptions } from './lib/node-image.ts';

/** What goes into the counter image; the test suite builds it with the same options. */
export function counterImageOptions(reference: string): NodeImageOptions {
  return {
    reference,
    appDir: fileURLToPath(new URL('./counter/', import.meta.url)),
    files: ['server.mjs', 'index.html', 'package.json'],
    entry: 'server.mjs',
    packages: ['ws'],
    labels: { 'org.opencontainers.image.title': 'berth example: shared counter' },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { tag: { type: 'string', short: 't', default: 'acme/counter:latest' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    console.log('usage: npx tsx examples/build-image.ts [--tag <repository[:tag]>]   (default acme/counter:latest)');
    return;
  }
  const reference = values.tag.includes(':', values.tag.lastIndexOf('/') + 1) ? values.tag : `${values.tag}:latest`;
  // docker-modem reads DOCKER_HOST (and DOCKER_TLS_VERIFY/DOCKER_CERT_PATH) itself.
  const image = await ensureNodeImage(new Dockerode(), counterImageOptions(reference));
  console.log(`${image.built ? 'built' : 'up to date:'} ${image.reference} (${image.id})`);
}

// Run as a script, not when the test suite imports counterImageOptions.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error: unknown) => {
    console.error(`build-image: ${(error as Error).message ?? String(error)}`);
    process.exit(1);
  });
}
