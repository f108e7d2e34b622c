import { sql, type Kysely } from 'kysely';
import type { EngineImage } from '../../scheduler/engine.ts';
import type { NodeHeartbeatRecord } from '../../scheduler/store.ts';
import type { Database } from '../database.ts';
import type { NodeCapacity, NodeRow, NodeState } from './node.table.ts';


/**
 * Registers the node or renews its lease. A drain outlives restarts (it is an
 * operator's decision); `startedAt` marks a (re)start.
 */
export async function writeNodeHeartbeat(db: Kysely<Database>, beat: NodeHeartbeatRecord, startedAt?: Date): Promise<void> {
  const values = {
    address: beat.address,
    last_heartbeat: beat.at,
    engine_ok: beat.engineOk,
    engine_error: beat.engineError,
    capabilities: JSON.stringify(beat.capabilities),
    capacity: JSON.stringify(beat.capacity),
    ...(beat.images ? { images: JSON.stringify(beat.images) } : {}),
  };
  await db
    .insertInto('nodes')
    .values({ name: beat.name, state: 'ready', started_at: startedAt ?? beat.at, images: '[]', ...values })
    .onConflict((oc) => oc.column('name').doUpdateSet(startedAt ? { ...values, started_at: startedAt } : values))
    .execute();
}

export type NodeWithLoad = NodeRow & { live_backends: number };

/** Every node with how many live backends it holds. */
export async function listNodesWithLoad(db: Kysely<Database>): Promise<NodeWithLoad[]> {
  const rows = await db
    .selectFrom('nodes as n')
    .selectAll('n')
    .select((eb) =>
      eb
        .selectFrom('backends as b')
        .select(eb.fn.countAll<string>().as('count'))
        .whereRef('b.node_name', '=', 'n.name')
        .where('b.status', '<>', 'terminated')
        .as('live_backends'),
    )
    .orderBy('n.name')
    .execute();
  return rows.map((row) => ({ ...row, live_backends: Number(row.live_backends ?? 0) }));
}

export async function setNodeState(db: Kysely<Database>, name: string, state: NodeState): Promise<boolean> {
  const result = await db.updateTable('nodes').set({ state }).where('name', '=', name).executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/** Live backends of nodes whose lease ran out before `before`. */
export async function listBackendsOfLostNodes(db: Kysely<Database>, before: Date): Promise<Array<{ id: string; node_name: string }>> {
  const rows = await db
    .selectFrom('backends as b')
    .innerJoin('nodes as n', 'n.name', 'b.node_name')
    .select(['b.id', 'n.name as node_name'])
    .where('b.status', '<>', 'terminated')
    .where('n.last_heartbeat', '<', sql<Date>`${before}::timestamptz`)
    .execute();
  return rows.map((row) => ({ id: row.id, node_name: row.node_name }));
}

/** The images of every node alive since `since`. */
export async function listLiveNodeImages(db: Kysely<Database>, since: Date): Promise<EngineImage[]> {
  const rows = await db.selectFrom('nodes').select('images').where('last_heartbeat', '>=', sql<Date>`${since}::timestamptz`).execute();
  return rows.flatMap((row) => row.images);
}

/** Whether any node alive since `since` has an engine that answered; the first error otherwise. */
export async function findLiveEngines(db: Kysely<Database>, since: Date): Promise<{ ok: number; error: string | null }> {
  const rows = await db
    .selectFrom('nodes')
    .select(['engine_ok', 'engine_error'])
    .where('last_heartbeat', '>=', sql<Date>`${since}::timestamptz`)
    .execute();
  return { ok: rows.filter((row) => row.engine_ok).length, error: rows.find((row) => !row.engine_ok)?.engine_error ?? null };
}

/** Streams metrics of a backend until `until`: its node samples it while the watch lasts. */
export async function watchMetrics(db: Kysely<Database>, backendId: string, until: Date): Promise<void> {
  await db
    .insertInto('metrics_watches')
    .values({ backend_id: backendId, until })
    .onConflict((oc) => oc.column('backend_id').doUpdateSet({ until: sql<Date>`greatest(metrics_watches.until, excluded.until)` }))
    .execute();
}

/** Backends whose metrics someone streams right now. */
export async function listWatchedBackends(db: Kysely<Database>, now: Date): Promise<string[]> {
  const rows = await db.selectFrom('metrics_watches').select('backend_id').where('until', '>', sql<Date>`${now}::timestamptz`).execute();
  return rows.map((row) => row.backend_id);
}

/** Channel on which nodes announce each metrics sample of a watched backend. */
export const METRICS_CHANNEL = 'berth_backend_metrics';

export async function publishMetricsSample(db: Kysely<Database>, payload: string): Promise<void> {
  await sql`select pg_notify(${METRICS_CHANNEL}, ${payload})`.execute(db);
}
