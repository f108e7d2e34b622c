import { z } from 'zod';
import { CREATE_ACCOUNT_BODY, CREATE_TOKEN_BODY, TOKEN_ID } from '../accounts/account.schemas.ts';
import { BACKEND_ID } from '../backends/backend-params.ts';
import { BACKENDS_QUERY, CONNECT_BODY, SPAWN_CONFIG, TERMINATE_BODY } from '../backends/backend.schemas.ts';
import { READY_BACKEND_ID, READY_TOKEN } from '../backends/ready.controller.ts';
import { NAME } from '../http/validation.ts';
import { LOGS_QUERY } from '../logs/log.controller.ts';
import { NODE_NAME } from '../nodes/node.controller.ts';
import { CONTAINER_SETTINGS_BODY, CREATE_SERVICE_BODY, UPDATE_SERVICE_BODY } from '../services/service.schemas.ts';
import { CONNECT_RESPONSE, OK_RESPONSE } from './response.schemas.ts';

/** Who may call: anyone, an account token for that account (or the admin token), or the admin token only. */
export type OperationAuth = 'none' | 'token' | 'admin';

/** One route of the API, described with the schemas its handler validates with. */
export interface ApiOperation {
  method: 'get' | 'post' | 'delete' | 'options';
  /** Exactly as the router declares it (`:param`, `{/:optional}`): the test compares the two. */
  route: string;
  operationId: string;
  summary: string;
  tag: 'health' | 'accounts' | 'services' | 'backends' | 'streams' | 'nodes' | 'pages';
  auth: OperationAuth;
  /** Schemas of path parameters other than the usual ones (see PATH_PARAMS). */
  params?: Record<string, z.ZodType>;
  query?: z.ZodObject;
  body?: z.ZodType;
  ok: { status: number; description: string; media: 'json' | 'sse' | 'html' | 'text' | 'none'; schema?: z.ZodType };
}

/** Path parameters that mean the same on every route. */
export const PATH_PARAMS: Record<string, z.ZodType> = { account: NAME, service: NAME, environment: NAME, id: BACKEND_ID };

/** `spawn` is validated in a second step (backend.service.ts); documented as what that step accepts. */
const CONNECT_BODY_DOCUMENTED = CONNECT_BODY.extend({
  spawn: z.union([z.boolean(), SPAWN_CONFIG]).optional().describe('false: only join a running backend; true or a spawn config: start one if none holds the key'),
});

const json = (description: string, schema?: z.ZodType, status = 200) => ({ status, description, media: 'json' as const, schema });
const sse = (description: string) => ({ status: 200, description, media: 'sse' as const });

