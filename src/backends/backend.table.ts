import type { ColumnType, Generated, Insertable, JSONColumnType, Selectable } from 'kysely';
import type { BindMount, ContainerSecurity, ResourceLimits } from '../../scheduler/engine.ts';
import type { BackendStatus } from '../core/backend-status.ts';

/** pg returns bigint columns as strings; berth's bigints (fencing tokens, bytes) fit a number. */
type BigIntColumn = ColumnType<string | number, number, number>;

export interface BackendTable {
  id: string;
  account_name: string;
  service_name: string;
  environment_name: string;
  cluster: string;
  key: string | null;
  fencing_token: BigIntColumn | null;
  /** Image reference the container is created from. */
  image: string;
  image_digest: string | null;
  secret_token: string;
  max_idle_seconds: number;
  lifetime_limit_seconds: number | null;
  /** The caller's environment variables (reserved ones are added at spawn). */
  env: JSONColumnType<Record<string, string>>;
  /** Rows written before mounts were confined have no `base`: the scheduler refuses to mount them. */
  mount: JSONColumnType<BindMount | null, string | null, string | null>;
  resource_limits: JSONColumnType<ResourceLimits>;
  /** The service's user, read-only root and added capabilities, as they were at connect. */
  container_security: JSONColumnType<ContainerSecurity>;
  /** Latest status, kept beside the history for cheap "live" queries. */
  status: BackendStatus;
  status_time: Date;
  container_id: string | null;
  host_port: number | null;
  /** The node the backend is placed on, and the address at which proxies reach its published port. */
  node_name: ColumnType<string | null, string | null | undefined, string | null>;
  host_address: ColumnType<string | null, string | null | undefined, string | null>;
  last_activity_at: Date;
  max_mem_bytes: BigIntColumn | null;
  created_at: Date;
}

export interface BackendStatusTable {
  id: Generated<string | number>;
  backend_id: string;
  status: BackendStatus;
  time: Date;
  last_status: BackendStatus | null;
  termination_reason: string | null;
  termination_kind: string | null;
  exit_error: boolean | null;
  exit_code: number | null;
  /** Why, in one line: set when berth itself ended the backend (a failed start). */
  message: ColumnType<string | null, string | null | undefined, string | null>;
  /** `host:port` on the step that published the backend's port. */
  address: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface ProxyTable {
  id: string;
  heartbeat_at: Date;
}

/** Open requests and WebSockets of one proxy process to one backend, as of its last heartbeat. */
export interface ProxyConnectionTable {
  proxy_id: string;
  backend_id: string;
  open_count: number;
}

export interface BackendKeyTable {
  account_name: string;
  service_name: string;
  key: string;
  fencing_token: ColumnType<string | number, number | undefined, number>;
}

export interface ConnectionTokenTable {
  /** SHA-256 of the token (src/core/token-hash.ts); the token itself is never stored. */
  token_hash: string;
  backend_id: string;
  username: string | null;
  auth: JSONColumnType<Record<string, unknown> | null, string | null, string | null>;
  created_at: ColumnType<Date, never, never>;
}

export interface InstallationTable {
  id: string;
  created_at: ColumnType<Date, never, never>;
}

export type BackendRow = Selectable<BackendTable>;
export type NewBackendRow = Insertable<BackendTable>;
export type BackendStatusRow = Selectable<BackendStatusTable>;
