import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // Every scheduler process is a node: it registers here and heartbeats with
  // what it can do. A node past its lease is lost (computed, not stored).
  await db.schema
    .createTable('nodes')
    .addColumn('name', 'text', (c) => c.primaryKey())
    /** Where proxies reach the ports this node publishes. */
    .addColumn('address', 'text', (c) => c.notNull())
    /** `ready` or `draining`; set by the node at start and by an admin's drain. */
    .addColumn('state', 'text', (c) => c.notNull().defaultTo('ready'))
    .addColumn('last_heartbeat', 'timestamptz', (c) => c.notNull())
    .addColumn('started_at', 'timestamptz', (c) => c.notNull())
    /** Whether its engine answered at the last heartbeat, and why not. */
    .addColumn('engine_ok', 'boolean', (c) => c.notNull())
    .addColumn('engine_error', 'text')
    /** The limits its engine can enforce (EngineCapabilities). */
    .addColumn('capabilities', 'jsonb', (c) => c.notNull())
    .addColumn('capacity', 'jsonb', (c) => c.notNull())
    .execute();

  await db.schema.alterTable('backends').addColumn('node_name', 'text').execute();
  await db.schema.alterTable('backends').addColumn('host_address', 'text').execute();
  await sql`create index backends_live_by_node on backends (node_name) where status <> 'terminated'`.execute(db);
  // `host:port` on the step that published the backend's port, so a proxy needs no query to route it.
  await db.schema.alterTable('backend_statuses').addColumn('address', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('backend_statuses').dropColumn('address').execute();
  await sql`drop index backends_live_by_node`.execute(db);
  await db.schema.alterTable('backends').dropColumn('host_address').execute();
  await db.schema.alterTable('backends').dropColumn('node_name').execute();
  await db.schema.dropTable('nodes').execute();
}
