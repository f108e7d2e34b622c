import { sql, type Kysely, type Transaction } from 'kysely';
import { hashConnectionToken } from '../core/token-hash.ts';
import type { Database } from '../database.ts';
import type { BackendStatus } from '../core/backend-status.ts';
import type { BackendRow } from './backend.table.ts';

// Connection tokens: minting one for a backend, and connect for a held key in one statement.

/**
 * Mints a token for a running backend and counts the connect as activity, in
 * one statement: the held-key path of connect is this and one indexed read.
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

/** What `joinHeldKey` found: whether the API token still exists, and the key's live backend (undefined when none). */
export interface HeldKeyJoin {
  apiTokenLive: boolean;
  backend: Pick<BackendRow, 'id' | 'status' | 'secret_token'> | undefined;
}

/**
 * Connect for a held key in one statement (one round trip): checks that the
 * caller's API token still exists (`apiTokenId` null: nothing to check, the
 * admin token of the configuration has no row), finds the key's live backend
 * through the partial unique index, mints the connection token for it and
 * counts the connect as activity. Nothing is written unless both were found.
 * Concurrent connects to one backend would queue on its row to write nearly
 * the same time, one commit after another: a connect that finds the row
 * locked by another one's activity write leaves the write to it, and a
 * connect within TOUCH_GRANULARITY_MS of the last recorded activity writes
 * none. Even so, one connect's activity write and another's token insert
 * (whose foreign-key check locks the same row) can deadlock; PostgreSQL then
 * rolls one statement back whole, and it is sent again (HELD_KEY_ATTEMPTS).
 */
export async function joinHeldKey(
  db: Kysely<Database>,
  apiTokenId: string | null,
  key: { accountName: string; serviceName: string; key: string },
  token: Omit<NewConnectionToken, 'backend_id'>,
  at: Date,
): Promise<HeldKeyJoin> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await joinHeldKeyOnce(db, apiTokenId, key, token, at);
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

async function joinHeldKeyOnce(
  db: Kysely<Database>,
  apiTokenId: string | null,
  key: { accountName: string; serviceName: string; key: string },
  token: Omit<NewConnectionToken, 'backend_id'>,
  at: Date,
): Promise<HeldKeyJoin> {
  const row = connectionTokenRow({ ...token, backend_id: '' });
  const tokenLive = apiTokenId === null ? sql`true` : sql`exists (select 1 from api_tokens where id = ${apiTokenId})`;
  const { rows } = await sql<{ api_token_live: boolean; id: string | null; status: BackendStatus | null; secret_token: string | null }>`
    with caller as (select ${tokenLive} as live),
    held as (
      select b.id, b.status, b.secret_token from backends b, caller
      where caller.live and b.account_name = ${key.accountName} and b.service_name = ${key.serviceName} and b.key = ${key.key}
        and b.status not in ('terminating', 'hard-terminating', 'terminated')
    ),
    minted as (
      insert into connection_tokens (token_hash, backend_id, username, auth)
      select ${row.token_hash}, held.id, ${row.username}, ${row.auth}::jsonb from held
    ),
    touched as (
      update backends set last_activity_at = ${at}
      where id in (
        select b.id from backends b join held on b.id = held.id
        where b.last_activity_at < ${new Date(at.getTime() - TOUCH_GRANULARITY_MS)} for no key update of b skip locked
      )
    )
    select caller.live as api_token_live, held.id, held.status, held.secret_token from caller left join held on true`.execute(db);
  const found = rows[0];
  if (!found) throw new Error('joinHeldKey: the statement returned no row');
  return {
    apiTokenLive: found.api_token_live,
    backend: found.id === null ? undefined : { id: found.id, status: found.status!, secret_token: found.secret_token! },
  };
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
