import { Command, Option } from 'commander';
import { registerClientCommands, reportError } from './cli/index.ts';
import { ROLES, type Role } from './roles.ts';
import { serveBanner } from './serve-banner.ts';
import { VERSION } from './version.ts';

const program = new Command('berth').description('Session backends on your own Docker hosts').version(VERSION);

program
  .command('serve')
  .description('run berth: the API, the proxy and the scheduler (or one role)')
  .addOption(new Option('--role <role>', 'which part of berth to run').choices(ROLES).default('all'))
  .action(async (options: { role: Role }) => {
    // Loaded here, not above: the client commands start faster without the server's modules.
    const [{ Berth }, { ConfigError, loadConfig }, { createLogger }] = await Promise.all([
      import('./berth.ts'),
      import('./config.ts'),
      import('./core/logger.ts'),
    ]);
    let config;
    try {
      config = loadConfig();
    } catch (error) {
      if (error instanceof ConfigError) {
        console.error(`berth: ${error.message}`);
        process.exit(1);
      }
      throw error;
    }
    const logger = createLogger(config.logLevel);
    const berth = await Berth.create({ config, logger, role: options.role });
    await berth.start();
    process.stdout.write(
      serveBanner({
        role: options.role,
        version: VERSION,
        apiUrl: config.publicApiUrl,
        proxyUrl: config.publicProxyUrl,
        generatedAdminToken: berth.generatedAdminToken,
        adminTokenConfigured: config.adminToken !== undefined,
      }),
    );
    const shutdown = (signal: string) => {
      logger.info({ signal }, 'stopping berth');
      berth.stop().then(
        () => process.exit(0),
        (error: unknown) => {
          logger.error({ err: error }, 'berth did not stop cleanly');
          process.exit(1);
        },
      );
    };
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
  });

registerClientCommands(program);

// `berth logs … | head` closes the pipe early: that ends the command, it is not a failure.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

program.parseAsync().catch((error: unknown) => {
  process.exit(reportError(error));
});
