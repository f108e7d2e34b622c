import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { BerthClientError } from './errors.ts';

export type { EventSourceMessage };

/**
 * The events of a server-sent event stream, as they arrive. Ends when the
 * server ends the stream or `signal` aborts (without an error: the caller
 * asked for it). Leaving the loop early (`break`, `return`, a throw) cancels
 * the response body, which closes the connection.
 */
export async function* readEventStream(response: Response, signal?: AbortSignal): AsyncGenerator<EventSourceMessage, void, undefined> {
  if (!response.body) return;
  const pending: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (event) => pending.push(event) });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let finished = false;
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (error) {
        finished = true;
        if (signal?.aborted) return;
        throw new BerthClientError(`the event stream from ${response.url} broke: ${(error as Error).message}`, { cause: error });
      }
      if (chunk.done) {
        finished = true;
        // An event the server did not finish with a blank line is dropped, as EventSource does.
        parser.feed(decoder.decode());
        yield* pending.splice(0);
        return;
      }
      parser.feed(decoder.decode(chunk.value, { stream: true }));
      while (pending.length > 0) {
        yield pending.shift()!;
        if (signal?.aborted) return;
      }
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined);
  }
}
