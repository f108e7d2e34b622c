import type { Migration } from 'kysely/migration';
import * as initial from './0001-accounts-and-services.ts';

/** Every migration, in order. A static list so that no file-system scan is needed at start. */
export const MIGRATIONS: Record<string, Migration> = {
  '0001-accounts-and-services': initial,
};
