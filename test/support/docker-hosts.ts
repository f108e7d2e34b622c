// Several Docker engines on this one machine, each in a network namespace of its
// own with its own address, so that a test can play a cluster of hosts (issue 11).
// Follows the verified recipe shared/recipes/docker-hosts-in-network-namespaces.md
// (next to this repository, not in it): a bridge on the machine side, per host a
// netns joined to it by a veth pair, and a dockerd started with `nsenter --net=…`
// (not `ip netns exec`, which remounts /sys and hides the cgroup mounts dockerd
// needs).
//
//   const lab = await DockerLab.create({ hosts: 2 });
//   await lab.loadImage('berth-test/app:latest');
//   const [a, b] = lab.hosts;          // { name, address, dockerHost, docker, … }
//   await b.kill();                     // a lost node
//   await b.restart();                  // back, same data root
//   await lab.destroy();                // nothing of the run is left
//
// Every name and address is drawn per run, so two runs on one machine cannot
// collide, and teardown removes only what its own run created. Needs root.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import fs from 'node:fs';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import Dockerode from 'dockerode';

const RUN_ROOT = '/run/berthlab';
const DATA_ROOT = '/var/lib/berthlab';
const NETNS_DIR = '/var/run/netns';
// Hosts get .11, .12, … as in the recipe; the bridge (the machine side) is .1.
const FIRST_HOST_OCTET = 11;
const MAX_HOSTS = 200;

export interface DockerLabOptions {
  /** Number of Docker hosts, each with its own netns, address and dockerd. */
  hosts: number;
  /** Engine that `loadImage` copies from. Default: the machine's (DOCKER_HOST or /var/run/docker.sock). */
  source?: Dockerode;
  /** Bound on each dockerd's start (until it answers ping). Default 30 s. */
  startTimeoutMs?: number;
  /** Extra dockerd flags for every host. */
  dockerdArgs?: string[];
}

/** What `DockerLab.create` rejects with: `runId` names the run, for `DockerLab.leftovers`. */
export type DockerLabError = Error & { runId: string };

export class DockerLab {
  readonly hosts: DockerHost[] = [];
  /** The machine side of the lab network: tests reach hosts from here. */
  readonly bridge: string;
  /** e.g. `10.254.37.0/24`; empty until chosen. */
  subnet = '';
  /** The machine's own address on the lab network (the hosts' default gateway). */
  gateway = '';

  private readonly runDir: string;
  private readonly dataDir: string;
  // Claimed (created) before the constructor runs.
  private runDirCreated = true;
  private bridgeCreated = false;
  private destroying: Promise<void> | undefined;

  private constructor(
    readonly runId: string,
    private readonly options: DockerLabOptions,
  ) {
    this.bridge = `brl-${runId}`;
    this.runDir = join(RUN_ROOT, runId);
    this.dataDir = join(DATA_ROOT, runId);
  }

  static async create(options: DockerLabOptions): Promise<DockerLab> {
    if (!Number.isInteger(options.hosts) || options.hosts < 1 || options.hosts > MAX_HOSTS) {
      throw new Error(`hosts must be an integer from 1 to ${MAX_HOSTS}, got ${options.hosts}`);
    }
    const lab = new DockerLab(claimRunId(), options);
    trackForSafetyNet(lab);
    try {
      await lab.createBridge();
      for (let i = 0; i < options.hosts; i++) lab.hosts.push(new DockerHost(lab, i));
      // Sequential: each host is a handful of fast `ip` calls, and parallel ones
      // would only interleave the error output when one fails.
      for (const host of lab.hosts) await host.createNetwork();
      await Promise.all(lab.hosts.map((host) => host.start()));
      return lab;
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      await lab.destroy().catch((cleanup: Error) => (error.message += `\n(and then: ${cleanup.message})`));
      throw Object.assign(error, { runId: lab.runId }) as DockerLabError;
    }
  }

