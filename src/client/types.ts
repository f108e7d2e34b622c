// The JSON berth's API sends and takes, field for field (snake_case as on the
// wire). Times are ISO 8601 strings, as the server writes them.

// One list of statuses and reasons for server and client.
import type { BackendStatus as StatusName, TerminationKind, TerminationReason } from '../core/backend-status.ts';
export { BACKEND_STATUSES } from '../core/backend-status.ts';
export type { TerminationKind, TerminationReason };
export type BackendStatusName = StatusName;

/** A status as the public status endpoint and stream send it. */
export interface BackendStatus {
  status: BackendStatusName;
  time: string;
  termination_reason?: TerminationReason;
  termination_kind?: TerminationKind;
  exit_error?: boolean;
}

/** A status in a backend's history (`GET /v2/backend/{id}`), which also names the previous one and the exit code. */
export interface BackendStatusRecord extends BackendStatus {
  last_status?: BackendStatusName;
  /** Present on `terminated`; null when the container's exit code is unknown. */
  exit_code?: number | null;
  /** berth's own one-line cause when it ended the backend itself, such as a failed start. */
  message?: string;
}

export interface ResourceLimits {
  memory_limit_bytes?: number;
  cpu_period?: number;
  cpu_period_percent?: number;
  cpu_time_limit?: number;
  disk_limit_bytes?: number;
}

export interface SpawnConfig {
  /** Image tag (or `sha256:` image id) overriding the environment's. */
  tag?: string;
  cluster?: string;
  lifetime_limit_seconds?: number;
  /** Default 300. */
  max_idle_seconds?: number;
  executable?: {
    /** `true`: a directory of the backend's own under BERTH_MOUNT_BASE_DIR, at /data; a string names one. */
    mount?: boolean | string;
    env?: Record<string, string>;
    resource_limits?: ResourceLimits;
  };
}

export interface ConnectRequest {
  key?: string;
  user?: string;
  auth?: Record<string, unknown>;
  /** `false`: only return the backend holding `key`, never start one. */
  spawn?: boolean | SpawnConfig;
}

export interface ConnectResponse {
  backend_id: string;
  spawned: boolean;
  status: BackendStatusName;
  token: string;
  url: string;
  secret_token: string;
  status_url: string;
  ready_url: string;
}

interface BackendFields {
  account_name: string;
  cluster_name: string;
  created_at: string;
  environment_name: string;
  id: string;
  image_digest: string | null;
  key: string | null;
  max_mem_bytes: number | null;
  /** The node the backend runs on; null for backends made before berth had nodes. */
  node: string | null;
  service_name: string;
}

/** `GET /v2/backend/{id}`: metadata and the whole status history, oldest first. */
export interface BackendInfo extends BackendFields {
  statuses: BackendStatusRecord[];
}

/** One backend in a listing. */
export interface BackendSummary extends BackendFields {
  status: { status: BackendStatusName; time: string };
  /** When it first became ready; only in a service's listing. */
  ready_timestamp?: string | null;
}

export interface Environment {
  name: string;
  image_tag: string;
  cluster: string;
  created_at: string;
  last_spawned_at: string | null;
  /** Warm containers each node keeps for this environment. */
  warm_pool_size: number;
  /** `warmable: false` once its image never spoke the session-backend SDK protocol, with the reason. */
  warm_pool: { warmable: boolean; reason?: string };
}

export interface Service {
  account_name: string;
  created_at: string;
  environments: Environment[];
  /** The image repository the service spawns from. */
  image_name: string;
  /** Set by the admin: user, read-only root filesystem and capabilities added back. */
  container: { user: string | null; read_only_root: boolean; cap_add: string[] };
  last_image_digest: string | null;
  last_image_upload_time: string | null;
  last_spawned_at: string | null;
  name: string;
}

export interface ServiceImage {
  /** The engine's image id, `sha256:…`. */
  digest: string;
  tag: string;
  repository: string;
  upload_time: string;
}

export interface MetricsSample {
  backend_id: string;
  /** CPU time used, in nanoseconds. */
  cpu_used: number;
  mem_available: number;
  mem_limit: number;
  mem_used: number;
  sys_cpu: number;
}

export interface LogLine {
  /** The event id; pass it as `lastEventId` to resume after this line. */
  id?: string;
  line: string;
  /** When berth read the line (ISO 8601); absent from a server that sends bare lines. */
  time?: string;
  /** Which output the line came from; absent with `time`. */
  stream?: 'stdout' | 'stderr';
}

/** A node (a scheduler on one Docker host), as `GET /v2/nodes` lists it. */
export interface NodeInfo {
  name: string;
  address: string;
  status: 'ready' | 'draining' | 'lost';
  last_heartbeat: string;
  started_at: string;
  live_backends: number;
  engine: { ok: boolean; error: string | null };
  capabilities: { memory_limit: boolean; swap_limit: boolean; cpu_cfs: boolean; disk_limit: boolean };
  capacity: { max_backends: number };
}

export interface AuthInfo {
  /** The accounts the token may act on (every account, for the admin token). */
  accounts: string[];
  is_admin: boolean;
}

export interface CreatedAccount {
  name: string;
  created_at: string;
}

export interface CreatedToken {
  /** `<id>.<secret>`; the secret is shown only here. */
  token: string;
  /** The public id, for revoking. */
  id: string;
}

/** The body of every error berth answers. */
export interface ErrorBody {
  error: {
    message: string;
    type: string;
    code: string;
    status: number;
    id: string;
    details?: Record<string, unknown>;
  };
}
