import { z } from 'zod';
import { VERSION } from '../version.ts';
import { API_OPERATIONS, PATH_PARAMS, type ApiOperation } from './api-operations.ts';
import { ERROR_BODY } from './response.schemas.ts';

type JsonObject = Record<string, unknown>;

/** Errors any route may answer besides its own; each is the one error body. */
const COMMON_ERRORS: Record<string, string> = {
  '400': 'Bad input; `details.param` names the field',
  '429': 'Over the rate limit (authenticated routes)',
  '503': 'The database or the container engine is unreachable; retry',
};
const AUTH_ERRORS: Record<string, string> = {
  '401': 'No token, or not a valid one',
  '403': 'A token of another account, or not the admin token on an admin route',
};

/**
 * Request schemas in JSON Schema 2020-12, the dialect of OpenAPI 3.1: zod 4's
 * own converter, on the input side (what a client sends, before transforms).
 */
function jsonSchema(schema: z.ZodType): JsonObject {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonObject;
  return rest;
}

/**
 * `/a/:b{/:c}/d` → the concrete OpenAPI paths it stands for, `/a/{b}/d` and
 * `/a/{b}/{c}/d`, each with the suffix that keeps its operationId unique.
 */
export function expandRoute(route: string): Array<{ path: string; idSuffix: string }> {
  const optional = /\{(\/[^}]*)\}/.exec(route);
  // `*name` (a wildcard of one or more segments) is written as a parameter, as `:name` is.
  if (!optional) return [{ path: route.replace(/[:*](\w+)/g, '{$1}'), idSuffix: '' }];
  const name = /:(\w+)/.exec(optional[1]!)?.[1];
  const suffix = name ? `In${name.charAt(0).toUpperCase()}${name.slice(1)}` : 'WithTrailingSlash';
  const without = route.replace(optional[0], '');
  const withPart = route.replace(optional[0], optional[1]!);
  return [
    ...expandRoute(without),
    ...expandRoute(withPart).map((variant) => ({ ...variant, idSuffix: suffix + variant.idSuffix })),
  ];
}

function errorResponses(codes: Record<string, string>): JsonObject {
  return Object.fromEntries(
    Object.entries(codes).map(([status, description]) => [status, { description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } }]),
  );
}

function successResponse(ok: ApiOperation['ok']): JsonObject {
  const content: JsonObject | undefined =
    ok.media === 'json'
      ? { 'application/json': { schema: ok.schema ? jsonSchema(ok.schema) : {} } }
      : ok.media === 'sse'
        ? { 'text/event-stream': { schema: { type: 'string' } } }
        : ok.media === 'html'
          ? { 'text/html': { schema: { type: 'string' } } }
          : ok.media === 'text'
            ? { 'text/plain': { schema: { type: 'string' } } }
            : undefined;
  return { [String(ok.status)]: { description: ok.description, ...(content ? { content } : {}) } };
}

function operationObject(operation: ApiOperation, path: string, idSuffix: string): JsonObject {
  const parameters: JsonObject[] = [...path.matchAll(/\{(\w+)\}/g)].map(([, name]) => {
    const schema = operation.params?.[name!] ?? PATH_PARAMS[name!];
    if (!schema) throw new Error(`no schema for path parameter {${name}} of ${operation.method.toUpperCase()} ${operation.route}`);
    return { name, in: 'path', required: true, schema: jsonSchema(schema) };
  });
  if (operation.query) {
    const query = jsonSchema(operation.query) as { properties?: Record<string, unknown>; required?: string[] };
    for (const [name, schema] of Object.entries(query.properties ?? {})) {
      parameters.push({ name, in: 'query', required: query.required?.includes(name) ?? false, schema });
    }
  }
  return {
    operationId: operation.operationId + idSuffix,
    summary: operation.summary,
    tags: [operation.tag],
    // An empty list lifts the document-wide bearer requirement.
    security: operation.auth === 'none' ? [] : [{ bearer: [] }],
    'x-berth-auth': operation.auth,
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(operation.body ? { requestBody: { required: false, content: { 'application/json': { schema: jsonSchema(operation.body) } } } } : {}),
    responses: {
      ...successResponse(operation.ok),
      ...errorResponses(operation.auth === 'none' ? COMMON_ERRORS : { ...COMMON_ERRORS, ...AUTH_ERRORS }),
    },
  };
}

/** The OpenAPI 3.1 document of berth's API, without `servers` (which depends on the berth answering). */
export function buildOpenApiDocument(operations: readonly ApiOperation[] = API_OPERATIONS): JsonObject {
  const paths: Record<string, JsonObject> = {};
  for (const operation of operations) {
    for (const { path, idSuffix } of expandRoute(operation.route)) {
      paths[path] ??= {};
      if (paths[path][operation.method]) throw new Error(`${operation.method.toUpperCase()} ${path} is described twice`);
      paths[path][operation.method] = operationObject(operation, path, idSuffix);
    }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'berth',
      version: VERSION,
      description:
        'Self-hosted session backends: the Jamsocket HTTP API v2 and berth’s own routes. Connection URLs are served by the proxy listener, outside this document.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    security: [{ bearer: [] }],
    tags: [...new Set(operations.map((operation) => operation.tag))].map((name) => ({ name })),
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'An account token `<id>.<secret>`, or the admin token' },
      },
      schemas: { Error: jsonSchema(ERROR_BODY) },
    },
  };
}
