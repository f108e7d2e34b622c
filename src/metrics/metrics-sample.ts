import type { MetricsSample } from '../../scheduler/engine.ts';

/** A sample as the metrics stream sends it, and as nodes announce it to API processes. */
export interface MetricsSampleJson {
  backend_id: string;
  cpu_used: number;
  mem_available: number;
  mem_limit: number;
  mem_used: number;
  sys_cpu: number;
  /** Not sent to clients: the highest memory use seen, for max_mem_bytes. */
  mem_peak?: number;
}

export function metricsSampleToJson(backendId: string, sample: MetricsSample): MetricsSampleJson {
  return {
    backend_id: backendId,
    cpu_used: sample.cpuUsed,
    mem_available: sample.memAvailable,
    mem_limit: sample.memLimit,
    mem_used: sample.memUsed,
    sys_cpu: sample.sysCpu,
    mem_peak: sample.memPeak,
  };
}

export function metricsSampleFromJson(json: MetricsSampleJson): MetricsSample {
  return {
    cpuUsed: json.cpu_used,
    memAvailable: json.mem_available,
    memLimit: json.mem_limit,
    memUsed: json.mem_used,
    sysCpu: json.sys_cpu,
    memPeak: json.mem_peak ?? json.mem_used,
  };
}
