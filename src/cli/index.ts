import type { Command } from 'commander';
import { registerAccountCommands } from './accounts.ts';
import { registerBackendCommands } from './backends.ts';
import { registerLoginCommand } from './login.ts';
import { registerNodeCommands } from './nodes.ts';
import { registerPushCommand } from './push.ts';
import { registerServiceCommands } from './services.ts';

/** The commands that talk to a berth over its API (everything but `serve`). */
export function registerClientCommands(program: Command): void {
  registerLoginCommand(program);
  registerAccountCommands(program);
  registerServiceCommands(program);
  registerPushCommand(program);
  registerBackendCommands(program);
  registerNodeCommands(program);
}

export { reportError } from './output.ts';
