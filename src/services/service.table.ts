import type { ColumnType, JSONColumnType, Selectable } from 'kysely';

export interface ServiceTable {
  account_name: string;
  name: string;
  /** Docker repository the service spawns from, e.g. `acme/chat`. */
  image_repository: string;
  /** Set by the admin: `user[:group]` the app runs as; null keeps the image's. */
  container_user: ColumnType<string | null, string | null | undefined, string | null>;
  /** Set by the admin: mount the image read-only. */
  read_only_root: ColumnType<boolean, boolean | undefined, boolean>;
  /** Set by the admin: capabilities given back after all are dropped. */
  cap_add: JSONColumnType<string[], string | undefined, string>;
  created_at: ColumnType<Date, never, never>;
  last_spawned_at: ColumnType<Date | null, never, Date>;
}

export interface EnvironmentTable {
  account_name: string;
  service_name: string;
  name: string;
  /** A tag of the service's repository, or a `sha256:` image digest. */
  image_tag: string;
  cluster: string;
  /** Containers each node keeps started for this environment (0: none). */
  warm_pool_size: ColumnType<number, number | undefined, number>;
  /** Why the environment's image cannot be kept warm, and for which image reference. */
  warm_error: ColumnType<string | null, string | null | undefined, string | null>;
  warm_error_image: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: ColumnType<Date, never, never>;
  last_spawned_at: ColumnType<Date | null, never, Date>;
}

export type ServiceRow = Selectable<ServiceTable>;
export type EnvironmentRow = Selectable<EnvironmentTable>;
