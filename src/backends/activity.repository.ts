import { sql, type Kysely } from 'kysely';
import type { ActivityReport } from '../../proxy/activity.ts';
import type { Database } from '../database.ts';


/**
 * One transaction: the heartbeat, this proxy's open connections replacing its
 * previous ones, and last_activity_at (never moved backwards) of what it touched.
 */
export async function writeActivityReport(db: Kysely<Database>, report: ActivityReport): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx
      .insertInto('proxies')
      .values({ id: report.proxyId, heartbeat_at: report.at })
      .onConflict((oc) => oc.column('id').doUpdateSet({ heartbeat_at: report.at }))
      .execute();
    await trx.deleteFrom('proxy_connections').where('proxy_id', '=', report.proxyId).execute();
    if (report.open.size > 0) {
      // Only backends that still exist: a row of one pruned meanwhile would fail the whole report.
      const ids = [...report.open.keys()];
      const existing = await trx.selectFrom('backends').select('id').where('id', 'in', ids).execute();
      const rows = existing.map(({ id }) => ({ proxy_id: report.proxyId, backend_id: id, open_count: report.open.get(id) ?? 0 }));
      if (rows.length > 0) await trx.insertInto('proxy_connections').values(rows).execute();
    }
    if (report.touched.length > 0) {
      await trx
        .updateTable('backends')
        .set({ last_activity_at: report.at })
        .where('id', 'in', report.touched)
        .where('last_activity_at', '<', report.at)
        .execute();
    }
  });
}

/** A proxy that stops cleanly leaves at once, so that it does not hold back sweeping for a lease. */
export async function deleteProxy(db: Kysely<Database>, proxyId: string): Promise<void> {
  await db.deleteFrom('proxies').where('id', '=', proxyId).execute();
}

/** Proxies whose heartbeat is older than the lease are dead: their rows only clutter. */
export async function deleteDeadProxies(db: Kysely<Database>, before: Date): Promise<void> {
  await db.deleteFrom('proxies').where('heartbeat_at', '<', sql<Date>`${before}::timestamptz`).execute();
}