  /**
   * Copies an image from the source engine into every host (`docker save | docker
   * load`, since these hosts reach no registry). Image ids are kept.
   */
  async loadImage(reference: string, { timeoutMs = 120_000 } = {}): Promise<void> {
    const down = this.hosts.filter((h) => !h.running).map((h) => h.name);
    if (down.length > 0) throw new Error(`cannot load ${reference}: ${down.join(', ')} not running`);
    const source = this.options.source ?? new Dockerode();
    const tar = (await source.getImage(reference).get()) as Readable;
    // One save feeding every load: pipe() to several destinations waits for the slowest.
    const copies = this.hosts.map(() => new PassThrough());
    for (const copy of copies) tar.pipe(copy);
    tar.on('error', (err) => copies.forEach((copy) => copy.destroy(err)));
    try {
      await withTimeout(
        Promise.all(this.hosts.map((host, i) => host.loadImageTar(copies[i]!, reference))),
        timeoutMs,
        `loading ${reference} into ${this.hosts.length} hosts`,
      );
    } catch (err) {
      tar.destroy();
      copies.forEach((copy) => copy.destroy());
      throw err;
    }
  }

  /**
   * Tears down everything of this run: containers, dockerd and every process in
   * the hosts' namespaces, netns, veths, bridge, cgroups, mounts and directories.
   * Idempotent; safe after a partial `create`. Rejects if something remains.
   */
  destroy(): Promise<void> {
    this.destroying ??= (async () => {
      // Graceful first: dockerd then unmounts and forgets its containers itself;
      // whatever that leaves, the forced teardown below takes.
      await Promise.all(this.hosts.filter((h) => h.running).map((h) => h.removeAllContainers().catch(() => undefined)));
      await Promise.all(this.hosts.map((h) => h.stop({ timeoutMs: 10_000 }).catch(() => undefined)));
      this.teardownSync();
      untrackForSafetyNet(this);
      const left = DockerLab.leftovers(this.runId);
      if (left.length > 0) throw new Error(`lab ${this.runId} not fully torn down: ${left.join('; ')}`);
    })();
    return this.destroying;
  }

  /** What of run `runId` still exists on the machine (empty when nothing). */
  static leftovers(runId: string): string[] {
    const left: string[] = [];
    const prefix = netnsPrefix(runId);
    for (const ns of safeReaddir(NETNS_DIR)) if (ns.startsWith(prefix)) left.push(`netns ${ns}`);
    const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout ?? '';
    for (const line of links.split('\n')) {
      const name = line.split(':')[1]?.trim().split('@')[0];
      if (name === `brl-${runId}` || name?.startsWith(vethPrefix(runId))) left.push(`link ${name}`);
    }
    const dirs = [join(RUN_ROOT, runId), join(DATA_ROOT, runId)];
    for (const dir of dirs) if (fs.existsSync(dir)) left.push(`dir ${dir}`);
    for (const point of mountsUnder(dirs)) left.push(`mount ${point}`);
    const scope = runScope(runId);
    for (const cg of cgroupDirs(scope)) left.push(`cgroup ${cg}`);
    for (const pid of processesOf(scope)) left.push(`process ${pid}`);
    return left;
  }

  /** @internal Forced, synchronous teardown: also what the exit/signal safety net runs. */
  teardownSync(): void {
    for (const host of this.hosts) host.teardownSync();
    if (this.bridgeCreated) {
      ipQuiet(['link', 'del', this.bridge]);
      this.bridgeCreated = false;
    }
    if (this.runDirCreated) {
      unmountUnder([this.runDir, this.dataDir]);
      fs.rmSync(this.runDir, { recursive: true, force: true });
      fs.rmSync(this.dataDir, { recursive: true, force: true });
      // Shared with other runs: only removed when this was the last one.
      for (const dir of [RUN_ROOT, DATA_ROOT]) {
        try {
          fs.rmdirSync(dir);
        } catch {
          // not empty (another run) or already gone
        }
      }
      this.runDirCreated = false;
    }
  }

  /** @internal */
  hostPaths(index: number): { runDir: string; dataDir: string } {
    return { runDir: join(this.runDir, `n${index + 1}`), dataDir: join(this.dataDir, `n${index + 1}`) };
  }

  /** @internal */
  get dockerdExtraArgs(): string[] {
    return this.options.dockerdArgs ?? [];
  }

