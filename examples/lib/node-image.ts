import { existsSync } from 'node:fs';
// Builds a Node.js app image without a registry: FROM scratch, holding this
// machine's own `node` binary, the shared libraries `ldd` lists for it, the app
// directory at /app and the npm packages it names at /app/node_modules.
//
// Used by examples/build-image.ts (the counter example) and by the test suite
// (test/support/test-image.ts). An image whose content-hash label matches its
// inputs is reused, not rebuilt.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';

const run = promisify(execFile);

/** Label holding the hash of everything that went into the image. */
export const NODE_IMAGE_HASH_LABEL = 'berth.node-image.hash';
// Bump when the image layout changes in a way the hashed inputs do not capture.
const LAYOUT_VERSION = '2';

export interface NodeImageOptions {
  /** Image to build, `repository[:tag]`, e.g. `acme/counter:latest`. */
  reference: string;
  /** Directory whose files go to /app in the image. */
  appDir: string;
  /**
   * Files of `appDir` to copy, relative to it. Default: all of them except
   * node_modules (packages come from `packages`) and names starting with a dot.
   */
  files?: string[];
  /** File in `appDir` that `node` runs. Default `server.mjs`. */
  entry?: string;
  /**
   * npm packages copied to /app/node_modules, resolved from `appDir` the way
   * Node would (so the repository's own node_modules serves). Only these are
   * copied: a package with dependencies of its own must list them too.
   */
  packages?: string[];
  /** Image labels besides the content hash. */
  labels?: Record<string, string>;
}

export interface NodeImage {
  reference: string;
  /** The image id, `sha256:…`. */
  id: string;
  /** False when an image with the same content hash was already there. */
  built: boolean;
}

interface BuildEvent {
  stream?: string;
  error?: string;
  errorDetail?: { message?: string };
}

interface ResolvedInputs {
  appDir: string;
  entry: string;
  appFiles: string[];
  packageDirs: Map<string, string>;
  labels: Record<string, string>;
}

// Concurrent callers in one process share one build instead of racing the tag.
const inflight = new Map<string, Promise<NodeImage>>();

/** Builds the image unless one with the same inputs is already tagged `reference`. */
export function ensureNodeImage(docker: Dockerode, options: NodeImageOptions): Promise<NodeImage> {
  let pending = inflight.get(options.reference);
  if (!pending) {
    pending = buildIfChanged(docker, options).finally(() => inflight.delete(options.reference));
    inflight.set(options.reference, pending);
  }
  return pending;
}

