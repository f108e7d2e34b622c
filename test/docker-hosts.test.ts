// The multi-host harness itself (test/support/docker-hosts.ts): before tests of
// nodes rely on it, it must give real, reachable, separately killable Docker
// hosts and leave nothing behind on a machine other runs share.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDocker } from './support/docker.ts';
import { DockerLab, type DockerLabError } from './support/docker-hosts.ts';
import { ensureTestImage } from './support/test-image.ts';

function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

// .ci/run runs as root with these installed; elsewhere (a developer's laptop,
// no root) the file is skipped rather than failed.
const canRun = process.getuid?.() === 0 && ['ip', 'nsenter', 'setsid', 'dockerd', 'umount', 'pgrep'].every(hasCommand);

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8' });
}

async function waitForHttp(url: string, timeoutMs = 15_000): Promise<unknown> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      const body: unknown = await res.json();
      if (res.ok) return body;
    } catch {
      // Docker's proxy accepts before the app listens: a reset means "not yet".
    }
    if (Date.now() > deadline) throw new Error(`${url} never answered`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(!canRun)('Docker hosts in network namespaces', () => {
  let lab: DockerLab;
  let image: { reference: string; id: string };

  beforeAll(async () => {
    image = await ensureTestImage(createTestDocker());
    let t = performance.now();
    lab = await DockerLab.create({ hosts: 2 });
    const created = performance.now() - t;
    t = performance.now();
    await lab.loadImage(image.reference);
    console.log(`lab ${lab.runId}: 2 hosts up in ${created.toFixed(0)} ms, image loaded in ${(performance.now() - t).toFixed(0)} ms`);
  });

  afterAll(async () => {
    await lab?.destroy();
  });

  it('gives each host its own name, address and engine', async () => {
    const [a, b] = lab.hosts;
    expect(lab.hosts).toHaveLength(2);
    expect(a!.name).not.toBe(b!.name);
    expect(a!.address).not.toBe(b!.address);
    expect(lab.bridge.length).toBeLessThanOrEqual(15);
    const prefix = lab.gateway.split('.').slice(0, 3).join('.');
    for (const host of lab.hosts) {
      expect(host.address.startsWith(`${prefix}.`)).toBe(true);
      expect(host.dockerHost).toBe(`unix://${host.socketPath}`);
    }
    // The machine's side of the lab network is this run's bridge.
    expect(sh('ip', ['-o', '-4', 'addr', 'show', 'dev', lab.bridge])).toContain(`inet ${lab.gateway}/24`);
    const [infoA, infoB] = (await Promise.all(lab.hosts.map((h) => h.docker.info()))) as { ID: string; DockerRootDir: string }[];
    expect(infoA!.ID).not.toBe(infoB!.ID);
    expect(infoA!.DockerRootDir).toBe(a!.dataRoot);
  });

  it('has the test image in every host, with the same id', async () => {
    for (const host of lab.hosts) {
      const info = await host.docker.getImage(image.reference).inspect();
      expect(info.Id).toBe(image.id);
    }
  });

  it('serves a container published on host 1 at its address', async () => {
    const host = lab.hosts[0]!;
    const container: Dockerode.Container = await host.docker.createContainer({
      Image: image.id,
      Env: ['PORT=8080', 'APP_HOST_CHECK=lab'],
      ExposedPorts: { '8080/tcp': {} },
      HostConfig: { PortBindings: { '8080/tcp': [{ HostIp: host.address, HostPort: '' }] } },
    });
    await container.start();
    const binding = (await container.inspect()).NetworkSettings.Ports['8080/tcp']?.[0];
    expect(binding?.HostIp).toBe(host.address);
    const body = (await waitForHttp(`http://${host.address}:${binding!.HostPort}/`)) as { env: Record<string, string> };
    expect(body.env.APP_HOST_CHECK).toBe('lab');
    // Published on host 1 only: host 2's address has nothing on that port.
    await expect(
      fetch(`http://${lab.hosts[1]!.address}:${binding!.HostPort}/`, { signal: AbortSignal.timeout(2_000) }),
    ).rejects.toThrow();
  });

  it('loses host 2 on kill and gets it back, same data root, on restart', async () => {
    const host = lab.hosts[1]!;
    const container = await host.docker.createContainer({ Image: image.id, Env: ['PORT=8080'] });
    await container.start();
    const pid = host.dockerdPid!;
    let t = performance.now();
    await host.kill();
    const killed = performance.now() - t;
    expect(host.running).toBe(false);
    expect(fs.existsSync(`/proc/${pid}`)).toBe(false);
    await expect(host.docker.ping()).rejects.toThrow();
    // Host 1 does not notice.
    await expect(lab.hosts[0]!.docker.ping()).resolves.toBeTruthy();

    t = performance.now();
    await host.restart();
    console.log(`kill ${killed.toFixed(0)} ms, restart ${(performance.now() - t).toFixed(0)} ms`);
    expect(host.dockerdPid).not.toBe(pid);
    await expect(host.docker.ping()).resolves.toBeTruthy();
    expect((await host.docker.getImage(image.reference).inspect()).Id).toBe(image.id);
    // The container outlived its engine and is known again (stopped: no live-restore).
    const after = await container.inspect();
    expect(after.State.Running).toBe(false);
  });

  it('leaves nothing of the run behind on destroy, and destroys twice', async () => {
    const names = lab.hosts.map((h) => h.name);
    const sockets = lab.hosts.map((h) => h.socketPath);
    const dirs = lab.hosts.flatMap((h) => [h.dataRoot, h.socketPath]);
    const t = performance.now();
    await lab.destroy();
    console.log(`destroy ${(performance.now() - t).toFixed(0)} ms`);
    await lab.destroy();

    const netns = sh('ip', ['netns', 'list']);
    for (const name of names) expect(netns).not.toContain(name);
    const links = sh('ip', ['-o', 'link', 'show']);
    expect(links).not.toContain(lab.bridge);
    expect(links).not.toContain(`vl${lab.runId}`);
    for (const socket of sockets) {
      // pgrep exits 1 when nothing matches.
      expect(spawnSync('pgrep', ['-f', socket]).status).toBe(1);
    }
    for (const dir of dirs) expect(fs.existsSync(dir)).toBe(false);
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(lab.runId);
    expect(DockerLab.leftovers(lab.runId)).toEqual([]);
  });
});

describe.skipIf(!canRun)('Docker lab whose dockerd cannot start', () => {
  it('rejects with the tail of the log and leaves nothing behind', async () => {
    const t = performance.now();
    const err = (await DockerLab.create({ hosts: 2, dockerdArgs: ['--no-such-flag'] }).catch((e: unknown) => e)) as DockerLabError;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/dockerd exited .* while starting/);
    expect(err.message).toContain('no-such-flag');
    expect(err.runId).toMatch(/^[a-z0-9]{6}$/);
    expect(DockerLab.leftovers(err.runId)).toEqual([]);
    expect(performance.now() - t).toBeLessThan(15_000);
  });
});