  /** @internal */
  get startTimeoutMs(): number {
    return this.options.startTimeoutMs ?? 30_000;
  }

  private async createBridge(): Promise<void> {
    await ip(['link', 'add', this.bridge, 'type', 'bridge']);
    this.bridgeCreated = true;
    for (let attempt = 1; ; attempt++) {
      const octet = await pickFreeOctet();
      await ip(['addr', 'add', `10.254.${octet}.1/24`, 'dev', this.bridge]);
      // Another run may have drawn the same /24 between our check and our add.
      const others = (await run('ip', ['-o', '-4', 'addr', 'show'])).split('\n').filter(
        (line) => line.includes(` inet 10.254.${octet}.`) && !line.includes(` ${this.bridge} `),
      );
      if (others.length === 0) {
        this.subnet = `10.254.${octet}.0/24`;
        this.gateway = `10.254.${octet}.1`;
        break;
      }
      await ip(['addr', 'del', `10.254.${octet}.1/24`, 'dev', this.bridge]);
      if (attempt >= 5) throw new Error(`no free 10.254.X.0/24 after ${attempt} attempts`);
    }
    await ip(['link', 'set', this.bridge, 'up']);
  }
}

export class DockerHost {
  /** Unique per run; also the netns name (`ip netns exec <name> …`). */
  readonly name: string;
  /** Where the machine reaches this host: publish ports on it (`HostIp`). */
  readonly address: string;
  readonly socketPath: string;
  /** `unix:///…/docker.sock`, for DOCKER_HOST. */
  readonly dockerHost: string;
  readonly docker: Dockerode;
  readonly dataRoot: string;
  readonly logFile: string;
  /** The containerd namespace of this host's containers. */
  readonly containerdNamespace: string;
  /** dockerd's own bridge (docker0 inside the netns). */
  readonly bip: string;

  private readonly veth: string;
  private readonly runDir: string;
  private readonly pidFile: string;
  private readonly configFile: string;
  private readonly containerdPidFile: string;
  private netnsCreated = false;
  private vethCreated = false;
  private child: ChildProcess | undefined;
  private childExited: Promise<void> = Promise.resolve();
  private pid: number | undefined;

  constructor(
    private readonly lab: DockerLab,
    readonly index: number,
  ) {
    const n = `n${index + 1}`;
    this.name = `${netnsPrefix(lab.runId)}${n}`;
    this.veth = `${vethPrefix(lab.runId)}${n}`;
    const octets = lab.gateway.split('.');
    this.address = `${octets[0]}.${octets[1]}.${octets[2]}.${FIRST_HOST_OCTET + index}`;
    const paths = lab.hostPaths(index);
    this.runDir = paths.runDir;
    this.dataRoot = paths.dataDir;
    this.socketPath = join(this.runDir, 'docker.sock');
    this.dockerHost = `unix://${this.socketPath}`;
    this.pidFile = join(this.runDir, 'docker.pid');
    this.logFile = join(this.runDir, 'dockerd.log');
    this.configFile = join(this.runDir, 'daemon.json');
    this.containerdPidFile = join(this.runDir, 'exec', 'containerd', 'containerd.pid');
    this.containerdNamespace = this.name;
    // Per host as in the recipe; clear of docker0 (172.17/16) and of the lab /24.
    this.bip = `10.111.${index}.1/24`;
    this.docker = new Dockerode({ socketPath: this.socketPath });
  }

  /** True while this host's dockerd process lives. */
  get running(): boolean {
    return this.pid !== undefined && isAlive(this.pid);
  }

  /** dockerd's pid while running. */
  get dockerdPid(): number | undefined {
    return this.running ? this.pid : undefined;
  }

  /** @internal */
  async createNetwork(): Promise<void> {
    await ip(['netns', 'add', this.name]);
    this.netnsCreated = true;
    await ip(['link', 'add', this.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.name]);
    this.vethCreated = true;
    await ip(['link', 'set', this.veth, 'master', this.lab.bridge, 'up']);
    await ip(['-n', this.name, 'addr', 'add', `${this.address}/24`, 'dev', 'eth0']);
    await ip(['-n', this.name, 'link', 'set', 'eth0', 'up']);
    await ip(['-n', this.name, 'link', 'set', 'lo', 'up']);
    await ip(['-n', this.name, 'route', 'add', 'default', 'via', this.lab.gateway]);
    fs.mkdirSync(this.runDir, { recursive: true });
    fs.mkdirSync(this.dataRoot, { recursive: true });
    fs.writeFileSync(this.configFile, JSON.stringify(labDaemonConfig(join(this.runDir, 'key.json')), null, 2));
  }

