// Keeps docs/endpoint-matrix.md honest: its API tables must list exactly the
// routes of berth's router, and each row's Auth column must be what a running
// berth enforces.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './support/api.ts';
import { ADMIN_TOKEN, TestBerth } from './support/berth.ts';
import { readApiRows, routerRoutes as routerLayers, toMatrixPath, type MatrixRow } from './support/endpoint-matrix.ts';

/** `METHOD path` for each route of the router, in the matrix's notation. */
function routerRoutes(): string[] {
  return routerLayers().map(({ method, path }) => `${method} ${toMatrixPath(path)}`);
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
      const values: Record<string, string> = { account: ACCOUNT, service: 'nothing', environment: 'default', id: 'nosuchid', token: 'nosuchtoken0123', name: 'no-such-node', path: 'backends' };
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
