import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'undici';
import type { Logger } from '../../src/core/logger.ts';
import { renderEdgeConf, type EdgeConfOptions } from './nginx-conf.ts';

/** Where Debian's libnginx-mod-http-lua puts the module and the kit it needs. */
const DEBIAN_MODULES = ['/usr/lib/nginx/modules/ndk_http_module.so', '/usr/lib/nginx/modules/ngx_http_lua_module.so'];
const START_TIMEOUT_MS = 10_000;
/** After an unexpected exit, nginx is started again after this long (doubling up to the cap). */
const RESTART_DELAY_MS = 200;
const RESTART_DELAY_CAP_MS = 5_000;

export class EdgeUnavailableError extends Error {}

/** The nginx binary to run: `explicit` (BERTH_PROXY_NGINX) or nginx on the usual paths. */
export function findNginx(explicit: string | undefined): string {
  const candidates = explicit ? [explicit] : ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/openresty/nginx/sbin/nginx'];
  const found = candidates.find((path) => existsSync(path));
  if (!found) {
    throw new EdgeUnavailableError(
      `BERTH_PROXY_EDGE=nginx needs nginx with its Lua module (Debian: apt-get install nginx libnginx-mod-http-lua); none at ${candidates.join(', ')}`,
    );
  }
  return found;
}

/** `load_module` paths: none when nginx has Lua built in (OpenResty), Debian's when they are there. */
function luaModules(binary: string): string[] {
  const built = spawnSync(binary, ['-V'], { encoding: 'utf8' });
  if (/lua-nginx-module|ngx_lua/.test(`${built.stderr}${built.stdout}`)) return [];
  if (DEBIAN_MODULES.every((path) => existsSync(path))) return DEBIAN_MODULES;
  throw new EdgeUnavailableError(`BERTH_PROXY_EDGE=nginx: ${binary} has no Lua module (Debian: apt-get install libnginx-mod-http-lua)`);
}

export type NginxEdgeOptions = Omit<EdgeConfOptions, 'prefix' | 'secret' | 'modules'> & { binary: string; logger: Logger; onRestart: () => void };

/**
 * nginx as the proxy's edge, run and watched by berth: written a fresh
 * config in its own temporary prefix, started in the foreground, restarted
 * if it dies (its routes are then learned again), stopped with berth.
 */
export class NginxEdge {
  /** The admin socket's client: routes in, activity out. */
  admin!: Client;
  readonly secret = randomBytes(24).toString('base64url');
  private prefix = '';
  private child: ChildProcess | undefined;
  private stopped = false;
  private restartDelayMs = RESTART_DELAY_MS;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;

  constructor(private readonly options: NginxEdgeOptions) {
    this.log = options.logger.child({ component: 'edge' });
    if (options.port === 0) throw new EdgeUnavailableError('BERTH_PROXY_EDGE=nginx needs a fixed BERTH_PROXY_PORT, not 0');
  }

  get port(): number {
    return this.options.port;
  }

  /** nginx's prefix: its config, pid file, error log and admin socket. */
  get prefixDir(): string {
    return this.prefix;
  }

  async start(): Promise<void> {
    const modules = luaModules(this.options.binary);
    this.prefix = await mkdtemp(join(tmpdir(), 'berth-edge-'));
    // nginx's workers run as an unprivileged user when berth runs as root: they need the temp paths.
    await chmod(this.prefix, 0o755);
    const conf = renderEdgeConf({ ...this.options, prefix: this.prefix, secret: this.secret, modules });
    await writeFile(join(this.prefix, 'nginx.conf'), conf, { mode: 0o600 });
    this.admin = new Client('http://edge', { socketPath: join(this.prefix, 'admin.sock'), keepAliveTimeout: 10_000 });
    try {
      await this.run();
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  /** Stops nginx (gracefully, then not) and removes its prefix. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    await this.admin?.close().catch(() => undefined);
    await this.kill();
    if (this.prefix) await rm(this.prefix, { recursive: true, force: true });
  }

  private async run(): Promise<void> {
    // A killed nginx leaves its socket behind, and nginx will not bind over it.
    await rm(join(this.prefix, 'admin.sock'), { force: true });
    const args = ['-p', `${this.prefix}/`, '-e', join(this.prefix, 'error.log'), '-c', join(this.prefix, 'nginx.conf'), '-g', 'daemon off;'];
    // nginx outlives a parent that dies, and would go on serving stale routes on berth's port. The shell
    // between them stops nginx once its stdin, a pipe from berth, closes (at stop, or when berth dies),
    // then removes the prefix, which a berth killed outright cannot do.
    const watch = 'read _ <&3; kill -TERM $n 2>/dev/null; while kill -0 $n 2>/dev/null; do sleep 0.1; done; rm -rf "$BERTH_EDGE_PREFIX"';
    const child = spawn('sh', ['-c', `exec 3<&0; "$0" "$@" & n=$!; (${watch}) & wait $n`, this.options.binary, ...args], {
      env: { ...process.env, BERTH_EDGE_PREFIX: this.prefix },
      stdio: ['pipe', 'ignore', 'pipe'],
      // Its own process group: whatever of nginx outlives its master (workers do) is killed with the group.
      detached: true,
    });
    this.child = child;
    child.stdin?.on('error', () => undefined);
    let output = '';
    child.stderr?.on('data', (data: Buffer) => (output = `${output}${data.toString()}`.slice(-4000)));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.once('error', (error) => (output += String(error)));
    // Set once nginx answers: an nginx that never started is the starter's failure to report, not one to restart.
    let serving = false;
    child.once('exit', (code, signal) => {
      // The watcher goes with the group, before it could remove the prefix a restart needs.
      killGroup(child);
      if (this.child === child) this.child = undefined;
      if (this.stopped || !serving) return;
      this.log.error({ code, signal, output: output.trim() }, 'the nginx edge exited; starting it again');
      this.restartTimer = setTimeout(() => void this.restart(), this.restartDelayMs);
      this.restartDelayMs = Math.min(this.restartDelayMs * 2, RESTART_DELAY_CAP_MS);
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      const ready = await this.admin
        .request({ method: 'GET', path: '/ping' })
        .then(async (res) => (await res.body.dump(), res.statusCode === 204))
        .catch(() => false);
      if (ready) break;
      if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
        const log = await readFile(join(this.prefix, 'error.log'), 'utf8').catch(() => '');
        if (child.exitCode === null) child.stdin?.end();
        await exited;
        throw new EdgeUnavailableError(`the nginx edge did not start: ${`${output}\n${log}`.trim().slice(-2000)}`);
      }
      await sleep(20);
    }
    serving = true;
    this.restartDelayMs = RESTART_DELAY_MS;
    this.log.info({ port: this.options.port, workers: this.options.workers, pid: child.pid }, 'nginx edge is running');
  }

  private async restart(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.run();
      this.options.onRestart();
    } catch (error) {
      this.log.error({ err: error }, 'starting the nginx edge again failed');
      if (!this.stopped) this.restartTimer = setTimeout(() => void this.restart(), this.restartDelayMs);
    }
  }

  private async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.stdin?.end(); // the shell sends nginx SIGTERM: a fast shutdown that closes every connection
    if (await Promise.race([exited.then(() => true), sleep(3000).then(() => false)])) return;
    killGroup(child);
    await exited;
  }
}

/** SIGKILL to the wrapper's process group: nginx's master and any worker left behind. */
function killGroup(child: ChildProcess): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}
