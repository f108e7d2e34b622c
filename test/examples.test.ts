// The walkthrough of examples/README.md, automated: the counter image built the
// way examples/build-image.ts builds it, served by a real berth, used by two
// users through the proxy, and reached through the example app server.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { counterImageOptions } from '../examples/build-image.ts';
import { ensureNodeImage } from '../examples/lib/node-image.ts';
import { apiClient, type ApiClient } from './support/api.ts';
import { waitForStatus } from './support/backends.ts';
import { ADMIN_TOKEN, freePort, TestBerth } from './support/berth.ts';
import { createTestDocker } from './support/docker.ts';

const ACCOUNT = 'examples';
const SERVICE = 'counter';
// The service's own repository, as in the README: an account token may name no other.
const REPOSITORY = `${ACCOUNT}/${SERVICE}`;
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const APP_SERVER = fileURLToPath(new URL('../examples/app-server/server.ts', import.meta.url));

interface Connection {
  backend_id: string;
  spawned: boolean;
  url: string;
  ready_url: string;
  token: string;
}

interface CounterState {
  type: 'state';
  key: string;
  count: number;
  online: string[];
  history: Array<{ user: string; op: string; count: number; at: string }>;
}

type CounterMessage = { type: 'hello'; you: string; key: string } | CounterState | { type: 'error'; message: string };

