import { availableParallelism, hostname } from 'node:os';
import { z } from 'zod';
import { openFilesLimit, type ListenerLimits } from './core/listener-guard.ts';
import { defaultDashboardDir } from './dashboard/dashboard-files.ts';

/**
 * Everything berth reads from its environment, validated once at start and
 * frozen. Modules receive the parts they need; none of them reads process.env.
 */
export interface BerthConfig {
  /** Port of the HTTP API. Default 8080. */
  readonly apiPort: number;
  /** Port of the proxy listener. Default 9090. */
  readonly proxyPort: number;
  /** Address both listeners bind to. Default 127.0.0.1. */
  readonly bind: string;
  /** Base URL clients use for the API (no trailing slash). Default http://{bind}:{apiPort}. */
  readonly publicApiUrl: string;
  /** Base URL of the proxy (no trailing slash). Default http://{bind}:{proxyPort}. */
  readonly publicProxyUrl: string;
  /** When set, connection URLs become https://{backend_id}.{domain}/{token}/. */
  readonly proxyDomain: string | undefined;
  /** PostgreSQL connection string; unset means the embedded PGlite. */
  readonly databaseUrl: string | undefined;
  /** Where PGlite keeps its files. Default ./.berth */
  readonly dataDir: string;
  /** The dashboard's built files, served under /dashboard. Default: dist/dashboard/ of this installation. */
  readonly dashboardDir: string;
  /** Bootstrap admin token; generated and printed once when unset. */
  readonly adminToken: string | undefined;
  /** How long a backend may take to answer HTTP before it is terminated. Default 300 s. */
  readonly startupTimeoutMs: number;
  /** Prefix of every service's default image repository. Default empty. */
  readonly imagePrefix: string;
  /** Requests one token may make per rate-limit window. Default 1200. */
  readonly rateLimit: number;
  /** Length of the rate-limit window. Default 60 s. */
  readonly rateLimitWindowMs: number;
  /** pino log level. Default info. */
  readonly logLevel: string;
  /** Host directory under which backends may mount directories; unset disables mounts. */
  readonly mountBaseDir: string | undefined;
  /** Time between SIGTERM and SIGKILL of a soft termination. Default 10 s. */
  readonly terminationGraceMs: number;
  /** How often idle and over-lifetime backends are looked for. Default 1 s. */
  readonly sweepIntervalMs: number;
  /** How long the proxy holds a request for a backend that is not ready yet before answering 503. Default 30 s. */
  readonly proxyWaitMs: number;
  /**
   * BERTH_PROXY_EDGE=nginx: nginx (with its Lua module) serves the proxy port
   * and forwards ready routes itself; BERTH_PROXY_NGINX names its binary,
   * BERTH_PROXY_WORKERS its worker processes. Undefined (the default, "off"):
   * berth's own proxy serves the port.
   */
  readonly proxyEdge: { readonly binary: string | undefined; readonly workers: number } | undefined;
  /** Deadlines and connection caps of both listeners (BERTH_HEADER_TIMEOUT_SECONDS, BERTH_IDLE_TIMEOUT_SECONDS, BERTH_MAX_CONNECTIONS, BERTH_MAX_CONNECTIONS_PER_CLIENT). */
  readonly listenerLimits: ListenerLimits;
  /** How long the logs of a terminated backend stay readable. Default 7 days. */
  readonly logRetentionMs: number;
  /** How long a terminated backend (its statuses, tokens and logs) is kept before it is deleted. Default 7 days. */
  readonly backendRetentionMs: number;
  /** How long a proxy that stopped reporting still keeps its open connections' backends alive. Default 30 s. */
  readonly proxyLeaseMs: number;
  /** This scheduler's node name (BERTH_NODE_NAME). Default: the host name. */
  readonly nodeName: string;
  /** Where proxies reach the ports this node publishes; containers publish on it. Default 127.0.0.1. */
  readonly nodeAddress: string;
  /** A node whose heartbeat is older than this is lost. Default 30 s. */
  readonly nodeLeaseMs: number;
  /** How often a node compares the database with its engine. Default 5 s. */
  readonly reconcileIntervalMs: number;
  /** How long a warm-pool container may take to say Warmed before it is replaced. Default 30 s. */
  readonly warmTimeoutMs: number;
  /** Registry hosts images may come from, besides the engine's local images and BERTH_IMAGE_PREFIX's host. Default none. */
  readonly allowedRegistries: readonly string[];
  /** Docker network every backend joins; berth creates it without inter-container communication. Default berth-backends. */
  readonly backendNetwork: string;
  /** Processes (and threads) one container may hold. Default 512. */
  readonly pidsLimit: number;
  /** Size at which a container's json-file log rotates. Default 10 MiB. */
  readonly containerLogMaxBytes: number;
  /** Rotated log files kept per container. Default 3. */
  readonly containerLogMaxFiles: number;
  /** Memory limit of a backend whose caller asks for none; 0 sends none. Default 1 GiB. */
  readonly defaultMemoryBytes: number;
  /** CPU share (100 = one core) of a backend whose caller asks for none; 0 sends none. Default 100. */
  readonly defaultCpuPercent: number;
  /** Highest memory_limit_bytes a caller may ask for. Default 8 GiB. */
  readonly maxMemoryBytes: number;
  /** Highest cpu_period_percent a caller may ask for. Default 100 × the host's cores. */
  readonly maxCpuPercent: number;
  /** Live backends one account may hold; a connect past it gets 429. Default 100. */
  readonly maxBackendsPerAccount: number;
}

