import { sql, type Kysely } from 'kysely';

/**
 * Connection tokens are kept only as their SHA-256 (src/core/token-hash.ts):
 * existing rows are hashed in place, so URLs handed out before still work.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('connection_tokens').addColumn('token_hash', 'text').execute();
  await sql`update connection_tokens set token_hash = encode(sha256(convert_to(token, 'UTF8')), 'hex')`.execute(db);
  // Dropping the column drops its primary key with it.
  await db.schema.alterTable('connection_tokens').dropColumn('token').execute();
  await db.schema.alterTable('connection_tokens').alterColumn('token_hash', (c) => c.setNotNull()).execute();
  await db.schema.alterTable('connection_tokens').addPrimaryKeyConstraint('connection_tokens_pkey', ['token_hash']).execute();
}

/** A hash cannot be turned back into its token: going down forgets every connection token. */
export async function down(db: Kysely<any>): Promise<void> {
  await db.deleteFrom('connection_tokens').execute();
  await db.schema.alterTable('connection_tokens').dropColumn('token_hash').execute();
  await db.schema.alterTable('connection_tokens').addColumn('token', 'text', (c) => c.primaryKey()).execute();
}
