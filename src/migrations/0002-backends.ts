import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // One row: the id of this installation, written on every container label so
  // that berth never adopts or removes containers of another installation.
  await db.schema
    .createTable('installation')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('backends')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_name', 'text', (c) => c.notNull())
    .addColumn('service_name', 'text', (c) => c.notNull())
    .addColumn('environment_name', 'text', (c) => c.notNull())
    .addColumn('cluster', 'text', (c) => c.notNull())
    .addColumn('key', 'text')
    .addColumn('fencing_token', 'bigint')
    .addColumn('image', 'text', (c) => c.notNull())
    .addColumn('image_digest', 'text')
    .addColumn('secret_token', 'text', (c) => c.notNull())
    .addColumn('max_idle_seconds', 'integer', (c) => c.notNull())
    .addColumn('lifetime_limit_seconds', 'integer')
    .addColumn('env', 'jsonb', (c) => c.notNull())
    .addColumn('mount', 'jsonb')
    .addColumn('resource_limits', 'jsonb', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('status_time', 'timestamptz', (c) => c.notNull())
    .addColumn('container_id', 'text')
    .addColumn('host_port', 'integer')
    .addColumn('last_activity_at', 'timestamptz', (c) => c.notNull())
    .addColumn('max_mem_bytes', 'bigint')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addForeignKeyConstraint('backends_service_fkey', ['account_name', 'service_name'], 'services', ['account_name', 'name'], (c) =>
      c.onDelete('cascade'),
    )
    .execute();
  // The database, not a lock in some process, guarantees one live backend per key.
  await sql`create unique index backends_live_key on backends (account_name, service_name, key)
            where key is not null and status <> 'terminated'`.execute(db);
  await sql`create index backends_live on backends (status) where status <> 'terminated'`.execute(db);
  await db.schema.createIndex('backends_by_service').on('backends').columns(['account_name', 'service_name', 'created_at']).execute();

  await db.schema
    .createTable('backend_statuses')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('backend_id', 'text', (c) => c.notNull().references('backends.id').onDelete('cascade'))
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('time', 'timestamptz', (c) => c.notNull())
    .addColumn('last_status', 'text')
    .addColumn('termination_reason', 'text')
    .addColumn('termination_kind', 'text')
    .addColumn('exit_error', 'boolean')
    .addColumn('exit_code', 'integer')
    .execute();
  await db.schema.createIndex('backend_statuses_by_backend').on('backend_statuses').columns(['backend_id', 'id']).execute();

  // The fencing token of a key rises every time the key goes to a new backend;
  // the row is also what concurrent connects for one key lock on.
  await db.schema
    .createTable('backend_keys')
    .addColumn('account_name', 'text', (c) => c.notNull())
    .addColumn('service_name', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('fencing_token', 'bigint', (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('backend_keys_pkey', ['account_name', 'service_name', 'key'])
    .addForeignKeyConstraint('backend_keys_service_fkey', ['account_name', 'service_name'], 'services', ['account_name', 'name'], (c) =>
      c.onDelete('cascade'),
    )
    .execute();

  // One row per connect: the token in the URL, bound to that connect's user and auth.
  await db.schema
    .createTable('connection_tokens')
    .addColumn('token', 'text', (c) => c.primaryKey())
    .addColumn('backend_id', 'text', (c) => c.notNull().references('backends.id').onDelete('cascade'))
    .addColumn('username', 'text')
    .addColumn('auth', 'jsonb')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('connection_tokens_by_backend').on('connection_tokens').column('backend_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['connection_tokens', 'backend_keys', 'backend_statuses', 'backends', 'installation']) {
    await db.schema.dropTable(table).execute();
  }
}
