import type { Command } from 'commander';
import { BerthClient } from '../client/index.ts';
import { configPath, DEFAULT_URL, saveLogin } from './config.ts';
import { withJson } from './options.ts';
import { printJson, printLine, type OutputOptions } from './output.ts';

interface LoginOptions extends OutputOptions {
  url?: string;
  token: string;
}

/** `login`: checks a URL and token against berth, then saves them for later commands. */
export function registerLoginCommand(program: Command): void {
  withJson(
    program
      .command('login')
      .description(`check a berth URL and token and save them to ${displayPath()} (mode 0600)`)
      .option('--url <url>', `berth's API URL (default: BERTH_URL, else ${DEFAULT_URL})`)
      .requiredOption('--token <token>', 'an account token or the admin token'),
  ).action(async (options: LoginOptions) => {
    const url = (options.url ?? process.env.BERTH_URL ?? DEFAULT_URL).replace(/\/+$/, '');
    const auth = await new BerthClient({ url, token: options.token }).auth();
    const path = configPath();
    await saveLogin({ url, token: options.token }, path);
    if (options.json) {
      printJson({ url, accounts: auth.accounts, is_admin: auth.is_admin, config_path: path });
      return;
    }
    const who = auth.is_admin ? 'the admin token' : `a token of ${auth.accounts.join(', ') || 'no account'}`;
    printLine(`logged in to ${url} with ${who}; saved to ${path}`);
    if (process.env.BERTH_URL || process.env.BERTH_TOKEN) {
      process.stderr.write('berth: note: BERTH_URL and BERTH_TOKEN, while set, win over the saved login\n');
    }
  });
}

function displayPath(): string {
  return '$XDG_CONFIG_HOME/berth/config.json (or ~/.config/berth/config.json)';
}
