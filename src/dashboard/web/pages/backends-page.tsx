import { useMemo, useState } from 'preact/hooks';
import { BACKEND_STATUSES, type BackendStatusName, type BackendSummary, type BerthClient } from '../../../client/index.ts';
import { StatusBadge } from '../components/status-badge.tsx';
import { formatAge, formatBytes } from '../format.ts';
import { errorMessage, useNow, usePoll } from '../hooks.ts';
import { useLiveStatuses, type LiveStatus } from '../live-statuses.ts';
import { Link } from '../router.tsx';
import { runningAndEndedBackends } from '../seen-backends.ts';
import { useSession } from '../session.ts';

/** New backends show up within this long; statuses move at once through their streams. */
const LIST_POLL_MS = 2000;
const ANY = '';
const LIVE = 'live';

interface Row extends BackendSummary {
  live?: LiveStatus;
}

export function BackendsPage() {
  const { client, auth } = useSession();
  const [service, setService] = useState(ANY);
  const [statusFilter, setStatusFilter] = useState(ANY);
  const now = useNow();

  const services = usePoll(() => listServices(client, auth.accounts), 10_000, [client]);
  const list = usePoll(
    async () => {
      const [account, name] = service.split('/');
      return account && name ? client.serviceBackends(account, name) : runningAndEndedBackends(client, auth.accounts);
    },
    LIST_POLL_MS,
    [client, service],
  );

  const backends = useMemo(() => [...(list.data ?? [])].sort((a, b) => b.created_at.localeCompare(a.created_at)), [list.data]);
  // Those still on their way to ready are the ones worth a stream first.
  const toFollow = useMemo(
    () => [...backends.filter((b) => b.status.status !== 'ready'), ...backends.filter((b) => b.status.status === 'ready')].filter((b) => b.status.status !== 'terminated').map((b) => b.id),
    [backends],
  );
  const live = useLiveStatuses(client, toFollow);

  const rows: Row[] = backends.map((backend) => ({ ...backend, live: live.get(backend.id) }));
  const shown = rows.filter((row) => matchesStatus(currentStatus(row), statusFilter));

  return (
    <section>
      <div class="page-head">
        <h1>Backends</h1>
        <div class="filters">
          <label>
            Service
            <select name="service" value={service} onChange={(event) => setService(event.currentTarget.value)}>
              <option value={ANY}>All services (running)</option>
              {(services.data ?? []).map((name) => (
                <option key={name} value={name}>
                  {name}
                </option>
              ))}
            </select>
          </label>
          <label>
            Status
            <select name="status" value={statusFilter} onChange={(event) => setStatusFilter(event.currentTarget.value)}>
              <option value={ANY}>Any</option>
              <option value={LIVE}>Not terminated</option>
              {BACKEND_STATUSES.map((status) => (
                <option key={status} value={status}>
                  {status}
                </option>
              ))}
            </select>
          </label>
        </div>
      </div>
      {list.error && (
        <p class="error" role="alert">
          {errorMessage(list.error)}
        </p>
      )}
      <table class="backends">
        <thead>
          <tr>
            <th>Backend</th>
            <th>Service</th>
            <th>Key</th>
            <th>Status</th>
            <th>Node</th>
            <th class="num">Age</th>
            <th class="num" title="Highest memory use sampled so far">Memory</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((row) => (
            <tr key={row.id} data-backend-id={row.id}>
              <td>
                <Link to={`/backends/${row.id}`} class="mono">
                  {row.id}
                </Link>
              </td>
              <td>
                {row.account_name}/{row.service_name}
                {row.environment_name !== 'default' && <span class="muted"> ({row.environment_name})</span>}
              </td>
              <td class="mono">{row.key ?? <span class="muted">—</span>}</td>
              <td class="status-cell">
                <StatusBadge status={currentStatus(row)} />
                {row.live && row.live.trail.length > 1 && <span class="trail">{row.live.trail.join(' → ')}</span>}
              </td>
              <td>{row.node ?? <span class="muted">—</span>}</td>
              <td class="num">{formatAge(row.created_at, now)}</td>
              <td class="num">{formatBytes(row.max_mem_bytes)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.data && shown.length === 0 && <p class="empty">No backends {statusFilter || service ? 'match these filters' : 'are running'}.</p>}
    </section>
  );
}

/** The stream's word when there is one (it is newer), else the list's. */
function currentStatus(row: Row): BackendStatusName {
  return row.live?.status ?? row.status.status;
}

function matchesStatus(status: BackendStatusName, filter: string): boolean {
  if (filter === ANY) return true;
  if (filter === LIVE) return status !== 'terminated';
  return status === filter;
}

async function listServices(client: BerthClient, accounts: string[]): Promise<string[]> {
  const perAccount = await Promise.all(accounts.map(async (account) => (await client.services.list(account)).map((name) => `${account}/${name}`)));
  return perAccount.flat().sort();
}
