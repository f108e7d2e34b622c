import { sql, type Kysely, type Transaction } from 'kysely';
import { hashConnectionToken } from '../core/token-hash.ts';
import type { Database } from '../database.ts';
import type { BackendStatus } from '../core/backend-status.ts';
import type { BackendRow } from './backend.table.ts';

// Connection tokens: minting one for a backend, and connects for held keys in one statement.

/**
 * Mints a token for a running backend and counts the connect as activity, in
 * one statement: for the connect that finds the key held only once it holds
 * the key's lock (inside its transaction, so not batched like joinHeldKeys).
 */
export async function insertConnectionTokenAndTouch(db: Kysely<Database>, token: NewConnectionToken, at: Date): Promise<void> {
  await db
    .with('minted', (qb) => qb.insertInto('connection_tokens').values(connectionTokenRow(token)))
    .updateTable('backends')
    .set({ last_activity_at: at })
    .where('id', '=', token.backend_id)
    .where('last_activity_at', '<', at)
    .execute();
}

/** One connect for a held key: whose API token to check, which key, and the connection token to mint. */
export interface HeldKeyRequest {
  /** null: nothing to check (the admin token of the configuration has no row). */
  apiTokenId: string | null;
  accountName: string;
  serviceName: string;
  key: string;
  token: Omit<NewConnectionToken, 'backend_id'>;
}

/** What a held-key join found: whether the API token still exists, and the key's live backend (undefined when none). */
export interface HeldKeyJoin {
  apiTokenLive: boolean;
  backend: Pick<BackendRow, 'id' | 'status' | 'secret_token'> | undefined;
}

/**
 * Connects for held keys, any number in one statement (one round trip, one
 * commit): for each request it checks that the caller's API token still
 * exists, finds the key's live backend through the partial unique index,
 * mints the connection token for it and counts the connect as activity.
 * Nothing is written for a request unless both were found. Answers come in
 * the order of the requests.
 *
 * Activity: a connect within TOUCH_GRANULARITY_MS of the last recorded
 * activity writes none, and a connect that finds the backend's row locked by
 * another one's activity write leaves the write to it. Even so, one
 * statement's activity write and another's token insert (whose foreign-key
 * check locks the same row) can deadlock; PostgreSQL then rolls one statement
 * back whole, and it is sent again (HELD_KEY_ATTEMPTS).
 */
export async function joinHeldKeys(db: Kysely<Database>, requests: readonly HeldKeyRequest[], at: Date): Promise<HeldKeyJoin[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await joinHeldKeysOnce(db, requests, at);
    } catch (error) {
      if (attempt >= HELD_KEY_ATTEMPTS || !isDeadlock(error)) throw error;
    }
  }
}

/** Activity is kept to this precision on the held-key path: well under any max_idle_seconds (at least 1 s). */
const TOUCH_GRANULARITY_MS = 100;
const HELD_KEY_ATTEMPTS = 3;

function isDeadlock(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '40P01' || code === '40001';
}

async function joinHeldKeysOnce(db: Kysely<Database>, requests: readonly HeldKeyRequest[], at: Date): Promise<HeldKeyJoin[]> {
  const rows = requests.map((request) => connectionTokenRow({ ...request.token, backend_id: '' }));
  // The statement lives in the database (migration 0010), where its plan is kept between calls.
  const { rows: found } = await sql<{ n: number; api_token_live: boolean; id: string | null; status: BackendStatus | null; secret_token: string | null }>`
    select n, api_token_live, id, status, secret_token from berth_join_held_keys(
      ${requests.map((r) => r.apiTokenId)}::text[], ${requests.map((r) => r.accountName)}::text[],
      ${requests.map((r) => r.serviceName)}::text[], ${requests.map((r) => r.key)}::text[],
      ${rows.map((r) => r.token_hash)}::text[], ${rows.map((r) => r.username)}::text[], ${rows.map((r) => r.auth)}::text[],
      ${at}, ${new Date(at.getTime() - TOUCH_GRANULARITY_MS)}
    )`.execute(db);
  if (found.length !== requests.length) throw new Error(`joinHeldKeys: ${requests.length} requests, ${found.length} answers`);
  return found.map((row) => ({
    apiTokenLive: row.api_token_live,
    backend: row.id === null ? undefined : { id: row.id, status: row.status!, secret_token: row.secret_token! },
  }));
}

export async function insertConnectionToken(trx: Transaction<Database>, token: NewConnectionToken): Promise<void> {
  await trx.insertInto('connection_tokens').values(connectionTokenRow(token)).execute();
}

export interface NewConnectionToken {
  token: string;
  backend_id: string;
  username: string | null;
  auth: Record<string, unknown> | null;
}

/** Only the token's hash is written: the URL it is part of must not be readable from the database. */
function connectionTokenRow({ token, auth, ...rest }: NewConnectionToken) {
  return { ...rest, token_hash: hashConnectionToken(token), auth: auth === null ? null : JSON.stringify(auth) };
}
