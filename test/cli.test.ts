// The `berth` command, run as a user would (`node bin/berth.js …`, a
// subprocess) against a real berth and real containers, with its own HOME
// and XDG_CONFIG_HOME so nothing of the machine's user is read or written.
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './support/cli.ts';
import { inspectBackendContainer } from './support/backends.ts';
import { ADMIN_TOKEN, freePort, TestBerth } from './support/berth.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();
const REQUEST_ID = /request req_[a-z0-9]{16}/;


describe('berth CLI', () => {
  let berth: TestBerth;
  let home: string;
  /** The environment of every run: a temp HOME and config dir, berth's URL; no token unless a test adds one. */
  let baseEnv: Record<string, string>;
  /** With the account token of "cli" in BERTH_TOKEN. */
  let accountEnv: Record<string, string>;
  let backendId: string;

  const berthCli = (args: string[], env: Record<string, string> = accountEnv) => runCli(args, env);
  /** Runs a command that must succeed, and parses its --json output: one JSON value per line. */
  async function jsonLines<T = any>(args: string[], env: Record<string, string> = accountEnv): Promise<T[]> {
    const result = await berthCli([...args, '--json'], env);
    if (result.code !== 0) throw new Error(`berth ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
    return result.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as T);
  }
  /** The same, for a command that prints a single value. */
  async function json<T = any>(args: string[], env: Record<string, string> = accountEnv): Promise<T> {
    const values = await jsonLines<T>(args, env);
    if (values.length !== 1) throw new Error(`berth ${args.join(' ')} printed ${values.length} JSON values, not one`);
    return values[0]!;
  }

  beforeAll(async () => {
    await ensureTestImage(docker);
    berth = await TestBerth.start({ database: { kind: 'pglite' }, env: { BERTH_TERMINATION_GRACE_SECONDS: '2' } });
    home = await mkdtemp(join(tmpdir(), 'berth-cli-home-'));
    baseEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      XDG_CONFIG_HOME: join(home, 'config'),
      BERTH_URL: berth.apiUrl,
      ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
    };
  });
  afterAll(async () => {
    await docker
      .getImage('cli/echo:v1')
      .remove()
      .catch(() => undefined);
    await berth?.stop();
    if (home) await rm(home, { recursive: true, force: true });
  });

  it('logs in, saving the URL and token readable by the user only, and uses them', async () => {
    const { BERTH_URL: _url, ...noUrl } = baseEnv;
    const login = await runCli(['login', '--url', berth.apiUrl, '--token', ADMIN_TOKEN], noUrl);
    expect(login.stderr).toBe('');
    expect(login.code).toBe(0);
    const path = join(home, 'config', 'berth', 'config.json');
    expect(login.stdout).toBe(`logged in to ${berth.apiUrl} with the admin token; saved to ${path}\n`);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ url: berth.apiUrl, token: ADMIN_TOKEN });
    expect((await stat(path)).mode & 0o777).toBe(0o600);

    // Without BERTH_URL or BERTH_TOKEN, the saved login is what the commands use.
    const created = await runCli(['account', 'create', 'cli'], noUrl);
    expect(created).toEqual({ code: 0, stdout: 'created account cli\n', stderr: '' });
    expect(await json(['account', 'create', 'other'], noUrl)).toEqual({ name: 'other', created_at: expect.any(String) });

    // A bad token is refused at login and nothing is saved.
    const refused = await runCli(['login', '--token', 'nope.nope'], { ...baseEnv, XDG_CONFIG_HOME: join(home, 'elsewhere') });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^berth: the token is not valid \(code invalid_token, request req_[a-z0-9]{16}\)\n/);
    await expect(stat(join(home, 'elsewhere', 'berth', 'config.json'))).rejects.toThrow(/ENOENT/);
  });

  it("prints the server's error, code and request id on stderr and exits non-zero", async () => {
    const again = await berthCli(['account', 'create', 'cli'], baseEnv);
    expect(again.code).toBe(1);
    expect(again.stdout).toBe('');
    expect(again.stderr).toMatch(/^berth: account "cli" already exists \(code account_exists, request req_[a-z0-9]{16}\)\n$/);
  });

  it('mints a token (alone on stdout), revokes one, and lets BERTH_TOKEN win over the saved login', async () => {
    const minted = await berthCli(['token', 'create', 'cli'], baseEnv);
    expect(minted.code).toBe(0);
    const token = minted.stdout.trim();
    expect(token).toMatch(/^[a-z0-9]{12}\.\S+$/);
    expect(minted.stderr).toContain(`token id ${token.split('.')[0]}`);
    accountEnv = { ...baseEnv, BERTH_TOKEN: token };

    const spare = await json<{ token: string; id: string }>(['token', 'create', 'cli'], baseEnv);
    expect(spare).toEqual({ token: expect.stringMatching(/^[a-z0-9]{12}\./), id: spare.token.split('.')[0] });
    expect(await berthCli(['token', 'revoke', 'cli', spare.id], baseEnv)).toEqual({ code: 0, stdout: `revoked token ${spare.id} of account cli\n`, stderr: '' });
    const revoked = await berthCli(['service', 'list'], { ...baseEnv, BERTH_TOKEN: spare.token });
    expect(revoked.code).toBe(1);
    expect(revoked.stderr).toContain('the token is not valid (code invalid_token');

    // The saved admin login sees two accounts, so an account command needs --account; the account token does not.
    const ambiguous = await berthCli(['service', 'list'], baseEnv);
    expect(ambiguous).toEqual({ code: 1, stdout: '', stderr: 'berth: this token may act on several accounts (cli, other); pass --account <account>\n' });
    expect(await berthCli(['service', 'list', '--account', 'cli'], baseEnv)).toEqual({ code: 0, stdout: 'account cli has no services\n', stderr: '' });
  });

  it('creates, lists, shows and deletes services', async () => {
    const created = await berthCli(['service', 'create', 'echo']);
    expect(created).toEqual({ code: 0, stdout: 'created service echo in account cli, image repository cli/echo\n', stderr: '' });
    expect(await json(['service', 'create', 'spare'])).toMatchObject({ name: 'spare', image_name: 'cli/spare' });
    expect((await berthCli(['service', 'list'])).stdout).toBe('echo\nspare\n');
    expect(await jsonLines(['service', 'list'])).toEqual(['echo', 'spare']);

    const info = await berthCli(['service', 'info', 'echo']);
    expect(info.code).toBe(0);
    expect(info.stdout).toMatch(/^name +echo\n/);
    expect(info.stdout).toMatch(/\nimage repository +cli\/echo\n/);
    expect(info.stdout).toMatch(/\ndefault +latest +local +0 +never\n/);
    expect(await json(['service', 'info', 'echo'])).toMatchObject({ name: 'echo', account_name: 'cli', environments: [{ name: 'default', image_tag: 'latest' }] });

    const warm = await berthCli(['service', 'warm-pool', 'echo', '2']);
    expect(warm).toEqual({ code: 0, stdout: 'environment default of service echo keeps 2 warm containers per node\n', stderr: '' });
    expect(await json(['service', 'info', 'echo'])).toMatchObject({ environments: [{ name: 'default', warm_pool_size: 2 }] });
    expect((await berthCli(['service', 'warm-pool', 'echo', 'lots'])).code).toBe(1);
    await berthCli(['service', 'warm-pool', 'echo', '0']);

    expect((await berthCli(['service', 'delete', 'spare'])).code).toBe(0);
    const gone = await berthCli(['service', 'info', 'spare']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^berth: service "spare" does not exist in account "cli" \(code service_not_found, request req_[a-z0-9]{16}\)\n$/);
  });

  it("pushes a local image into the service's repository and shows it among the service's images", async () => {
    const { id } = await ensureTestImage(docker);
    const pushed = await berthCli(['push', 'echo', 'berth-test/app:latest', '--tag', 'v1']);
    expect(pushed.stderr).toBe('');
    expect(pushed.code).toBe(0);
    expect(pushed.stdout).toContain(`tagged berth-test/app:latest (${id.slice(0, 19)}) as cli/echo:v1\n`);
    expect(pushed.stdout).toMatch(/\nv1 \* +sha256:/);
    expect((await docker.getImage('cli/echo:v1').inspect()).Id).toBe(id);

    expect(await jsonLines(['service', 'images', 'echo'])).toEqual([{ digest: id, tag: 'v1', repository: 'cli/echo', upload_time: expect.any(String) }]);
    const missing = await berthCli(['push', 'echo', 'berth-test/no-such-image:latest']);
    expect(missing).toEqual({ code: 1, stdout: '', stderr: 'berth: no image "berth-test/no-such-image:latest" on the local Docker engine\n' });

    expect((await berthCli(['service', 'use-image', 'echo', 'v1'])).stdout).toBe('environment default of service echo now spawns tag v1\n');
  });

  it('connects, watches the status until ready, lists the backend and prints its logs', async () => {
    const connected = await json(['connect', 'echo', '--key', 'doc-1', '--user', 'ada', '--auth', '{"role":"editor"}', '--env', 'APP_LOG_EVERY_MS=200', '--env', 'APP_NOTE=a=b', '--max-idle', '600']);
    expect(connected).toMatchObject({ spawned: true, status: 'scheduled', url: expect.stringContaining(berth.proxyUrl) });
    backendId = connected.backend_id;

    // Without a TTY: one line per status, then exit 0 at ready.
    const watched = await berthCli(['status', backendId, '--watch']);
    expect(watched.stderr).toBe('');
    expect(watched.code).toBe(0);
    const lines = watched.stdout.trim().split('\n');
    expect(lines.map((line) => line.split(/ +/)[1])).toEqual(['scheduled', 'starting', 'waiting', 'ready']);
    // Each line says how long the wait has lasted.
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\S+Z  scheduled  \(\d+\.\d s\)$/);
    expect(await json(['status', backendId])).toEqual({ status: 'ready', time: expect.any(String) });

    const echoed = await (await fetch(connected.url)).json();
    expect(echoed.headers['x-verified-username']).toBe('ada');
    expect(JSON.parse(echoed.headers['x-verified-user-data'])).toEqual({ role: 'editor' });
    expect(echoed.env.APP_NOTE).toBe('a=b');

    const again = await berthCli(['connect', 'echo', '--key', 'doc-1', '--no-spawn']);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`^backend +${backendId} \\(already running\\)\\nstatus +ready\\n`));
    const nobody = await berthCli(['connect', 'echo', '--key', 'nobody', '--no-spawn']);
    expect(nobody.code).toBe(1);
    expect(nobody.stderr).toMatch(/^berth: no running backend holds key "nobody" and spawn is false \(code no_backend_for_key, request req_/);

    const backends = await jsonLines<{ id: string; key: string; status: { status: string } }>(['backends', 'list']);
    expect(backends.map((backend) => [backend.id, backend.key, backend.status.status])).toEqual([[backendId, 'doc-1', 'ready']]);
    const table = new RegExp(`^BACKEND +SERVICE +ENVIRONMENT +KEY +STATUS +SINCE\\n${backendId} +echo +default +doc-1 +ready +\\S+\\n$`);
    expect((await berthCli(['backends', 'list'])).stdout).toMatch(table);
    // `backends` alone still lists, as before.
    expect((await berthCli(['backends'])).stdout).toMatch(table);

    // Without --follow: the stored lines, then the command ends on its own.
    await new Promise((resolve) => setTimeout(resolve, 700));
    const logs = await berthCli(['logs', backendId]);
    expect(logs.code).toBe(0);
    // Each line with its time and the stream it came from.
    const logLines = logs.stdout.trim().split('\n').map((line) => /^(\d{4}-\d\d-\d\dT\S+Z)  (stdout|stderr)  (.*)$/.exec(line)?.slice(2));
    expect(logLines).toEqual(expect.arrayContaining([['stderr', 'stderr hello'], ['stdout', 'listening on 8080'], ['stdout', 'tick 1'], ['stdout', 'tick 2']]));
    const jsonLogs = await jsonLines(['logs', backendId]);
    expect(jsonLogs.slice(0, 1)).toEqual([{ id: expect.stringMatching(/^\d+$/), time: expect.stringMatching(/Z$/), stream: expect.stringMatching(/^std(out|err)$/), line: expect.any(String) }]);
    expect(jsonLogs).toContainEqual(expect.objectContaining({ stream: 'stderr', line: 'stderr hello' }));
  });

  it('terminates a backend, follows its logs to the end, and fails a second terminate with the server message', async () => {
    const following = berthCli(['logs', backendId, '--follow']);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await berthCli(['terminate', backendId])).toEqual({ code: 0, stdout: `terminating backend ${backendId}\n`, stderr: '' });
    const followed = await following;
    expect(followed.code).toBe(0);
    expect(followed.stdout.trim().split('\n').at(-1)).toMatch(/  stdout  got SIGTERM$/);

    // Watching a backend that has terminated prints its history and exits 1.
    const watched = await berthCli(['status', backendId, '--watch', '--json']);
    expect(watched.code).toBe(1);
    const statuses = watched.stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(statuses.at(-1)).toEqual({ status: 'terminated', time: expect.any(String), termination_reason: 'external', termination_kind: 'soft', exit_error: false });

    const second = await berthCli(['terminate', backendId]);
    expect(second.code).toBe(1);
    expect(second.stdout).toBe('');
    expect(second.stderr).toMatch(new RegExp(`^berth: backend "${backendId}" is not running \\(code BackendNotRunning, ${REQUEST_ID.source}\\)\\n$`));
    expect(await jsonLines(['backends'])).toEqual([]);
    // With --service, terminated backends too.
    expect((await jsonLines(['backends', 'list', '--service', 'echo'])).map((backend) => [backend.id, backend.status.status])).toEqual([[backendId, 'terminated']]);
  });

  it('connects with limits and waits until ready in one command, then terminates hard with --json', async () => {
    const connected = await json(['connect', 'echo', '--wait', '--timeout', '30', '--memory', '64m', '--cpu', '50', '--lifetime', '600', '--max-idle', '120']);
    expect(connected).toMatchObject({ spawned: true, status: 'ready' });
    const container = await inspectBackendContainer(docker, connected.backend_id);
    expect(container?.HostConfig).toMatchObject({ Memory: 64 * 1024 * 1024, CpuPeriod: 100_000, CpuQuota: 50_000 });
    expect(await json(['terminate', connected.backend_id, '--hard'])).toEqual({ status: 'ok', backend_id: connected.backend_id, hard: true });

    const never = await berthCli(['connect', 'echo', '--env', 'APP_NEVER_LISTEN=1', '--wait', '--timeout', '2']);
    expect(never.code).toBe(1);
    expect(never.stderr).toMatch(/^berth: backend [a-z0-9]{10} was not ready within 2 s \(last status: (starting|waiting)\)\n$/);
    const id = /^backend +([a-z0-9]{10})/.exec(never.stdout)![1]!;
    expect((await berthCli(['terminate', id, '--hard'])).code).toBe(0);
  });

  it('reports an unreachable berth and bad flags without a stack trace', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const unreachable = await berthCli(['status', 'abc'], { ...accountEnv, BERTH_URL: closed });
    expect(unreachable).toEqual({ code: 1, stdout: '', stderr: `berth: could not reach berth at ${closed}: ECONNREFUSED\n` });
    const badFlag = await berthCli(['connect', 'echo', '--max-idle', 'soon']);
    expect(badFlag.code).toBe(1);
    expect(badFlag.stderr).toContain("option '--max-idle <seconds>' argument 'soon' is invalid");
    const badSize = await berthCli(['connect', 'echo', '--memory', 'lots']);
    expect(badSize.code).toBe(1);
    expect(badSize.stderr).toContain("option '--memory <size>' argument 'lots' is invalid. must be a size such as 512m, 1g or a number of bytes");
  });
});
