import { useEffect, useState } from 'preact/hooks';
import { BACKEND_STATUSES, isBackendNotRunning, type BackendInfo, type BackendStatusRecord } from '../../../client/index.ts';
import { LineChart } from '../components/line-chart.tsx';
import { LogView } from '../components/log-view.tsx';
import { StatusBadge } from '../components/status-badge.tsx';
import { formatBytes, formatDateTime, formatTime, shortDigest } from '../format.ts';
import { errorMessage, usePoll } from '../hooks.ts';
import { Link } from '../router.tsx';
import { useSession } from '../session.ts';
import { useLogLines, useMetrics } from '../streams.ts';

const CHART_WINDOW_MS = 120_000;

export function BackendPage({ id }: { id: string }) {
  const { client } = useSession();
  const info = usePoll((signal) => fetchBackend(id, signal), 0, [client, id]);
  const [history, setHistory] = useState<BackendStatusRecord[]>([]);
  const latest = history[history.length - 1]?.status;
  const ended = latest === 'terminated';

  async function fetchBackend(backendId: string, signal: AbortSignal): Promise<BackendInfo> {
    const backend = await client.backend(backendId);
    if (!signal.aborted) setHistory(backend.statuses);
    return backend;
  }

  // Live statuses after the recorded ones; `terminated` is read again in full for its exit code and message.
  useEffect(() => {
    if (!info.data || ended) return;
    const controller = new AbortController();
    void (async () => {
      try {
        for await (const status of client.statusStream(id, { signal: controller.signal })) {
          setHistory((current) => (current.some((step) => step.status === status.status) ? current : [...current, status]));
          if (status.status === 'terminated') info.reload();
        }
      } catch {
        // The history shown stays; a reload of the page follows again.
      }
    })();
    return () => controller.abort();
  }, [client, id, info.data, ended]);

  const logs = useLogLines(client, id);
  const metrics = useMetrics(client, id, info.data !== undefined && !ended);

  if (info.error) {
    return (
      <section>
        <h1>Backend {id}</h1>
        <p class="error" role="alert">
          {errorMessage(info.error)}
        </p>
        <Link to="/">Back to the backends</Link>
      </section>
    );
  }
  const backend = info.data;
  if (!backend) return <p class="loading">Loading backend {id}…</p>;

  return (
    <section class="backend">
      <div class="page-head">
        <h1>
          Backend <span class="mono">{backend.id}</span> {latest && <StatusBadge status={latest} />}
        </h1>
        <TerminateButton id={id} disabled={latest === undefined || BACKEND_STATUSES.indexOf(latest) >= BACKEND_STATUSES.indexOf('terminating')} />
      </div>
      <dl class="facts">
        <dt>Service</dt>
        <dd>
          {backend.account_name}/{backend.service_name} <span class="muted">({backend.environment_name})</span>
        </dd>
        <dt>Key</dt>
        <dd class="mono">{backend.key ?? '—'}</dd>
        <dt>Node</dt>
        <dd>{backend.node ?? '—'}</dd>
        <dt>Image</dt>
        <dd class="mono" title={backend.image_digest ?? undefined}>
          {shortDigest(backend.image_digest)}
        </dd>
        <dt>Created</dt>
        <dd>{formatDateTime(backend.created_at)}</dd>
        <dt>Peak memory</dt>
        <dd>{formatBytes(backend.max_mem_bytes)}</dd>
      </dl>

      <div class="columns">
        <div>
          <h2>Status history</h2>
          <ol class="history">
            {history.map((step) => (
              <li key={step.status} data-status={step.status}>
                <time dateTime={step.time}>{formatTime(step.time)}</time> <StatusBadge status={step.status} />
                {step.termination_reason && <span class="muted"> {step.termination_reason}</span>}
                {step.termination_kind && <span class="muted"> ({step.termination_kind})</span>}
                {step.exit_code !== undefined && step.exit_code !== null && <span class="muted"> exit code {step.exit_code}</span>}
                {step.message && <div class="message">{step.message}</div>}
              </li>
            ))}
          </ol>
        </div>
        <div class="charts">
          <h2>Resources</h2>
          <LineChart title="CPU (% of one core)" testId="cpu-chart" points={metrics.cpu} format={(v) => `${v.toFixed(v < 10 ? 1 : 0)} %`} minTop={10} windowMs={CHART_WINDOW_MS} />
          <LineChart
            title={`Memory${metrics.memoryLimit ? ` (limit ${formatBytes(metrics.memoryLimit)})` : ''}`}
            testId="memory-chart"
            points={metrics.memory}
            format={(mib) => `${mib < 10 ? mib.toFixed(1) : Math.round(mib)} MiB`}
            minTop={1}
            windowMs={CHART_WINDOW_MS}
          />
          {ended && <p class="muted">The backend has terminated: no more samples.</p>}
        </div>
      </div>

      <h2>Logs</h2>
      <LogView lines={logs} />
    </section>
  );
}

/** Two steps, so a stray click ends nothing. */
function TerminateButton({ id, disabled }: { id: string; disabled: boolean }) {
  const { client } = useSession();
  const [asking, setAsking] = useState(false);
  const [error, setError] = useState<string>();
  const [sent, setSent] = useState(false);

  const terminate = async (hard: boolean) => {
    setAsking(false);
    setError(undefined);
    try {
      await client.terminate(id, { hard });
      setSent(true);
    } catch (caught) {
      // Someone else ended it first: the status history says so.
      if (!isBackendNotRunning(caught)) setError(errorMessage(caught));
    }
  };

  if (disabled || sent) {
    return (
      <button type="button" class="danger" disabled>
        Terminate
      </button>
    );
  }
  return (
    <div class="terminate">
      {asking ? (
        <>
          <span>End this backend?</span>
          <button type="button" class="danger" onClick={() => void terminate(false)}>
            Yes, terminate
          </button>
          <button type="button" class="quiet" onClick={() => void terminate(true)} title="SIGKILL at once instead of SIGTERM first">
            Hard
          </button>
          <button type="button" class="quiet" onClick={() => setAsking(false)}>
            Cancel
          </button>
        </>
      ) : (
        <button type="button" class="danger" onClick={() => setAsking(true)}>
          Terminate
        </button>
      )}
      {error && (
        <span class="error" role="alert">
          {error}
        </span>
      )}
    </div>
  );
}
