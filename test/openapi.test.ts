// GET /openapi.json: a valid OpenAPI 3.1 document that describes exactly the
// router's routes (both ways, like docs/endpoint-matrix.md), with the same
// request schemas the handlers validate with.
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_OPERATIONS } from '../src/openapi/api-operations.ts';
import { expandRoute } from '../src/openapi/openapi-document.ts';
import { ERROR_BODY } from '../src/openapi/response.schemas.ts';
import { CONNECT_BODY } from '../src/backends/backend.schemas.ts';
import { apiClient } from './support/api.ts';
import { ADMIN_TOKEN, TestBerth } from './support/berth.ts';
import { readApiRows, routerRoutes, toMatrixPath } from './support/endpoint-matrix.ts';

interface OpenApiDocument {
  openapi: string;
  servers: Array<{ url: string }>;
  paths: Record<string, Record<string, { operationId: string; 'x-berth-auth': string; requestBody?: { content: Record<string, { schema: any }> }; parameters?: Array<{ name: string; in: string }> }>>;
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete', 'options', 'head', 'trace'];

/** `METHOD /path/{param}` for every operation of the document. */
function documentOperations(document: OpenApiDocument): string[] {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((key) => METHODS.includes(key))
      .map((method) => `${method.toUpperCase()} ${path}`),
  );
}

/** The router's routes as OpenAPI writes them: optional segments give one path each way. */
function routerOperations(): string[] {
  return routerRoutes().flatMap(({ method, path }) => expandRoute(path).map((variant) => `${method} ${variant.path}`));
}

describe('GET /openapi.json', () => {
  let berth: TestBerth;
  let document: OpenApiDocument;

  beforeAll(async () => {
    berth = await TestBerth.start({ database: { kind: 'pglite' } });
    const response = await fetch(`${berth.apiUrl}/openapi.json`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    document = (await response.json()) as OpenApiDocument;
  });
  afterAll(() => berth?.stop());

  it('is a valid OpenAPI 3.1 document naming this berth as its server', async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(document) as unknown as Record<string, unknown>);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
    expect(document.servers).toEqual([{ url: berth.apiUrl }]);
  });

  it('describes every route of the router', () => {
    const described = new Set(documentOperations(document));
    expect(routerOperations().filter((route) => !described.has(route))).toEqual([]);
  });

  it('describes no route that the router does not have, and each operation once', () => {
    const routes = new Set(routerOperations());
    expect(documentOperations(document).filter((operation) => !routes.has(operation))).toEqual([]);
    const ids = documentOperations(document).map((operation) => {
      const [method, path] = operation.split(' ');
      return document.paths[path!]![method!.toLowerCase()]!.operationId;
    });
    expect(ids.filter((id, index) => ids.indexOf(id) !== index)).toEqual([]);
  });

  it('names each route as the router declares it, so a renamed route fails here', () => {
    const declared = new Set(routerRoutes().map(({ method, path }) => `${method} ${path}`));
    expect(API_OPERATIONS.map((operation) => `${operation.method.toUpperCase()} ${operation.route}`).filter((route) => !declared.has(route))).toEqual([]);
  });

  it('asks for the same credentials as docs/endpoint-matrix.md', async () => {
    const matrixAuth = new Map((await readApiRows()).map((row) => [`${row.method} ${row.path}`, row.auth === '-' ? 'none' : row.auth]));
    const mismatches = API_OPERATIONS.filter((operation) => matrixAuth.get(`${operation.method.toUpperCase()} ${toMatrixPath(operation.route)}`) !== operation.auth).map(
      (operation) => `${operation.method.toUpperCase()} ${operation.route}: ${operation.auth} here, ${matrixAuth.get(`${operation.method.toUpperCase()} ${toMatrixPath(operation.route)}`)} in the matrix`,
    );
    expect(mismatches).toEqual([]);
  });

  it('documents the connect body from the schema that validates it, spawn config included', () => {
    const connect = document.paths['/v2/service/{account}/{service}/connect']!.post!;
    const schema = connect.requestBody!.content['application/json']!.schema;
    expect(Object.keys(schema.properties).sort()).toEqual(Object.keys(CONNECT_BODY.shape).sort());
    expect(schema.additionalProperties).toBe(false);
    const spawnConfig = schema.properties.spawn.anyOf.find((option: { type: string }) => option.type === 'object');
    expect(spawnConfig.properties.executable.properties.resource_limits.properties.memory_limit_bytes).toMatchObject({ type: 'integer', minimum: 6 * 1024 * 1024 });
    expect(document.paths['/v2/service/{account}/{service}/{environment}/connect']!.post!.parameters!.map((p) => p.name)).toEqual(['account', 'service', 'environment']);
  });

  it('describes the error body berth really sends', async () => {
    const anonymous = await apiClient(berth.apiUrl).get('/auth');
    expect(ERROR_BODY.safeParse(anonymous.body).error).toBeUndefined();
    const invalid = await apiClient(berth.apiUrl, ADMIN_TOKEN).post('/v2/accounts', { name: 'Not A Name' });
    expect(invalid.status).toBe(400);
    expect(ERROR_BODY.safeParse(invalid.body).error).toBeUndefined();
  });
});
