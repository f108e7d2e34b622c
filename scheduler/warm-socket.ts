/**
 * The platform's half of Jamsocket's session-backend SDK protocol, over a Unix
 * socket that a warm container sees at /jamsocket-control/jamsocket-sdk.sock:
 * the app connects and writes {"message":"Warmed"}; berth answers, once the
 * container is given to a backend, with one BackendAssignment line; the app
 * writes {"message":"Ready"} when its per-backend setup is done.
 */
import { chmod, mkdir, rm } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** The file name the SDK connects to inside its directory. */
export const SDK_SOCKET_NAME = 'jamsocket-sdk.sock';
/** Where the directory is mounted in the container. */
export const SDK_SOCKET_DIR_IN_CONTAINER = '/jamsocket-control';
/** A line longer than this is not the protocol. */
const MAX_LINE = 64 * 1024;

export interface BackendAssignment {
  backend_id: string;
  key: string;
  fencing_token: number | null;
  static_token: string | null;
  env: Record<string, string>;
}

export type WarmSocketState = 'listening' | 'warmed' | 'assigned' | 'ready' | 'closed';

export class WarmSocket {
  private state: WarmSocketState = 'listening';
  private client: net.Socket | undefined;
  private readonly warmed: Promise<void>;
  private onWarmed!: () => void;
  private onClosed!: (error: Error) => void;
  private onReady: (() => void) | undefined;
  private onGone: ((error: Error) => void) | undefined;

  private constructor(
    /** Host directory to bind-mount at /jamsocket-control. */
    readonly dir: string,
    private readonly server: net.Server,
  ) {
    this.warmed = new Promise((resolve, reject) => {
      this.onWarmed = resolve;
      this.onClosed = reject;
    });
    this.warmed.catch(() => undefined);
  }

  /** Makes `dir` and listens on the SDK socket in it; the container must be able to connect (mode 0666). */
  static async listen(dir: string): Promise<WarmSocket> {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    const path = join(dir, SDK_SOCKET_NAME);
    await rm(path, { force: true });
    const server = net.createServer();
    const socket = new WarmSocket(dir, server);
    server.on('connection', (client) => socket.accept(client));
    server.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    await chmod(path, 0o666);
    await chmod(dir, 0o755);
    return socket;
  }

  get current(): WarmSocketState {
    return this.state;
  }

  /** Resolves once the app said Warmed; rejects after `timeoutMs`. */
  async waitUntilWarmed(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.warmed,
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`the app did not say Warmed within ${timeoutMs / 1000} s`)), timeoutMs))),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends the assignment and resolves when the app says Ready; rejects if it goes away or `signal` aborts. */
  async assign(assignment: BackendAssignment, signal: AbortSignal): Promise<void> {
    const client = this.client;
    if (this.state !== 'warmed' || !client) throw new Error(`cannot assign a warm container in state ${this.state}`);
    this.state = 'assigned';
    const ready = new Promise<void>((resolve, reject) => {
      this.onReady = resolve;
      this.onGone = reject;
      signal.addEventListener('abort', () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted')), { once: true });
    });
    client.write(`${JSON.stringify({ message: { BackendAssignment: assignment } })}\n`);
    await ready;
  }

  async close(): Promise<void> {
    this.state = 'closed';
    this.onClosed(new Error('the warm container was removed'));
    this.client?.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await rm(this.dir, { recursive: true, force: true });
  }

  private accept(client: net.Socket): void {
    // One app per container: a second connection is not the protocol.
    if (this.client) {
      client.destroy();
      return;
    }
    this.client = client;
    client.on('error', () => undefined);
    client.on('close', () => this.onGone?.(new Error('the app closed the SDK socket before it was ready')));
    const lines = createInterface({ input: client, crlfDelay: Infinity });
    lines.on('line', (line) => {
      if (line.length > MAX_LINE) return client.destroy();
      let message: unknown;
      try {
        message = (JSON.parse(line) as { message?: unknown }).message;
      } catch {
        return;
      }
      if (message === 'Warmed' && this.state === 'listening') {
        this.state = 'warmed';
        this.onWarmed();
      } else if (message === 'Ready' && this.state === 'assigned') {
        this.state = 'ready';
        this.onReady?.();
      }
    });
  }
}