  /** Starts dockerd (same data root as before) and waits until it answers ping. */
  async start(): Promise<void> {
    if (this.running) throw new Error(`${this.name}: dockerd already running (pid ${this.pid})`);
    // dockerd takes a pidfile whose process still exists (a zombie included: the
    // machine's init may reap late) for a containerd still running and waits on
    // its socket until it gives up.
    for (const file of [this.pidFile, this.containerdPidFile]) {
      const pid = readPid(file);
      if (pid !== undefined && !isAlive(pid)) fs.rmSync(file, { force: true });
    }
    const log = fs.openSync(this.logFile, 'a');
    fs.writeSync(log, `\n--- berth lab: starting dockerd at ${new Date().toISOString()}\n`);
    let child: ChildProcess;
    try {
      // Not detached: setsid only execs (instead of forking) when its caller is no
      // process-group leader, so the child's pid is dockerd's own.
      child = spawn(
        'nsenter',
        [
          `--net=${join(NETNS_DIR, this.name)}`,
          'setsid',
          'dockerd',
          '-H', this.dockerHost,
          '--data-root', this.dataRoot,
          '--exec-root', join(this.runDir, 'exec'),
          '--pidfile', this.pidFile,
          '--containerd-namespace', this.containerdNamespace,
          '--containerd-plugins-namespace', `${this.containerdNamespace}-plugins`,
          '--cgroup-parent', `/${this.name}`,
          '--bip', this.bip,
          '--config-file', this.configFile,
          ...this.lab.dockerdExtraArgs,
        ],
        { stdio: ['ignore', log, log] },
      );
    } finally {
      fs.closeSync(log);
    }
    this.child = child;
    this.pid = child.pid;
    let spawnError: Error | undefined;
    let exitCode: string | undefined;
    this.childExited = new Promise((resolve) => {
      child.once('error', (err) => {
        spawnError = err;
        resolve();
      });
      child.once('exit', (code, signal) => {
        exitCode = signal ?? String(code);
        resolve();
      });
    });
    child.unref();

    const timeoutMs = this.lab.startTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (spawnError) throw new Error(`${this.name}: could not start nsenter/dockerd: ${spawnError.message}`);
      if (exitCode !== undefined) {
        throw new Error(`${this.name}: dockerd exited (${exitCode}) while starting; last lines of ${this.logFile}:\n${this.logTail()}`);
      }
      try {
        await withTimeout(this.docker.ping(), 1_000, 'ping');
        break;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) {
        throw new Error(`${this.name}: dockerd did not answer ping within ${timeoutMs} ms; last lines of ${this.logFile}:\n${this.logTail()}`);
      }
      await sleep(100);
    }
    // The pidfile is dockerd's own word; it differs from child.pid only if setsid forked.
    this.pid = readPid(this.pidFile) ?? this.pid;
  }

  /**
   * SIGKILLs dockerd, as a lost node. Its own containerd dies with it; the
   * containers (their shims) keep running until dockerd comes back and, as
   * without live-restore, stops them.
   */
  async kill(): Promise<void> {
    if (!this.running) return;
    const containerd = readPid(this.containerdPidFile);
    process.kill(this.pid!, 'SIGKILL');
    await this.waitForExit(5_000);
    await waitUntilDead(containerd, 5_000, `${this.name}: containerd`);
  }

  /** Stops dockerd gracefully (SIGTERM), SIGKILL after `timeoutMs`. */
  async stop({ timeoutMs = 20_000 } = {}): Promise<void> {
    if (!this.running) return;
    const containerd = readPid(this.containerdPidFile);
    process.kill(this.pid!, 'SIGTERM');
    try {
      await this.waitForExit(timeoutMs);
    } catch {
      await this.kill();
    }
    await waitUntilDead(containerd, 5_000, `${this.name}: containerd`);
  }

  /** Starts dockerd again with the same data root; stops it gracefully first if it runs. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** The last lines of dockerd's log, for error messages. */
  logTail(lines = 30): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch (err) {
      return `(no log: ${(err as Error).message})`;
    }
  }

  /** @internal */
  async loadImageTar(tar: NodeJS.ReadableStream, reference: string): Promise<void> {
    const response = await this.docker.loadImage(tar, { quiet: true });
    let body = '';
    for await (const chunk of response as AsyncIterable<Buffer | string>) body += chunk.toString();
    for (const line of body.split('\n')) {
      if (!line.trim()) continue;
      const event = JSON.parse(line) as { error?: string; errorDetail?: { message?: string } };
      if (event.error) throw new Error(`${this.name}: loading ${reference}: ${event.errorDetail?.message ?? event.error}`);
    }
    await this.docker.getImage(reference).inspect();
  }

  /** @internal */
  async removeAllContainers(timeoutMs = 5_000): Promise<void> {
    await withTimeout(
      (async () => {
        const containers = await this.docker.listContainers({ all: true });
        await Promise.all(containers.map((c) => this.docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined)));
      })(),
      timeoutMs,
      `${this.name}: removing containers`,
    );
  }

  /** @internal Forced: everything of this host, whatever state it is in. */
  teardownSync(): void {
    const scope = hostScope(this.name, [this.runDir, this.dataRoot]);
    const victims = new Set<number>(processesOf(scope));
    if (this.pid !== undefined && isAlive(this.pid)) victims.add(this.pid);
    for (const pid of victims) killQuietly(pid);
    waitUntilDeadSync([...victims], 3_000);
    unmountUnder([this.runDir, this.dataRoot]);
    if (this.netnsCreated) {
      ipQuiet(['netns', 'del', this.name]);
      this.netnsCreated = false;
    }
    if (this.vethCreated) {
      // Usually gone with the netns already; not if a process still held it.
      ipQuiet(['link', 'del', this.veth]);
      this.vethCreated = false;
    }
    for (const dir of cgroupDirs(scope).reverse()) {
      try {
        fs.rmdirSync(dir);
      } catch {
        // already gone, or a process we could not kill (reported by leftovers)
      }
    }
    fs.rmSync(this.runDir, { recursive: true, force: true });
    fs.rmSync(this.dataRoot, { recursive: true, force: true });
    this.pid = undefined;
  }

  private async waitForExit(timeoutMs: number): Promise<void> {
    const pid = this.pid!;
    const deadline = Date.now() + timeoutMs;
    // Our own child is only gone once node has reaped it; before that it is a zombie.
    if (this.child?.pid === pid) await Promise.race([this.childExited, sleep(timeoutMs)]);
    while (isAlive(pid)) {
      if (Date.now() > deadline) throw new Error(`${this.name}: dockerd (pid ${pid}) still running after ${timeoutMs} ms`);
      await sleep(50);
    }
  }
}

