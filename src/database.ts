import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PGliteDialect, PostgresDialect } from 'kysely';
import { Migrator } from 'kysely/migration';
import pg from 'pg';
import type { AccountTable, ApiTokenTable } from './accounts/account.table.ts';
import type { EnvironmentTable, ServiceTable } from './services/service.table.ts';
import type { BackendLogTable } from './logs/log.table.ts';
import type {
  BackendKeyTable,
  BackendStatusTable,
  BackendTable,
  ConnectionTokenTable,
  InstallationTable,
} from './backends/backend.table.ts';
import { MIGRATIONS } from './migrations/index.ts';
import type { Logger } from './logger.ts';

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
  const storage = options.databaseUrl
    ? openPostgres(options.databaseUrl, options.logger)
    : await openPglite(options.dataDir);
  try {
    await migrateToLatest(storage.db, options.logger);
  } catch (error) {
    await storage.close();
    throw error;
  }
  return storage;
}

function openPostgres(databaseUrl: string, logger: Logger): Storage {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
  // An idle client losing its connection must not crash berth; the pool replaces it.
  pool.on('error', (error) => logger.warn({ err: error }, 'idle database connection failed'));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  let listener: Promise<pg.Client> | undefined;
  const handlers = new Map<string, Set<NotificationHandler>>();

  const connectListener = async (): Promise<pg.Client> => {
    const client = new pg.Client({ connectionString: databaseUrl });
    client.on('error', (error) => logger.warn({ err: error }, 'notification connection failed'));
    client.on('notification', (message) => {
      for (const handler of handlers.get(message.channel) ?? []) handler(message.payload ?? '');
    });
    await client.connect();
    return client;
  };

  return {
    kind: 'postgres',
    db,
    async listen(channel, handler) {
      listener ??= connectListener();
      const client = await listener;
      let set = handlers.get(channel);
      if (!set) {
        set = new Set();
        handlers.set(channel, set);
        await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      }
      set.add(handler);
      return async () => {
        set.delete(handler);
      };
    },
    async close() {
      if (listener) await (await listener).end().catch(() => undefined);
      await db.destroy();
    },
  };
}

async function openPglite(dataDir: string): Promise<Storage> {
  await mkdir(dataDir, { recursive: true });
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
