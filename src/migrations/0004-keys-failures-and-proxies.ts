import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // A key whose backend is terminating is free: only backends that still serve count.
  await sql`drop index backends_live_key`.execute(db);
  await sql`create unique index backends_live_key on backends (account_name, service_name, key)
            where key is not null and status not in ('terminating', 'hard-terminating', 'terminated')`.execute(db);
  await sql`create index backends_dying_key on backends (account_name, service_name, key)
            where key is not null and status in ('terminating', 'hard-terminating')`.execute(db);

  // Why a step happened, in one line a user can read (a failed start's cause).
  await db.schema.alterTable('backend_statuses').addColumn('message', 'text').execute();

  // Each proxy process reports its open connections with a heartbeat, so that the
  // sweeper never takes a late write for idleness and a dead proxy stops counting.
  await db.schema
    .createTable('proxies')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('heartbeat_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('proxy_connections')
    .addColumn('proxy_id', 'text', (c) => c.notNull().references('proxies.id').onDelete('cascade'))
    .addColumn('backend_id', 'text', (c) => c.notNull().references('backends.id').onDelete('cascade'))
    .addColumn('open_count', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('proxy_connections_pkey', ['proxy_id', 'backend_id'])
    .execute();
  await db.schema.createIndex('proxy_connections_by_backend').on('proxy_connections').column('backend_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('proxy_connections').execute();
  await db.schema.dropTable('proxies').execute();
  await db.schema.alterTable('backend_statuses').dropColumn('message').execute();
  await sql`drop index backends_dying_key`.execute(db);
  await sql`drop index backends_live_key`.execute(db);
  await sql`create unique index backends_live_key on backends (account_name, service_name, key)
            where key is not null and status <> 'terminated'`.execute(db);
}
