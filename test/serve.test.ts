import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from './support/berth.ts';

const ROOT = new URL('..', import.meta.url).pathname;

/** Runs `berth serve` the way `npm start` does, as its own process. */
function serve(env: Record<string, string>): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/**
 * The API answers while berth is still starting (the proxy binds and the admin
 * token is made after it); the banner is printed once berth serves.
 */
async function waitForBanner(run: { output: () => string }, deadlineMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!run.output().includes('is serving (')) {
    if (Date.now() > deadline) throw new Error(`no banner within ${deadlineMs} ms:\n${run.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function waitForHealth(url: string, deadlineMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    try {
      if ((await fetch(`${url}/healthcheck`)).ok) return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${url} did not answer within ${deadlineMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

describe('berth serve', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('starts on an empty data directory with PGlite, prints a generated admin token once, and keeps it', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'berth-serve-'));
    dirs.push(dataDir);
    const apiPort = await freePort();
    const env = { BERTH_DATA_DIR: dataDir, BERTH_API_PORT: String(apiPort), BERTH_PROXY_PORT: String(await freePort()) };
    const url = `http://127.0.0.1:${apiPort}`;

    const first = serve(env);
    await waitForHealth(url, 60_000);
    await waitForBanner(first, 60_000);
    const token = /generated admin token \(shown only now, keep it\): (\S+)/.exec(first.output())?.[1];
    expect(token).toMatch(/^[a-z0-9]{12}\.[A-Za-z0-9_-]{32}$/);
    // A first run explains itself: where the API and the proxy are, and what to type next.
    expect(first.output()).toContain(`  API              ${url}\n`);
    expect(first.output()).toContain(`  proxy            http://127.0.0.1:${env.BERTH_PROXY_PORT}  (connection URLs: http://127.0.0.1:${env.BERTH_PROXY_PORT}/{token}/)\n`);
    expect(first.output()).toContain(`Next:\n  berth login --url ${url} --token ${token}\n`);
    expect(first.output()).toContain(`JAMSOCKET_SERVER_API=${url}\n`);
    const created = await fetch(`${url}/v2/accounts`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'kept' }),
    });
    expect(created.status).toBe(201);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    // One JSON log line per request, with its id, method, path, status and duration.
    const requestLine = first
      .output()
      .split('\n')
      .find((line) => line.includes('"path":"/v2/accounts"'));
    expect(JSON.parse(requestLine!)).toMatchObject({
      msg: 'request',
      method: 'POST',
      status: 201,
      request_id: created.headers.get('x-request-id'),
      duration_ms: expect.any(Number),
    });

    const second = serve(env);
    await waitForHealth(url, 60_000);
    await waitForBanner(second, 60_000);
    expect(second.output()).not.toContain('generated admin token');
    const auth = await fetch(`${url}/auth`, { headers: { Authorization: `Bearer ${token}` } });
    expect(await auth.json()).toEqual({ status: 'ok', accounts: ['kept'], is_admin: true });
    second.child.kill('SIGTERM');
    await second.exited;
  });

  it('refuses to start on a bad variable with one line naming it', async () => {
    const run = serve({ BERTH_API_PORT: 'eighty' });
    expect(await run.exited).toBe(1);
    expect(run.output().trim()).toBe('berth: invalid configuration: BERTH_API_PORT Invalid input: expected number, received NaN (got "eighty")');
  });
});
