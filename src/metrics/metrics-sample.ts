import type { MetricsSample } from '../../scheduler/engine.ts';
import type { MetricsSample as ClientMetricsSample } from '../client/types.ts';

/** A sample as nodes announce it to API processes: the metrics stream's JSON, plus the peak for max_mem_bytes. */
export interface MetricsSampleJson extends ClientMetricsSample {
  mem_peak?: number;
}

/** The JSON the metrics stream sends a client. */
export function metricsSampleToClientJson(backendId: string, sample: MetricsSample): ClientMetricsSample {
  const { mem_peak: _peak, ...json } = metricsSampleToJson(backendId, sample);
  return json;
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
