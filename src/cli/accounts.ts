import type { Command } from 'commander';
import { createClient } from './config.ts';
import { withJson } from './options.ts';
import { printJson, printLine, type OutputOptions } from './output.ts';

/** `account create`, `token create`, `token revoke`: admin commands. */
export function registerAccountCommands(program: Command): void {
  const account = program.command('account').description('accounts (admin token)');
  withJson(account.command('create <name>').description('create an account')).action(async (name: string, options: OutputOptions) => {
    const client = await createClient();
    const created = await client.accounts.create(name);
    if (options.json) printJson(created);
    else printLine(`created account ${created.name}`);
  });

  const token = program.command('token').description('account tokens (admin token)');
  withJson(token.command('create <account>').description("mint a token for an account; prints it (its secret is shown only now)")).action(
    async (accountName: string, options: OutputOptions) => {
      const client = await createClient();
      const created = await client.accounts.createToken(accountName);
      if (options.json) {
        printJson(created);
        return;
      }
      // The token alone on stdout, so that `$(berth token create acme)` is the token.
      printLine(created.token);
      process.stderr.write(`token id ${created.id} (revoke with: berth token revoke ${accountName} ${created.id}); the secret is not shown again\n`);
    },
  );
  withJson(token.command('revoke <account> <id>').description('revoke a token by its id')).action(
    async (accountName: string, id: string, options: OutputOptions) => {
      const client = await createClient();
      await client.accounts.revokeToken(accountName, id);
      if (options.json) printJson({ status: 'ok', account: accountName, id });
      else printLine(`revoked token ${id} of account ${accountName}`);
    },
  );
}