const port = (fallback: number) =>
  z.coerce.number().int().min(0).max(65535).default(fallback);
const seconds = (fallback: number) =>
  z.coerce.number().positive().max(365 * 24 * 3600).default(fallback);
const url = z
  .url({ protocol: /^https?$/ })
  .transform((value) => value.replace(/\/+$/, ''))
  .optional();
const nonEmpty = z.string().trim().min(1).optional();
const GIB = 1024 ** 3;
const count = (fallback: number) => z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(fallback);
const REGISTRY_HOST = /^(localhost|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:]+\])(:\d{1,5})?$/i;

const ENV_SCHEMA = z.object({
  BERTH_API_PORT: port(8080),
  BERTH_PROXY_PORT: port(9090),
  BERTH_BIND: z.union([z.ipv4(), z.ipv6(), z.literal('localhost')]).default('127.0.0.1'),
  BERTH_PUBLIC_API_URL: url,
  BERTH_PUBLIC_PROXY_URL: url,
  BERTH_PROXY_DOMAIN: z
    .string()
    .regex(/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(:\d{1,5})?$/i, 'must be a domain name')
    .optional(),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must start with postgres:// or postgresql://')
    .optional(),
  BERTH_DATA_DIR: z.string().min(1).default('./.berth'),
  BERTH_DASHBOARD_DIR: z.string().min(1).optional(),
  BERTH_ADMIN_TOKEN: z
    .string()
    .regex(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{16,}$/, 'must look like <id>.<secret> with a secret of at least 16 characters from [A-Za-z0-9_-]')
    .optional(),
  BERTH_STARTUP_TIMEOUT_SECONDS: seconds(300),
  BERTH_IMAGE_PREFIX: z
    .string()
    .regex(/^([a-z0-9]+([._-][a-z0-9]+)*(:\d+)?\/)*$/, 'must be empty or a repository path ending in "/"')
    .default(''),
  BERTH_RATE_LIMIT: z.coerce.number().int().positive().default(1200),
  BERTH_RATE_LIMIT_WINDOW_SECONDS: seconds(60),
  BERTH_MOUNT_BASE_DIR: z.string().regex(/^\//, 'must be an absolute path').optional(),
  BERTH_TERMINATION_GRACE_SECONDS: seconds(10),
  BERTH_SWEEP_INTERVAL_SECONDS: seconds(1),
  BERTH_LOG_RETENTION_SECONDS: seconds(7 * 24 * 3600),
  BERTH_BACKEND_RETENTION_SECONDS: seconds(7 * 24 * 3600),
  BERTH_PROXY_WAIT_SECONDS: seconds(30),
  BERTH_PROXY_LEASE_SECONDS: seconds(30),
  BERTH_PROXY_EDGE: z.enum(['off', 'nginx']).default('off'),
  BERTH_PROXY_NGINX: z.string().regex(/^\//, 'must be an absolute path').optional(),
  BERTH_PROXY_WORKERS: z.coerce.number().int().min(1).max(64).default(1),
  BERTH_NODE_NAME: z
    .string()
    .regex(/^[A-Za-z0-9]([A-Za-z0-9._-]{0,62})$/, 'must be 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit')
    .optional(),
  BERTH_NODE_ADDRESS: z.union([z.ipv4(), z.ipv6()]).default('127.0.0.1'),
  BERTH_NODE_LEASE_SECONDS: seconds(30),
  BERTH_RECONCILE_INTERVAL_SECONDS: seconds(5),
  BERTH_WARM_TIMEOUT_SECONDS: seconds(30),
  // Node's request-head check must fit inside the API's 300 s request deadline.
  BERTH_HEADER_TIMEOUT_SECONDS: z.coerce.number().positive().max(300).default(30),
  BERTH_IDLE_TIMEOUT_SECONDS: z.coerce.number().positive().max(24 * 3600).default(60),
  BERTH_MAX_CONNECTIONS: z.coerce.number().int().positive().max(10_000_000).optional(),
  BERTH_MAX_CONNECTIONS_PER_CLIENT: z.coerce.number().int().positive().max(10_000_000).optional(),
  BERTH_ALLOWED_REGISTRIES: z
    .string()
    .transform((value) => value.split(',').map((host) => host.trim().toLowerCase()).filter(Boolean))
    .pipe(z.array(z.string().regex(REGISTRY_HOST, 'must be a comma list of registry hosts such as "registry.example.com:5000"')))
    .default([]),
  BERTH_BACKEND_NETWORK: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/, 'must be a Docker network name').default('berth-backends'),
  BERTH_DEFAULT_PIDS_LIMIT: z.coerce.number().int().min(16).max(4_194_304).default(512),
  BERTH_CONTAINER_LOG_MAX_BYTES: z.coerce.number().int().min(64 * 1024).max(Number.MAX_SAFE_INTEGER).default(10 * 1024 * 1024),
  BERTH_CONTAINER_LOG_MAX_FILES: z.coerce.number().int().min(1).max(100).default(3),
  BERTH_DEFAULT_MEMORY_BYTES: count(GIB),
  BERTH_DEFAULT_CPU_PERCENT: z.coerce.number().min(0).max(100_000).default(100),
  BERTH_MAX_MEMORY_BYTES: z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER).default(8 * GIB),
  BERTH_MAX_CPU_PERCENT: z.coerce.number().positive().max(100_000).default(100 * availableParallelism()),
  BERTH_MAX_BACKENDS_PER_ACCOUNT: z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER).default(100),
  BERTH_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    readonly problem: string,
  ) {
    super(`invalid configuration: ${variable} ${problem}`);
    this.name = 'ConfigError';
  }
}

