import type { Command } from 'commander';
import type { NodeInfo } from '../client/index.ts';
import { createClient } from './config.ts';
import { withJson } from './options.ts';
import { printJson, printJsonLine, printLine, printTable, type OutputOptions } from './output.ts';

/** `nodes`, `node drain`, `node ready`: admin commands. */
export function registerNodeCommands(program: Command): void {
  withJson(program.command('nodes').description('the nodes (schedulers on Docker hosts) and their state (admin token)')).action(
    async (options: OutputOptions) => {
      const client = await createClient();
      const nodes = await client.nodes();
      if (options.json) {
        for (const node of nodes) printJsonLine(node);
        return;
      }
      printTable(
        ['NAME', 'ADDRESS', 'STATUS', 'ENGINE', 'BACKENDS', 'LAST HEARTBEAT'],
        nodes.map((node) => [node.name, node.address, node.status, node.engine.ok ? 'ok' : `down: ${node.engine.error ?? ''}`, String(node.live_backends), node.last_heartbeat]),
        'no node has registered yet: start berth with the scheduler role',
      );
    },
  );

  const node = program.command('node').description('one node (admin token)');
  const setState = (state: 'draining' | 'ready', verb: string) => async (name: string, options: OutputOptions) => {
    const client = await createClient();
    const updated: NodeInfo = await client.setNodeState(name, state);
    if (options.json) printJson(updated);
    else printLine(`node ${updated.name} ${verb} (${updated.live_backends} live backend${updated.live_backends === 1 ? '' : 's'})`);
  };
  withJson(node.command('drain <name>').description('take the node out of placement; its running backends stay')).action(setState('draining', 'is draining'));
  withJson(node.command('ready <name>').description('let the node take new backends again')).action(setState('ready', 'is ready'));
}
