import type { Migration } from 'kysely/migration';
import * as initial from './0001-accounts-and-services.ts';
import * as backends from './0002-backends.ts';
import * as logs from './0003-backend-logs.ts';
import * as keysFailuresProxies from './0004-keys-failures-and-proxies.ts';
import * as serviceHardening from './0005-service-hardening.ts';
import * as tokenHashes from './0006-token-hashes.ts';
import * as nodes from './0007-nodes.ts';
import * as nodeImages from './0008-node-images-and-metrics-watches.ts';
import * as warmPools from './0009-warm-pools.ts';
import * as heldKeyFunction from './0010-held-key-function.ts';

/** Every migration, in order. A static list so that no file-system scan is needed at start. */
export const MIGRATIONS: Record<string, Migration> = {
  '0001-accounts-and-services': initial,
  '0002-backends': backends,
  '0003-backend-logs': logs,
  '0004-keys-failures-and-proxies': keysFailuresProxies,
  '0005-service-hardening': serviceHardening,
  '0006-token-hashes': tokenHashes,
  '0007-nodes': nodes,
  '0008-node-images-and-metrics-watches': nodeImages,
  '0009-warm-pools': warmPools,
  '0010-held-key-function': heldKeyFunction,
};