/** Every route of the API; test/openapi.test.ts checks this list against the router both ways. */
export const API_OPERATIONS: readonly ApiOperation[] = [
  // Health and version
  { method: 'get', route: '/healthcheck', operationId: 'healthcheck', summary: 'Liveness', tag: 'health', auth: 'none', ok: json('"ok"', z.literal('ok')) },
  { method: 'get', route: '/v1/version', operationId: 'version', summary: 'Version and when the environment was loaded', tag: 'health', auth: 'none', ok: json('{version, env_reloaded_at}') },
  { method: 'get', route: '/health/status', operationId: 'healthStatus', summary: 'Health of each component and backend counts by status; 503 when one is down', tag: 'health', auth: 'admin', ok: json('Every component healthy') },
  { method: 'get', route: '/metrics', operationId: 'prometheusMetrics', summary: 'Prometheus metrics of this process', tag: 'health', auth: 'admin', ok: { status: 200, description: 'Prometheus text exposition format 0.0.4', media: 'text' } },
  { method: 'get', route: '/openapi.json', operationId: 'openApiDocument', summary: 'This document', tag: 'health', auth: 'none', ok: json('OpenAPI 3.1 document') },

  // Accounts and tokens
  { method: 'get', route: '/auth', operationId: 'checkAuth', summary: 'The accounts the token may act on', tag: 'accounts', auth: 'token', ok: json('{status, accounts, is_admin}') },
  { method: 'post', route: '/v2/accounts', operationId: 'createAccount', summary: 'Create an account', tag: 'accounts', auth: 'admin', body: CREATE_ACCOUNT_BODY, ok: json('Created', undefined, 201) },
  { method: 'post', route: '/v2/account/:account/tokens', operationId: 'createToken', summary: 'Mint an account token; the secret is shown only in this answer', tag: 'accounts', auth: 'admin', body: CREATE_TOKEN_BODY, ok: json('{status, token, id}', undefined, 201) },
  { method: 'delete', route: '/v2/account/:account/tokens/:id', operationId: 'revokeToken', summary: 'Revoke a token by its public id', tag: 'accounts', auth: 'admin', params: { id: TOKEN_ID }, ok: json('Revoked', OK_RESPONSE) },

  // Services
  { method: 'post', route: '/v2/account/:account/service', operationId: 'createService', summary: 'Create a service with environment "default" on tag "latest"', tag: 'services', auth: 'token', body: CREATE_SERVICE_BODY, ok: json('Created', OK_RESPONSE) },
  { method: 'get', route: '/v2/account/:account/services', operationId: 'listServices', summary: 'Names of the account’s services', tag: 'services', auth: 'token', ok: json('{services}') },
  { method: 'get', route: '/v2/service/:account/:service', operationId: 'getService', summary: 'A service: image repository, environments, last spawn, newest image', tag: 'services', auth: 'token', ok: json('The service') },
  { method: 'post', route: '/v2/service/:account/:service/delete', operationId: 'deleteService', summary: 'Delete a service that has no running backend', tag: 'services', auth: 'token', ok: json('Deleted', OK_RESPONSE) },
  { method: 'get', route: '/v2/service/:account/:service/images', operationId: 'listImages', summary: 'Images of the service’s repository, newest first', tag: 'services', auth: 'token', ok: json('{images}') },
  { method: 'post', route: '/v2/service/:account/:service{/:environment}/update', operationId: 'updateEnvironment', summary: 'Point an environment at an image tag or digest', tag: 'services', auth: 'token', body: UPDATE_SERVICE_BODY, ok: json('Updated', OK_RESPONSE) },
  { method: 'post', route: '/v2/service/:account/:service/container', operationId: 'updateContainerSettings', summary: 'Container settings for backends spawned from now on', tag: 'services', auth: 'admin', body: CONTAINER_SETTINGS_BODY, ok: json('Updated', OK_RESPONSE) },
  { method: 'get', route: '/service/:account/:service/image-name', operationId: 'imageName', summary: 'The repository `jamsocket push` pushes to', tag: 'services', auth: 'token', ok: json('{status, imageName}') },

  // Backends
  { method: 'post', route: '/v2/service/:account/:service{/:environment}/connect', operationId: 'connect', summary: 'Return the backend holding `key`, or spawn one; a new connection URL each call', tag: 'backends', auth: 'token', body: CONNECT_BODY_DOCUMENTED, ok: json('The backend and a connection URL', CONNECT_RESPONSE) },
  { method: 'get', route: '/v2/service/:account/:service/backends', operationId: 'listServiceBackends', summary: 'Backends of a service, newest first', tag: 'backends', auth: 'token', query: BACKENDS_QUERY, ok: json('{backends}') },
  { method: 'get', route: '/v2/account/:account/backends', operationId: 'listRunningBackends', summary: 'The account’s backends not yet terminated', tag: 'backends', auth: 'token', ok: json('{running_backends}') },
  { method: 'get', route: '/v2/backend/:id', operationId: 'getBackend', summary: 'A backend’s metadata and status history', tag: 'backends', auth: 'token', ok: json('The backend') },
  { method: 'post', route: '/v2/backend/:id/terminate', operationId: 'terminateBackend', summary: 'Terminate a backend, softly or hard', tag: 'backends', auth: 'token', body: TERMINATE_BODY, ok: json('Termination requested', OK_RESPONSE) },
  { method: 'get', route: '/v2/backend/:id/status', operationId: 'backendStatus', summary: 'Latest status (CORS *)', tag: 'backends', auth: 'none', ok: json('{status, time, …}') },
  { method: 'options', route: '/v2/backend/:id/status', operationId: 'backendStatusPreflight', summary: 'CORS preflight', tag: 'backends', auth: 'none', ok: { status: 204, description: 'Allowed', media: 'none' } },

  // Streams
  { method: 'get', route: '/v2/backend/:id/status/stream', operationId: 'backendStatusStream', summary: 'Status history, then live statuses until terminated; resumes from Last-Event-ID (CORS *)', tag: 'streams', auth: 'none', ok: sse('One JSON status per event') },
  { method: 'options', route: '/v2/backend/:id/status/stream', operationId: 'backendStatusStreamPreflight', summary: 'CORS preflight', tag: 'streams', auth: 'none', ok: { status: 204, description: 'Allowed', media: 'none' } },
  { method: 'get', route: '/v2/backend/:id/logs/stream', operationId: 'backendLogStream', summary: 'Stored log lines, then new ones until the backend has terminated', tag: 'streams', auth: 'token', query: LOGS_QUERY, ok: sse('One log line per event') },
  { method: 'get', route: '/v2/backend/:id/metrics/stream', operationId: 'backendMetricsStream', summary: 'About one resource sample a second while the container runs', tag: 'streams', auth: 'token', ok: sse('One JSON sample per event') },

  // Nodes (schedulers, one per Docker host)
  { method: 'get', route: '/v2/nodes', operationId: 'listNodes', summary: 'Every node: address, status, heartbeat, live backends, engine health, capabilities', tag: 'nodes', auth: 'admin', ok: json('{nodes}') },
  { method: 'post', route: '/v2/node/:name/drain', operationId: 'drainNode', summary: 'No new backends on the node; those running stay', tag: 'nodes', auth: 'admin', params: { name: NODE_NAME }, body: z.strictObject({}), ok: json('The node') },
  { method: 'post', route: '/v2/node/:name/ready', operationId: 'readyNode', summary: 'Undo a drain', tag: 'nodes', auth: 'admin', params: { name: NODE_NAME }, body: z.strictObject({}), ok: json('The node') },

  // Browser pages
  { method: 'get', route: '/dashboard{/}', operationId: 'dashboard', summary: 'The operator dashboard; it signs in with a token and calls this API', tag: 'pages', auth: 'none', ok: { status: 200, description: 'HTML page; 503 HTML while the dashboard is not built', media: 'html' } },
  {
    method: 'get',
    route: '/dashboard/*path',
    operationId: 'dashboardFile',
    summary: 'A built file of the dashboard, or the page itself for any path that names no file',
    tag: 'pages',
    auth: 'none',
    params: { path: z.string().describe('`assets/…` or another file name: that file (JSON 404 when missing); anything else: the page') },
    ok: { status: 200, description: 'The file with its content type, or the HTML page', media: 'html' },
  },
  { method: 'get', route: '/ready/:id/:token{/}', operationId: 'readyPage', summary: 'ready_url: redirects to the backend once it is ready', tag: 'pages', auth: 'none', params: { id: z.string().regex(READY_BACKEND_ID), token: z.string().regex(READY_TOKEN) }, ok: { status: 200, description: 'HTML page; a miss is a 404 HTML page', media: 'html' } },
];
