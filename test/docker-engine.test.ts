// DockerEngine: the pure mappings first, then the event stream against a fake
// engine (the only way to end a stream on demand), then everything against the
// real Docker engine with the test image.
import type Dockerode from 'dockerode';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { capabilitiesFromInfo, containerCreateOptions } from '../scheduler/docker/create-options.ts';
import { DockerEngine } from '../scheduler/docker/docker-engine.ts';
import { DockerEngineError } from '../scheduler/docker/errors.ts';
import { LineSplitter } from '../scheduler/line-splitter.ts';
import { LABELS, type ContainerEvent, type SpawnSpec } from '../scheduler/engine.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

const MiB = 1024 * 1024;
// Unique per run, so a leftover container of an earlier run never matches.
const RUN_ID = randomUUID().slice(0, 8);
const INSTANCE_ID = `test-executor-${RUN_ID}`;
const OTHER_INSTANCE_ID = `test-executor-other-${RUN_ID}`;
const NODE = 'test-node';
const scopeOf = (instanceId: string) => ({ instanceId, nodeName: NODE });
const local = (port: number) => ({ host: '127.0.0.1', port });

let backendCounter = 0;
function makeSpec(image: string, overrides: Partial<SpawnSpec> = {}): SpawnSpec {
  const backendId = `exec${RUN_ID}n${++backendCounter}`;
  return {
    backendId,
    instanceId: INSTANCE_ID,
    nodeName: NODE,
    hostIp: '127.0.0.1',
    accountName: 'acme',
    serviceName: 'chat',
    key: null,
    image,
    env: { PORT: '8080', SESSION_BACKEND_ID: backendId },
    limits: {},
    ...overrides,
  };
}

/** What every container gets with the default hardening (DEFAULT_HARDENING). */
const HARDENED = {
  NetworkMode: 'berth-backends',
  CapDrop: ['ALL'],
  SecurityOpt: ['no-new-privileges'],
  PidsLimit: 512,
  LogConfig: { Type: 'json-file', Config: { 'max-size': '10240k', 'max-file': '3' } },
};

describe('containerCreateOptions', () => {
  it('maps every limit, the mount, env, labels and the loopback port binding', () => {
    const spec = makeSpec('berth-test/app:latest', {
      backendId: 'b1',
      key: 'room-7',
      env: { PORT: '8080', USER_COLOR: 'blue' },
      mount: { base: '/srv/berth', source: '/srv/berth/acme/chat/b1', target: '/data' },
      limits: {
        memoryLimitBytes: 64 * MiB,
        cpuPeriod: 50_000,
        cpuPeriodPercent: 25,
        cpuTimeLimitSeconds: 30,
        diskLimitBytes: 1_000_000_000,
      },
    });
    expect(containerCreateOptions(spec)).toEqual({
      name: 'berth-b1',
      Image: 'berth-test/app:latest',
      Env: ['PORT=8080', 'USER_COLOR=blue'],
      Labels: {
        [LABELS.managed]: 'true',
        [LABELS.instance]: INSTANCE_ID,
        [LABELS.node]: NODE,
        [LABELS.backendId]: 'b1',
        [LABELS.account]: 'acme',
        [LABELS.service]: 'chat',
        [LABELS.key]: 'room-7',
      },
      ExposedPorts: { '8080/tcp': {} },
      HostConfig: {
        PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
        RestartPolicy: { Name: 'no' },
        AutoRemove: false,
        Memory: 64 * MiB,
        MemorySwap: 64 * MiB,
        CpuPeriod: 50_000,
        CpuQuota: 12_500,
        Ulimits: [{ Name: 'cpu', Soft: 30, Hard: 30 }],
        StorageOpt: { size: '1000000000' },
        Binds: ['/srv/berth/acme/chat/b1:/data'],
        ...HARDENED,
      },
    });
  });

  it('sets no limit, key label, bind, user or added capability that was not asked for, but always the hardening', () => {
    const options = containerCreateOptions(makeSpec('img', { backendId: 'b2' }));
    expect(options.Labels).not.toHaveProperty(LABELS.key);
    expect(options).not.toHaveProperty('User');
    expect(options.HostConfig).toEqual({
      PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
      RestartPolicy: { Name: 'no' },
      AutoRemove: false,
      ...HARDENED,
    });
  });

  it("applies the node's hardening and the service's user, read-only root and capabilities", () => {
    const spec = makeSpec('img', { security: { user: '1000:1000', readOnlyRoot: true, capAdd: ['NET_BIND_SERVICE'] } });
    const options = containerCreateOptions(spec, { network: 'tenants', pidsLimit: 64, logMaxBytes: MiB, logMaxFiles: 2 });
    expect(options.User).toBe('1000:1000');
    expect(options.HostConfig).toMatchObject({
      NetworkMode: 'tenants',
      PidsLimit: 64,
      LogConfig: { Type: 'json-file', Config: { 'max-size': '1024k', 'max-file': '2' } },
      CapDrop: ['ALL'],
      CapAdd: ['NET_BIND_SERVICE'],
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': 'rw,nosuid,nodev,size=64m' },
    });
  });

  it('uses a 100 ms CPU period when only a percentage is given, and rounds the quota', () => {
    const options = containerCreateOptions(makeSpec('img', { limits: { cpuPeriodPercent: 33.3333 } }));
    expect(options.HostConfig).toMatchObject({ CpuPeriod: 100_000, CpuQuota: 33_333 });
  });
});

