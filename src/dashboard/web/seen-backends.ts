import type { BackendSummary, BerthClient } from '../../client/index.ts';

/**
 * Backends this tab has listed, kept after they leave the running list so that
 * an ending shows as `terminated` instead of a row that silently vanishes,
 * also after a visit to another page. Gone when the tab closes.
 */
const seen = new Map<string, BackendSummary>();

export function forgetSeenBackends(): void {
  seen.clear();
}

/**
 * The accounts' running backends, then those seen earlier that are no longer
 * running, each with its latest status (asked once more until it reads
 * `terminated`; the public status endpoint costs no token quota).
 */
export async function runningAndEndedBackends(client: BerthClient, accounts: string[]): Promise<BackendSummary[]> {
  const running = (await Promise.all(accounts.map((account) => client.runningBackends(account)))).flat();
  for (const backend of running) seen.set(backend.id, backend);
  const runningIds = new Set(running.map((backend) => backend.id));
  const ended = [...seen.values()].filter((backend) => !runningIds.has(backend.id) && accounts.includes(backend.account_name));
  await Promise.all(
    ended
      .filter((backend) => backend.status.status !== 'terminated')
      .map(async (backend) => {
        const latest = await client.status(backend.id).catch(() => undefined);
        if (latest) seen.set(backend.id, { ...backend, status: { status: latest.status, time: latest.time } });
      }),
  );
  return [...running, ...ended.map((backend) => seen.get(backend.id)!)];
}
