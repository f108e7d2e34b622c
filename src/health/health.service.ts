import { sql, type Kysely } from 'kysely';
import type { EngineReader } from '../../scheduler/engine.ts';
import { BACKEND_STATUSES, type BackendStatus } from '../core/backend-status.ts';
import { countBackendsByStatus } from '../backends/backend.repository.ts';
import type { Database } from '../database.ts';
import { VERSION } from '../version.ts';

export interface ComponentHealth {
  status: 'ok' | 'down';
  error?: string;
}

export interface HealthReport {
  status: 'ok' | 'degraded';
  components: { database: ComponentHealth; docker: ComponentHealth };
  version: string;
  uptime: string;
  uptime_seconds: number;
  backends: Record<BackendStatus, number>;
}

const CHECK_TIMEOUT_MS = 3000;

export class HealthService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly engine: Pick<EngineReader, 'ping'>,
    private readonly startedAt: Date,
  ) {}

  async report(): Promise<HealthReport> {
    const [database, docker] = await Promise.all([
      check(() => sql`select 1`.execute(this.db)),
      check(() => this.engine.ping()),
    ]);
    const uptimeSeconds = Math.floor((Date.now() - this.startedAt.getTime()) / 1000);
    return {
      status: database.status === 'ok' && docker.status === 'ok' ? 'ok' : 'degraded',
      components: { database, docker },
      version: VERSION,
      uptime: formatDuration(uptimeSeconds),
      uptime_seconds: uptimeSeconds,
      backends: await this.countBackends(database.status === 'ok'),
    };
  }

  private async countBackends(databaseUp: boolean): Promise<Record<BackendStatus, number>> {
    const counts = Object.fromEntries(BACKEND_STATUSES.map((status) => [status, 0])) as Record<BackendStatus, number>;
    if (!databaseUp) return counts;
    for (const [status, count] of await countBackendsByStatus(this.db)) counts[status] = count;
    return counts;
  }
}

async function check(probe: () => Promise<unknown>): Promise<ComponentHealth> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
      }),
    ]);
    return { status: 'ok' };
  } catch (error) {
    return { status: 'down', error: (error as Error).message || String(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** `2h30m5s`, the form of spec/health-status-endpoint.txt. */
export function formatDuration(totalSeconds: number): string {
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = totalSeconds % 60;
  return `${hours ? `${hours}h` : ''}${hours || minutes ? `${minutes}m` : ''}${seconds}s`;
}
