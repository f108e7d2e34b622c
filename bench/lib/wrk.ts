/**
 * wrk (Debian's `wrk`) as the benches' load generator: a process of its own,
 * one thread, so that load and the server measured never share an event loop.
 */
import { execFile, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const WRK_POST_SCRIPT = fileURLToPath(new URL('./wrk-post.lua', import.meta.url));

export interface WrkOptions {
  url: string;
  connections: number;
  seconds: number;
  /** Extra request headers (`Name: value`). */
  headers?: string[];
  /** A POST with this JSON body (through wrk-post.lua) instead of a GET. */
  postBody?: string;
  /** Bearer token for POSTs. */
  token?: string;
}

export interface WrkResult {
  requests: number;
  requestsPerSecond: number;
  /** Milliseconds, from wrk's --latency distribution. */
  p50: number;
  p90: number;
  p99: number;
  /** Responses outside 2xx/3xx. */
  non2xx: number;
  /** Connect, read, write and timeout errors together. */
  errors: number;
}

export function findWrk(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v wrk'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export function wrkVersion(binary: string): string {
  // `wrk -v` prints its version and exits with status 1.
  try {
    execFileSync(binary, ['-v'], { encoding: 'utf8', stdio: 'pipe' });
  } catch (error) {
    const out = String((error as { stdout?: string }).stdout ?? '');
    return /wrk [^\s]+/.exec(out)?.[0] ?? 'wrk';
  }
  return 'wrk';
}

/** Runs wrk once with one thread; resolves to its parsed summary. */
export function runWrk(binary: string, options: WrkOptions): Promise<WrkResult> {
  const args = ['-t1', `-c${options.connections}`, `-d${options.seconds}s`, '--latency', '--timeout', '5s'];
  for (const header of options.headers ?? []) args.push('-H', header);
  const env: Record<string, string> = { PATH: process.env.PATH ?? '' };
  if (options.postBody !== undefined) {
    args.push('-s', WRK_POST_SCRIPT);
    env.WRK_BODY = options.postBody;
    if (options.token) env.WRK_TOKEN = options.token;
  }
  args.push(options.url);
  return new Promise((resolve, reject) => {
    execFile(binary, args, { env, timeout: (options.seconds + 30) * 1000 }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`wrk failed: ${error.message} ${stderr}`));
      try {
        resolve(parseWrk(stdout));
      } catch (parseError) {
        reject(parseError instanceof Error ? parseError : new Error(String(parseError)));
      }
    });
  });
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function duration(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!match) throw new Error(`wrk: unreadable duration ${text}`);
  return Number(match[1]) * UNIT_MS[match[2]!]!;
}

export function parseWrk(output: string): WrkResult {
  const percentile = (p: string) => {
    const match = new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm').exec(output);
    if (!match) throw new Error(`wrk: no ${p}% line in\n${output}`);
    return duration(match[1]!);
  };
  const requests = /(\d+) requests in/.exec(output);
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(output);
  if (!requests || !rate) throw new Error(`wrk: unreadable output\n${output}`);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  return {
    requests: Number(requests[1]),
    requestsPerSecond: Number(rate[1]),
    p50: percentile('50'),
    p90: percentile('90'),
    p99: percentile('99'),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0),
    errors: errors ? errors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
  };
}

/** A wrk run with the CPU the measured server spent per request. */
export interface MeasuredRun extends WrkResult {
  cpuUsPerRequest: number;
  /** How busy the whole machine was during the run, 0–1 (NaN when not measured). */
  machineBusy?: number;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** The median of each figure over rounds; failures are summed. */
export function medianOf(results: MeasuredRun[]): MeasuredRun {
  const pick = (key: keyof WrkResult | 'cpuUsPerRequest') => median(results.map((r) => r[key]));
  return {
    requests: pick('requests'),
    requestsPerSecond: pick('requestsPerSecond'),
    p50: pick('p50'),
    p90: pick('p90'),
    p99: pick('p99'),
    non2xx: results.reduce((sum, r) => sum + r.non2xx, 0),
    errors: results.reduce((sum, r) => sum + r.errors, 0),
    cpuUsPerRequest: pick('cpuUsPerRequest'),
    machineBusy: median(results.map((r) => r.machineBusy ?? NaN)),
  };
}
