import type { BerthMiddleware, BerthRouter } from '../context.ts';
import { requireAdmin } from '../http/auth.ts';
import { readJsonBody, sendJson } from '../http/json.ts';
import { parseInput } from '../http/validation.ts';
import { z } from 'zod';
import type { Node } from './node.service.ts';

export const NODE_NAME = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'must be a node name');

/** Admin-only: the nodes, and taking one out of placement (drain) or back in. */
export function nodeController(router: BerthRouter, authenticated: BerthMiddleware): void {
  router.get('/v2/nodes', authenticated, async (ctx) => {
    requireAdmin(ctx);
    sendJson(ctx, { nodes: (await ctx.deps.nodes.listNodes()).map(nodeToJson) });
  });

  router.post('/v2/node/:name/drain', authenticated, async (ctx) => {
    requireAdmin(ctx);
    const name = parseInput(NODE_NAME, ctx.params.name, 'name');
    parseInput(z.strictObject({}), await readJsonBody(ctx), 'body');
    sendJson(ctx, nodeToJson(await ctx.deps.nodes.setState(name, 'draining')));
  });

  router.post('/v2/node/:name/ready', authenticated, async (ctx) => {
    requireAdmin(ctx);
    const name = parseInput(NODE_NAME, ctx.params.name, 'name');
    parseInput(z.strictObject({}), await readJsonBody(ctx), 'body');
    sendJson(ctx, nodeToJson(await ctx.deps.nodes.setState(name, 'ready')));
  });
}

function nodeToJson(node: Node) {
  return {
    name: node.name,
    address: node.address,
    status: node.status,
    last_heartbeat: node.lastHeartbeat.toISOString(),
    started_at: node.startedAt.toISOString(),
    live_backends: node.liveBackends,
    engine: { ok: node.engineOk, error: node.engineError },
    capabilities: {
      memory_limit: node.capabilities.memoryLimit,
      swap_limit: node.capabilities.swapLimit,
      cpu_cfs: node.capabilities.cpuCfs,
      disk_limit: node.capabilities.diskLimit,
    },
    capacity: { max_backends: node.capacity.maxBackends },
    // Pre-started containers, by `account/service/environment`: apart from backends, but load all the same.
    warm_pool: node.capacity.warm ?? {},
  };
}
