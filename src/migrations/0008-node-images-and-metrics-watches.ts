import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // What each node's engine holds, reported with its heartbeat: an API process
  // reads images here and needs no engine of its own.
  await db.schema.alterTable('nodes').addColumn('images', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`)).execute();
  // A backend whose metrics someone streams, until when: its node samples it
  // once a second and announces each sample on a channel.
  await db.schema
    .createTable('metrics_watches')
    .addColumn('backend_id', 'text', (c) => c.primaryKey().references('backends.id').onDelete('cascade'))
    .addColumn('until', 'timestamptz', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('metrics_watches').execute();
  await db.schema.alterTable('nodes').dropColumn('images').execute();
}
