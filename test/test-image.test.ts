import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

let docker: Dockerode;
let image: { reference: string; id: string };
const created: Dockerode.Container[] = [];

beforeAll(async () => {
  docker = createTestDocker();
  image = await ensureTestImage(docker);
}, 180_000);

afterAll(async () => {
  // Only our own containers: other suites may have berth-managed ones running.
  await Promise.all(created.map((c) => c.remove({ force: true }).catch(() => undefined)));
});

async function startApp(env: Record<string, string> = {}): Promise<{ container: Dockerode.Container; port: number }> {
  const container = await docker.createContainer({
    Image: image.id,
    Env: Object.entries({ PORT: '8080', ...env }).map(([k, v]) => `${k}=${v}`),
    Labels: { 'berth.managed': 'true', 'berth.test': 'test-image' },
    ExposedPorts: { '8080/tcp': {} },
    HostConfig: { PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
  });
  created.push(container);
  await container.start();
  const info = await container.inspect();
  const hostPort = info.NetworkSettings.Ports['8080/tcp']?.[0]?.HostPort;
  if (!hostPort) throw new Error('port 8080 was not published');
  return { container, port: Number(hostPort) };
}

// Docker's userland proxy accepts connections before the app listens, so a
// reset just means "not yet". Right after start the proxy may also hang on its
// own connect to the container, hence the per-attempt timeout.
async function waitForHttp(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // retry below
    }
    if (Date.now() > deadline) throw new Error(`app on port ${port} never answered`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Without a TTY the engine multiplexes logs: 8-byte header (stream, 0, 0, 0, size BE).
async function logs(container: Dockerode.Container): Promise<{ stdout: string; stderr: string }> {
  const buf = (await container.logs({ stdout: true, stderr: true, follow: false })) as Buffer;
  const out = { stdout: '', stderr: '' };
  for (let i = 0; i + 8 <= buf.length; ) {
    const size = buf.readUInt32BE(i + 4);
    const text = buf.subarray(i + 8, i + 8 + size).toString();
    if (buf[i] === 2) out.stderr += text;
    else out.stdout += text;
    i += 8 + size;
  }
  return out;
}

describe('test image', () => {
  it('is reused when nothing changed', async () => {
    const again = await ensureTestImage(docker);
    expect(again.id).toBe(image.id);
  });

  it('echoes HTTP requests and its env', async () => {
    const { container, port } = await startApp({ SESSION_BACKEND_KEY: 'k1', USER_COLOR: 'blue', OTHER: 'x' });
    await waitForHttp(port);

    const res = await fetch(`http://127.0.0.1:${port}/some/path?q=1`, {
      method: 'POST',
      headers: { 'x-test': 'yes' },
      body: 'hello',
    });
    expect(res.headers.get('content-type')).toBe('application/json');
    const body = (await res.json()) as Record<string, any>;
    expect(body).toMatchObject({
      method: 'POST',
      url: '/some/path?q=1',
      body_length: 5,
      body_sha256: '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824',
    });
    expect(body.headers['x-test']).toBe('yes');
    expect(body.env).toMatchObject({ SESSION_BACKEND_KEY: 'k1', USER_COLOR: 'blue', PORT: '8080' });
    expect(body.env.OTHER).toBeUndefined();

    const env = (await (await fetch(`http://127.0.0.1:${port}/env`)).json()) as Record<string, string>;
    expect(env.OTHER).toBe('x');

    const { stdout, stderr } = await logs(container);
    expect(stdout).toContain('listening on 8080');
    expect(stderr).toContain('stderr hello');
  });

  it('echoes WebSocket messages after a hello', async () => {
    const { port } = await startApp();
    await waitForHttp(port);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket?a=1`, { headers: { 'x-test': 'ws' } });
    const messages: { data: string; binary: boolean }[] = [];
    const waiters: (() => void)[] = [];
    ws.on('message', (data, binary) => {
      messages.push({ data: data.toString(), binary });
      waiters.shift()?.();
    });
    const next = () =>
      new Promise<{ data: string; binary: boolean }>((resolve) => {
        const take = () => resolve(messages.shift()!);
        if (messages.length) take();
        else waiters.push(take);
      });

    const hello = JSON.parse((await next()).data) as { type: string; url: string; headers: Record<string, string> };
    expect(hello).toMatchObject({ type: 'hello', url: '/socket?a=1' });
    expect(hello.headers['x-test']).toBe('ws');

    ws.send('ping');
    expect(await next()).toEqual({ data: 'ping', binary: false });
    ws.send(Buffer.from('bin'));
    expect(await next()).toEqual({ data: 'bin', binary: true });
    ws.close();
  });

  it('exits with APP_EXIT_CODE after APP_EXIT_AFTER_MS', async () => {
    const { container } = await startApp({ APP_EXIT_AFTER_MS: '300', APP_EXIT_CODE: '3' });
    const result = (await container.wait()) as { StatusCode: number };
    expect(result.StatusCode).toBe(3);
  });

  it('handles SIGTERM as PID 1', async () => {
    const { container, port } = await startApp();
    await waitForHttp(port);
    await container.stop({ t: 10 });
    const info = await container.inspect();
    expect(info.State.ExitCode).toBe(0);
    expect((await logs(container)).stdout).toContain('got SIGTERM');
  });
});
