import type { Command } from 'commander';
import { BACKEND_STATUSES, BerthApiError, type BackendStatus, type BerthClient, type ConnectRequest, type SpawnConfig } from '../client/index.ts';
import { createClient, resolveAccount } from './config.ts';
import { collectKeyValue, parseBytes, parseJsonObject, parsePercent, parseSeconds, withAccount, withJson } from './options.ts';
import {
  CliError,
  describeStatus,
  formatElapsed,
  printFields,
  printJson,
  printJsonLine,
  printJsonLines,
  printLine,
  printTable,
  Spinner,
  statusLine,
  type OutputOptions,
} from './output.ts';

const READY_RANK = BACKEND_STATUSES.indexOf('ready');
/** Pause before following the status stream again after it dropped. */
const RECONNECT_DELAY_MS = 500;

interface ConnectOptions extends OutputOptions {
  account?: string;
  environment?: string;
  key?: string;
  user?: string;
  auth?: Record<string, unknown>;
  env?: Record<string, string>;
  maxIdle?: number;
  lifetime?: number;
  memory?: number;
  cpu?: number;
  cpuTime?: number;
  tag?: string;
  /** false with --no-spawn. */
  spawn: boolean;
  wait?: boolean;
  timeout?: number;
}

interface WatchOptions extends OutputOptions {
  watch?: boolean;
  timeout?: number;
}