/** Reads and validates the configuration; throws ConfigError naming the first bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): BerthConfig {
  // An empty variable means "unset": `FOO= berth serve` must not fail validation.
  const present = Object.fromEntries(
    Object.keys(ENV_SCHEMA.shape).flatMap((name) => {
      const value = env[name];
      return value === undefined || value === '' ? [] : [[name, value]];
    }),
  );
  const parsed = ENV_SCHEMA.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const variable = String(issue?.path[0] ?? 'environment');
    const value = present[variable];
    throw new ConfigError(variable, `${issue?.message ?? 'is invalid'} (got ${JSON.stringify(value)})`);
  }
  const e = parsed.data;
  // A default above its ceiling would make every plain connect ask for more than any caller may.
  if (e.BERTH_DEFAULT_MEMORY_BYTES > e.BERTH_MAX_MEMORY_BYTES) {
    throw new ConfigError('BERTH_DEFAULT_MEMORY_BYTES', `must not exceed BERTH_MAX_MEMORY_BYTES (${e.BERTH_MAX_MEMORY_BYTES})`);
  }
  if (e.BERTH_DEFAULT_CPU_PERCENT > e.BERTH_MAX_CPU_PERCENT) {
    throw new ConfigError('BERTH_DEFAULT_CPU_PERCENT', `must not exceed BERTH_MAX_CPU_PERCENT (${e.BERTH_MAX_CPU_PERCENT})`);
  }
  if (e.BERTH_DEFAULT_MEMORY_BYTES > 0 && e.BERTH_DEFAULT_MEMORY_BYTES < 6 * 1024 * 1024) {
    throw new ConfigError('BERTH_DEFAULT_MEMORY_BYTES', 'must be 0 (none) or at least 6 MiB, the least Docker accepts');
  }
  const listenerLimits = compileListenerLimits(e);
  const host = e.BERTH_BIND.includes(':') ? `[${e.BERTH_BIND}]` : e.BERTH_BIND;
  return Object.freeze({
    apiPort: e.BERTH_API_PORT,
    proxyPort: e.BERTH_PROXY_PORT,
    bind: e.BERTH_BIND,
    publicApiUrl: e.BERTH_PUBLIC_API_URL ?? `http://${host}:${e.BERTH_API_PORT}`,
    publicProxyUrl: e.BERTH_PUBLIC_PROXY_URL ?? `http://${host}:${e.BERTH_PROXY_PORT}`,
    proxyDomain: e.BERTH_PROXY_DOMAIN,
    databaseUrl: e.DATABASE_URL,
    dataDir: e.BERTH_DATA_DIR,
    dashboardDir: e.BERTH_DASHBOARD_DIR ?? defaultDashboardDir(),
    adminToken: e.BERTH_ADMIN_TOKEN,
    startupTimeoutMs: e.BERTH_STARTUP_TIMEOUT_SECONDS * 1000,
    imagePrefix: e.BERTH_IMAGE_PREFIX,
    rateLimit: e.BERTH_RATE_LIMIT,
    rateLimitWindowMs: e.BERTH_RATE_LIMIT_WINDOW_SECONDS * 1000,
    logLevel: e.BERTH_LOG_LEVEL,
    mountBaseDir: e.BERTH_MOUNT_BASE_DIR?.replace(/(.)\/+$/, '$1'),
    terminationGraceMs: e.BERTH_TERMINATION_GRACE_SECONDS * 1000,
    sweepIntervalMs: e.BERTH_SWEEP_INTERVAL_SECONDS * 1000,
    proxyWaitMs: e.BERTH_PROXY_WAIT_SECONDS * 1000,
    proxyEdge: e.BERTH_PROXY_EDGE === 'nginx' ? Object.freeze({ binary: e.BERTH_PROXY_NGINX, workers: e.BERTH_PROXY_WORKERS }) : undefined,
    listenerLimits,
    logRetentionMs: e.BERTH_LOG_RETENTION_SECONDS * 1000,
    backendRetentionMs: e.BERTH_BACKEND_RETENTION_SECONDS * 1000,
    proxyLeaseMs: e.BERTH_PROXY_LEASE_SECONDS * 1000,
    nodeName: e.BERTH_NODE_NAME ?? defaultNodeName(),
    nodeAddress: e.BERTH_NODE_ADDRESS,
    nodeLeaseMs: e.BERTH_NODE_LEASE_SECONDS * 1000,
    reconcileIntervalMs: e.BERTH_RECONCILE_INTERVAL_SECONDS * 1000,
    warmTimeoutMs: e.BERTH_WARM_TIMEOUT_SECONDS * 1000,
    allowedRegistries: Object.freeze(e.BERTH_ALLOWED_REGISTRIES),
    backendNetwork: e.BERTH_BACKEND_NETWORK,
    pidsLimit: e.BERTH_DEFAULT_PIDS_LIMIT,
    containerLogMaxBytes: e.BERTH_CONTAINER_LOG_MAX_BYTES,
    containerLogMaxFiles: e.BERTH_CONTAINER_LOG_MAX_FILES,
    defaultMemoryBytes: e.BERTH_DEFAULT_MEMORY_BYTES,
    defaultCpuPercent: e.BERTH_DEFAULT_CPU_PERCENT,
    maxMemoryBytes: e.BERTH_MAX_MEMORY_BYTES,
    maxCpuPercent: e.BERTH_MAX_CPU_PERCENT,
    maxBackendsPerAccount: e.BERTH_MAX_BACKENDS_PER_ACCOUNT,
  });
}

/** Connections one listener holds by default, at most; lower when the open-files limit could not carry both listeners' share. */
const DEFAULT_MAX_CONNECTIONS = 10_000;
/** By default one address may hold a tenth of that: far above a browser or a pooled app server, far below an exhausting flood. */
const DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 1000;

