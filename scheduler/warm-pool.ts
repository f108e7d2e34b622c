/**
 * Warm pools: per environment, a node keeps containers started ahead of time
 * from the environment's image and default spawn settings, each with its own
 * SDK socket (warm-socket.ts). A connect whose spawn those settings honour
 * takes one: the backend gets its id, key, fencing token and env through the
 * assignment, and is ready when the app says Ready and answers HTTP. The pool
 * is refilled after each take; a container that does not say Warmed in time,
 * or whose image is no longer the environment's, is replaced; an image that
 * never speaks the protocol is marked not warmable, with the reason, instead of
 * churning.
 */
import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { join } from 'node:path';
import type { Logger } from '../src/core/logger.ts';
import type { ContainerEngine, ContainerScope, ContainerSecurity, ResourceLimits } from './engine.ts';
import type { ScheduledBackend, WarmPoolSpec, WarmPoolStore } from './store.ts';
import { WarmSocket, type BackendAssignment } from './warm-socket.ts';

export interface WarmPoolOptions {
  engine: ContainerEngine;
  store: WarmPoolStore;
  scope: ContainerScope;
  /** The node's address: pool containers publish on it like any backend. */
  address: string;
  /** Where the SDK sockets live on the host; bind-mounted into the containers. */
  socketDir: string;
  /** The limits a connect without resource_limits gets: the only ones a warm container honours. */
  defaultLimits: ResourceLimits;
  /** How long a container may take to say Warmed. */
  warmTimeoutMs: number;
  logger: Logger;
}

/** A pool member the scheduler took for a backend. */
export interface TakenContainer {
  containerId: string;
  hostPort: number;
  assign(assignment: BackendAssignment, signal: AbortSignal): Promise<void>;
  /** The socket is of no more use once the app said Ready (or the backend ended). */
  release(): Promise<void>;
}

interface Member {
  id: string;
  poolKey: string;
  image: string;
  security: ContainerSecurity;
  containerId: string | null;
  hostPort: number | null;
  socket: WarmSocket;
  state: 'starting' | 'warmed';
}

/** Failed warm-ups of one image in a row before it is marked not warmable. */
const FAILURES_BEFORE_NOT_WARMABLE = 2;
/** New containers started per pool per round: refills without a stampede. */
const STARTS_PER_ROUND = 2;
/** After a take, refills wait this long: a container being made would slow the very backend it replaces. */
const REFILL_DELAY_MS = 1500;

export function poolKeyOf(p: { accountName: string; serviceName: string; environmentName: string }): string {
  return `${p.accountName}/${p.serviceName}/${p.environmentName}`;
}

export class WarmPool {
  private readonly members = new Map<string, Member>();
  private readonly failures = new Map<string, number>();
  private readonly log: Logger;
  private running: Promise<void> | undefined;
  private stopped = false;
  private lastTakeAt = 0;
  private readonly starting = new Set<Promise<void>>();

  constructor(private readonly options: WarmPoolOptions) {
    this.log = options.logger.child({ component: 'warm-pool' });
  }

  /** Pool containers this process does not know (a restart lost their sockets) are removed. */
  async removeStrangers(): Promise<void> {
    for (const container of await this.options.engine.listManaged(this.options.scope)) {
      if (container.poolId !== null && !this.members.has(container.poolId)) await this.options.engine.remove(container.containerId);
    }
  }

  /** One round: drop what is no longer wanted or did not warm up, start what is missing. One at a time. */
  converge(): Promise<void> {
    this.running ??= this.convergeOnce().finally(() => (this.running = undefined));
    return this.running;
  }

  /** Takes a warm container that honours the backend's spawn settings, if there is one. */
  take(backend: ScheduledBackend): TakenContainer | undefined {
    if (backend.mount !== null || !isDeepStrictEqual(backend.limits, this.options.defaultLimits)) return undefined;
    const key = poolKeyOf(backend);
    for (const member of this.members.values()) {
      if (member.state !== 'warmed' || member.poolKey !== key || member.image !== backend.image) continue;
      if (!isDeepStrictEqual(member.security, backend.security ?? {})) continue;
      if (member.containerId === null || member.hostPort === null) continue;
      this.members.delete(member.id);
      this.lastTakeAt = Date.now();
      const socket = member.socket;
      return {
        containerId: member.containerId,
        hostPort: member.hostPort,
        assign: (assignment, signal) => socket.assign(assignment, signal),
        release: () => socket.close(),
      };
    }
    return undefined;
  }

