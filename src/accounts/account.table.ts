import type { ColumnType, Generated, Selectable } from 'kysely';

export interface AccountTable {
  name: string;
  created_at: ColumnType<Date, never, never>;
}

export interface ApiTokenTable {
  id: string;
  /** Null only for admin tokens generated at bootstrap. */
  account_name: string | null;
  /** sha256 of the secret part; the secret itself is never stored. */
  secret_hash: string;
  is_admin: Generated<boolean>;
  created_at: ColumnType<Date, never, never>;
}

export type AccountRow = Selectable<AccountTable>;
export type ApiTokenRow = Selectable<ApiTokenTable>;
