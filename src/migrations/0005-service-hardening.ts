import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // Set by the admin per service; copied onto each backend at connect, so a
  // change applies to new backends only and a re-spawn runs as it was asked.
  await db.schema
    .alterTable('services')
    .addColumn('container_user', 'text')
    .addColumn('read_only_root', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('cap_add', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .execute();
  await db.schema
    .alterTable('backends')
    .addColumn('container_security', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .execute();
  // The per-account cap counts live backends of one account at every new spawn.
  await sql`create index backends_live_by_account on backends (account_name) where status <> 'terminated'`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index backends_live_by_account`.execute(db);
  await db.schema.alterTable('backends').dropColumn('container_security').execute();
  await db.schema.alterTable('services').dropColumn('container_user').dropColumn('read_only_root').dropColumn('cap_add').execute();
}