// --- names ------------------------------------------------------------------

/**
 * Draws a run id and creates its directories. Non-recursive mkdir is the
 * uniqueness check: a run drawing an id in use (or left over) draws again
 * instead of sharing anything.
 */
function claimRunId(): string {
  fs.mkdirSync(RUN_ROOT, { recursive: true });
  fs.mkdirSync(DATA_ROOT, { recursive: true });
  for (let attempt = 1; ; attempt++) {
    const runId = randomName(6);
    try {
      fs.mkdirSync(join(RUN_ROOT, runId));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && attempt < 10) continue;
      throw err;
    }
    try {
      fs.mkdirSync(join(DATA_ROOT, runId));
    } catch (err) {
      fs.rmSync(join(RUN_ROOT, runId), { recursive: true, force: true });
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && attempt < 10) continue;
      throw err;
    }
    fs.writeFileSync(join(RUN_ROOT, runId, 'owner.pid'), `${process.pid}\n`);
    return runId;
  }
}

function randomName(length: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return [...randomBytes(length)].map((b) => alphabet[b % alphabet.length]).join('');
}

function netnsPrefix(runId: string): string {
  return `berthlab-${runId}-`;
}

// Interface names are at most 15 characters: "vl" + 6 + "-n" + up to 3 digits.
function vethPrefix(runId: string): string {
  return `vl${runId}-`;
}

