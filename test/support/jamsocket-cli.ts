// Runs the published Jamsocket CLI (npm `jamsocket`, a devDependency) as a
// subprocess against a berth, the way a user would with JAMSOCKET_SERVER_API set,
// but sealed off from the user's machine and from the network. What the CLI
// reads and writes, and why each setting below is needed, is in
// docs/compat/jamsocket-cli.md (§1 and §6).
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const PACKAGE_DIR = dirname(require.resolve('jamsocket/package.json'));
const BIN = join(PACKAGE_DIR, 'bin/run');
const LOOPBACK_ONLY = fileURLToPath(new URL('./loopback-only.cjs', import.meta.url));

/** Generous: the CLI's cold start (oclif loads every command) takes about a second. */
export const CLI_TIMEOUT_MS = 30_000;

export interface CliResult {
  /** Exit code; null when the run was killed (timeout). */
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface RunningCli {
  /** Resolves once stdout matches, rejects when the process ends first or after `timeoutMs`. */
  waitForStdout(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** The whole run, once the process has exited. */
  result: Promise<CliResult>;
}

/**
 * One isolated CLI user: its own HOME (so ~/.jamsocket/config.json) and XDG
 * dirs in a temp directory, stdin from /dev/null so that any prompt fails
 * instead of waiting, no colours, and a preload that refuses any connection
 * off the loopback interface (the CLI asks the npm registry for updates).
 */
export class JamsocketCli {
  private constructor(
    private readonly dir: string,
    private readonly env: Record<string, string>,
  ) {}

  static async create(apiUrl: string): Promise<JamsocketCli> {
    const dir = await mkdtemp(join(tmpdir(), 'berth-jamsocket-cli-'));
    const home = join(dir, 'home');
    const cache = join(home, '.cache');
    // The update-check plugin refreshes this file when it is missing or older than a
    // day, by spawning a child that asks the npm registry: a fresh file means no child.
    const { version } = JSON.parse(await readFile(join(PACKAGE_DIR, 'package.json'), 'utf8')) as { version: string };
    await mkdir(join(cache, 'jamsocket'), { recursive: true });
    await writeFile(join(cache, 'jamsocket', 'version'), JSON.stringify({ latest: version, current: version }));
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      XDG_CACHE_HOME: cache,
      XDG_CONFIG_HOME: join(home, '.config'),
      XDG_DATA_HOME: join(home, '.local', 'share'),
      JAMSOCKET_SERVER_API: apiUrl,
      FORCE_COLOR: '0',
      // oclif wraps errors and tables at 80 columns when not on a TTY; one line each is easier to assert on.
      OCLIF_COLUMNS: '1000',
      NODE_OPTIONS: `--require=${LOOPBACK_ONLY}`,
      BERTH_TEST_BLOCKED_LOG: join(dir, 'blocked-connections.log'),
    };
    return new JamsocketCli(dir, env);
  }

  /** `$HOME/.jamsocket/config.json`, where `login` stores the token. */
  get configPath(): string {
    return join(this.env.HOME!, '.jamsocket', 'config.json');
  }

  /** Off-loopback connections the preload refused, one `host:port` each. */
  async blockedConnections(): Promise<string[]> {
    const text = await readFile(this.env.BERTH_TEST_BLOCKED_LOG!, 'utf8').catch(() => '');
    return text.split('\n').filter(Boolean);
  }

  /** Runs one command to completion (or to the timeout, which kills it). */
  run(args: string[], timeoutMs = CLI_TIMEOUT_MS): Promise<CliResult> {
    return this.start(args, timeoutMs).result;
  }

  /** Starts a command that runs until berth ends it, such as `logs`. */
  start(args: string[], timeoutMs = CLI_TIMEOUT_MS): RunningCli {
    const child = spawn(process.execPath, [BIN, ...args], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let exited = false;
    const watchers = new Set<() => void>();
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      for (const watcher of watchers) watcher();
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const result = new Promise<CliResult>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code) => {
        clearTimeout(timer);
        exited = true;
        for (const watcher of watchers) watcher();
        resolve({ code, stdout, stderr, timedOut });
      });
    });
    const waitForStdout = (pattern: RegExp, waitMs = timeoutMs) =>
      new Promise<void>((resolve, reject) => {
        const deadline = setTimeout(() => finish(new Error(`no stdout matching ${pattern} within ${waitMs} ms; stdout so far:\n${stdout}\nstderr:\n${stderr}`)), waitMs);
        const finish = (error?: Error) => {
          clearTimeout(deadline);
          watchers.delete(check);
          if (error) reject(error);
          else resolve();
        };
        const check = () => {
          if (pattern.test(stdout)) finish();
          else if (exited) finish(new Error(`the CLI exited before printing ${pattern}; stdout:\n${stdout}\nstderr:\n${stderr}`));
        };
        watchers.add(check);
        check();
      });
    return { waitForStdout, result };
  }

  async cleanup(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
