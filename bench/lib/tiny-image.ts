/**
 * The smallest session backend this machine can build without a registry:
 * FROM scratch, Debian's static busybox (`busybox-static`; `.ci/run` installs
 * it) serving one file with its `httpd` on port 8080. About 100 kB of memory
 * per container, so that hundreds of live backends fit on one machine and
 * berth's own cost is what a scale bench measures.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Dockerode from 'dockerode';

export const TINY_IMAGE = 'berth-bench/tiny';
const BUSYBOX = '/bin/busybox';

export async function ensureTinyImage(docker: Dockerode): Promise<string> {
  const reference = `${TINY_IMAGE}:latest`;
  if (await docker.getImage(reference).inspect().then(() => true, () => false)) return reference;
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: apt-get install busybox-static (.ci/run installs it)`);
  const dir = await mkdtemp(join(tmpdir(), 'berth-tiny-image-'));
  try {
    await mkdir(join(dir, 'www'));
    await writeFile(join(dir, 'www', 'index.html'), 'tiny\n');
    await copyFile(BUSYBOX, join(dir, 'busybox'));
    // -f: in the foreground, as PID 1; berth gives PID 1 a signal on terminate.
    await writeFile(join(dir, 'Dockerfile'), 'FROM scratch\nCOPY busybox /busybox\nCOPY www /www\nENTRYPOINT ["/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]\n');
    const stream = await docker.buildImage({ context: dir, src: ['Dockerfile', 'busybox', 'www'] }, { t: reference, rm: true, forcerm: true });
    const events = await new Promise<Array<{ error?: string }>>((resolve, reject) => {
      docker.modem.followProgress(stream, (err: Error | null, out: Array<{ error?: string }>) => (err ? reject(err) : resolve(out)));
    });
    const failure = events.find((event) => event.error !== undefined);
    if (failure) throw new Error(`building ${reference} failed: ${failure.error}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return reference;
}
