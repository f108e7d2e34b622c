import { mkdir } from 'node:fs/promises';
import { Kysely, PGliteDialect, PostgresDialect } from 'kysely';
import { Migrator } from 'kysely/migration';
import type pg from 'pg';
import type { AccountTable, ApiTokenTable } from './accounts/account.table.ts';
import type { EnvironmentTable, ServiceTable } from './services/service.table.ts';
import type { BackendLogTable } from './logs/log.table.ts';
import type { MetricsWatchTable, NodeTable } from './nodes/node.table.ts';
import type {
  BackendKeyTable,
  BackendStatusTable,
  BackendTable,
  ConnectionTokenTable,
  InstallationTable,
  ProxyConnectionTable,
  ProxyTable,
} from './backends/backend.table.ts';
import { MIGRATIONS } from './migrations/index.ts';
import type { Logger } from './core/logger.ts';

export interface Database {
  accounts: AccountTable;
  api_tokens: ApiTokenTable;
  services: ServiceTable;
  environments: EnvironmentTable;
  installation: InstallationTable;
  backends: BackendTable;
  backend_statuses: BackendStatusTable;
  backend_keys: BackendKeyTable;
  connection_tokens: ConnectionTokenTable;
  backend_logs: BackendLogTable;
  proxies: ProxyTable;
  proxy_connections: ProxyConnectionTable;
  nodes: NodeTable;
  metrics_watches: MetricsWatchTable;
}

export type StorageKind = 'postgres' | 'pglite';

/** Called with the payload of every NOTIFY on a channel. */
export type NotificationHandler = (payload: string) => void;

/**
 * The database and its notification bus. PostgreSQL (or PGlite, which is
 * PostgreSQL too) is both the source of truth and the bus between berth's roles.
 */
export interface Storage {
  readonly kind: StorageKind;
  readonly db: Kysely<Database>;
  /** LISTEN on a channel; resolves to a function that stops listening. */
  listen(channel: string, handler: NotificationHandler): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface StorageOptions {
  databaseUrl: string | undefined;
  dataDir: string;
  logger: Logger;
}

export async function openStorage(options: StorageOptions): Promise<Storage> {
  // Each driver is loaded only where it is used: a process on PostgreSQL never holds PGlite, and one on PGlite never holds pg.
  const storage = options.databaseUrl ? openPostgres((await import('pg')).default, options.databaseUrl, options.logger) : await openPglite(options.dataDir);
  try {
    await migrateToLatest(storage.db, options.logger);
  } catch (error) {
    await storage.close();
    throw error;
  }
  return storage;
}

function openPostgres(driver: typeof pg, databaseUrl: string, logger: Logger): Storage {
  // A bounded connect wait: while the database is away, requests fail fast with 503 instead of queueing.
  const pool = new driver.Pool({ connectionString: databaseUrl, max: 10, connectionTimeoutMillis: 5000 });
  // An idle client losing its connection must not crash berth; the pool replaces it.
  pool.on('error', (error) => logger.warn({ err: error }, 'idle database connection failed'));
  // pg-pool listens for errors only on idle clients: a connection that drops while a client is
  // checked out (a database restart mid-query) would emit an error nobody handles and end the
  // process. The query itself fails with the same error; this only keeps the process alive.
  pool.on('connect', (client) => {
    client.on('error', (error) => logger.warn({ err: error }, 'database connection lost while in use'));
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const notifications = new PostgresNotifications(driver, databaseUrl, logger);
  return {
    kind: 'postgres',
    db,
    listen: (channel, handler) => notifications.listen(channel, handler),
    async close() {
      await notifications.close();
      await db.destroy();
    },
  };
}

const RELISTEN_DELAY_MS = 1000;

/**
 * One dedicated connection for LISTEN. When it drops (a database restart, a
 * network blip) it is made again and every channel listened to anew, so that
 * status events keep flowing; notifications sent while it was down are lost,
 * which the scheduler's periodic sweep and the proxy's re-reads make up for.
 */
class PostgresNotifications {
  private readonly handlers = new Map<string, Set<NotificationHandler>>();
  private connection: Promise<pg.Client> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly driver: typeof pg,
    private readonly databaseUrl: string,
    private readonly logger: Logger,
  ) {}

  async listen(channel: string, handler: NotificationHandler): Promise<() => Promise<void>> {
    const client = await this.connect();
    let set = this.handlers.get(channel);
    if (!set) {
      set = new Set();
      this.handlers.set(channel, set);
      await client.query(`LISTEN ${this.driver.escapeIdentifier(channel)}`);
    }
    set.add(handler);
    return async () => {
      set.delete(handler);
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    const client = await this.connection?.catch(() => undefined);
    await client?.end().catch(() => undefined);
  }

  private connect(): Promise<pg.Client> {
    this.connection ??= this.open().catch((error: unknown) => {
      this.connection = undefined;
      throw error;
    });
    return this.connection;
  }

  private async open(): Promise<pg.Client> {
    const client = new this.driver.Client({ connectionString: this.databaseUrl });
    client.on('notification', (message) => {
      for (const handler of this.handlers.get(message.channel) ?? []) handler(message.payload ?? '');
    });
    let dropped = false;
    const drop = (error?: Error) => {
      if (dropped || this.closed) return;
      dropped = true;
      this.logger.warn({ err: error }, 'notification connection lost; listening again');
      this.connection = undefined;
      this.scheduleRelisten();
    };
    client.on('error', drop);
    client.on('end', () => drop());
    await client.connect();
    for (const channel of this.handlers.keys()) await client.query(`LISTEN ${this.driver.escapeIdentifier(channel)}`);
    return client;
  }

  private scheduleRelisten(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.connect().then(
        () => this.logger.info('notification connection back'),
        () => this.scheduleRelisten(),
      );
    }, RELISTEN_DELAY_MS);
  }
}

async function openPglite(dataDir: string): Promise<Storage> {
  await mkdir(dataDir, { recursive: true });
  const { PGlite } = await import('@electric-sql/pglite');
  const pglite = await PGlite.create({ dataDir });
  const db = new Kysely<Database>({ dialect: new PGliteDialect({ pglite }) });
  return {
    kind: 'pglite',
    db,
    async listen(channel, handler) {
      const unsubscribe = await pglite.listen(channel, handler);
      return unsubscribe;
    },
    async close() {
      await db.destroy();
    },
  };
}

async function migrateToLatest(db: Kysely<Database>, logger: Logger): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => MIGRATIONS },
  });
  const { error, results } = await migrator.migrateToLatest();
  for (const result of results ?? []) {
    if (result.status === 'Success') logger.info({ migration: result.migrationName }, 'migration applied');
    if (result.status === 'Error') logger.error({ migration: result.migrationName }, 'migration failed');
  }
  if (error) throw new Error('database migration failed', { cause: error });
}

/** SQLSTATE classes and codes that mean "the database is not there right now", not "the query is wrong". */
const UNAVAILABLE_SQLSTATES = /^(08|57P0[1-3]|53300)/;
const UNAVAILABLE_SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
const UNAVAILABLE_MESSAGES = /Connection terminated|connection error|timeout exceeded when trying to connect|Client was closed|not queryable|Connection ended/i;

/** True when an error (or one of its causes) says the database could not be reached. */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && (UNAVAILABLE_SOCKET_CODES.has(code) || UNAVAILABLE_SQLSTATES.test(code))) return true;
    if (UNAVAILABLE_MESSAGES.test(current.message)) return true;
    if (current instanceof AggregateError && current.errors.some((inner) => isDatabaseUnavailable(inner))) return true;
  }
  return false;
}
