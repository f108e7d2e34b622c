/** The engine's event stream, as berth's container events, surviving engine restarts. */
import type Dockerode from 'dockerode';
import type { Logger } from '../../src/core/logger.ts';
import { LABELS, type ContainerEvent, type ContainerScope, type WatchEventsOptions } from '../engine.ts';
import { LineSplitter } from '../line-splitter.ts';
import { managedLabelFilter } from './create-options.ts';
import { engineStatus } from './errors.ts';

const DEFAULT_RECONNECT_DELAY_MS = 1_000;

/** The fields berth reads from a line of GET /events. */
interface DockerEventMessage {
  Type?: string;
  Action?: string;
  status?: string;
  id?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number;
}

type WatcherState = 'connecting' | 'streaming' | 'waiting' | 'stopped';

/**
 * One subscription to GET /events that survives engine restarts. Events are
 * handled one at a time, in order, because handling `die` awaits an inspect and
 * a `destroy` right behind it must not overtake it.
 */
export class ContainerEventWatcher {
  private state: WatcherState = 'connecting';
  /** Streams opened so far; every one after the first is a reconnect. */
  private connections = 0;
  /** When the first stream opened, in seconds: the resume point if no event came yet. */
  private firstConnectedAt = 0;
  private abortController: AbortController | undefined;
  private stream: NodeJS.ReadableStream | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  /**
   * Resume point in whole seconds (the resolution of `since`), and the events
   * already handled at or after it: `since` is inclusive, so a reconnect replays
   * the last second and those replays must be dropped.
   */
  private watermark: number | undefined;
  private readonly handledAtWatermark = new Set<string>();
  /** Containers with an `oom` event, for when the container is gone before `die` is handled. */
  private readonly oomSeen = new Set<string>();
  private queue: Promise<void> = Promise.resolve();
  private readonly reconnectDelayMs: number;

  constructor(
    private readonly docker: Dockerode,
    private readonly scope: ContainerScope,
    private readonly onEvent: (event: ContainerEvent) => void,
    private readonly options: WatchEventsOptions,
    private readonly log: Logger | undefined,
  ) {
    this.reconnectDelayMs = options.reconnectDelayMs ?? DEFAULT_RECONNECT_DELAY_MS;
  }

  start(): void {
    void this.connect();
  }

  stop(): void {
    if (this.isStopped()) return;
    this.setState('stopped');
    clearTimeout(this.reconnectTimer);
    this.abortController?.abort();
    destroyStream(this.stream);
  }

  // A method rather than a comparison, so TypeScript does not carry a narrowing
  // of `state` across an await during which stop() may have been called.
  private isStopped(): boolean {
    return this.state === 'stopped';
  }

  private setState(state: WatcherState): void {
    if (state === this.state) return;
    this.log?.debug({ node: this.scope.nodeName, from: this.state, to: state }, 'event watcher state');
    this.state = state;
  }

  private async connect(): Promise<void> {
    if (this.isStopped()) return;
    this.setState('connecting');
    const abortController = new AbortController();
    this.abortController = abortController;
    // Until an event is seen, resume from when the first stream was opened. This
    // compares our clock with the engine's, which is fine for a local engine.
    if (this.watermark === undefined && this.connections > 0) this.watermark = this.firstConnectedAt;

    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.getEvents({
        ...(this.watermark !== undefined ? { since: this.watermark } : {}),
        filters: {
          type: ['container'],
          event: ['die', 'destroy', 'oom'],
          label: managedLabelFilter(this.scope),
        },
        abortSignal: abortController.signal,
      });
    } catch (err) {
      if (this.isStopped()) return;
      this.log?.warn({ node: this.scope.nodeName, err }, 'could not open the Docker event stream; retrying');
      this.scheduleReconnect();
      return;
    }
    if (this.isStopped()) {
      stream.on('error', () => undefined);
      destroyStream(stream);
      return;
    }

    if (this.connections === 0) this.firstConnectedAt = Math.floor(Date.now() / 1000);
    this.connections += 1;
    this.stream = stream;
    this.setState('streaming');
    if (this.connections > 1) {
      this.log?.info({ node: this.scope.nodeName, since: this.watermark }, 'Docker event stream reconnected');
      this.options.onReconnect?.();
    }

