/**
 * berth as an operator runs it (`berth serve`, i.e. `npm start`), in a child
 * process of the bench: its own event loop, its own CPU time to read, and its
 * log lines in a file (at the default level, info, as `npm start` writes them).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ADMIN_TOKEN, freePort } from '../../test/support/berth.ts';
import { rssOf } from './proc.ts';

const BIN = fileURLToPath(new URL('../../bin/berth.js', import.meta.url));

export interface BerthChildOptions {
  /** Another checkout's `bin/berth.js` (to compare before and after a change); this checkout's by default. */
  bin?: string;
  /** DATABASE_URL; PGlite (the default) when absent. */
  databaseUrl?: string;
  /** Flags for node itself (`--cpu-prof`, which NODE_OPTIONS refuses). */
  nodeArgs?: string[];
  /** More environment (NODE_OPTIONS for a profile, …). */
  env?: Record<string, string>;
  /** `berth serve --role …`: 'all' by default; a 'proxy' process is ready once its port answers. */
  role?: 'all' | 'proxy';
  /** Raise the process's open-files limit (soft and hard) to this, with prlimit, right after it starts (root with CAP_SYS_RESOURCE; else it keeps the limit it inherited). */
  fileLimit?: number;
}

export class BerthChild {
  private constructor(
    private readonly child: ChildProcess,
    readonly apiUrl: string,
    readonly proxyUrl: string,
    readonly logFile: string,
    private readonly dataDir: string,
    private readonly exited: Promise<void>,
  ) {}

  static async start(options: BerthChildOptions = {}): Promise<BerthChild> {
    const dataDir = await mkdtemp(join(tmpdir(), 'berth-bench-'));
    const [apiPort, proxyPort] = await Promise.all([freePort(), freePort()]);
    const logFile = join(dataDir, 'berth.log');
    const log = createWriteStream(logFile);
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), options.bin ?? BIN, 'serve', '--role', options.role ?? 'all'], {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/root',
        BERTH_API_PORT: String(apiPort),
        BERTH_PROXY_PORT: String(proxyPort),
        BERTH_BIND: '127.0.0.1',
        BERTH_DATA_DIR: join(dataDir, 'data'),
        BERTH_ADMIN_TOKEN: ADMIN_TOKEN,
        // The limiter stays in the path (headers on every answer) but never answers 429.
        BERTH_RATE_LIMIT: '100000000',
        ...(options.databaseUrl ? { DATABASE_URL: options.databaseUrl } : {}),
        ...options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (options.fileLimit !== undefined) {
      try {
        execFileSync('prlimit', ['--pid', String(child.pid), `--nofile=${options.fileLimit}:${options.fileLimit}`], { stdio: 'pipe' });
      } catch (error) {
        console.error(`could not raise berth's open-files limit to ${options.fileLimit}: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`);
      }
    }
    child.stdout!.pipe(log);
    child.stderr!.pipe(log);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const berth = new BerthChild(child, `http://127.0.0.1:${apiPort}`, `http://127.0.0.1:${proxyPort}`, logFile, dataDir, exited);
    await berth.waitHealthy(options.role === 'proxy' ? `${berth.proxyUrl}/` : `${berth.apiUrl}/healthcheck`);
    return berth;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Its open-files limit now (soft). */
  fileLimit(): number {
    const line = readFileSync(`/proc/${this.pid}/limits`, 'utf8').split('\n').find((entry) => entry.startsWith('Max open files'));
    return Number(/Max open files\s+(\d+)/.exec(line ?? '')?.[1] ?? NaN);
  }

  /** Resident memory of the process now, in bytes. */
  rssBytes(): number {
    return rssOf(this.pid);
  }

  /** User + system CPU of the process so far, in ms (all its threads). */
  cpuMs(): number {
    return processCpuMs(this.pid);
  }

  private async waitHealthy(url: string): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null) break;
      try {
        // Any answer of the proxy (404 for no token) means it listens; the API must say healthy.
        const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
        if (response.ok || url.startsWith(this.proxyUrl)) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error(`berth did not come up; its log: ${this.logFile}\n${readFileSync(this.logFile, 'utf8').slice(-2000)}`);
  }

  /** SIGTERM (a CPU profile is written then), SIGKILL after 10 s; removes its data directory unless `keep`. */
  async stop({ keep = false } = {}): Promise<void> {
    if (this.child.exitCode === null) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      await this.exited;
      clearTimeout(timer);
    }
    if (!keep) await rm(this.dataDir, { recursive: true, force: true });
  }
}

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** utime + stime of a process from /proc/{pid}/stat, in ms; children it waited for are not counted. */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}
