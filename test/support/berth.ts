import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import { Berth, type Role } from '../../src/berth.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger, type DestinationStream } from '../../src/core/logger.ts';
import { createPostgresDatabase, type TestDatabase } from './databases.ts';
import { createTestDocker } from './docker.ts';

export const ADMIN_TOKEN = 'admin.test-admin-secret-0123456789';

export interface TestBerthOptions {
  database: TestDatabase;
  /** Extra environment for loadConfig. */
  env?: Record<string, string>;
  docker?: Dockerode;
  /** Where berth's log lines go instead of stdout (set BERTH_LOG_LEVEL in `env` to see any). */
  logDestination?: DestinationStream;
  /** Only this part of berth (default all); with `env.DATABASE_URL`, several processes share one database. */
  role?: Role;
}

/**
 * A real berth listening on real ports, with its own storage: a PGlite
 * directory or a fresh PostgreSQL database. `restart()` stops it and starts a
 * new process-equivalent on the same storage and ports.
 */
export class TestBerth {
  berth!: Berth;
  apiUrl = '';
  proxyUrl = '';

  private constructor(
    private readonly env: Record<string, string>,
    private readonly dataDir: string,
    private readonly docker: Dockerode | undefined,
    private readonly logDestination?: DestinationStream,
  ) {}

  static async start(options: TestBerthOptions): Promise<TestBerth> {
    const dataDir = await mkdtemp(join(tmpdir(), 'berth-test-'));
    const [apiPort, proxyPort] = await Promise.all([freePort(), freePort()]);
    const env: Record<string, string> = {
      BERTH_API_PORT: String(apiPort),
      BERTH_PROXY_PORT: String(proxyPort),
      BERTH_DATA_DIR: dataDir,
      BERTH_ADMIN_TOKEN: ADMIN_TOKEN,
      BERTH_LOG_LEVEL: process.env.BERTH_TEST_LOG_LEVEL ?? 'silent',
      ...(options.database.kind === 'postgres' && !options.env?.DATABASE_URL ? { DATABASE_URL: await createPostgresDatabase() } : {}),
      ...options.env,
    };
    const instance = new TestBerth(env, dataDir, options.docker, options.logDestination);
    await instance.boot(options.role);
    return instance;
  }

  private async boot(role?: Role): Promise<void> {
    const config = loadConfig(this.env);
    this.berth = await Berth.create({ config, logger: createLogger(config.logLevel, this.logDestination), docker: this.docker, role });
    await this.berth.start();
    this.apiUrl = `http://127.0.0.1:${this.berth.apiPort}`;
    this.proxyUrl = `http://127.0.0.1:${this.berth.proxyPort}`;
  }

  /** Restarts on the same storage and ports; `role` runs only that part of berth (its URLs then answer nothing else). */
  async restart(options: { role?: Role } = {}): Promise<void> {
    await this.berth.stop();
    await this.boot(options.role);
  }

  /** Stops berth and removes what it leaves behind: its storage and its containers (which a stop keeps running). */
  async stop(): Promise<void> {
    await this.berth.stop();
    await rm(this.dataDir, { recursive: true, force: true });
    await removeInstallationContainers(this.docker ?? createTestDocker(), this.berth.instanceId).catch(() => undefined);
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Only this installation's containers: other suites (or a developer's berth) on the same engine are left alone. */
async function removeInstallationContainers(docker: Dockerode, instanceId: string): Promise<void> {
  const containers = await docker.listContainers({ all: true, filters: { label: [`berth.instance=${instanceId}`] } });
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
}
