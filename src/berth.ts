import { resolve } from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type Dockerode from 'dockerode';
import { customAlphabet } from 'nanoid';
import type { DockerEngine } from '../scheduler/docker/docker-engine.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import type { ProxyServer } from '../proxy/proxy-server.ts';
import { createGuardedServer } from './core/listener-guard.ts';
import { AccountService } from './accounts/account.service.ts';
import { findOrCreateInstallationId } from './backends/backend.repository.ts';
import { BackendService } from './backends/backend.service.ts';
import { DatabaseProxyStore } from './backends/proxy-store.ts';
import { DatabaseSchedulerStore } from './backends/scheduler-store.ts';
import { StatusHub } from './backends/status-hub.ts';
import { LogHub } from './logs/log-hub.ts';
import { BerthMetrics } from './metrics/prometheus.ts';
import type { BerthConfig } from './config.ts';
import type { Dependencies } from './context.ts';
import { openStorage, type Storage } from './database.ts';
import { HealthService } from './health/health.service.ts';
import type { Logger } from './core/logger.ts';
import type { Role } from './roles.ts';
import { ImagePolicy } from './services/image-policy.ts';
import { ServiceService } from './services/service.service.ts';
import { NodeService } from './nodes/node.service.ts';
import { NodeCatalog } from './nodes/node-catalog.ts';
import { withLimitDefaults } from './backends/resource-limits.ts';
import { MetricsHub } from './metrics/metrics-hub.ts';
import type { EngineReader } from '../scheduler/engine.ts';

export { ROLES, type Role } from './roles.ts';

const API_REQUEST_TIMEOUT_MS = 300_000;

export type BerthState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped';

export interface BerthOptions {
  config: BerthConfig;
  logger: Logger;
  /** Which part of berth this process runs. Default 'all'. */
  role?: Role;
  /** Injected in tests; defaults to the engine DOCKER_HOST names. */
  docker?: Dockerode;
}

/**
 * The one place a concrete engine is built, and only where a node runs: the
 * rest of berth sees its interfaces. Its modules (dockerode and what it pulls
 * in) are loaded here, so that an API or proxy process holds none of them.
 */
async function createEngine(config: BerthConfig, logger: Logger, docker: Dockerode | undefined): Promise<DockerEngine> {
  const [{ DockerEngine }, { createDocker }] = await Promise.all([import('../scheduler/docker/docker-engine.ts'), import('../scheduler/docker/docker.ts')]);
  return new DockerEngine(docker ?? createDocker(), logger, {
    network: config.backendNetwork,
    pidsLimit: config.pidsLimit,
    logMaxBytes: config.containerLogMaxBytes,
    logMaxFiles: config.containerLogMaxFiles,
  });
}

/** One berth process: storage, the API and the proxy listener, per its role. */
export class Berth {
  private state: BerthState = 'created';
  private apiServer: http.Server | undefined;
  private proxy: ProxyServer | undefined;
  private stopping: Promise<void> | undefined;
  /** The admin token generated at this start, if any; shown once. */
  generatedAdminToken: string | undefined;

  private constructor(
    readonly config: BerthConfig,
    readonly role: Role,
    private readonly logger: Logger,
    private readonly storage: Storage,
    private readonly deps: Dependencies,
    private readonly scheduler: Scheduler | undefined,
    private readonly startedAt: Date,
    /** Id of this installation, on the labels of every container it starts. */
    readonly instanceId: string,
  ) {}