/** A WebSocket to the counter through berth's proxy, collecting what it is sent. */
class CounterClient {
  readonly messages: CounterMessage[] = [];
  private readonly waiters = new Set<() => void>();

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      this.messages.push(JSON.parse(data.toString()) as CounterMessage);
      for (const wake of this.waiters) wake();
    });
  }

  static async open(connection: Connection, headers: Record<string, string> = {}): Promise<CounterClient> {
    const socket = new WebSocket(`${connection.url.replace(/^http/, 'ws')}ws`, { headers });
    const client = new CounterClient(socket);
    await once(socket, 'open');
    return client;
  }

  send(op: string): void {
    this.socket.send(JSON.stringify({ op }));
  }

  /** The first message so far, or to come, that matches. */
  async waitFor<T extends CounterMessage>(matches: (m: CounterMessage) => m is T, timeoutMs = 5000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(matches);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching message within ${timeoutMs} ms; got ${JSON.stringify(this.messages)}`);
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.waiters.delete(wake);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.waiters.add(wake);
      });
    }
  }

  hello(): Promise<{ type: 'hello'; you: string; key: string }> {
    return this.waitFor((m): m is { type: 'hello'; you: string; key: string } => m.type === 'hello');
  }

  /** The state once the count is `count` and `predicate` holds. */
  stateWith(count: number, predicate: (s: CounterState) => boolean = () => true): Promise<CounterState> {
    return this.waitFor((m): m is CounterState => m.type === 'state' && m.count === count && predicate(m));
  }

  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return;
    this.socket.close();
    await once(this.socket, 'close');
  }
}

describe('examples: the shared counter behind berth', () => {
  const docker = createTestDocker();
  let berth: TestBerth;
  let api: ApiClient;
  let accountToken: string;
  let ann: Connection;
  let bob: Connection;
  const clients: CounterClient[] = [];

  async function connect(user: string, key = 'room-lobby'): Promise<Connection> {
    const response = await api.post<Connection>(`/v2/service/${ACCOUNT}/${SERVICE}/connect`, { key, user });
    expect(response.status).toBe(200);
    return response.body;
  }

  async function openClient(connection: Connection, headers?: Record<string, string>): Promise<CounterClient> {
    const client = await CounterClient.open(connection, headers);
    clients.push(client);
    return client;
  }

  beforeAll(async () => {
    await ensureNodeImage(docker, counterImageOptions(`${REPOSITORY}:latest`));
    berth = await TestBerth.start({ database: { kind: 'pglite' }, env: { BERTH_TERMINATION_GRACE_SECONDS: '2' } });
    // The curl steps of examples/README.md: account, token, service.
    const admin = apiClient(berth.apiUrl, ADMIN_TOKEN);
    expect((await admin.post('/v2/accounts', { name: ACCOUNT })).status).toBe(201);
    accountToken = (await admin.post(`/v2/account/${ACCOUNT}/tokens`)).body.token as string;
    api = apiClient(berth.apiUrl, accountToken);
    expect((await api.post(`/v2/account/${ACCOUNT}/service`, { name: SERVICE, image: REPOSITORY })).body).toEqual({ status: 'ok' });

    ann = await connect('ann');
    bob = await connect('bob');
    await waitForStatus(api, ann.backend_id, 'ready');
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await berth?.stop();
  });

  it('gives two users of one key the same backend, each with a token of their own', () => {
    expect(ann.spawned).toBe(true);
    expect(bob).toMatchObject({ backend_id: ann.backend_id, spawned: false });
    expect(bob.token).not.toBe(ann.token);
  });

  it('serves the counter page at the connection url', async () => {
    const response = await fetch(ann.url);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await response.text();
    expect(html).toContain('<title>Shared counter</title>');
    // Behind the proxy prefix only relative URLs work: the page must not name /ws or /state absolutely.
    expect(html).not.toMatch(/['"`]\/(ws|state)\b/);

    // Without the trailing slash the proxy still serves the page (the page then fixes its base itself).
    expect((await fetch(ann.url.slice(0, -1))).status).toBe(200);
    expect(await (await fetch(`${ann.url}state`)).json()).toEqual({ key: 'room-lobby', count: expect.any(Number), history: expect.any(Array) });
  });

  it('shares one counter between two users over WebSockets, naming who did what', async () => {
    // A client-sent x-verified-username is dropped by the proxy: the name is connect's `user`.
    const annSocket = await openClient(ann, { 'x-verified-username': 'mallory' });
    const bobSocket = await openClient(bob);
    expect(await annSocket.hello()).toEqual({ type: 'hello', you: 'ann', key: 'room-lobby' });
    expect(await bobSocket.hello()).toEqual({ type: 'hello', you: 'bob', key: 'room-lobby' });
    const both = (m: CounterMessage): m is CounterState => m.type === 'state' && m.online.length === 2;
    const start = (await bobSocket.waitFor(both)).count;
    expect((await annSocket.waitFor(both)).online).toEqual(['ann', 'bob']);

    annSocket.send('increment');
    for (const socket of [annSocket, bobSocket]) {
      const state = await socket.stateWith(start + 1);
      expect(state.history[0]).toEqual({ user: 'ann', op: 'increment', count: start + 1, at: expect.any(String) });
    }

    bobSocket.send('increment');
    for (const socket of [annSocket, bobSocket]) {
      const state = await socket.stateWith(start + 2);
      expect(state.history.slice(0, 2).map((h) => `${h.user}:${h.op}`)).toEqual(['bob:increment', 'ann:increment']);
    }

    await bobSocket.close();
    expect((await annSocket.stateWith(start + 2, (s) => s.online.length === 1)).online).toEqual(['ann']);
    expect(await (await fetch(`${bob.url}state`)).json()).toMatchObject({ count: start + 2 });
  });

  it("runs the page's own script against the proxy: it finds the WebSocket, shows the count and sends clicks", async () => {
    const carol = await connect('carol');
    const watcher = await openClient(bob);
    const before = (await watcher.waitFor((m): m is CounterState => m.type === 'state')).count;

    // The browser's address has no trailing slash here: the script must add it, or it would lose the token.
    const page = await PageHarness.load(carol.url.slice(0, -1));
    try {
      await page.until(() => page.text('you') === 'carol' && page.text('connection') === 'connected');
      expect(page.text('key')).toBe('room-lobby');
      expect(page.text('count')).toBe(String(before));

      page.click('increment');
      const state = await watcher.stateWith(before + 1, (s) => s.history[0]?.user === 'carol');
      expect(state.online).toContain('carol');
      await page.until(() => page.text('count') === String(before + 1));
      expect(page.historyLines()[0]).toMatch(/carol: increment → \d+$/);
    } finally {
      page.dispose();
    }
  });

  describe('the example app server', () => {
    const appServers: ChildProcessWithoutNullStreams[] = [];
    let appUrl: string;

    /** Starts examples/app-server/server.ts as a subprocess, the way the README runs it, and returns its URL. */
    async function startAppServer(env: Record<string, string> = {}): Promise<string> {
      const port = await freePort();
      const child = spawn(process.execPath, ['--import', 'tsx', APP_SERVER], {
        cwd: REPO_ROOT,
        env: {
          ...process.env,
          BERTH_URL: berth.apiUrl,
          BERTH_TOKEN: accountToken,
          BERTH_ACCOUNT: ACCOUNT,
          BERTH_SERVICE: SERVICE,
          PORT: String(port),
          ...env,
        },
      });
      appServers.push(child);
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const deadline = Date.now() + 20_000;
      while (!output.includes('app server on')) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the app server did not start:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return `http://127.0.0.1:${port}`;
    }

    beforeAll(async () => {
      appUrl = await startAppServer();
    });

    afterAll(async () => {
      for (const child of appServers) {
        if (child.exitCode !== null) continue;
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
    });

    async function signIn(name: string, base = appUrl): Promise<string> {
      const response = await fetch(`${base}/login`, { method: 'POST', body: new URLSearchParams({ name }), redirect: 'manual' });
      expect(response.status).toBe(303);
      const cookie = response.headers.get('set-cookie')?.split(';')[0];
      expect(cookie).toMatch(/^example_session=/);
      return cookie!;
    }

    function joinRoom(room: string, cookie?: string, base = appUrl): Promise<Response> {
      return fetch(`${base}/rooms`, {
        method: 'POST',
        body: new URLSearchParams({ room }),
        headers: cookie ? { cookie } : {},
        redirect: 'manual',
      });
    }

    it('signs a user in and sends them through ready_url to the room backend, under their name', async () => {
      const cookie = await signIn('dave');
      const home = await (await fetch(appUrl, { headers: { cookie } })).text();
      expect(home).toContain('Signed in as <b>dave</b>');

      const joined = await joinRoom('lobby', cookie);
      expect(joined.status).toBe(303);
      const readyUrl = joined.headers.get('location')!;
      // Room "lobby" is key room-lobby: the backend ann and bob use.
      const match = new RegExp(`^${berth.apiUrl}/ready/${ann.backend_id}/([A-Za-z0-9_-]+)/$`).exec(readyUrl);
      expect(match, readyUrl).not.toBeNull();
      const url = `${berth.proxyUrl}/${match![1]}/`;

      const readyPage = await fetch(readyUrl);
      expect(readyPage.status).toBe(200);
      expect(await readyPage.text()).toContain(url);
      expect(await (await fetch(url)).text()).toContain('<title>Shared counter</title>');

      const socket = await openClient({ ...ann, url });
      expect(await socket.hello()).toEqual({ type: 'hello', you: 'dave', key: 'room-lobby' });
    });

    it('starts another backend for another room', async () => {
      const joined = await joinRoom('attic', await signIn('erin'));
      expect(joined.status).toBe(303);
      expect(joined.headers.get('location')).toMatch(new RegExp(`^${berth.apiUrl}/ready/(?!${ann.backend_id}/)[a-z0-9]+/`));
    });

    it('refuses strangers, bad names and bad rooms, and forged cookies', async () => {
      expect((await joinRoom('lobby')).headers.get('location')).toBe('/');
      expect((await joinRoom('lobby', 'example_session=ZGF2ZQ.forged')).headers.get('location')).toBe('/');
      expect((await fetch(`${appUrl}/login`, { method: 'POST', body: new URLSearchParams({ name: '' }) })).status).toBe(400);
      expect((await joinRoom('no such room!', await signIn('dave'))).status).toBe(400);
    });

    it('shows the error berth gave when connect fails', async () => {
      const misconfigured = await startAppServer({ BERTH_SERVICE: 'no-such-service' });
      const joined = await joinRoom('lobby', await signIn('dave', misconfigured), misconfigured);
      expect(joined.status).toBe(502);
      expect(await joined.text()).toContain('(404 service_not_found)');
    });
  });
});

