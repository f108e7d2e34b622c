/** What the benches say about the machine they ran on. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import type Dockerode from 'dockerode';

/** The first `fields` load averages (1, 5, 15 min) from /proc/loadavg. */
export const loadavg = (fields = 3): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, fields).join(' ');

/** The engine's version and API version, as the machine lines show them. */
export async function dockerVersion(docker: Dockerode): Promise<string> {
  const version = await docker.version();
  return `${version.Version} (API ${version.ApiVersion})`;
}

/** Date, CPU, memory, kernel, Docker, Node (plus `nodeExtra`, e.g. a load generator's version) and load average. */
export function machine(dockerVersion: string, nodeExtra?: string): string[] {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown';
  let nproc = String(cpus().length);
  try {
    nproc = execFileSync('nproc', { encoding: 'utf8' }).trim();
  } catch {
    // nproc is coreutils; os.cpus() is the fallback.
  }
  return [
    `date:    ${new Date().toISOString()}`,
    `cpu:     ${model}, nproc ${nproc}`,
    `memory:  ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `kernel:  ${readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}`,
    `docker:  ${dockerVersion}`,
    `node:    ${process.version}${nodeExtra ? `, ${nodeExtra}` : ''}`,
    `load:    ${loadavg()} (1/5/15 min, at start)`,
  ];
}