async function pickFreeOctet(): Promise<number> {
  const used = new Set<number>();
  const seen = (await run('ip', ['-o', '-4', 'addr', 'show'])) + (await run('ip', ['-o', '-4', 'route', 'show', 'table', 'all']));
  for (const m of seen.matchAll(/\b10\.254\.(\d+)\./g)) used.add(Number(m[1]));
  const free = [...Array(256).keys()].filter((x) => !used.has(x));
  if (free.length === 0) throw new Error('every 10.254.X.0/24 is in use on this machine');
  return free[randomInt(free.length)]!;
}

// --- processes, cgroups, mounts --------------------------------------------

/** Names of a run's things (netns, containerd namespaces, cgroups), or of one host's. */
interface Scope {
  names: (name: string) => boolean;
  /** Directories whose paths appear in the command lines of its dockerd, containerd and shims. */
  dirs: string[];
}

function runScope(runId: string): Scope {
  const prefix = netnsPrefix(runId);
  return { names: (n) => n.startsWith(prefix), dirs: [join(RUN_ROOT, runId), join(DATA_ROOT, runId)] };
}

function hostScope(name: string, dirs: string[]): Scope {
  // Exact or `<name>-…`: a prefix match would take n10 for n1.
  return { names: (n) => n === name || n.startsWith(`${name}-`), dirs };
}

/**
 * Processes of a scope: those inside its network namespaces (dockerd, its
 * containerd, shims, docker-proxy), those in its cgroups (the containers' own
 * processes), and those whose command line names its containerd namespace or
 * directories (shims of a system containerd live outside the netns; and once
 * the netns file is gone, that is how a straggler is still found).
 */
function processesOf(scope: Scope): number[] {
  const netnsIds = new Set<string>();
  for (const ns of safeReaddir(NETNS_DIR)) {
    if (!scope.names(ns)) continue;
    try {
      netnsIds.add(`net:[${fs.statSync(join(NETNS_DIR, ns)).ino}]`);
    } catch {
      // deleted meanwhile
    }
  }
  const pids = new Set<number>();
  for (const dir of cgroupDirs(scope)) {
    try {
      for (const pid of fs.readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (pid) pids.add(Number(pid));
    } catch {
      // removed meanwhile
    }
  }
  const dirMarks = scope.dirs.map((d) => `${d}/`);
  for (const entry of safeReaddir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      if (netnsIds.has(fs.readlinkSync(`/proc/${pid}/ns/net`))) {
        pids.add(pid);
        continue;
      }
      const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (args.some((a) => scope.names(a) || dirMarks.some((m) => a.includes(m)))) pids.add(pid);
    } catch {
      // exited meanwhile
    }
  }
  pids.delete(process.pid);
  pids.delete(1);
  return [...pids].filter(isAlive);
}

/** A scope's cgroup directories (the hosts' --cgroup-parent) in every hierarchy, with their children, parents first. */
function cgroupDirs(scope: Scope): string[] {
  const tops: string[] = [];
  // Not only directories: v1 hierarchies may be symlinks (cpu -> cpu,cpuacct).
  const roots = ['/sys/fs/cgroup', ...safeReaddir('/sys/fs/cgroup').map((c) => join('/sys/fs/cgroup', c))];
  const seen = new Set<string>();
  for (const root of roots) {
    for (const entry of safeReaddir(root, true)) {
      if (!scope.names(entry)) continue;
      try {
        // cpu and cpuacct may be one hierarchy under two names.
        const real = fs.realpathSync(join(root, entry));
        if (seen.has(real)) continue;
        seen.add(real);
        tops.push(real);
      } catch {
        // gone meanwhile
      }
    }
  }
  const out: string[] = [];
  const walk = (dir: string): void => {
    out.push(dir);
    for (const entry of safeReaddir(dir, true)) walk(join(dir, entry));
  };
  for (const top of tops) walk(top);
  return out;
}