describe('capabilitiesFromInfo', () => {
  const limits = { MemoryLimit: true, SwapLimit: true, CpuCfsPeriod: true, CpuCfsQuota: true };

  it('trusts overlay2 with a disk limit only on xfs', () => {
    const xfs = capabilitiesFromInfo({ ...limits, Driver: 'overlay2', DriverStatus: [['Backing Filesystem', 'xfs']] });
    const ext4 = capabilitiesFromInfo({
      ...limits,
      Driver: 'overlay2',
      DriverStatus: [['Backing Filesystem', 'extfs']],
    });
    expect(xfs).toEqual({ memoryLimit: true, swapLimit: true, cpuCfs: true, diskLimit: true });
    expect(ext4.diskLimit).toBe(false);
  });

  it('knows the drivers that enforce a size on their own, and no others', () => {
    for (const driver of ['devicemapper', 'btrfs', 'zfs']) {
      expect(capabilitiesFromInfo({ Driver: driver }).diskLimit).toBe(true);
    }
    expect(capabilitiesFromInfo({ Driver: 'vfs' }).diskLimit).toBe(false);
    expect(capabilitiesFromInfo({ Driver: 'overlayfs', DriverStatus: null }).diskLimit).toBe(false);
  });

  it('needs both CFS period and quota for CPU limits', () => {
    expect(capabilitiesFromInfo({ ...limits, CpuCfsQuota: false }).cpuCfs).toBe(false);
    expect(capabilitiesFromInfo({}).memoryLimit).toBe(false);
  });
});

describe('LineSplitter', () => {
  it('joins lines and multi-byte characters split across chunks', () => {
    const lines: string[] = [];
    const splitter = new LineSplitter((line) => lines.push(line));
    const text = Buffer.from('{"a":"é"}\n\n{"b":2}\r\n{"c"');
    // Split inside the two bytes of "é" and inside the last, unfinished line.
    splitter.write(text.subarray(0, 7));
    splitter.write(text.subarray(7, 20));
    splitter.write(text.subarray(20));
    expect(lines).toEqual(['{"a":"é"}', '{"b":2}']);
    splitter.write(':3}\n');
    expect(lines).toEqual(['{"a":"é"}', '{"b":2}', '{"c":3}']);
  });
});