  /** A pool container this process keeps (warm or warming). */
  has(poolId: string): boolean {
    return this.members.has(poolId);
  }

  /** How many containers are warm or warming, by pool, for operators. */
  counts(): Record<string, { warmed: number; starting: number }> {
    const counts: Record<string, { warmed: number; starting: number }> = {};
    for (const member of this.members.values()) {
      const entry = (counts[member.poolKey] ??= { warmed: 0, starting: 0 });
      entry[member.state === 'warmed' ? 'warmed' : 'starting']++;
    }
    return counts;
  }

  /** A pool container exited or was removed: it is no member any more. */
  forget(containerId: string): void {
    for (const member of this.members.values()) {
      if (member.containerId === containerId) {
        this.members.delete(member.id);
        void member.socket.close().catch(() => undefined);
      }
    }
  }

  /** Removes every pool container (the node stops or drains). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
    // Dropping closes their sockets, which ends the waits of those still warming.
    await Promise.all([...this.members.values()].map((member) => this.drop(member, 'the node stopped')));
    await Promise.allSettled([...this.starting]);
    await Promise.all([...this.members.values()].map((member) => this.drop(member, 'the node stopped')));
  }

  private async convergeOnce(): Promise<void> {
    if (this.stopped) return;
    const pools = await this.options.store.listWarmPools();
    const wanted = new Map(pools.map((pool) => [poolKeyOf(pool), pool]));
    for (const member of [...this.members.values()]) {
      const pool = wanted.get(member.poolKey);
      if (!pool || pool.image !== member.image || !isDeepStrictEqual(pool.security, member.security)) {
        await this.drop(member, 'the environment no longer wants it');
      }
    }
    for (const pool of pools) {
      if (pool.notWarmableImage === pool.image) continue;
      const key = poolKeyOf(pool);
      const have = [...this.members.values()].filter((member) => member.poolKey === key);
      const extra = have.length - pool.size;
      for (const member of have.slice(0, Math.max(0, extra))) await this.drop(member, 'the pool shrank');
      if (Date.now() - this.lastTakeAt < REFILL_DELAY_MS) continue;
      for (let i = 0; i < Math.min(STARTS_PER_ROUND, -extra); i++) {
        const start = this.startMember(pool).finally(() => this.starting.delete(start));
        this.starting.add(start);
      }
    }
  }

  private async startMember(pool: WarmPoolSpec): Promise<void> {
    if (this.stopped) return;
    const id = randomBytes(6).toString('hex');
    const socket = await WarmSocket.listen(join(this.options.socketDir, id));
    const member: Member = { id, poolKey: poolKeyOf(pool), image: pool.image, security: pool.security, containerId: null, hostPort: null, socket, state: 'starting' };
    this.members.set(id, member);
    try {
      const started = await this.options.engine.start({
        ...this.options.scope,
        backendId: id,
        pool: { id, socketDir: socket.dir },
        hostIp: this.options.address,
        accountName: pool.accountName,
        serviceName: pool.serviceName,
        key: null,
        image: pool.image,
        env: { PORT: '8080' },
        limits: this.options.defaultLimits,
        security: pool.security,
      });
      member.containerId = started.containerId;
      member.hostPort = started.hostPort;
      // Dropped while it was being made (the image changed, the pool shrank, the node stops).
      if (!this.members.has(id)) {
        await this.options.engine.remove(started.containerId).catch(() => undefined);
        return;
      }
      await socket.waitUntilWarmed(this.options.warmTimeoutMs);
      if (!this.members.has(id)) return;
      member.state = 'warmed';
      this.failures.delete(`${member.poolKey} ${member.image}`);
      this.log.debug({ pool: member.poolKey, container_id: started.containerId }, 'warm container ready');
    } catch (error) {
      if (!this.members.has(id)) return;
      const reason = error instanceof Error ? error.message : String(error);
      await this.drop(member, reason);
      const key = `${member.poolKey} ${member.image}`;
      const failures = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, failures);
      if (failures >= FAILURES_BEFORE_NOT_WARMABLE) {
        this.log.warn({ pool: member.poolKey, image: member.image, reason }, 'image not warmable');
        await this.options.store.markNotWarmable(pool, pool.image, reason).catch(() => undefined);
      }
    }
  }

  private async drop(member: Member, why: string): Promise<void> {
    this.members.delete(member.id);
    this.log.debug({ pool: member.poolKey, why }, 'removing a warm container');
    await member.socket.close().catch(() => undefined);
    if (member.containerId !== null) await this.options.engine.remove(member.containerId).catch(() => undefined);
  }
}
