import { isIPv4 } from 'node:net';
import type { Client } from 'undici';
import type { Logger } from '../../src/core/logger.ts';
import type { BackendRoute, TokenRoute } from '../token-cache.ts';

/** A stuck nginx must not stall the activity report that waits on it. */
const ADMIN_TIMEOUTS = { headersTimeout: 2_000, bodyTimeout: 2_000 };

/**
 * berth's proxy process → the nginx edge: the routes it may forward alone
 * (written in batches, one request per turn of the event loop) and, once a
 * second, the activity it saw. The edge only ever holds what this link told
 * it; a route it lacks (evicted, or nginx restarted) sends the request to
 * berth's proxy, which tells it again.
 */
export class EdgeLink {
  /** Backends whose tokens the edge holds: their readiness is kept current there. */
  private readonly known = new Set<string>();
  private pending: string[] = [];
  private flushScheduled = false;

  constructor(
    private readonly admin: Client,
    /** Proves to the admin listener that this is berth. */
    private readonly secret: string,
    private readonly logger: Logger,
    /** Hears how many requests the edge answered itself since the last poll, by status class. */
    private readonly countRequests?: (statusClass: number, count: number) => void,
  ) {}

  /** A request for this route reached berth's proxy through the edge and is forwarded: the edge takes the next ones. */
  learn(route: TokenRoute): void {
    // nginx sends no header whose value is empty, and berth's proxy sends it empty (a connect's `user: ""`): such a token stays with berth's proxy.
    if (route.headers.some(([, value]) => value === '')) return;
    const backend = route.backend;
    const fields = [backend.id, backend.host ?? ''];
    for (const [name, value] of route.headers) fields.push(name, value);
    this.known.add(backend.id);
    this.queue(`T${route.token}\t${fields.join('\0')}`);
    this.queue(readiness(backend));
  }

  /** A backend's phase or address changed: the edge forwards its requests only while it is ready. */
  changed(backend: BackendRoute): void {
    if (this.known.has(backend.id)) this.queue(readiness(backend));
    if (backend.phase === 'gone') this.known.delete(backend.id);
  }

  /** nginx started again, empty: what it learns from now on starts from nothing. */
  reset(): void {
    this.known.clear();
  }

  /** Backends the edge saw a request or socket for since the last call, with the number still open. */
  async activity(): Promise<ReadonlyMap<string, number>> {
    const res = await this.admin.request({ method: 'GET', path: '/activity', headers: { 'x-berth-edge': this.secret }, ...ADMIN_TIMEOUTS });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`the nginx edge answered ${res.statusCode} for its activity`);
    const seen = new Map<string, number>();
    for (const line of text.split('\n')) {
      const tab = line.indexOf('\t');
      if (tab <= 0) continue;
      const count = Number(line.slice(tab + 1)) || 0;
      if (line.charCodeAt(0) === 35 /* # */) this.countRequests?.(Number(line.slice(1, tab)), count);
      else seen.set(line.slice(0, tab), count);
    }
    return seen;
  }

  private queue(line: string): void {
    this.pending.push(line);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    this.flushScheduled = false;
    const lines = this.pending;
    this.pending = [];
    try {
      // Header values are bytes as Node writes them: one latin1 character per byte.
      const res = await this.admin.request({
        method: 'POST',
        path: '/routes',
        headers: { 'x-berth-edge': this.secret },
        body: Buffer.from(lines.join('\n'), 'latin1'),
        ...ADMIN_TIMEOUTS,
      });
      await res.body.dump();
      if (res.statusCode !== 204) throw new Error(`the nginx edge answered ${res.statusCode}`);
    } catch (error) {
      // Not fatal: the edge keeps sending these requests to berth's proxy, which tells it again.
      this.logger.warn({ err: error, records: lines.length }, 'teaching the nginx edge its routes failed');
    }
  }
}

/** Ready at an IPv4 address (what nginx's balancer takes as it is), or not to be forwarded by the edge. */
function readiness(backend: BackendRoute): string {
  const address = backend.address;
  if (backend.phase === 'ready' && address !== null && isIPv4(address.host)) return `R${backend.id}\t${address.host}\t${address.port}`;
  return `G${backend.id}`;
}