// A test run that dies must not leave its hosts behind: the harness tears down
// on 'exit' and on SIGINT/SIGTERM. Played in a child process of its own.
describe.skipIf(!canRun)('Docker lab safety net', () => {
  const harness = new URL('./support/docker-hosts.ts', import.meta.url).href;

  async function child(then: string): Promise<{ runId: string; code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
    const code = `
      const { DockerLab } = await import(${JSON.stringify(harness)});
      const lab = await DockerLab.create({ hosts: 1 });
      process.stdout.write(lab.runId + '\\n');
      ${then}
    `;
    const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const runId = await new Promise<string>((resolve, reject) => {
      let out = '';
      proc.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.trim());
      });
      proc.once('exit', () => reject(new Error(`child exited before its lab was up: ${stderr}`)));
      setTimeout(() => reject(new Error(`child lab not up within 30 s: ${stderr}`)), 30_000).unref();
    });
    const [exitCode, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) resolve([proc.exitCode, proc.signalCode]);
      else proc.once('exit', (c, s) => resolve([c, s]));
      if (then.includes('setInterval')) proc.kill('SIGTERM');
    });
    return { runId, code: exitCode, signal, stderr };
  }

  it('tears down on SIGTERM and on exit without destroy', async () => {
    const [terminated, exited] = await Promise.all([
      child('setInterval(() => {}, 1000);'),
      child('process.exit(3);'),
    ]);
    expect(terminated.signal, terminated.stderr).toBe('SIGTERM');
    expect(exited.code, exited.stderr).toBe(3);
    expect(DockerLab.leftovers(terminated.runId)).toEqual([]);
    expect(DockerLab.leftovers(exited.runId)).toEqual([]);
  });
});
