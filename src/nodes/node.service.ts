import type { Kysely } from 'kysely';
import type { EngineCapabilities, ResourceLimits } from '../../scheduler/engine.ts';
import type { Database } from '../database.ts';
import { NotFoundError, UnavailableError } from '../core/errors.ts';
import { DockerUnavailableError } from '../core/errors.ts';
import { listNodesWithLoad, setNodeState, type NodeWithLoad } from './node.repository.ts';
import type { NodeCapacity, NodeState } from './node.table.ts';

/** How an operator sees a node: `lost` is a lease that ran out, whatever the node last said. */
export type NodeStatus = NodeState | 'lost';

export interface Node {
  name: string;
  address: string;
  status: NodeStatus;
  lastHeartbeat: Date;
  startedAt: Date;
  engineOk: boolean;
  engineError: string | null;
  capabilities: EngineCapabilities;
  capacity: NodeCapacity;
  liveBackends: number;
}

/** Where a new backend goes. */
export interface Placement {
  name: string;
  address: string;
}

export class NodeNotFoundError extends NotFoundError {
  constructor(name: string) {
    super('node_not_found', `node "${name}" does not exist`, { node: name });
  }
}

export class NoReadyNodeError extends UnavailableError {
  constructor(why: string) {
    super('no_ready_node', `no node can take a new backend: ${why}`, { headers: { 'Retry-After': '5' } });
  }
}

/** A limit no live node can enforce: refused, never ignored. */
export class UnenforceableLimitError extends Error {
  constructor(readonly field: keyof EngineCapabilities) {
    super(`no node can enforce ${field}`);
  }
}

const CAPABILITY_OF: Array<[keyof ResourceLimits, keyof EngineCapabilities]> = [
  ['memoryLimitBytes', 'memoryLimit'],
  ['cpuPeriodPercent', 'cpuCfs'],
  ['diskLimitBytes', 'diskLimit'],
];

export interface NodeServiceOptions {
  db: Kysely<Database>;
  leaseMs: number;
  /** Injected for tests of the placement rule; Math.random otherwise. */
  random?: () => number;
}

/**
 * The nodes as the API sees them: read from the database, where each node
 * reports itself. The API never talks to an engine.
 */
export class NodeService {
  private readonly db: Kysely<Database>;
  private readonly leaseMs: number;
  private readonly random: () => number;

  constructor(options: NodeServiceOptions) {
    this.db = options.db;
    this.leaseMs = options.leaseMs;
    this.random = options.random ?? Math.random;
  }

  async listNodes(now = new Date()): Promise<Node[]> {
    return (await listNodesWithLoad(this.db)).map((row) => this.rowToNode(row, now));
  }

  async setState(name: string, state: NodeState): Promise<Node> {
    if (!(await setNodeState(this.db, name, state))) throw new NodeNotFoundError(name);
    const node = (await this.listNodes()).find((candidate) => candidate.name === name);
    if (!node) throw new NodeNotFoundError(name);
    return node;
  }

  /** Picks the node for a new backend (chooseNode). */
  async place(limits: ResourceLimits, now = new Date()): Promise<Placement> {
    return chooseNode(await this.listNodes(now), limits, this.random);
  }

  private rowToNode(row: NodeWithLoad, now: Date): Node {
    const lost = row.last_heartbeat.getTime() < now.getTime() - this.leaseMs;
    return {
      name: row.name,
      address: row.address,
      status: lost ? 'lost' : row.state,
      lastHeartbeat: row.last_heartbeat,
      startedAt: row.started_at,
      engineOk: row.engine_ok,
      engineError: row.engine_error,
      capabilities: row.capabilities,
      capacity: row.capacity,
      liveBackends: row.live_backends,
    };
  }
}

/**
 * The node for a new backend: ready, not draining, within its lease, its
 * engine answering, room left, and able to enforce the limits asked for. Of
 * two random such nodes, the one with fewer live backends (Plane's rule: nearly
 * as even as the least loaded, without every API replica piling on one node).
 * Each refusal names why, so that an operator can act on it.
 */
/** Live backends and warm containers: both hold memory and CPU on the node. */
function loadOf(node: Node): number {
  return node.liveBackends + Object.values(node.capacity.warm ?? {}).reduce((sum, pool) => sum + pool.warmed + pool.starting, 0);
}

export function chooseNode(nodes: readonly Node[], limits: ResourceLimits, random: () => number): Placement {
  const alive = nodes.filter((node) => node.status !== 'lost');
  if (alive.length === 0) throw new NoReadyNodeError(nodes.length === 0 ? 'no node has registered' : 'every node is past its lease');
  const ready = alive.filter((node) => node.status === 'ready');
  if (ready.length === 0) throw new NoReadyNodeError('every live node is draining');
  const engines = ready.filter((node) => node.engineOk);
  if (engines.length === 0) throw new DockerUnavailableError(new Error(ready[0]?.engineError ?? 'the engine did not answer'));
  const roomy = engines.filter((node) => node.capacity.maxBackends === 0 || node.liveBackends < node.capacity.maxBackends);
  if (roomy.length === 0) throw new NoReadyNodeError('every node is full');
  for (const [limit, capability] of CAPABILITY_OF) {
    if (limits[limit] !== undefined && !roomy.some((node) => node.capabilities[capability])) throw new UnenforceableLimitError(capability);
  }
  const able = roomy.filter((node) => CAPABILITY_OF.every(([limit, capability]) => limits[limit] === undefined || node.capabilities[capability]));
  const first = able[Math.floor(random() * able.length)]!;
  const second = able[Math.floor(random() * able.length)]!;
  const chosen = loadOf(second) < loadOf(first) ? second : first;
  return { name: chosen.name, address: chosen.address };
}
