import type { Command } from 'commander';
import type { Service, ServiceImage } from '../client/index.ts';
import { createClient, resolveAccount } from './config.ts';
import { withAccount, withJson } from './options.ts';
import { CliError, printFields, printJson, printJsonLines, printLine, printTable, type OutputOptions } from './output.ts';

interface AccountOptions extends OutputOptions {
  account?: string;
}

/** Opens a client and settles the account the command acts in. */
async function inAccount(options: AccountOptions) {
  const client = await createClient();
  return { client, account: await resolveAccount(client, options.account) };
}

/** `service create|list|info|delete|use-image|images`. */
export function registerServiceCommands(program: Command): void {
  const service = program.command('service').description('services of an account');

  withJson(withAccount(service.command('create <service>').description('create a service (environment "default" on tag "latest")')))
    .option('--image <repository>', 'image repository to spawn from (default: {BERTH_IMAGE_PREFIX}{account}/{service})')
    .action(async (name: string, options: AccountOptions & { image?: string }) => {
      const { client, account } = await inAccount(options);
      await client.services.create(account, name, options.image ? { image: options.image } : {});
      const created = await client.services.get(account, name);
      if (options.json) printJson(created);
      else printLine(`created service ${name} in account ${account}, image repository ${created.image_name}`);
    });

  withJson(withAccount(service.command('list').description("list the account's services"))).action(async (options: AccountOptions) => {
    const { client, account } = await inAccount(options);
    const names = await client.services.list(account);
    if (options.json) printJsonLines(names);
    else if (names.length === 0) printLine(`account ${account} has no services`);
    else for (const name of names) printLine(name);
  });

  withJson(withAccount(service.command('info <service>').description('show a service: repository, environments, newest image'))).action(
    async (name: string, options: AccountOptions) => {
      const { client, account } = await inAccount(options);
      const found = await client.services.get(account, name);
      if (options.json) printJson(found);
      else printService(found);
    },
  );

  withJson(withAccount(service.command('delete <service>').description('delete a service and its environments'))).action(
    async (name: string, options: AccountOptions) => {
      const { client, account } = await inAccount(options);
      await client.services.delete(account, name);
      if (options.json) printJson({ status: 'ok', account, service: name });
      else printLine(`deleted service ${name} of account ${account}`);
    },
  );

  withJson(withAccount(service.command('use-image <service> <tag>').description('point an environment at an image tag (or sha256: image id)')))
    .option('--environment <environment>', 'the environment to update', 'default')
    .action(async (name: string, tag: string, options: AccountOptions & { environment: string }) => {
      const { client, account } = await inAccount(options);
      await client.services.useImage(account, name, tag, { environment: options.environment });
      if (options.json) printJson({ status: 'ok', account, service: name, environment: options.environment, image_tag: tag });
      else printLine(`environment ${options.environment} of service ${name} now spawns tag ${tag}`);
    });

  withJson(withAccount(service.command('warm-pool <service> <size>').description('keep <size> containers started ahead on each node (0: none)')))
    .option('--environment <environment>', 'the environment to update', 'default')
    .action(async (name: string, size: string, options: AccountOptions & { environment: string }) => {
      const count = Number(size);
      if (!Number.isInteger(count) || count < 0) throw new CliError(`<size> must be a whole number, got ${JSON.stringify(size)}`);
      const { client, account } = await inAccount(options);
      await client.services.setWarmPool(account, name, count, { environment: options.environment });
      if (options.json) printJson({ status: 'ok', account, service: name, environment: options.environment, warm_pool_size: count });
      else printLine(`environment ${options.environment} of service ${name} keeps ${count} warm container${count === 1 ? '' : 's'} per node`);
    });

  withJson(withAccount(service.command('images <service>').description("images of the service's repository on the Docker engine"))).action(
    async (name: string, options: AccountOptions) => {
      const { client, account } = await inAccount(options);
      const images = await client.services.images(account, name);
      if (options.json) printJsonLines(images);
      else printImages(images, `no images in the repository of service ${name} yet (see: berth push)`);
    },
  );
}

function printService(service: Service): void {
  printFields([
    ['name', service.name],
    ['account', service.account_name],
    ['image repository', service.image_name],
    ['created', service.created_at],
    ['last spawned', service.last_spawned_at ?? 'never'],
    ['newest image', service.last_image_digest ? `${shortDigest(service.last_image_digest)} (${service.last_image_upload_time})` : 'none'],
  ]);
  printLine();
  printTable(
    ['ENVIRONMENT', 'TAG', 'CLUSTER', 'WARM POOL', 'LAST SPAWNED'],
    service.environments.map((env) => [
      env.name,
      env.image_tag,
      env.cluster,
      env.warm_pool.warmable ? String(env.warm_pool_size) : `${env.warm_pool_size} (not warmable: ${env.warm_pool.reason ?? 'unknown'})`,
      env.last_spawned_at ?? 'never',
    ]),
    'no environments',
  );
}

export function printImages(images: ServiceImage[], empty: string, marked?: string): void {
  printTable(
    ['TAG', 'IMAGE ID', 'CREATED'],
    images.map((image) => [`${image.tag}${image.tag === marked ? ' *' : ''}`, shortDigest(image.digest), image.upload_time]),
    empty,
  );
}

/** `sha256:0123456789ab`, as `docker images` shortens ids. */
export function shortDigest(digest: string): string {
  return digest.startsWith('sha256:') ? digest.slice(0, 19) : digest;
}
