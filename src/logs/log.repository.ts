import { sql, type Kysely } from 'kysely';
import type { LogLine } from '../../scheduler/engine.ts';
import type { Database } from '../database.ts';
import type { BackendLogRow } from './log.table.ts';

/** Channel that announces "new lines for backend X" (the payload is the backend id). */
export const LOG_CHANNEL = 'berth_backend_logs';

export async function insertLogLines(db: Kysely<Database>, backendId: string, lines: LogLine[]): Promise<void> {
  if (lines.length === 0) return;
  await db.transaction().execute(async (trx) => {
    await trx
      .insertInto('backend_logs')
      .values(lines.map((line) => ({ backend_id: backendId, time: line.time, stream: line.stream, line: storableText(line.line) })))
      .execute();
    await sql`select pg_notify(${LOG_CHANNEL}, ${backendId})`.execute(trx);
  });
}

/** NUL and lone surrogates replaced by U+FFFD: PostgreSQL's text refuses the first, UTF-8 cannot carry the second, and either would fail the whole batch. */
const UNSTORABLE = /\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

export function storableText(text: string): string {
  return text.replace(UNSTORABLE, '\uFFFD');
}

export async function listLogLines(db: Kysely<Database>, backendId: string, afterId: number, limit: number): Promise<BackendLogRow[]> {
  return db
    .selectFrom('backend_logs')
    .selectAll()
    .where('backend_id', '=', backendId)
    .where('id', '>', String(afterId) as unknown as number)
    .orderBy('id')
    .limit(limit)
    .execute();
}

export async function latestLogTime(db: Kysely<Database>, backendId: string): Promise<Date | undefined> {
  const row = await db
    .selectFrom('backend_logs')
    .select('time')
    .where('backend_id', '=', backendId)
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row?.time;
}

/** Drops the lines of backends terminated before `before`; resolves to how many went. */
export async function deleteExpiredLogLines(db: Kysely<Database>, before: Date): Promise<number> {
  const result = await db
    .deleteFrom('backend_logs')
    .where('backend_id', 'in', (eb) =>
      eb.selectFrom('backends').select('backends.id').where('backends.status', '=', 'terminated').where('backends.status_time', '<', before),
    )
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
