import type { Kysely } from 'kysely';
import type { WarmPoolSpec } from '../../scheduler/store.ts';
import type { Database } from '../database.ts';

/**
 * The environments that want warm containers, as a node sees them: none while
 * the node drains. An environment pinned to a digest is not kept warm (its
 * image reference is resolved per connect).
 */
export async function listWarmPools(db: Kysely<Database>, nodeName: string): Promise<WarmPoolSpec[]> {
  const node = await db.selectFrom('nodes').select('state').where('name', '=', nodeName).executeTakeFirst();
  if (node?.state === 'draining') return [];
  const rows = await db
    .selectFrom('environments as e')
    .innerJoin('services as s', (join) => join.onRef('s.account_name', '=', 'e.account_name').onRef('s.name', '=', 'e.service_name'))
    .select(['e.account_name', 'e.service_name', 'e.name', 'e.image_tag', 'e.warm_pool_size', 'e.warm_error_image', 's.image_repository', 's.container_user', 's.read_only_root', 's.cap_add'])
    .where('e.warm_pool_size', '>', 0)
    .where('e.image_tag', 'not like', 'sha256:%')
    .execute();
  return rows.map((row) => ({
    accountName: row.account_name,
    serviceName: row.service_name,
    environmentName: row.name,
    image: `${row.image_repository}:${row.image_tag}`,
    size: row.warm_pool_size,
    // The same settings connect freezes onto a backend of this service.
    security: {
      ...(row.container_user !== null ? { user: row.container_user } : {}),
      ...(row.read_only_root ? { readOnlyRoot: true } : {}),
      ...(row.cap_add.length > 0 ? { capAdd: row.cap_add } : {}),
    },
    notWarmableImage: row.warm_error_image,
  }));
}

export async function markNotWarmable(
  db: Kysely<Database>,
  pool: { accountName: string; serviceName: string; environmentName: string },
  image: string,
  reason: string,
): Promise<void> {
  await db
    .updateTable('environments')
    .set({ warm_error: reason.slice(0, 1000), warm_error_image: image })
    .where('account_name', '=', pool.accountName)
    .where('service_name', '=', pool.serviceName)
    .where('name', '=', pool.environmentName)
    .execute();
}
