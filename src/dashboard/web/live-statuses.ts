import { useEffect, useRef, useState } from 'preact/hooks';
import type { BackendStatus, BackendStatusName, BerthClient } from '../../client/index.ts';

/**
 * Browsers open at most six HTTP/1.1 connections to one origin, and every
 * status stream holds one for as long as its backend lives. Past this many,
 * rows wait for the next poll of the list instead of a stream of their own.
 */
export const MAX_STATUS_STREAMS = 4;
const RETRY_MS = 2000;

export interface LiveStatus {
  status: BackendStatusName;
  time: string;
  /** Every status the stream has reported, oldest first: the stream replays the history before following. */
  trail: BackendStatusName[];
}

/**
 * The status of each backend in `ids` as its public status stream reports it.
 * Streams open for the first MAX_STATUS_STREAMS of `ids` (callers list those
 * most worth following first) and end with `terminated`.
 */
export function useLiveStatuses(client: BerthClient, ids: string[]): Map<string, LiveStatus> {
  const [statuses, setStatuses] = useState<Map<string, LiveStatus>>(() => new Map());
  const streams = useRef(new Map<string, AbortController>());
  const ended = useRef(new Set<string>());
  const wanted = ids.filter((id) => !ended.current.has(id)).slice(0, MAX_STATUS_STREAMS);
  const key = wanted.join(',');

  useEffect(() => {
    const open = streams.current;
    for (const [id, controller] of open) {
      if (!wanted.includes(id)) {
        controller.abort();
        open.delete(id);
      }
    }
    for (const id of wanted) {
      if (open.has(id)) continue;
      const controller = new AbortController();
      open.set(id, controller);
      void follow(client, id, controller.signal, (status) => {
        setStatuses((previous) => {
          const next = new Map(previous);
          const trail = previous.get(id)?.trail ?? [];
          next.set(id, { status: status.status, time: status.time, trail: trail.includes(status.status) ? trail : [...trail, status.status] });
          return next;
        });
      }).then(() => {
        if (controller.signal.aborted) return;
        ended.current.add(id);
        open.delete(id);
        setStatuses((previous) => new Map(previous));
      });
    }
    // `wanted` is what `key` spells.
  }, [client, key]);

  useEffect(() => {
    const open = streams.current;
    return () => {
      for (const controller of open.values()) controller.abort();
      open.clear();
    };
  }, []);

  return statuses;
}

/** Follows one backend until `terminated` (resolves) or `signal` aborts; a dropped stream is picked up again where it left off. */
async function follow(client: BerthClient, id: string, signal: AbortSignal, onStatus: (status: BackendStatus) => void): Promise<void> {
  let lastEventId: string | undefined;
  while (!signal.aborted) {
    try {
      for await (const status of client.statusStream(id, { signal, ...(lastEventId ? { lastEventId } : {}) })) {
        if (status.id) lastEventId = status.id;
        onStatus(status);
        if (status.status === 'terminated') return;
      }
    } catch {
      // Dropped, or berth restarting: try again shortly.
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}
