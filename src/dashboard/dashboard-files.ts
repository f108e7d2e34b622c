import { createReadStream, type ReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { extname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Where `npm run build:dashboard` puts the dashboard, seen from this file: from
 * the sources (src/dashboard/) and from the compiled build (dist/src/dashboard/)
 * it is the same dist/dashboard/, at two different distances.
 */
export function defaultDashboardDir(): string {
  const compiled = import.meta.url.endsWith('.js');
  return fileURLToPath(new URL(compiled ? '../../dashboard/' : '../../dist/dashboard/', import.meta.url));
}

/** Only what Vite emits for the dashboard; anything else is not served. */
const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

export interface DashboardFile {
  contentType: string;
  size: number;
  /** Vite names what it emits under assets/ by content hash: such a file never changes. */
  immutable: boolean;
  open(): ReadStream;
}

/**
 * A built file by its path below /dashboard/, or undefined when there is none.
 * Dot segments, dotfiles and unknown extensions never reach the disk.
 */
export async function findDashboardFile(dir: string, path: string): Promise<DashboardFile | undefined> {
  const segments = path.split('/');
  if (segments.some((segment) => segment === '' || segment.startsWith('.') || segment.includes('\\') || segment.includes('\0'))) return undefined;
  const contentType = CONTENT_TYPES[extname(path).toLowerCase()];
  if (!contentType) return undefined;
  const root = resolve(dir);
  const file = resolve(root, ...segments);
  if (!file.startsWith(root + sep)) return undefined;
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) return undefined;
  return { contentType, size: info.size, immutable: segments[0] === 'assets', open: () => createReadStream(file) };
}

/** True for a path that names a file (`assets/x.js`, `favicon.svg`) rather than a page of the app (`backends/abc`). */
export function looksLikeFile(path: string): boolean {
  return path.startsWith('assets/') || /\.[a-z0-9]+$/i.test(path.split('/').pop() ?? '');
}
