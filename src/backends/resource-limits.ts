import type { ResourceLimits } from '../../scheduler/engine.ts';
import { ValidationError } from '../core/errors.ts';

/** The operator's bounds on what one backend may use (BERTH_DEFAULT_* and BERTH_MAX_*). */
export interface LimitPolicy {
  /** Applied when the caller sets no memory limit; 0 applies none. */
  defaultMemoryBytes: number;
  /** Applied when the caller sets no CPU share; 0 applies none. */
  defaultCpuPercent: number;
  maxMemoryBytes: number;
  maxCpuPercent: number;
}

const PARAM = 'body.spawn.executable.resource_limits';

/** Refuses a requested limit above the operator's ceiling. */
export function checkLimitCeilings(requested: { memory_limit_bytes?: number; cpu_period_percent?: number }, policy: LimitPolicy): void {
  const refuse = (field: string, value: number, ceiling: number, variable: string) =>
    new ValidationError(`${PARAM}.${field}`, `"${PARAM}.${field}" is ${value}, above this berth's ceiling of ${ceiling} (${variable})`, 'limit_above_ceiling');
  if (requested.memory_limit_bytes !== undefined && requested.memory_limit_bytes > policy.maxMemoryBytes) {
    throw refuse('memory_limit_bytes', requested.memory_limit_bytes, policy.maxMemoryBytes, 'BERTH_MAX_MEMORY_BYTES');
  }
  if (requested.cpu_period_percent !== undefined && requested.cpu_period_percent > policy.maxCpuPercent) {
    throw refuse('cpu_period_percent', requested.cpu_period_percent, policy.maxCpuPercent, 'BERTH_MAX_CPU_PERCENT');
  }
}

/** Fills in the defaults, so that they are stored with the backend and a re-spawn gets the same. */
export function withLimitDefaults(limits: ResourceLimits, policy: LimitPolicy): ResourceLimits {
  return {
    ...limits,
    ...(limits.memoryLimitBytes === undefined && policy.defaultMemoryBytes > 0 ? { memoryLimitBytes: policy.defaultMemoryBytes } : {}),
    ...(limits.cpuPeriodPercent === undefined && policy.defaultCpuPercent > 0 ? { cpuPeriodPercent: policy.defaultCpuPercent } : {}),
  };
}
