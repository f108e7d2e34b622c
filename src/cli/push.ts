import type { Command } from 'commander';
import { createClient, resolveAccount } from './config.ts';
import { withAccount, withJson } from './options.ts';
import { CliError, printJson, printLine, type OutputOptions } from './output.ts';
import { printImages, shortDigest } from './services.ts';

interface PushOptions extends OutputOptions {
  account?: string;
  tag: string;
}

/**
 * `push`: berth spawns from images on its Docker engine, so pushing is tagging
 * a local image into the service's repository on that engine (the local one,
 * DOCKER_HOST or the default socket), then listing the service's images as
 * berth sees them.
 */
export function registerPushCommand(program: Command): void {
  withJson(
    withAccount(
      program
        .command('push <service> <local-image>')
        .description("tag a local Docker image into the service's repository (on the engine berth runs backends on)"),
    ),
  )
    .option('--tag <tag>', 'tag to give it in the repository', 'latest')
    .action(async (service: string, localImage: string, options: PushOptions) => {
      const client = await createClient();
      const account = await resolveAccount(client, options.account);
      const repository = await client.services.imageName(account, service);
      const digest = await tagLocalImage(localImage, repository, options.tag);
      const images = await client.services.images(account, service);
      if (options.json) {
        printJson({ repository, tag: options.tag, image: `${repository}:${options.tag}`, digest, images });
        return;
      }
      printLine(`tagged ${localImage} (${shortDigest(digest)}) as ${repository}:${options.tag}`);
      printLine();
      printImages(images, `berth does not see ${repository}:${options.tag}: is it on another Docker engine than this one?`, options.tag);
    });
}

/** Tags the image into `repository:tag` on the local engine and returns its id. */
async function tagLocalImage(localImage: string, repository: string, tag: string): Promise<string> {
  // Loaded here: dockerode is only needed by this command.
  const [{ createDocker }, { isEngineUnreachable }] = await Promise.all([import('../../scheduler/docker/docker.ts'), import('../../scheduler/engine.ts')]);
  const image = createDocker().getImage(localImage);
  try {
    const { Id } = await image.inspect();
    await image.tag({ repo: repository, tag });
    return Id;
  } catch (error) {
    if (isEngineUnreachable(error)) {
      throw new CliError(`the local Docker engine is not reachable (${process.env.DOCKER_HOST ?? '/var/run/docker.sock'})`);
    }
    if ((error as { statusCode?: number }).statusCode === 404) throw new CliError(`no image "${localImage}" on the local Docker engine`);
    throw error;
  }
}
