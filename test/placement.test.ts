// The placement rule and the reconcile plan, as pure functions: one seam each.
import { describe, expect, it } from 'vitest';
import { chooseNode, NoReadyNodeError, UnenforceableLimitError, type Node } from '../src/nodes/node.service.ts';
import { DockerUnavailableError } from '../src/core/errors.ts';
import { planReconcile, type RunView } from '../scheduler/reconcile-plan.ts';
import type { ContainerState } from '../scheduler/engine.ts';

const ALL = { memoryLimit: true, swapLimit: true, cpuCfs: true, diskLimit: false };

function node(name: string, overrides: Partial<Node> = {}): Node {
  return {
    name,
    address: `10.0.0.${name.length}`,
    status: 'ready',
    lastHeartbeat: new Date(),
    startedAt: new Date(),
    engineOk: true,
    engineError: null,
    capabilities: ALL,
    capacity: { maxBackends: 0 },
    liveBackends: 0,
    ...overrides,
  };
}

/** Random numbers in turn from a list, so that the two choices are known. */
const picks = (...values: number[]) => () => values.shift() ?? 0;

describe('placement', () => {
  it('takes the less loaded of two random nodes', () => {
    const nodes = [node('a', { liveBackends: 5 }), node('b', { liveBackends: 1 }), node('c', { liveBackends: 9 })];
    expect(chooseNode(nodes, {}, picks(0, 0.5)).name).toBe('b');
    expect(chooseNode(nodes, {}, picks(0.9, 0.1)).name).toBe('a');
  });

  it('never places on a lost, draining or engine-less node, nor on one that cannot enforce an asked limit', () => {
    const nodes = [
      node('lost', { status: 'lost' }),
      node('draining', { status: 'draining' }),
      node('noengine', { engineOk: false }),
      node('nocgroup', { capabilities: { ...ALL, memoryLimit: false } }),
      node('good', { liveBackends: 100 }),
    ];
    for (let i = 0; i < 20; i++) expect(chooseNode(nodes, { memoryLimitBytes: 1 << 30 }, Math.random).name).toBe('good');
  });

  it('says why when no node can take a backend', () => {
    expect(() => chooseNode([], {}, Math.random)).toThrow(NoReadyNodeError);
    expect(() => chooseNode([node('a', { status: 'lost' })], {}, Math.random)).toThrow(/past its lease/);
    expect(() => chooseNode([node('a', { status: 'draining' })], {}, Math.random)).toThrow(/draining/);
    expect(() => chooseNode([node('a', { engineOk: false, engineError: 'connect ENOENT' })], {}, Math.random)).toThrow(DockerUnavailableError);
    expect(() => chooseNode([node('a', { capacity: { maxBackends: 2 }, liveBackends: 2 })], {}, Math.random)).toThrow(/full/);
    expect(() => chooseNode([node('a')], { diskLimitBytes: 1 }, Math.random)).toThrow(UnenforceableLimitError);
  });
});

function container(backendId: string, state: 'running' | 'created' | 'exited'): ContainerState {
  return {
    containerId: `c-${backendId}`,
    backendId,
    poolId: null,
    running: state === 'running',
    exitCode: state === 'exited' ? 3 : null,
    oomKilled: false,
    removing: false,
    hostPort: state === 'running' ? 32000 : null,
  };
}

const idle = new Map<string, RunView>();
const busy = (id: string) => new Map<string, RunView>([[id, { creating: true, busy: true, terminationActed: false }]]);
const waiting = (id: string) => new Map<string, RunView>([[id, { creating: false, busy: true, terminationActed: false }]]);
const following = (id: string, terminationActed = false) => new Map<string, RunView>([[id, { creating: false, busy: false, terminationActed }]]);

describe('the reconcile plan', () => {
  it('converges each way the database and the engine can disagree', () => {
    const plan = planReconcile(
      [
        { id: 'sched', status: 'scheduled' },
        { id: 'cut', status: 'starting' },
        { id: 'made', status: 'starting' },
        { id: 'running', status: 'waiting' },
        { id: 'exited', status: 'ready' },
        { id: 'vanished', status: 'ready' },
        { id: 'stopping', status: 'terminating' },
        { id: 'stopped', status: 'hard-terminating' },
      ],
      [container('made', 'created'), container('running', 'running'), container('exited', 'exited'), container('stopping', 'running'), container('orphan', 'running')],
      idle,
    );
    expect(plan.map((action) => [action.kind, action.backendId])).toEqual([
      ['spawn', 'sched'],
      ['resume', 'cut'],
      ['resume', 'made'],
      ['adopt', 'running'],
      ['record-exit', 'exited'],
      ['lost', 'vanished'],
      ['enforce-termination', 'stopping'],
      ['finish-termination', 'stopped'],
      ['remove-orphan', 'orphan'],
    ]);
    expect(plan[2]).toMatchObject({ removeContainerId: 'c-made' });
  });

  it('leaves alone what this process is doing', () => {
    expect(planReconcile([{ id: 'a', status: 'starting' }], [container('a', 'created')], busy('a'))).toEqual([]);
    expect(planReconcile([{ id: 'a', status: 'scheduled' }], [], following('a'))).toEqual([]);
    expect(planReconcile([{ id: 'a', status: 'waiting' }], [container('a', 'running')], waiting('a'))).toEqual([]);
    expect(planReconcile([{ id: 'a', status: 'ready' }], [container('a', 'running')], following('a'))).toEqual([]);
    expect(planReconcile([{ id: 'a', status: 'terminating' }], [container('a', 'running')], following('a', true))).toEqual([]);
    // A container of a backend this process is making is not an orphan, even if the database was read before it existed.
    expect(planReconcile([], [container('new', 'running')], busy('new'))).toEqual([]);
  });

  it('waits again for a backend whose readiness could not be recorded (the database was away)', () => {
    expect(planReconcile([{ id: 'a', status: 'waiting' }], [container('a', 'running')], following('a'))).toMatchObject([{ kind: 'adopt', backendId: 'a' }]);
    expect(planReconcile([{ id: 'a', status: 'starting' }], [container('a', 'running')], following('a'))).toMatchObject([{ kind: 'adopt', backendId: 'a' }]);
  });

  it('acts on a termination whose event was lost, even for a backend it follows', () => {
    expect(planReconcile([{ id: 'a', status: 'terminating' }], [container('a', 'running')], following('a'))).toEqual([
      { kind: 'enforce-termination', backendId: 'a' },
    ]);
  });
});
