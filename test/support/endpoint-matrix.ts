import { readFile } from 'node:fs/promises';
import { createRouter } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';

const MATRIX = new URL('../../docs/endpoint-matrix.md', import.meta.url);
export const AUTH_VALUES = ['-', 'token', 'admin'] as const;
export type MatrixAuth = (typeof AUTH_VALUES)[number];

export interface MatrixRow {
  method: string;
  path: string;
  auth: MatrixAuth;
}

/** The rows of every table under `## API` in docs/endpoint-matrix.md, up to the next `## ` heading. */
export async function readApiRows(): Promise<MatrixRow[]> {
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
      if (!AUTH_VALUES.includes(auth as MatrixAuth)) throw new Error(`unknown Auth "${auth}" in: ${line}`);
      return { path: endpoint!.replace(/^`|`$/g, ''), method: method!, auth: auth as MatrixAuth };
    });
}

/** `/v2/service/:account/:service{/:environment}/connect` → `/v2/service/{account}/{service}[/{environment}]/connect`, the matrix's notation (a wildcard `*path` is `{path}`). */
export function toMatrixPath(routerPath: string): string {
  return routerPath
    .replace(/\{\/:(\w+)\}/g, '[/{$1}]')
    .replace(/\{\/\}/g, '[/]')
    .replace(/[:*](\w+)/g, '{$1}');
}

/** Each route of berth's router with its methods; the HEAD that @koa/router adds to every GET is left out. */
export function routerRoutes(): Array<{ method: string; path: string }> {
  const router = createRouter(loadConfig({}), new Date());
  return router.stack.flatMap((layer) => {
    if (typeof layer.path !== 'string') throw new Error(`route ${String(layer.path)} is a RegExp; no document can name it`);
    const path = layer.path;
    return layer.methods.filter((method) => !(method === 'HEAD' && layer.methods.includes('GET'))).map((method) => ({ method, path }));
  });
}