    const lines = new LineSplitter((line) => this.handleLine(line));
    let ended = false;
    const onEnd = (err?: unknown) => {
      if (ended) return;
      ended = true;
      if (this.isStopped()) return;
      this.log?.warn({ node: this.scope.nodeName, err }, 'Docker event stream ended; reconnecting');
      this.scheduleReconnect();
    };
    stream.on('data', (chunk: Buffer | string) => lines.write(chunk));
    stream.on('error', onEnd);
    stream.on('end', () => onEnd());
    stream.on('close', () => onEnd());
  }

  private scheduleReconnect(): void {
    this.setState('waiting');
    destroyStream(this.stream);
    this.stream = undefined;
    this.reconnectTimer = setTimeout(() => void this.connect(), this.reconnectDelayMs);
  }

  private handleLine(line: string): void {
    let message: DockerEventMessage;
    try {
      message = JSON.parse(line) as DockerEventMessage;
    } catch {
      this.log?.warn(
        { node: this.scope.nodeName, line: line.slice(0, 200) },
        'unparsable line in the Docker event stream',
      );
      return;
    }
    if (this.isReplay(message)) return;
    this.queue = this.queue
      .then(() => this.dispatch(message))
      .catch((err: unknown) => this.log?.error({ node: this.scope.nodeName, err }, 'handling a Docker event failed'));
  }

  private isReplay(message: DockerEventMessage): boolean {
    const time = message.time;
    if (typeof time !== 'number') return false;
    // timeNano loses precision in JSON.parse, but the same line always parses to the same number.
    const key = `${message.timeNano ?? time}|${message.Actor?.ID ?? message.id}|${message.Action ?? message.status}`;
    if (this.watermark === undefined || time > this.watermark) {
      this.watermark = time;
      this.handledAtWatermark.clear();
    } else if (time < this.watermark || this.handledAtWatermark.has(key)) {
      return true;
    }
    this.handledAtWatermark.add(key);
    return false;
  }

  private async dispatch(message: DockerEventMessage): Promise<void> {
    const containerId = message.Actor?.ID ?? message.id;
    const attributes = message.Actor?.Attributes ?? {};
    // A warm-pool container carries no backend id: the scheduler knows whose it became.
    const backendId = attributes[LABELS.backendId] ?? (attributes[LABELS.pool] !== undefined ? '' : undefined);
    if (!containerId || backendId === undefined || this.isStopped()) return;

    switch (message.Action ?? message.status) {
      case 'oom':
        // cgroup v1 reports the OOM kill as its own event just before `die`.
        this.oomSeen.add(containerId);
        return;
      case 'die': {
        const parsed = Number.parseInt(attributes.exitCode ?? '', 10);
        const exitCode = Number.isNaN(parsed) ? null : parsed;
        const state = await this.inspectExit(containerId);
        const oomKilled = state?.oomKilled ?? this.oomSeen.has(containerId);
        this.oomSeen.delete(containerId);
        // A force-remove marks the container as removing before it kills it.
        this.emit({ type: 'exited', containerId, backendId, exitCode, oomKilled, removing: state?.removing ?? true });
        return;
      }
      case 'destroy':
        this.oomSeen.delete(containerId);
        this.emit({ type: 'removed', containerId, backendId });
        return;
      default:
        return;
    }
  }

  /** The engine's verdict, or undefined when the container is already gone. */
  private async inspectExit(containerId: string): Promise<{ oomKilled: boolean; removing: boolean } | undefined> {
    try {
      const info = await this.docker.getContainer(containerId).inspect();
      return { oomKilled: info.State.OOMKilled, removing: info.State.Status === 'removing' };
    } catch (err) {
      if (engineStatus(err) === 404) return undefined;
      throw err;
    }
  }

  private emit(event: ContainerEvent): void {
    if (this.isStopped()) return;
    try {
      this.onEvent(event);
    } catch (err) {
      this.log?.error({ node: this.scope.nodeName, err, event }, 'container event handler threw');
    }
  }
}

export function destroyStream(stream: NodeJS.ReadableStream | undefined): void {
  const destroy = (stream as { destroy?: () => void } | undefined)?.destroy;
  if (destroy) destroy.call(stream);
}