// A stand-in for dockerode with just what the watcher uses: each getEvents call
// hands out a stream the test writes to and ends, as an engine restart would.
function fakeEngine(oomKilled: Record<string, boolean> = {}) {
  const calls: { options: Dockerode.GetEventsOptions; stream: PassThrough }[] = [];
  const docker = {
    getEvents: async (options: Dockerode.GetEventsOptions) => {
      const stream = new PassThrough();
      calls.push({ options, stream });
      return stream;
    },
    getContainer: (id: string) => ({
      inspect: async () => {
        if (!(id in oomKilled)) throw Object.assign(new Error('no such container'), { statusCode: 404 });
        return { State: { OOMKilled: oomKilled[id], Status: 'exited' } };
      },
    }),
  };
  return { docker: docker as unknown as Dockerode, calls };
}

function eventLine(action: string, id: string, time: number, attributes: Record<string, string> = {}): string {
  return `${JSON.stringify({
    Type: 'container',
    Action: action,
    status: action,
    id,
    Actor: { ID: id, Attributes: { [LABELS.backendId]: `backend-${id}`, ...attributes } },
    time,
    timeNano: time * 1e9 + 123,
  })}\n`;
}

describe('watchEvents against a fake engine', () => {
  it('filters on the instance, reconnects from the last event time and drops replayed events', async () => {
    const { docker, calls } = fakeEngine({ c1: false, c2: true });
    const events: ContainerEvent[] = [];
    const reconnected = vi.fn();
    const stop = new DockerEngine(docker).watchEvents(scopeOf('inst-1'), (e) => events.push(e), {
      reconnectDelayMs: 10,
      onReconnect: reconnected,
    });
    await vi.waitFor(() => expect(calls).toHaveLength(1));
    const first = calls[0]!;
    expect(first.options).toMatchObject({
      filters: {
        type: ['container'],
        event: ['die', 'destroy', 'oom'],
        label: [`${LABELS.managed}=true`, `${LABELS.instance}=inst-1`, `${LABELS.node}=${NODE}`],
      },
    });
    expect(first.options.since).toBeUndefined();

    // One line split across two writes.
    const die = eventLine('die', 'c1', 1000, { exitCode: '3' });
    first.stream.write(die.slice(0, 25));
    first.stream.write(die.slice(25));
    await vi.waitFor(() => expect(events).toHaveLength(1));
    first.stream.end();

    await vi.waitFor(() => expect(calls).toHaveLength(2));
    const second = calls[1]!;
    expect(second.options.since).toBe(1000);
    expect(reconnected).toHaveBeenCalledTimes(1);
    // The engine replays everything since second 1000, the die of c1 included.
    second.stream.write(die);
    second.stream.write(eventLine('oom', 'c2', 1001));
    second.stream.write(eventLine('die', 'c2', 1001, { exitCode: '137' }));
    second.stream.write(eventLine('destroy', 'c1', 1001));
    second.stream.write('not json\n');
    second.stream.write(eventLine('destroy', 'c3', 1002));
    await vi.waitFor(() => expect(events).toHaveLength(4));
    expect(events).toEqual([
      { type: 'exited', containerId: 'c1', backendId: 'backend-c1', exitCode: 3, oomKilled: false, removing: false },
      { type: 'exited', containerId: 'c2', backendId: 'backend-c2', exitCode: 137, oomKilled: true, removing: false },
      { type: 'removed', containerId: 'c1', backendId: 'backend-c1' },
      { type: 'removed', containerId: 'c3', backendId: 'backend-c3' },
    ]);

    // After stop, an ended stream is not reopened.
    stop();
    second.stream.destroy(new Error('engine went away'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(calls).toHaveLength(2);
  });

  it('falls back to the oom event when the container is gone before its die is handled', async () => {
    const { docker, calls } = fakeEngine({});
    const events: ContainerEvent[] = [];
    const stop = new DockerEngine(docker).watchEvents(scopeOf('inst-1'), (e) => events.push(e));
    await vi.waitFor(() => expect(calls).toHaveLength(1));
    calls[0]!.stream.write(eventLine('oom', 'gone', 5) + eventLine('die', 'gone', 5, { exitCode: '137' }));
    await vi.waitFor(() => expect(events).toHaveLength(1));
    expect(events[0]).toMatchObject({ type: 'exited', exitCode: 137, oomKilled: true });
    stop();
  });
});

describe('DockerEngine against Docker', () => {
  let docker: Dockerode;
  let executor: DockerEngine;
  let image: { reference: string; id: string };
  let scratchDir: string;
  let stopWatching: () => void;
  const events: ContainerEvent[] = [];

  beforeAll(async () => {
    docker = createTestDocker();
    executor = new DockerEngine(docker);
    image = await ensureTestImage(docker);
    scratchDir = await mkdtemp(join(tmpdir(), 'berth-executor-test-'));
    stopWatching = executor.watchEvents(scopeOf(INSTANCE_ID), (event) => events.push(event));
  });

  afterAll(async () => {
    stopWatching?.();
    // Only this run's containers: another suite may be using the engine at the same time.
    for (const instanceId of [INSTANCE_ID, OTHER_INSTANCE_ID]) {
      for (const container of await executor.listManaged(scopeOf(instanceId))) await executor.remove(container.containerId);
    }
    if (scratchDir) await rm(scratchDir, { recursive: true, force: true });
  });

  function waitForEvent(predicate: (event: ContainerEvent) => boolean, timeout = 20_000): Promise<ContainerEvent> {
    return vi.waitFor(
      () => {
        const event = events.find(predicate);
        if (!event) throw new Error('event not seen yet');
        return event;
      },
      { timeout, interval: 20 },
    );
  }

  async function startReady(spec: SpawnSpec) {
    const started = await executor.start(spec);
    await executor.waitForHttp(local(started.hostPort), { signal: AbortSignal.timeout(15_000) });
    return started;
  }

  it('reports the limits this engine enforces, as docker info says', async () => {
    const info = await docker.info();
    const capabilities = await executor.capabilities();
    expect(capabilities).toEqual({
      memoryLimit: info.MemoryLimit,
      swapLimit: info.SwapLimit,
      cpuCfs: info.CpuCfsPeriod && info.CpuCfsQuota,
      diskLimit: expect.any(Boolean),
    });
    // This machine: overlay2 on ext4, which cannot enforce StorageOpt size.
    if (info.Driver === 'overlay2' && JSON.stringify(info.DriverStatus).includes('extfs')) {
      expect(capabilities.diskLimit).toBe(false);
    }
    expect(await executor.capabilities()).toBe(capabilities);
  });

  it('tells whether an image is on the engine', async () => {
    expect(await executor.imageExists(image.reference)).toBe(true);
    expect(await executor.imageExists(image.id)).toBe(true);
    expect(await executor.imageExists(`berth-test/missing-${RUN_ID}:latest`)).toBe(false);
  });

  it('rejects a pull that cannot succeed quickly and says why', async () => {
    // A registry on a closed loopback port keeps all traffic on 127.0.0.1.
    const reference = `127.0.0.1:1/berth-missing/app-${RUN_ID}:latest`;
    const started = Date.now();
    const error = await executor.pullImage(reference).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(error).toBeInstanceOf(DockerEngineError);
    expect(error).toMatchObject({ code: 'image_pull_failed', context: { image: reference } });
    expect((error as Error).message).toBe(
      `pulling ${reference} failed: Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused`,
    );
  });

  it('starts a container with its limits, env, labels and mount, published on loopback', async () => {
    const mountDir = join(scratchDir, 'acme', 'chat', 'room-1');
    await mkdir(mountDir, { recursive: true });
    const spec = makeSpec(image.reference, {
      key: 'room-1',
      env: { PORT: '8080', SESSION_BACKEND_ID: 'from-env', USER_COLOR: 'blue' },
      mount: { base: scratchDir, source: mountDir, target: '/data' },
      limits: { memoryLimitBytes: 128 * MiB, cpuPeriod: 50_000, cpuPeriodPercent: 50, cpuTimeLimitSeconds: 60 },
    });
    const started = await startReady(spec);
    expect(started.imageDigest).toBe(image.id);

    const res = await fetch(`http://127.0.0.1:${started.hostPort}/hello`);
    const body = (await res.json()) as { env: Record<string, string> };
    expect(body.env).toMatchObject({ SESSION_BACKEND_ID: 'from-env', USER_COLOR: 'blue', PORT: '8080' });

    const info = await docker.getContainer(started.containerId).inspect();
    expect(info.Name).toBe(`/berth-${spec.backendId}`);
    expect(info.Config.Labels).toMatchObject({
      [LABELS.managed]: 'true',
      [LABELS.instance]: INSTANCE_ID,
      [LABELS.backendId]: spec.backendId,
      [LABELS.key]: 'room-1',
    });
    expect(info.HostConfig).toMatchObject({
      Memory: 128 * MiB,
      MemorySwap: 128 * MiB,
      CpuPeriod: 50_000,
      CpuQuota: 25_000,
      Ulimits: [{ Name: 'cpu', Soft: 60, Hard: 60 }],
      Binds: [`${mountDir}:/data`],
      RestartPolicy: { Name: 'no' },
      AutoRemove: false,
    });
    expect(info.NetworkSettings.Ports['8080/tcp']).toEqual([{ HostIp: '127.0.0.1', HostPort: `${started.hostPort}` }]);

    expect(await executor.inspect(started.containerId)).toEqual({
      containerId: started.containerId,
      backendId: spec.backendId,
      poolId: null,
      running: true,
      exitCode: null,
      oomKilled: false,
      removing: false,
      hostPort: started.hostPort,
    });
  });

  it('removes the container when it was created but could not start', async () => {
    // Binding a directory over the image's /app/server.mjs file passes create and fails in runc.
    const mountDir = join(scratchDir, 'acme', 'chat', 'over-a-file');
    await mkdir(mountDir, { recursive: true });
    const spec = makeSpec(image.reference, { mount: { base: scratchDir, source: mountDir, target: '/app/server.mjs' } });
    await expect(executor.start(spec)).rejects.toMatchObject({
      name: 'DockerEngineError',
      code: 'container_start_failed',
      message: expect.stringContaining(`starting container berth-${spec.backendId} failed: `),
    });
    await expect(docker.getContainer(`berth-${spec.backendId}`).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it('refuses to create a container from an image the engine does not have', async () => {
    const spec = makeSpec(`berth-test/missing-${RUN_ID}:latest`);
    await expect(executor.start(spec)).rejects.toMatchObject({
      code: 'container_create_failed',
      context: { engineStatus: 404 },
      message: expect.stringMatching(/No such image/i),
    });
  });

  it('reports an exit with its exit code', async () => {
    const spec = makeSpec(image.reference, { env: { PORT: '8080', APP_EXIT_AFTER_MS: '300', APP_EXIT_CODE: '3' } });
    const started = await executor.start(spec);
    const event = await waitForEvent((e) => e.type === 'exited' && e.backendId === spec.backendId);
    expect(event).toEqual({
      type: 'exited',
      containerId: started.containerId,
      backendId: spec.backendId,
      exitCode: 3,
      oomKilled: false,
      removing: false,
    });
    expect(await executor.inspect(started.containerId)).toMatchObject({ running: false, exitCode: 3, hostPort: null });
  });

  it('reports an app killed for exceeding its memory limit as oomKilled', async () => {
    const spec = makeSpec(image.reference, {
      env: { PORT: '8080', APP_ALLOCATE_MB: '200' },
      limits: { memoryLimitBytes: 64 * MiB },
    });
    const started = await executor.start(spec);
    const event = await waitForEvent((e) => e.type === 'exited' && e.backendId === spec.backendId);
    expect(event).toEqual({
      type: 'exited',
      containerId: started.containerId,
      backendId: spec.backendId,
      exitCode: 137,
      oomKilled: true,
      removing: false,
    });
  });

  it('reports a removed container', async () => {
    const spec = makeSpec(image.reference);
    const started = await executor.start(spec);
    await executor.remove(started.containerId);
    const removed = await waitForEvent((e) => e.type === 'removed' && e.backendId === spec.backendId);
    expect(removed).toEqual({ type: 'removed', containerId: started.containerId, backendId: spec.backendId });
    // Force-removing a running container kills it first, so its exit comes before the removal.
    const order = events.filter((e) => e.backendId === spec.backendId);
    expect(order.map((e) => e.type)).toEqual(['exited', 'removed']);
    // The engine marks the container as removing before it kills it: berth tells this from an exit.
    expect(order[0]).toMatchObject({ type: 'exited', removing: true });
    expect(await executor.inspect(started.containerId)).toBeUndefined();
    await executor.remove(started.containerId);
  });

  it('leaves an app that ignores SIGTERM running and ends it with SIGKILL', async () => {
    const spec = makeSpec(image.reference, { env: { PORT: '8080', APP_IGNORE_SIGTERM: '1' } });
    const started = await startReady(spec);
    await executor.kill(started.containerId, 'SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await executor.inspect(started.containerId)).toMatchObject({ running: true });

    await executor.kill(started.containerId, 'SIGKILL');
    const event = await waitForEvent((e) => e.type === 'exited' && e.backendId === spec.backendId);
    expect(event).toMatchObject({ exitCode: 137, oomKilled: false });
    // Signalling a stopped or unknown container is not an error.
    await executor.kill(started.containerId, 'SIGKILL');
    await executor.kill(`berth-no-such-container-${RUN_ID}`, 'SIGTERM');
    expect(await executor.inspect(`berth-no-such-container-${RUN_ID}`)).toBeUndefined();
  });

  it("lists only the given instance's containers, running or not", async () => {
    const env = { PORT: '8080', APP_NEVER_LISTEN: '1' };
    const ours = makeSpec(image.reference, { env });
    const theirs = makeSpec(image.reference, { instanceId: OTHER_INSTANCE_ID, env });
    const [oursStarted, theirsStarted] = await Promise.all([executor.start(ours), executor.start(theirs)]);

    const listed = await executor.listManaged(scopeOf(INSTANCE_ID));
    const ids = listed.map((c) => c.containerId);
    expect(ids).toContain(oursStarted.containerId);
    expect(ids).not.toContain(theirsStarted.containerId);
    expect(listed.find((c) => c.containerId === oursStarted.containerId)).toEqual({
      containerId: oursStarted.containerId,
      backendId: ours.backendId,
      poolId: null,
      running: true,
      exitCode: null,
      oomKilled: false,
      removing: false,
      hostPort: oursStarted.hostPort,
    });
    // Exited containers of earlier tests are still listed, with their exit code.
    expect(listed.some((c) => !c.running && c.exitCode === 3)).toBe(true);
    const other = await executor.listManaged(scopeOf(OTHER_INSTANCE_ID));
    expect(other.map((c) => c.containerId)).toEqual([theirsStarted.containerId]);
  });

  it('stops waiting for HTTP when the signal aborts', async () => {
    const spec = makeSpec(image.reference, { env: { PORT: '8080', APP_NEVER_LISTEN: '1' } });
    const started = await executor.start(spec);
    const begun = Date.now();
    const error = await executor.waitForHttp(local(started.hostPort), { signal: AbortSignal.timeout(1_500) }).then(
      () => undefined,
      (err: unknown) => err,
    );
    const elapsed = Date.now() - begun;
    expect(error).toMatchObject({
      name: 'AbortError',
      message: `no HTTP answer on 127.0.0.1:${started.hostPort} before the wait was aborted`,
    });
    expect((error as Error).cause).toMatchObject({ name: 'TimeoutError' });
    expect(elapsed).toBeGreaterThanOrEqual(1_400);
    expect(elapsed).toBeLessThan(3_000);
  });
});
