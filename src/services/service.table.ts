import type { ColumnType, Selectable } from 'kysely';

export interface ServiceTable {
  account_name: string;
  name: string;
  /** Docker repository the service spawns from, e.g. `acme/chat`. */
  image_repository: string;
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
  created_at: ColumnType<Date, never, never>;
  last_spawned_at: ColumnType<Date | null, never, Date>;
}

export type ServiceRow = Selectable<ServiceTable>;
export type EnvironmentRow = Selectable<EnvironmentTable>;
