import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // Pre-started containers a node keeps per environment, and why an image cannot be kept warm.
  await db.schema.alterTable('environments').addColumn('warm_pool_size', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  await db.schema.alterTable('environments').addColumn('warm_error', 'text').execute();
  /** The image reference the error is about: a new image is tried again. */
  await db.schema.alterTable('environments').addColumn('warm_error_image', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const column of ['warm_error_image', 'warm_error', 'warm_pool_size']) await db.schema.alterTable('environments').dropColumn(column).execute();
}
