// A berth role in a process of its own (`berth serve --role …`), as an
// operator runs it: for tests across processes and hosts.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Role } from '../../src/roles.ts';

const BIN = new URL('../../bin/berth.js', import.meta.url).pathname;

export class BerthProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    readonly role: Role,
    private readonly env: Record<string, string>,
    /** Where its output goes, for a failing test to read. */
    readonly logFile: string,
  ) {}

  static async start(role: Role, env: Record<string, string>): Promise<BerthProcess> {
    const dir = await mkdtemp(join(tmpdir(), `berth-${role}-`));
    const process = new BerthProcess(role, env, join(dir, 'berth.log'));
    process.launch();
    return process;
  }

  private launch(): void {
    const log = createWriteStream(this.logFile, { flags: 'a' });
    const child = spawn(process.execPath, [BIN, 'serve', '--role', this.role], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', BERTH_LOG_LEVEL: 'info', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  /** Gone at once, as a crash or a lost machine. */
  async kill(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  async restart(): Promise<void> {
    await this.kill();
    this.launch();
  }

  async stop(): Promise<void> {
    this.child?.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}