/** `connect`, `status`, `logs`, `terminate`, `backends`. */
export function registerBackendCommands(program: Command): void {
  withJson(withAccount(program.command('connect <service>').description('get the backend holding a key, or start one; prints its URLs')))
    .option('--environment <environment>', 'the environment to spawn in (default: "default")')
    .option('--key <key>', 'at most one backend runs per key; a connect with a held key returns that backend')
    .option('--user <user>', 'the user, passed to the backend as x-verified-username')
    .option('--auth <json>', 'a JSON object passed to the backend as x-verified-user-data', parseJsonObject)
    .option('--env <KEY=VALUE>', 'environment variable of the backend (repeatable)', collectKeyValue)
    .option('--max-idle <seconds>', 'terminate after this long without requests or connections (default 300)', parseSeconds)
    .option('--lifetime <seconds>', 'terminate after this long in any case', parseSeconds)
    .option('--memory <size>', 'memory limit: bytes, or with a unit (512m, 1g, 256MiB)', parseBytes)
    .option('--cpu <percent>', 'CPU limit in percent of one core (50, 200 for two cores)', parsePercent)
    .option('--cpu-time <seconds>', 'CPU time the backend may use in all before it is killed', parseSeconds)
    .option('--tag <tag>', "image tag (or sha256: image id) to spawn instead of the environment's")
    .option('--no-spawn', 'only return the backend holding --key; never start one')
    .option('--wait', 'then wait until the backend is ready (exit 1 if it terminates instead)')
    .option('--timeout <seconds>', 'with --wait: give up after this long', parseSeconds)
    .action(async (service: string, options: ConnectOptions) => {
      const client = await createClient();
      const account = await resolveAccount(client, options.account);
      const connected = await client.connect(account, service, connectRequest(options), options.environment ? { environment: options.environment } : {});
      if (!options.wait) {
        if (options.json) printJson(connected);
        else printConnected(connected);
        return;
      }
      if (!options.json) printConnected(connected);
      const final = await watchStatus(client, connected.backend_id, { quiet: options.json === true, ...(options.timeout ? { timeout: options.timeout } : {}) });
      if (options.json) printJson({ ...connected, status: final.status });
      if (final.status !== 'ready') process.exitCode = 1;
    });

  withJson(program.command('status <backend>').description("a backend's status (public: no token needed)"))
    .option('--watch', 'follow it until the backend is ready (exit 0) or has terminated (exit 1), a spinner on a TTY, a line per status otherwise')
    .option('--timeout <seconds>', 'with --watch: give up after this long (exit 1)', parseSeconds)
    .action(async (backendId: string, options: WatchOptions) => {
      const client = await createClient();
      if (!options.watch) {
        const status = await client.status(backendId);
        const cause = await failureCause(client, backendId, status);
        if (options.json) printJson(cause ? { ...status, message: cause } : status);
        else printLine(statusLine(status) + (cause ? `\ncause: ${cause}` : ''));
        return;
      }
      const final = await watchStatus(client, backendId, { json: options.json === true, ...(options.timeout ? { timeout: options.timeout } : {}) });
      const cause = await failureCause(client, backendId, final);
      if (cause && !options.json) printLine(`cause: ${cause}`);
      if (final.status !== 'ready') process.exitCode = 1;
    });

  withJson(
    program
      .command('logs <backend>')
      .description('the lines the backend wrote; without --follow, the lines stored so far'),
  )
    .option('-f, --follow', 'keep printing new lines until the backend has terminated')
    .action(async (backendId: string, options: OutputOptions & { follow?: boolean }) => {
      const client = await createClient();
      for await (const entry of client.logStream(backendId, { follow: options.follow === true })) {
        if (options.json) printJsonLine(entry);
        else printLine(entry.time ? `${entry.time}  ${(entry.stream ?? 'stdout').padEnd(6)}  ${entry.line}` : entry.line);
      }
    });

  withJson(program.command('terminate <backend>').description('terminate a backend: SIGTERM, then SIGKILL after the grace period'))
    .option('--hard', 'SIGKILL at once')
    .action(async (backendId: string, options: OutputOptions & { hard?: boolean }) => {
      const client = await createClient();
      const hard = options.hard === true;
      await client.terminate(backendId, { hard });
      if (options.json) printJson({ status: 'ok', backend_id: backendId, hard });
      else printLine(`${hard ? 'hard-terminating' : 'terminating'} backend ${backendId}`);
    });

  const backends = program.command('backends').description("the account's backends (`backends list`, also the default)");
  withJson(
    withAccount(
      backends
        .command('list', { isDefault: true })
        .description("the account's backends that have not terminated, or with --service all of a service's")
        .option('--service <service>', "every backend of this service, terminated ones included, newest first"),
    ),
  ).action(async (options: OutputOptions & { account?: string; service?: string }) => {
    const client = await createClient();
    const account = await resolveAccount(client, options.account);
    const listed = options.service ? await client.serviceBackends(account, options.service) : await client.runningBackends(account);
    if (options.json) {
      printJsonLines(listed);
      return;
    }
    printTable(
      ['BACKEND', 'SERVICE', 'ENVIRONMENT', 'KEY', 'STATUS', 'SINCE'],
      listed.map((backend) => [backend.id, backend.service_name, backend.environment_name, backend.key ?? '-', backend.status.status, backend.status.time]),
      options.service ? `service ${options.service} has no backends` : `account ${account} has no running backends`,
    );
  });
}

function connectRequest(options: ConnectOptions): ConnectRequest {
  const spawn: SpawnConfig = {
    ...(options.tag !== undefined ? { tag: options.tag } : {}),
    ...(options.maxIdle !== undefined ? { max_idle_seconds: options.maxIdle } : {}),
    ...(options.lifetime !== undefined ? { lifetime_limit_seconds: options.lifetime } : {}),
  };
  const limits = {
    ...(options.memory !== undefined ? { memory_limit_bytes: options.memory } : {}),
    ...(options.cpu !== undefined ? { cpu_period_percent: options.cpu } : {}),
    ...(options.cpuTime !== undefined ? { cpu_time_limit: options.cpuTime } : {}),
  };
  if (options.env || Object.keys(limits).length > 0) {
    spawn.executable = { ...(options.env ? { env: options.env } : {}), ...(Object.keys(limits).length > 0 ? { resource_limits: limits } : {}) };
  }
  const spawnOptions = Object.keys(spawn);
  if (!options.spawn && spawnOptions.length > 0) {
    throw new CliError('--no-spawn never starts a backend, so --tag, --env, --max-idle, --lifetime, --memory, --cpu and --cpu-time do not apply');
  }
  if (!options.spawn && options.key === undefined) throw new CliError('--no-spawn needs --key: it returns the backend holding that key');
  return {
    ...(options.key !== undefined ? { key: options.key } : {}),
    ...(options.user !== undefined ? { user: options.user } : {}),
    ...(options.auth !== undefined ? { auth: options.auth } : {}),
    ...(!options.spawn ? { spawn: false } : spawnOptions.length > 0 ? { spawn } : {}),
  };
}