  static async create(options: BerthOptions): Promise<Berth> {
    const { config, logger } = options;
    const startedAt = new Date();
    const storage = await openStorage({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, logger });
    const role = options.role ?? 'all';
    const runsNode = role === 'scheduler' || role === 'all';
    const engine = runsNode ? await createEngine(config, logger, options.docker) : undefined;
    const metricsHub = await MetricsHub.create(storage, logger);
    // In one process with its node, the API reads that node's engine directly (no heartbeat
    // in between); an API process of its own reads the engines through the nodes.
    const engineReader: EngineReader = engine ?? new NodeCatalog({ db: storage.db, metrics: metricsHub, leaseMs: config.nodeLeaseMs });
    const imagePolicy = new ImagePolicy({
      imagePrefix: config.imagePrefix,
      allowedRegistries: config.allowedRegistries,
      lookup: (reference) => engineReader.imageReferences(reference),
    });
    const accounts = new AccountService(storage.db, config.adminToken);
    const statusHub = await StatusHub.create(storage, logger);
    const logHub = await LogHub.create(storage, logger);
    const limitPolicy = {
      defaultMemoryBytes: config.defaultMemoryBytes,
      defaultCpuPercent: config.defaultCpuPercent,
      maxMemoryBytes: config.maxMemoryBytes,
      maxCpuPercent: config.maxCpuPercent,
    };
    const nodes = new NodeService({ db: storage.db, leaseMs: config.nodeLeaseMs });
    const backends = new BackendService({
      db: storage.db,
      nodes,
      mountBaseDir: config.mountBaseDir,
      imagePolicy,
      limitPolicy,
      maxBackendsPerAccount: config.maxBackendsPerAccount,
    });
    const deps: Dependencies = {
      config,
      logger,
      storage,
      accounts,
      services: new ServiceService({ db: storage.db, engine: engineReader, logger, imagePolicy }),
      health: new HealthService(storage.db, engineReader, startedAt),
      backends,
      nodes,
      statusHub,
      logHub,
      engine: engineReader,
      metricsHub,
      metrics: new BerthMetrics({ countBackendsByStatus: () => backends.countByStatus(), logger }),
    };
    // Cold starts are timed from the status events every process hears.
    statusHub.subscribe('*', (event) => deps.metrics.observeStatus(event));
    const instanceId = await findOrCreateInstallationId(storage.db, customAlphabet('0123456789abcdefghijklmnopqrstuvwxyz', 12)());
    let scheduler: Scheduler | undefined;
    if (engine) {
      // Loaded only where a node runs, like the engine; `(await import(…)).createApp` and the proxy likewise.
      const { Scheduler } = await import('../scheduler/scheduler.ts');
      scheduler = new Scheduler({
        store: new DatabaseSchedulerStore(storage.db, backends.recorder, statusHub, instanceId, config.nodeName, config.proxyLeaseMs),
        engine,
        logger,
        node: { name: config.nodeName, address: config.nodeAddress },
        nodeLeaseMs: config.nodeLeaseMs,
        reconcileIntervalMs: config.reconcileIntervalMs,
        warm: {
          // Bind-mounted into warm containers: an absolute path on the engine's host, short enough for a socket name.
          socketDir: resolve(config.dataDir, 'warm'),
          defaultLimits: withLimitDefaults({}, limitPolicy),
          warmTimeoutMs: config.warmTimeoutMs,
        },
        startupTimeoutMs: config.startupTimeoutMs,
        terminationGraceMs: config.terminationGraceMs,
        sweepIntervalMs: config.sweepIntervalMs,
        logRetentionMs: config.logRetentionMs,
        backendRetentionMs: config.backendRetentionMs,
      });
    }
    return new Berth(config, role, logger, storage, deps, scheduler, startedAt, instanceId);
  }

  async start(): Promise<void> {
    if (this.state !== 'created') throw new Error(`cannot start berth in state ${this.state}`);
    this.setState('starting');
    await this.scheduler?.start();
    if (this.role === 'api' || this.role === 'all') {
      this.apiServer = createGuardedServer(
        // API bodies are small JSON: five minutes (Node's default) for a whole request is plenty; SSE answers are not limited.
        { name: 'api', limits: this.config.listenerLimits, logger: this.logger, requestTimeoutMs: API_REQUEST_TIMEOUT_MS },
        (await import('./app.ts')).createApp(this.deps, this.startedAt).callback(),
      );
      await listen(this.apiServer, this.config.apiPort, this.config.bind);
    }
    if (this.role === 'proxy' || this.role === 'all') {
      const { ProxyServer } = await import('../proxy/proxy-server.ts');
      const edge = this.config.proxyEdge;
      this.proxy = new ProxyServer({
        store: new DatabaseProxyStore(this.storage.db, this.deps.statusHub),
        logger: this.logger,
        domain: this.config.proxyDomain,
        waitMs: this.config.proxyWaitMs,
        listenerLimits: this.config.listenerLimits,
        metrics: this.deps.metrics,
        ...(edge ? { edge: { binary: (await import('../proxy/edge/nginx-process.ts')).findNginx(edge.binary), workers: edge.workers } } : {}),
      });
      await this.proxy.listen(this.config.proxyPort, this.config.bind);
      const proxy = this.proxy;
      this.deps.metrics.countOpenWebSockets(() => proxy.openUpgrades);
    }
    // Only once berth really serves: a start that fails to bind must not use up the one showing of the token.
    this.generatedAdminToken = await this.deps.accounts.bootstrapAdmin(this.logger);
    this.setState('running');
    this.logger.info(
      { role: this.role, api_port: this.apiPort, proxy_port: this.proxyPort, database: this.storage.kind },
      'berth is running',
    );
  }

  /** Port the API listens on (useful when configured as 0). */
  get apiPort(): number | undefined {
    return (this.apiServer?.address() as AddressInfo | null)?.port;
  }

  get proxyPort(): number | undefined {
    return this.proxy?.port;
  }

  /** Stops listening and closes storage. Backends keep running. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.setState('stopping');
    // The proxy writes its last activity on the way out, so storage closes after it.
    await Promise.all([close(this.apiServer), this.proxy?.stop()]);
    await this.scheduler?.stop();
    await this.deps.statusHub.stop();
    await this.deps.logHub.stop();
    await this.deps.metricsHub.stop();
    await this.storage.close();
    this.setState('stopped');
  }

  private setState(state: BerthState): void {
    this.logger.debug({ from: this.state, to: state }, 'berth state');
    this.state = state;
  }
}

function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function close(server: http.Server | undefined): Promise<void> {
  if (!server?.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
