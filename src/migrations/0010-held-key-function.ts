import { sql, type Kysely } from 'kysely';

/**
 * The held-key connect (src/backends/connection-token.repository.ts,
 * joinHeldKeys) as a function: PL/pgSQL keeps the plan of its statement for
 * the session, where a statement sent from outside is planned again on every
 * call (PGlite has no named prepared statements). Same statement, same
 * answers; the planning was a third of a held-key connect's time on PGlite.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create function berth_join_held_keys(
      api_token_ids text[], account_names text[], service_names text[], keys text[],
      token_hashes text[], usernames text[], auths text[], touched_at timestamptz, touch_before timestamptz
    ) returns table (n int, api_token_live boolean, id text, status text, secret_token text)
    language plpgsql as $fn$
    #variable_conflict use_column
    begin
      return query
      with request as (
        select * from unnest(api_token_ids, account_names, service_names, keys, token_hashes, usernames, auths)
          with ordinality as r(api_token_id, account_name, service_name, key, token_hash, username, auth, n)
      ),
      checked as (
        select request.*, (request.api_token_id is null or exists (select 1 from api_tokens t where t.id = request.api_token_id)) as live
        from request
      ),
      held as (
        select checked.n, checked.live, checked.token_hash, checked.username, checked.auth, b.id, b.status, b.secret_token
        from checked left join backends b
          on checked.live and b.account_name = checked.account_name and b.service_name = checked.service_name and b.key = checked.key
          and b.status not in ('terminating', 'hard-terminating', 'terminated')
      ),
      minted as (
        insert into connection_tokens (token_hash, backend_id, username, auth)
        select held.token_hash, held.id, held.username, held.auth::jsonb from held where held.id is not null
      ),
      touched as (
        update backends set last_activity_at = touched_at
        where backends.id in (
          select b.id from backends b where b.id in (select held.id from held)
            and b.last_activity_at < touch_before for no key update of b skip locked
        )
      )
      select held.n::int, held.live, held.id::text, held.status::text, held.secret_token::text from held order by held.n;
    end
    $fn$`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop function berth_join_held_keys(text[], text[], text[], text[], text[], text[], text[], timestamptz, timestamptz)`.execute(db);
}
