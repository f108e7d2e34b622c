import { useState } from 'preact/hooks';
import type { NodeInfo } from '../../../client/index.ts';
import { formatAge } from '../format.ts';
import { errorMessage, useNow, usePoll } from '../hooks.ts';
import { useSession } from '../session.ts';

const NODES_POLL_MS = 3000;

export function NodesPage() {
  const { client, auth } = useSession();
  const now = useNow();
  const nodes = usePoll(() => (auth.is_admin ? client.nodes() : Promise.resolve([])), auth.is_admin ? NODES_POLL_MS : 0, [client]);
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState<string>();

  if (!auth.is_admin) {
    return (
      <section>
        <h1>Nodes</h1>
        <p>Nodes are shown to the admin token only.</p>
      </section>
    );
  }

  const setState = async (node: NodeInfo, state: 'draining' | 'ready') => {
    setBusy(node.name);
    setError(undefined);
    try {
      await client.setNodeState(node.name, state);
      nodes.reload();
    } catch (caught) {
      setError(errorMessage(caught));
    } finally {
      setBusy(undefined);
    }
  };

  return (
    <section>
      <div class="page-head">
        <h1>Nodes</h1>
      </div>
      {(error ?? nodes.error) && (
        <p class="error" role="alert">
          {error ?? errorMessage(nodes.error)}
        </p>
      )}
      <table class="nodes">
        <thead>
          <tr>
            <th>Name</th>
            <th>Address</th>
            <th>Status</th>
            <th>Engine</th>
            <th class="num">Live backends</th>
            <th class="num">Last heartbeat</th>
            <th class="num">Up for</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(nodes.data ?? []).map((node) => (
            <tr key={node.name} data-node={node.name}>
              <td class="mono">{node.name}</td>
              <td class="mono">{node.address}</td>
              <td>
                <span class={`badge ${node.status === 'ready' ? 'ok' : node.status === 'draining' ? 'stopping' : 'gone'}`} data-status={node.status}>
                  {node.status}
                </span>
              </td>
              <td>{node.engine.ok ? 'ok' : <span class="error">{node.engine.error ?? 'down'}</span>}</td>
              <td class="num">
                {node.live_backends}
                {/* 0 means no cap of its own. */}
                {node.capacity.max_backends > 0 && <span class="muted"> / {node.capacity.max_backends}</span>}
              </td>
              <td class="num">{formatAge(node.last_heartbeat, now)} ago</td>
              <td class="num">{formatAge(node.started_at, now)}</td>
              <td class="actions">
                {node.status === 'ready' && (
                  <button type="button" disabled={busy === node.name} onClick={() => void setState(node, 'draining')} title="No new backends here; running ones stay">
                    Drain
                  </button>
                )}
                {node.status === 'draining' && (
                  <button type="button" disabled={busy === node.name} onClick={() => void setState(node, 'ready')}>
                    Ready
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {nodes.data && nodes.data.length === 0 && <p class="empty">No node has registered yet.</p>}
    </section>
  );
}