async function buildIfChanged(docker: Dockerode, options: NodeImageOptions): Promise<NodeImage> {
  if (process.platform !== 'linux') {
    throw new Error(
      `building a FROM scratch image copies this machine's node binary, which only works on Linux (this is ${process.platform}); ` +
        'build with the Dockerfile instead',
    );
  }
  const inputs = await resolveInputs(options);
  const hash = await contentHash(inputs);
  const reference = options.reference;
  const existing = await inspectOrNull(docker, reference);
  if (existing?.Config?.Labels?.[NODE_IMAGE_HASH_LABEL] === hash) return { reference, id: existing.Id, built: false };

  const dir = await mkdtemp(join(tmpdir(), 'berth-node-image-'));
  try {
    await writeContext(dir, inputs, hash);
    const stream = await docker.buildImage({ context: dir, src: ['Dockerfile', 'rootfs'] }, { t: reference, rm: true, forcerm: true });
    const events = await new Promise<BuildEvent[]>((resolve, reject) => {
      docker.modem.followProgress(stream, (err: Error | null, out: BuildEvent[]) => (err ? reject(err) : resolve(out)));
    });
    // The engine reports build failures inside the stream, with HTTP 200.
    const failure = events.find((e) => e.error !== undefined || e.errorDetail !== undefined);
    if (failure) throw new Error(`building ${reference} failed: ${failure.errorDetail?.message ?? failure.error}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const built = await docker.getImage(reference).inspect();
  return { reference, id: built.Id, built: true };
}

async function resolveInputs(options: NodeImageOptions): Promise<ResolvedInputs> {
  const appDir = resolve(options.appDir);
  const entry = options.entry ?? 'server.mjs';
  const appFiles = options.files ? [...options.files].sort() : await listFiles(appDir);
  if (!appFiles.includes(entry)) throw new Error(`${join(appDir, entry)}: the entry is not among the app files`);

  const require = createRequire(join(appDir, 'package.json'));
  const packageDirs = new Map<string, string>();
  for (const name of options.packages ?? []) {
    const manifest = findManifest(require, name);
    const { dependencies = {} } = JSON.parse(await readFile(manifest, 'utf8')) as { dependencies?: Record<string, string> };
    const missing = Object.keys(dependencies).filter((dep) => !options.packages?.includes(dep));
    if (missing.length > 0) throw new Error(`package ${name} depends on ${missing.join(', ')}: list those in packages too`);
    packageDirs.set(name, dirname(manifest));
  }
  return { appDir, entry, appFiles, packageDirs, labels: options.labels ?? {} };
}

/** Files under `dir`, relative and sorted, so the hash does not depend on directory order. */
async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(join(dir, prefix), { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) files.push(...(await listFiles(dir, path)));
    else if (entry.isFile()) files.push(path);
  }
  return files.sort();
}

async function contentHash(inputs: ResolvedInputs): Promise<string> {
  const h = createHash('sha256');
  const field = (value: string | Buffer) => {
    h.update(String(value.length));
    h.update(':');
    h.update(value);
  };
  field(LAYOUT_VERSION);
  field(process.version);
  field(process.execPath);
  field(inputs.entry);
  field(JSON.stringify(inputs.labels));
  for (const file of inputs.appFiles) {
    field(file);
    field(await readFile(join(inputs.appDir, file)));
  }
  // A package's manifest carries its version: enough to tell one copy from another.
  for (const [name, dir] of inputs.packageDirs) {
    field(name);
    field(await readFile(join(dir, 'package.json')));
  }
  return h.digest('hex').slice(0, 32);
}

function dockerfile(inputs: ResolvedInputs, hash: string): string {
  const labels = { ...inputs.labels, [NODE_IMAGE_HASH_LABEL]: hash };
  return [
    'FROM scratch',
    'COPY rootfs/ /',
    ...Object.entries(labels).map(([name, value]) => `LABEL ${JSON.stringify(name)}=${JSON.stringify(value)}`),
    'WORKDIR /app',
    'EXPOSE 8080',
    'ENV PORT=8080',
    `CMD ${JSON.stringify([process.execPath, `/app/${inputs.entry}`])}`,
    '',
  ].join('\n');
}

/** Libraries by absolute path, the dynamic loader included; linux-vdso has no file. A static binary needs none. */
async function sharedLibraries(binary: string): Promise<string[]> {
  let stdout: string;
  try {
    ({ stdout } = await run('ldd', [binary]));
  } catch (error) {
    const output = `${(error as { stdout?: string }).stdout ?? ''}${(error as { stderr?: string }).stderr ?? ''}`;
    if (/not a dynamic executable|statically linked/.test(output)) return [];
    throw new Error(`ldd ${binary} failed: ${output || (error as Error).message}`, { cause: error });
  }
  if (/not found/.test(stdout)) throw new Error(`ldd ${binary}: missing libraries\n${stdout}`);
  const libs: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

async function writeContext(dir: string, inputs: ResolvedInputs, hash: string): Promise<void> {
  const rootfs = join(dir, 'rootfs');
  // copyFile follows symlinks and keeps the mode, so every path becomes a real
  // executable file in the image even where the host path is a symlink (e.g. /lib64).
  for (const file of [process.execPath, ...(await sharedLibraries(process.execPath))]) {
    await mkdir(join(rootfs, dirname(file)), { recursive: true });
    await copyFile(file, join(rootfs, file));
  }
  for (const file of inputs.appFiles) {
    await mkdir(join(rootfs, 'app', dirname(file)), { recursive: true });
    await copyFile(join(inputs.appDir, file), join(rootfs, 'app', file));
  }
  await mkdir(join(rootfs, 'app/node_modules'), { recursive: true });
  for (const [name, packageDir] of inputs.packageDirs) {
    await cp(packageDir, join(rootfs, 'app/node_modules', name), { recursive: true, dereference: true });
  }
  await writeFile(join(dir, 'Dockerfile'), dockerfile(inputs, hash));
}

async function inspectOrNull(docker: Dockerode, reference: string): Promise<Dockerode.ImageInspectInfo | null> {
  try {
    return await docker.getImage(reference).inspect();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return null;
    throw err;
  }
}

/**
 * The package.json of a package as Node would find it from `require`'s base.
 * Not `require.resolve(name + '/package.json')`: a package whose `exports`
 * leave out package.json refuses that.
 */
function findManifest(require: NodeJS.Require, name: string): string {
  for (const dir of require.resolve.paths(name) ?? []) {
    const manifest = join(dir, name, 'package.json');
    if (existsSync(manifest)) return manifest;
  }
  throw new Error(`package ${name} is not installed (npm install it)`);
}