function compileListenerLimits(e: z.infer<typeof ENV_SCHEMA>): ListenerLimits {
  // A proxied connection costs two descriptors (client and backend), an API one: a quarter of the limit each leaves room for the rest.
  const files = openFilesLimit();
  const maxConnections = e.BERTH_MAX_CONNECTIONS ?? Math.max(64, Math.min(DEFAULT_MAX_CONNECTIONS, files === undefined ? Infinity : Math.floor(files / 4)));
  const maxConnectionsPerClient = e.BERTH_MAX_CONNECTIONS_PER_CLIENT ?? Math.min(DEFAULT_MAX_CONNECTIONS_PER_CLIENT, maxConnections);
  if (maxConnectionsPerClient > maxConnections) {
    throw new ConfigError('BERTH_MAX_CONNECTIONS_PER_CLIENT', `must not exceed BERTH_MAX_CONNECTIONS (${maxConnections})`);
  }
  return Object.freeze({
    headerTimeoutMs: e.BERTH_HEADER_TIMEOUT_SECONDS * 1000,
    idleTimeoutMs: e.BERTH_IDLE_TIMEOUT_SECONDS * 1000,
    maxConnections,
    maxConnectionsPerClient,
  });
}

/** The host name, cut to what a node name may hold. */
function defaultNodeName(): string {
  const name = hostname().replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 63);
  return name === '' ? 'node' : name;
}
