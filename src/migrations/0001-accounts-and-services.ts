import { sql, type Kysely } from 'kysely';

// Migrations take Kysely<any>: they describe the schema at one point in time,
// not the current Database type.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('accounts')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('api_tokens')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_name', 'text', (c) => c.references('accounts.name').onDelete('cascade'))
    .addColumn('secret_hash', 'text', (c) => c.notNull())
    .addColumn('is_admin', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addCheckConstraint('api_tokens_owner', sql`is_admin or account_name is not null`)
    .execute();

  await db.schema
    .createTable('services')
    .addColumn('account_name', 'text', (c) => c.notNull().references('accounts.name').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('image_repository', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_spawned_at', 'timestamptz')
    .addPrimaryKeyConstraint('services_pkey', ['account_name', 'name'])
    .execute();

  await db.schema
    .createTable('environments')
    .addColumn('account_name', 'text', (c) => c.notNull())
    .addColumn('service_name', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('image_tag', 'text', (c) => c.notNull().defaultTo('latest'))
    .addColumn('cluster', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_spawned_at', 'timestamptz')
    .addPrimaryKeyConstraint('environments_pkey', ['account_name', 'service_name', 'name'])
    .addForeignKeyConstraint(
      'environments_service_fkey',
      ['account_name', 'service_name'],
      'services',
      ['account_name', 'name'],
      (c) => c.onDelete('cascade'),
    )
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('environments').execute();
  await db.schema.dropTable('services').execute();
  await db.schema.dropTable('api_tokens').execute();
  await db.schema.dropTable('accounts').execute();
}
