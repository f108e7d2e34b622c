// berth/client: a typed client for berth's HTTP API.
export {
  BerthClient,
  DEFAULT_WAIT_TIMEOUT_MS,
  type AccountsApi,
  type BerthClientOptions,
  type LogStreamOptions,
  type ServicesApi,
  type StreamOptions,
  type WaitOptions,
} from './client.ts';
export {
  BackendTerminatedError,
  BerthApiError,
  BerthClientError,
  BerthConnectionError,
  BerthTimeoutError,
  hasErrorCode,
  isBackendNotFound,
  isBackendNotRunning,
  isNoBackendForKey,
  isNotFound,
  isServiceExists,
  isServiceNotFound,
} from './errors.ts';
export { readEventStream } from './sse.ts';
export * from './types.ts';
