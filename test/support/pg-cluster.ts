// A PostgreSQL cluster of a test's own, which the test may stop and start to
// play an outage without touching the shared TEST_DATABASE_URL server.
import { execFile } from 'node:child_process';
import { chown, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './berth.ts';

const run = promisify(execFile);

async function pgBinDir(): Promise<string> {
  const versions = (await readdir('/usr/lib/postgresql')).sort((a, b) => Number(a) - Number(b));
  const newest = versions.at(-1);
  if (!newest) throw new Error('no PostgreSQL under /usr/lib/postgresql (.ci/run installs it)');
  return join('/usr/lib/postgresql', newest, 'bin');
}

export class PgCluster {
  private constructor(
    private readonly bin: string,
    private readonly dir: string,
    readonly port: number,
  ) {}

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  static async create(): Promise<PgCluster> {
    const bin = await pgBinDir();
    const dir = await mkdtemp(join(tmpdir(), 'berth-pg-'));
    // initdb refuses to run as root.
    if (process.getuid?.() === 0) await chown(dir, ...(await postgresIds()));
    const cluster = new PgCluster(bin, dir, await freePort());
    await cluster.pg('initdb', ['-D', join(dir, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
    await cluster.start();
    return cluster;
  }

  async start(): Promise<void> {
    await this.pg('pg_ctl', [
      'start', '-D', join(this.dir, 'data'), '-l', join(this.dir, 'server.log'), '-w', '-t', '60', '-s',
      '-o', `-p ${this.port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off`,
    ]);
  }

  /** Stops at once, cutting every connection, as a crash or a restart would. */
  async stop(): Promise<void> {
    await this.pg('pg_ctl', ['stop', '-D', join(this.dir, 'data'), '-m', 'immediate', '-s']).catch(() => undefined);
  }

  async destroy(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }

  private async pg(command: string, args: string[]): Promise<void> {
    const path = join(this.bin, command);
    if (process.getuid?.() === 0) await run('runuser', ['-u', 'postgres', '--', path, ...args], { cwd: this.dir });
    else await run(path, args, { cwd: this.dir });
  }
}

async function postgresIds(): Promise<[number, number]> {
  const { stdout } = await run('id', ['-u', 'postgres']);
  const { stdout: group } = await run('id', ['-g', 'postgres']);
  return [Number(stdout.trim()), Number(group.trim())];
}
