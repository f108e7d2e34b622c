import type { Logger } from '../src/core/logger.ts';
import type { EngineCapabilities, EngineImage } from './engine.ts';
import type { SchedulerStore } from './store.ts';

/** What the heartbeat asks of the engine. */
export interface HeartbeatEngine {
  ping(): Promise<void>;
  capabilities(): Promise<EngineCapabilities>;
  listImages(): Promise<EngineImage[]>;
}

export interface NodeHeartbeatOptions {
  node: { name: string; address: string };
  leaseMs: number;
  store: Pick<SchedulerStore, 'writeHeartbeat' | 'listBackendsOfLostNodes' | 'record'>;
  engine: HeartbeatEngine;
  logger: Logger;
  /** Warm containers by pool, reported for operators and counted as load. */
  warmCounts?: () => Record<string, { warmed: number; starting: number }>;
}

const NO_CAPABILITIES: EngineCapabilities = { memoryLimit: false, swapLimit: false, cpuCfs: false, diskLimit: false };
/** Beats per lease: a node survives two missed beats. */
const BEATS_PER_LEASE = 3;
const MAX_INTERVAL_MS = 2000;

export type HeartbeatState = 'created' | 'running' | 'stopped';

/**
 * The node's lease. Every few seconds it tells the database that the node is
 * alive, whether its engine answers and what it can enforce. Each beat also
 * ends the backends of nodes whose lease ran out (any live node may do it:
 * statuses only move forward, so doing it twice is harmless). A node that has
 * itself been out of touch for a lease does not judge others until it has
 * been back for a whole lease: after a database outage every lease looks stale.
 */
export class NodeHeartbeat {
  private state: HeartbeatState = 'created';
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> | undefined;
  /** Since when beats have succeeded without a gap longer than the lease. */
  private inTouchSince: number | undefined;
  private lastSuccess = 0;
  private readonly intervalMs: number;
  private readonly log: Logger;

  constructor(private readonly options: NodeHeartbeatOptions) {
    this.intervalMs = Math.min(MAX_INTERVAL_MS, options.leaseMs / BEATS_PER_LEASE);
    this.log = options.logger.child({ component: 'heartbeat' });
  }

  /** Registers the node (first beat, awaited), then beats on a timer. */
  async start(): Promise<void> {
    if (this.state !== 'created') throw new Error(`cannot start the heartbeat in state ${this.state}`);
    this.state = 'running';
    await this.beat(new Date());
    this.timer = setInterval(() => void this.beat(), this.intervalMs);
  }

  /** Stops beating; the lease runs out on its own. Idempotent. */
  stop(): void {
    this.state = 'stopped';
    clearInterval(this.timer);
  }

  private beat(startedAt?: Date): Promise<void> {
    this.beating ??= this.beatOnce(startedAt).finally(() => (this.beating = undefined));
    return this.beating;
  }

  private async beatOnce(startedAt?: Date): Promise<void> {
    if (this.state !== 'running') return;
    const { engine, node, store } = this.options;
    let engineOk = true;
    let engineError: string | null = null;
    let capabilities = NO_CAPABILITIES;
    let images: EngineImage[] | undefined;
    try {
      await engine.ping();
      capabilities = await engine.capabilities();
      // What the API shows of images comes from here: it needs no engine of its own.
      images = await engine.listImages();
    } catch (error) {
      engineOk = false;
      engineError = error instanceof Error ? error.message : String(error);
    }
    const now = Date.now();
    try {
      await store.writeHeartbeat(
        { name: node.name, address: node.address, at: new Date(now), engineOk, engineError, capabilities, capacity: { maxBackends: 0, warm: this.options.warmCounts?.() ?? {} }, ...(images ? { images } : {}) },
        startedAt,
      );
    } catch (error) {
      this.log.warn({ err: error }, 'heartbeat failed');
      return;
    }
    if (now - this.lastSuccess > this.options.leaseMs) this.inTouchSince = now;
    this.lastSuccess = now;
    if (this.inTouchSince !== undefined && now - this.inTouchSince >= this.options.leaseMs) await this.endLostNodesBackends(now);
  }

  private async endLostNodesBackends(now: number): Promise<void> {
    try {
      for (const { id, nodeName } of await this.options.store.listBackendsOfLostNodes(new Date(now - this.options.leaseMs))) {
        if (nodeName === this.options.node.name) continue;
        if (await this.options.store.record(id, 'terminated', { terminationReason: 'lost' })) {
          this.log.warn({ backend_id: id, lost_node: nodeName }, 'node lost: backend ended');
        }
      }
    } catch (error) {
      this.log.warn({ err: error }, 'ending backends of lost nodes failed');
    }
  }
}
