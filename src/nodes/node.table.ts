import type { JSONColumnType, Selectable } from 'kysely';
import type { EngineCapabilities, EngineImage } from '../../scheduler/engine.ts';

/** What a node can hold; reported with each heartbeat. */
export interface NodeCapacity {
  /** Live backends it will take at most (0: no limit). */
  maxBackends: number;
  /** Warm containers it keeps, by pool (`account/service/environment`). */
  warm?: Record<string, { warmed: number; starting: number }>;
}

export const NODE_STATES = ['ready', 'draining'] as const;
export type NodeState = (typeof NODE_STATES)[number];

export interface NodeTable {
  name: string;
  address: string;
  state: NodeState;
  last_heartbeat: Date;
  started_at: Date;
  engine_ok: boolean;
  engine_error: string | null;
  capabilities: JSONColumnType<EngineCapabilities>;
  capacity: JSONColumnType<NodeCapacity>;
  /** What its engine holds, as of the last heartbeat. */
  images: JSONColumnType<EngineImage[]>;
}

export interface MetricsWatchTable {
  backend_id: string;
  until: Date;
}

export type NodeRow = Selectable<NodeTable>;
