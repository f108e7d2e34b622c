import { createParser, type EventSourceMessage } from 'eventsource-parser';

export interface SseRead {
  status: number;
  headers: Headers;
  events: EventSourceMessage[];
  /** True when the server ended the stream (rather than the reader giving up). */
  ended: boolean;
}

/**
 * Reads a server-sent event stream until the server ends it, `count` events
 * arrived, or `timeoutMs` passed, whichever comes first.
 */
export async function readSse(url: string, options: { headers?: Record<string, string>; count?: number; timeoutMs?: number } = {}): Promise<SseRead> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.timeoutMs ?? 15_000);
  const events: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (event) => events.push(event) });
  const response = await fetch(url, { headers: options.headers ?? {}, signal: controller.signal });
  let ended = false;
  try {
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        ended = true;
        break;
      }
      parser.feed(decoder.decode(value, { stream: true }));
      if (options.count !== undefined && events.length >= options.count) {
        controller.abort();
        break;
      }
    }
  } catch (error) {
    if (!controller.signal.aborted) throw error;
  } finally {
    clearTimeout(timer);
  }
  return { status: response.status, headers: response.headers, events, ended };
}
