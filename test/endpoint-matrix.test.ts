// Keeps docs/endpoint-matrix.md honest: its API tables must list exactly the
// routes of berth's router, and each row's Auth column must be what a running
// berth enforces.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRouter } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { apiClient } from './support/api.ts';
import { ADMIN_TOKEN, TestBerth } from './support/berth.ts';

const MATRIX = new URL('../docs/endpoint-matrix.md', import.meta.url);
const AUTH_VALUES = ['-', 'token', 'admin'] as const;
type Auth = (typeof AUTH_VALUES)[number];

interface MatrixRow {
  method: string;
  path: string;
  auth: Auth;
}

/** The rows of every table under `## API`, up to the next `## ` heading. */
async function readApiRows(): Promise<MatrixRow[]> {
  const text = await readFile(MATRIX, 'utf8');
  const start = text.indexOf('\n## API\n');
  if (start === -1) throw new Error('docs/endpoint-matrix.md has no "## API" section');
  const end = text.indexOf('\n## ', start + 1);
  const section = text.slice(start, end === -1 ? undefined : end);
  return section
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => {
      const [endpoint, method, auth] = line.split('|').slice(1, -1).map((cell) => cell.trim());
      if (!AUTH_VALUES.includes(auth as Auth)) throw new Error(`unknown Auth "${auth}" in: ${line}`);
      return { path: endpoint!.replace(/^`|`$/g, ''), method: method!, auth: auth as Auth };
    });
}

/** `/v2/service/:account/:service{/:environment}/connect` → `/v2/service/{account}/{service}[/{environment}]/connect`, the matrix's notation. */
function toMatrixPath(routerPath: string): string {
  return routerPath
    .replace(/\{\/:(\w+)\}/g, '[/{$1}]')
    .replace(/\{\/\}/g, '[/]')
    .replace(/:(\w+)/g, '{$1}');
}

/** `METHOD path` for each route of the router; the HEAD that @koa/router adds to every GET is implied. */
function routerRoutes(): string[] {
  const router = createRouter(loadConfig({}), new Date());
  return router.stack.flatMap((layer) => {
    if (typeof layer.path !== 'string') throw new Error(`route ${String(layer.path)} is a RegExp; the matrix cannot name it`);
    const path = toMatrixPath(layer.path);
    return layer.methods.filter((method) => !(method === 'HEAD' && layer.methods.includes('GET'))).map((method) => `${method} ${path}`);
  });
}

const key = (row: MatrixRow) => `${row.method} ${row.path}`;

describe('docs/endpoint-matrix.md', () => {
  it('lists every route of the API', async () => {
    const listed = new Set((await readApiRows()).map(key));
    expect(routerRoutes().filter((route) => !listed.has(route))).toEqual([]);
  });

  it('lists no API route that berth does not serve, and none twice', async () => {
    const routes = new Set(routerRoutes());
    const rows = (await readApiRows()).map(key);
    expect(rows.filter((row) => !routes.has(row))).toEqual([]);
    expect(rows.filter((row, index) => rows.indexOf(row) !== index)).toEqual([]);
  });

  describe('Auth column, against a running berth', () => {
    let berth: TestBerth;
    let accountToken: string;
    const ACCOUNT = 'matrix';

    beforeAll(async () => {
      berth = await TestBerth.start({ database: { kind: 'pglite' } });
      const admin = apiClient(berth.apiUrl, ADMIN_TOKEN);
      await admin.post('/v2/accounts', { name: ACCOUNT });
      accountToken = (await admin.post(`/v2/account/${ACCOUNT}/tokens`)).body.token as string;
    });
    afterAll(() => berth?.stop());

    /** A concrete path for a row: harmless values (no such service, backend or token), optional parts left out. */
    function concretePath(path: string): string {
      const values: Record<string, string> = { account: ACCOUNT, service: 'nothing', environment: 'default', id: 'nosuchid', token: 'nosuchtoken0123' };
      return path.replace(/\[[^\]]*\]/g, '').replace(/\{(\w+)\}/g, (_, name: string) => {
        const value = values[name];
        if (value === undefined) throw new Error(`no test value for {${name}} in ${path}`);
        return value;
      });
    }

    async function call(method: string, path: string, token?: string): Promise<{ status: number; code: string | undefined }> {
      const response = await fetch(`${berth.apiUrl}${path}`, {
        method,
        headers: token ? { Authorization: `Bearer ${token}` } : {},
        signal: AbortSignal.timeout(10_000),
      });
      const text = await response.text();
      const code = response.headers.get('content-type') === 'application/json' && text ? (JSON.parse(text) as { error?: { code?: string } }).error?.code : undefined;
      return { status: response.status, code };
    }

    it('matches what berth asks of each endpoint: nothing, a token, or the admin token', async () => {
      const mismatches: string[] = [];
      for (const row of await readApiRows()) {
        const path = concretePath(row.path);
        const anonymous = await call(row.method, path);
        if (row.auth === '-') {
          if (anonymous.status === 401) mismatches.push(`${key(row)}: listed without auth, but answers 401 without a token`);
          continue;
        }
        if (anonymous.status !== 401) mismatches.push(`${key(row)}: listed as ${row.auth}, but answers ${anonymous.status} without a token`);
        // An account token on its own account: an admin endpoint refuses it, any other lets it through.
        const withToken = await call(row.method, path, accountToken);
        const refusedAsNonAdmin = withToken.status === 403 && withToken.code === 'admin_required';
        if (row.auth === 'admin' && !refusedAsNonAdmin) {
          mismatches.push(`${key(row)}: listed as admin, but answers an account token with ${withToken.status} ${withToken.code ?? ''}`);
        }
        if (row.auth === 'token' && (withToken.status === 401 || withToken.status === 403)) {
          mismatches.push(`${key(row)}: listed as token, but refuses an account token with ${withToken.status} ${withToken.code ?? ''}`);
        }
      }
      expect(mismatches).toEqual([]);
    });
  });
});
