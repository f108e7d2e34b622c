import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { IMAGE_TAG } from '../services/service.schemas.ts';

/** Variables berth sets in every container; a caller may not set them. */
export const RESERVED_ENV_NAMES = ['PORT', 'SESSION_BACKEND_ID', 'SESSION_BACKEND_KEY', 'SESSION_BACKEND_FENCING_TOKEN'] as const;

const DAY_SECONDS = 24 * 3600;
/** PostgreSQL text cannot hold NUL, and no header or environment can carry it. */
const NO_NUL = z.string().regex(/^[^\u0000]*$/, 'may not contain NUL characters');
/** Docker refuses memory limits below 6 MiB. */
const MIN_MEMORY_BYTES = 6 * 1024 * 1024;

const RESOURCE_LIMITS = z
  .strictObject({
    memory_limit_bytes: z.number().int().min(MIN_MEMORY_BYTES).max(Number.MAX_SAFE_INTEGER).optional(),
    cpu_period: z.number().int().min(1000).max(1_000_000).optional(),
    cpu_period_percent: z.number().positive().max(100 * availableParallelism()).optional(),
    cpu_time_limit: z.number().int().positive().max(365 * DAY_SECONDS).optional(),
    disk_limit_bytes: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
  })
  .refine((limits) => limits.cpu_period === undefined || limits.cpu_period_percent !== undefined, {
    message: 'only applies together with cpu_period_percent',
    path: ['cpu_period'],
  })
  // The kernel's CFS refuses a quota under 1 ms.
  .refine((limits) => limits.cpu_period_percent === undefined || ((limits.cpu_period ?? 100_000) * limits.cpu_period_percent) / 100 >= 1000, {
    message: 'gives a CPU quota under 1 ms per period (cpu_period * cpu_period_percent / 100 must be at least 1000 microseconds)',
    path: ['cpu_period_percent'],
  });

const EXECUTABLE = z.strictObject({
  mount: z.union([z.boolean(), z.string().min(1).max(1024)], { error: 'must be true, false or a path' }).optional(),
  env: z
    .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,255}$/, 'must be an environment variable name'), NO_NUL.max(32_768))
    .optional(),
  resource_limits: RESOURCE_LIMITS.optional(),
});

export const SPAWN_CONFIG = z.strictObject({
  tag: IMAGE_TAG.optional(),
  cluster: z.string().min(1).max(253).optional(),
  lifetime_limit_seconds: z.number().int().positive().max(365 * DAY_SECONDS).optional(),
  max_idle_seconds: z.number().int().positive().max(365 * DAY_SECONDS).optional(),
  executable: EXECUTABLE.optional(),
});
export type SpawnConfig = z.output<typeof SPAWN_CONFIG>;

/**
 * `spawn` is `boolean | SpawnConfig`; it is parsed in a second step so that a
 * bad nested field is named exactly instead of as "no union member matched".
 */
export const CONNECT_BODY = z.strictObject({
  key: NO_NUL.min(1).max(256).optional(),
  // It travels in the x-verified-username header, where control characters cannot go.
  user: z.string().max(256).regex(/^[^\x00-\x1f\x7f]*$/, 'may not contain control characters').optional(),
  auth: z.record(z.string(), z.unknown()).optional(),
  spawn: z.unknown().optional(),
});

export const TERMINATE_BODY = z.strictObject({
  hard: z.boolean().optional(),
});

export const BACKENDS_QUERY = z.strictObject({
  start: z.iso.datetime({ offset: true }).optional(),
  end: z.iso.datetime({ offset: true }).optional(),
});
