import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // What containers wrote, kept past the container's removal for the log retention.
  await db.schema
    .createTable('backend_logs')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('backend_id', 'text', (c) => c.notNull().references('backends.id').onDelete('cascade'))
    .addColumn('time', 'timestamptz', (c) => c.notNull())
    .addColumn('stream', 'text', (c) => c.notNull())
    .addColumn('line', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('backend_logs_by_backend').on('backend_logs').columns(['backend_id', 'id']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('backend_logs').execute();
}
