/** Errors of the Docker engine: what berth asked for and the engine's own words. */
import { EngineError, isEngineUnreachable } from '../engine.ts';

export type DockerEngineErrorCode =
  | 'image_pull_failed'
  | 'container_create_failed'
  | 'container_start_failed'
  | 'container_exited_on_start';

/**
 * The engine refused something berth asked for. "No engine answers" is not
 * wrapped: those errors keep their socket `code` so that isEngineUnreachable()
 * (docker.ts) still recognises them and connect can answer 503.
 */
export class DockerEngineError extends EngineError {
  override readonly name = 'DockerEngineError';

  constructor(
    readonly code: DockerEngineErrorCode,
    message: string,
    readonly context: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The engine's own words. docker-modem keeps the JSON body of an error on `json`,
 * except for streaming endpoints (pull, events), where only its message has it,
 * behind a "(HTTP code 500) server error - " prefix.
 */
export function engineMessage(error: unknown): string {
  const json = (error as { json?: unknown }).json;
  if (json && typeof json === 'object' && typeof (json as { message?: unknown }).message === 'string') {
    return (json as { message: string }).message;
  }
  if (typeof json === 'string' && json.trim() !== '') return json.trim();
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^\(HTTP code \d+\) .*? - /, '').trim();
}

export function engineStatus(error: unknown): number | undefined {
  const status = (error as { statusCode?: unknown }).statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** `<what> failed: <the engine's words>`, keeping the engine's error as the cause. */
export function refusedError(
  code: DockerEngineErrorCode,
  what: string,
  error: unknown,
  context: Record<string, unknown>,
): DockerEngineError {
  const status = engineStatus(error);
  return new DockerEngineError(
    code,
    `${what} failed: ${engineMessage(error)}`,
    status === undefined ? context : { ...context, engineStatus: status },
    { cause: error },
  );
}