/** Lazily unmounts everything mounted at or below `dirs` (overlays, nsfs of containers, shm, the data root itself). */
function unmountUnder(dirs: string[]): void {
  const points = mountsUnder(dirs);
  if (points.length > 0) spawnSync('umount', ['-l', ...points], { stdio: 'ignore', timeout: 10_000 });
}

/** Mount points at or below `dirs`, deepest first. */
function mountsUnder(dirs: string[]): string[] {
  let mountinfo = '';
  try {
    mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  return mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => !!p)
    .map((p) => p.replace(/\\(\d{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))))
    .filter((p) => dirs.some((d) => p === d || p.startsWith(`${d}/`)))
    .sort((a, b) => b.length - a.length);
}

function isAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function waitUntilDead(pid: number | undefined, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pid !== undefined && isAlive(pid)) {
    if (Date.now() > deadline) throw new Error(`${what} (pid ${pid}) still running after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/**
 * The machine's daemon.json, if any, without what the lab sets per host (a key
 * both in the file and on the command line stops dockerd), plus a key file of
 * the host's own: dockerd derives its engine ID from /etc/docker/key.json
 * otherwise, and every host would share the machine engine's ID.
 */
function labDaemonConfig(keyPath: string): Record<string, unknown> {
  let machine: Record<string, unknown> = {};
  try {
    machine = JSON.parse(fs.readFileSync('/etc/docker/daemon.json', 'utf8')) as Record<string, unknown>;
  } catch {
    // none, or unreadable: dockerd's defaults
  }
  for (const key of [
    'hosts', 'data-root', 'graph', 'exec-root', 'pidfile', 'bip', 'bridge', 'fixed-cidr', 'default-gateway',
    'containerd', 'containerd-namespace', 'containerd-plugins-namespace', 'cgroup-parent', 'deprecated-key-path',
  ]) {
    delete machine[key];
  }
  return { ...machine, 'deprecated-key-path': keyPath };
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function waitUntilDeadSync(pids: number[], timeoutMs: number): void {
  const deadline = Date.now() + timeoutMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  while (pids.some(isAlive) && Date.now() < deadline) Atomics.wait(pause, 0, 0, 20);
}

function safeReaddir(dir: string, dirsOnly = false): string[] {
  try {
    const entries = fs.readdirSync(dir, { withFileTypes: true });
    return entries.filter((e) => !dirsOnly || e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
}

// --- commands -----------------------------------------------------------------

function run(cmd: string, args: string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

function ip(args: string[]): Promise<string> {
  return run('ip', args);
}

function ipQuiet(args: string[]): void {
  spawnSync('ip', args, { stdio: 'ignore', timeout: 10_000 });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

// --- safety net ---------------------------------------------------------------
// A test run that dies (an uncaught error, Ctrl-C, vitest killing its worker)
// must not leave dockerds, namespaces and mounts behind on a shared machine.

const liveLabs = new Set<DockerLab>();
const signals = ['SIGINT', 'SIGTERM'] as const;
const signalHandlers = new Map<NodeJS.Signals, () => void>();

function tearDownAllSync(): void {
  for (const lab of liveLabs) {
    try {
      lab.teardownSync();
    } catch {
      // keep going: the other labs still need it
    }
  }
  liveLabs.clear();
}

function trackForSafetyNet(lab: DockerLab): void {
  if (liveLabs.size === 0) {
    process.on('exit', tearDownAllSync);
    for (const signal of signals) {
      const handler = (): void => {
        tearDownAllSync();
        uninstallSafetyNet();
        // Die of the signal as we would have without this handler, unless
        // someone else also listens and so decides.
        if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
      };
      signalHandlers.set(signal, handler);
      process.on(signal, handler);
    }
  }
  liveLabs.add(lab);
}

function untrackForSafetyNet(lab: DockerLab): void {
  liveLabs.delete(lab);
  if (liveLabs.size === 0) uninstallSafetyNet();
}

function uninstallSafetyNet(): void {
  process.off('exit', tearDownAllSync);
  for (const [signal, handler] of signalHandlers) process.off(signal, handler);
  signalHandlers.clear();
}
