// Builds the integration-test session backend image from files already on this
// machine: no registry is reachable, so the image is FROM scratch with the host's
// own node binary and the shared libraries it links against.
import type Dockerode from 'dockerode';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

const HASH_LABEL = 'berth.test.hash';
const APP_FILE = fileURLToPath(new URL('../fixtures/app/server.mjs', import.meta.url));
const WS_DIR = dirname(createRequire(import.meta.url).resolve('ws/package.json'));
// Bump when the image layout changes in a way the hashed inputs do not capture.
const LAYOUT_VERSION = '1';

interface BuildEvent {
  stream?: string;
  error?: string;
  errorDetail?: { message?: string };
}

// Concurrent callers in one process share one build instead of racing the tag.
const inflight = new Map<string, Promise<{ reference: string; id: string }>>();

export function ensureTestImage(
  docker: Dockerode,
  reference = 'berth-test/app:latest',
): Promise<{ reference: string; id: string }> {
  let p = inflight.get(reference);
  if (!p) {
    p = ensure(docker, reference).finally(() => inflight.delete(reference));
    inflight.set(reference, p);
  }
  return p;
}

export async function tagTestImage(
  docker: Dockerode,
  id: string,
  repository: string,
  tag: string,
): Promise<void> {
  await docker.getImage(id).tag({ repo: repository, tag });
}

async function ensure(docker: Dockerode, reference: string): Promise<{ reference: string; id: string }> {
  const hash = await contentHash();
  const existing = await inspectOrNull(docker, reference);
  if (existing?.Config?.Labels?.[HASH_LABEL] === hash) return { reference, id: existing.Id };

  const dir = await mkdtemp(join(tmpdir(), 'berth-test-image-'));
  try {
    await writeContext(dir, hash);
    const stream = await docker.buildImage(
      { context: dir, src: ['Dockerfile', 'rootfs'] },
      { t: reference, rm: true, forcerm: true },
    );
    const events = await new Promise<BuildEvent[]>((resolve, reject) => {
      docker.modem.followProgress(stream, (err: Error | null, out: BuildEvent[]) =>
        err ? reject(err) : resolve(out),
      );
    });
    // The engine reports build failures inside the stream, with HTTP 200.
    const failure = events.find((e) => e.error !== undefined || e.errorDetail !== undefined);
    if (failure) {
      throw new Error(`building ${reference} failed: ${failure.errorDetail?.message ?? failure.error}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const built = await docker.getImage(reference).inspect();
  return { reference, id: built.Id };
}

async function inspectOrNull(docker: Dockerode, reference: string) {
  try {
    return await docker.getImage(reference).inspect();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return null;
    throw err;
  }
}

async function contentHash(): Promise<string> {
  const h = createHash('sha256');
  h.update(LAYOUT_VERSION);
  h.update(process.version);
  h.update(process.execPath);
  h.update(await readFile(APP_FILE));
  h.update(await readFile(join(WS_DIR, 'package.json')));
  return h.digest('hex').slice(0, 32);
}

function dockerfile(hash: string): string {
  return [
    'FROM scratch',
    'COPY rootfs/ /',
    `LABEL ${HASH_LABEL}="${hash}"`,
    'EXPOSE 8080',
    'ENV PORT=8080',
    `CMD ${JSON.stringify([process.execPath, '/app/server.mjs'])}`,
    '',
  ].join('\n');
}

// Libraries by absolute path, the dynamic loader included; linux-vdso has no file.
async function sharedLibraries(binary: string): Promise<string[]> {
  const { stdout } = await run('ldd', [binary]);
  if (/not found/.test(stdout)) throw new Error(`ldd ${binary}: missing libraries\n${stdout}`);
  const libs: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

async function writeContext(dir: string, hash: string): Promise<void> {
  const rootfs = join(dir, 'rootfs');
  // copyFile follows symlinks and keeps the mode, so every path becomes a real
  // executable file in the image even where the host path is a symlink (e.g. /lib64).
  for (const file of [process.execPath, ...(await sharedLibraries(process.execPath))]) {
    await mkdir(join(rootfs, dirname(file)), { recursive: true });
    await copyFile(file, join(rootfs, file));
  }
  await mkdir(join(rootfs, 'app/node_modules'), { recursive: true });
  await copyFile(APP_FILE, join(rootfs, 'app/server.mjs'));
  await cp(WS_DIR, join(rootfs, 'app/node_modules/ws'), { recursive: true, dereference: true });
  await writeFile(join(dir, 'Dockerfile'), dockerfile(hash));
}