function printConnected(connected: Awaited<ReturnType<BerthClient['connect']>>): void {
  printFields([
    ['backend', `${connected.backend_id} (${connected.spawned ? 'spawned' : 'already running'})`],
    ['status', connected.status],
    ['url', connected.url],
    ['ready url', connected.ready_url],
    ['status url', connected.status_url],
  ]);
}

/**
 * Follows the backend's statuses until it is ready or has terminated, and
 * returns the status that settled it. Shows them as they come: JSON lines, a
 * spinner on a TTY, or one line each. The current status is read first
 * because the stream replays the whole history: a backend that is past ready
 * already is followed to its end, not stopped at its old `ready`.
 */
async function watchStatus(
  client: BerthClient,
  backendId: string,
  options: { json?: boolean; quiet?: boolean; timeout?: number },
): Promise<BackendStatus> {
  const signal = options.timeout ? AbortSignal.timeout(options.timeout * 1000) : undefined;
  const spinner = !options.json && !options.quiet && process.stdout.isTTY ? new Spinner() : undefined;
  const startedAt = performance.now();
  const elapsed = () => formatElapsed(performance.now() - startedAt);
  const show = (status: BackendStatus) => {
    if (options.quiet) return;
    if (options.json) printJsonLine(status);
    else if (spinner) spinner.start(`${describeStatus(status)} since ${status.time}`);
    else printLine(`${statusLine(status)}  (${elapsed()})`);
  };
  const timedOut = (last: BackendStatus | undefined) =>
    new CliError(`backend ${backendId} was not ready within ${options.timeout} s${last ? ` (last status: ${describeStatus(last)})` : ''}`);

  let last: BackendStatus | undefined;
  try {
    const current = await client.status(backendId, signal ? { signal } : {});
    const pastReady = BACKEND_STATUSES.indexOf(current.status) > READY_RANK;
    let lastEventId: string | undefined;
    for (;;) {
      try {
        for await (const event of client.statusStream(backendId, { ...(signal ? { signal } : {}), ...(lastEventId ? { lastEventId } : {}) })) {
          const { id, ...status } = event;
          if (id) lastEventId = id;
          last = status;
          show(status);
          if ((status.status === 'ready' && !pastReady) || status.status === 'terminated') {
            spinner?.stop(`${status.status === 'ready' ? '✔' : '✖'} ${describeStatus(status)} at ${status.time} (after ${elapsed()})`);
            if (status.status !== 'ready' && !options.json) {
              process.stderr.write(`berth: backend ${backendId} has terminated${pastReady ? '' : ' without becoming ready'}\n`);
            }
            return status;
          }
        }
      } catch (error) {
        // berth said no (say, 404): final. A dropped connection: follow again.
        if (error instanceof BerthApiError) throw error;
      }
      if (signal?.aborted) throw timedOut(last);
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_DELAY_MS));
    }
  } catch (error) {
    spinner?.stop(last ? `… ${describeStatus(last)} at ${last.time}` : undefined);
    if (signal?.aborted && !(error instanceof CliError)) throw timedOut(last);
    throw error;
  }
}

/**
 * Why berth ended a backend it could not start. The public status does not
 * carry it; the backend's metadata does, for a token that may read it.
 */
async function failureCause(client: BerthClient, backendId: string, status: BackendStatus): Promise<string | undefined> {
  if (status.status !== 'terminated' || status.termination_reason !== 'internalerror') return undefined;
  try {
    const info = await client.backend(backendId);
    return [...info.statuses].reverse().find((record) => record.message !== undefined)?.message;
  } catch {
    return undefined;
  }
}
