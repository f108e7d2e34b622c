/**
 * nginx (Debian's) as the benches' reference reverse proxy: a plain
 * keep-alive proxy in front of one upstream, started with its own temp prefix,
 * config, pid and logs, and removed by `stop`.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../test/support/berth.ts';
import { childrenOf } from './proc.ts';

export interface Nginx {
  port: number;
  workers: string;
  child: ChildProcess;
  /** Its worker processes, for CPU accounting. */
  workerPids: () => number[];
  stop: () => Promise<void>;
}

/** `explicit` (a flag or NGINX), else /usr/sbin/nginx, else nginx on PATH. */
export function findNginx(explicit = process.env.NGINX): string | undefined {
  if (explicit) return existsSync(explicit) ? explicit : undefined;
  if (existsSync('/usr/sbin/nginx')) return '/usr/sbin/nginx';
  try {
    return execFileSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export function nginxVersion(binary: string): string {
  // nginx prints its version on stderr.
  const run = spawnSync(binary, ['-v'], { encoding: 'utf8' });
  return `${run.stderr ?? ''}${run.stdout ?? ''}`.trim().replace(/^nginx version: /, '') || 'unknown version';
}

/** Starts nginx in front of 127.0.0.1:`upstreamPort` and waits until `checkPath` answers 200 through it. */
export async function startNginx(
  binary: string,
  options: {
    upstreamPort: number;
    workers: string;
    checkPath: string;
    /** Set on every request (and X-Forwarded-For appended), as a proxy that verifies its clients would: the app then does the same work behind both. */
    headers?: Record<string, string>;
  },
): Promise<Nginx> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-bench-nginx-'));
  // Workers run as nobody when the master is root; let them reach the temp paths.
  await chmod(dir, 0o755);
  const port = await freePort();
  const conf = `# Written by berth's benches: a plain reverse proxy in front of one backend.
worker_processes ${options.workers};
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  upstream backend {
    server 127.0.0.1:${options.upstreamPort};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;${Object.entries(options.headers ?? {})
        .map(([name, value]) => `\n      proxy_set_header ${name} "${value}";`)
        .join('')}${options.headers ? '\n      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;' : ''}
    }
  }
}
`;
  await writeFile(join(dir, 'nginx.conf'), conf);
  const child = spawn(binary, ['-p', `${dir}/`, '-e', `${dir}/error.log`, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  let exited = false;
  const exitedPromise = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  child.once('error', (error) => (output += String(error)));

  const stop = async () => {
    if (!exited) {
      child.kill('SIGQUIT'); // graceful shutdown
      await Promise.race([exitedPromise, sleep(5000)]);
    }
    if (!exited) {
      child.kill('SIGKILL');
      await Promise.race([exitedPromise, sleep(5000)]);
    }
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) {
      const log = await readFile(join(dir, 'error.log'), 'utf8').catch(() => '');
      await stop();
      throw new Error(`nginx exited at start: ${output}${log}`.trim());
    }
    try {
      const res = await fetch(`http://127.0.0.1:${port}${options.checkPath}`, { signal: AbortSignal.timeout(2000) });
      await res.text();
      if (res.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`nginx did not answer on 127.0.0.1:${port} within 10 s: ${output}`);
    }
    await sleep(50);
  }
  return { port, workers: options.workers, child, workerPids: () => childrenOf(child.pid!), stop };
}