/**
 * Runs the inline script of the counter page in a VM context with just enough
 * of a browser around it: `location`, a few DOM elements, `fetch` and `ws`'s
 * WebSocket (which has the browser's onopen/onmessage/onclose API).
 */
class PageHarness {
  private disposed = false;
  private readonly sockets: WebSocket[] = [];
  private readonly elements = new Map<string, { textContent: string; children: Array<{ textContent: string }> }>();
  private readonly buttons = ['decrement', 'increment', 'reset'].map((op) => ({
    dataset: { op },
    disabled: false,
    listeners: [] as Array<() => void>,
    addEventListener(type: string, listener: () => void) {
      if (type === 'click') this.listeners.push(listener);
    },
  }));

  static async load(pageUrl: string): Promise<PageHarness> {
    const html = await (await fetch(pageUrl)).text();
    const script = /<script>([\s\S]*?)<\/script>/.exec(html)?.[1];
    if (!script) throw new Error('the page has no inline script');
    const page = new PageHarness();
    page.run(script, pageUrl);
    return page;
  }

  private run(script: string, pageUrl: string): void {
    const harness = this;
    class PageWebSocket extends WebSocket {
      constructor(url: string | URL) {
        super(url);
        harness.sockets.push(this);
      }
    }
    const element = (id: string) => {
      let found = this.elements.get(id);
      if (!found) {
        found = {
          textContent: '',
          children: [],
          replaceChildren(...children: Array<{ textContent: string }>) {
            this.children = children;
          },
        } as { textContent: string; children: Array<{ textContent: string }> };
        this.elements.set(id, found);
      }
      return found;
    };
    const document = {
      getElementById: element,
      querySelectorAll: () => this.buttons,
      createElement: () => ({ textContent: '' }),
    };
    const context = vm.createContext({
      document,
      location: new URL(pageUrl),
      URL,
      fetch,
      console,
      WebSocket: PageWebSocket,
      // After dispose the page's reconnect attempts stop here.
      setTimeout: (fn: () => void, ms: number) => (this.disposed ? undefined : setTimeout(fn, ms)),
    });
    vm.runInContext(script, context);
  }

  text(id: string): string {
    return String(this.elements.get(id)?.textContent ?? '');
  }

  historyLines(): string[] {
    return (this.elements.get('history')?.children ?? []).map((c) => c.textContent);
  }

  click(op: string): void {
    const button = this.buttons.find((b) => b.dataset.op === op)!;
    if (button.disabled) throw new Error(`button ${op} is disabled`);
    for (const listener of button.listeners) listener();
  }

  async until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`page state never matched: ${JSON.stringify(Object.fromEntries(this.elements))}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  dispose(): void {
    this.disposed = true;
    for (const socket of this.sockets) socket.close();
  }
}
