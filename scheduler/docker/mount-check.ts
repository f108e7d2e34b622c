import { lstat, realpath } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';
import type { BindMount } from '../engine.ts';

/** `{account}/{service}/{name}`: the only shape below the base that src/backends/mounts.ts makes. */
const DEPTH_BELOW_BASE = 3;

/**
 * Why handing `mount` to the engine would be unsafe, or undefined when it is
 * not. The engine resolves the source path itself and follows symlinks, so
 * every component from the base down is looked at with lstat, never followed.
 *
 * Checking and then passing a path is sound here because no container can
 * change a component of it: a container can write only inside its own mounted
 * leaf `{base}/{account}/{service}/{name}`, and a leaf is never an ancestor of
 * another mount's source (a mount name is one segment), so the directories the
 * engine walks through belong to berth alone. What this catches is a host-side
 * change after connect (a planted symlink, a directory replaced by a file) and
 * rows recorded before mounts were confined.
 */
export async function unsafeMountReason(mount: Partial<BindMount>): Promise<string | undefined> {
  const { base, source } = mount;
  if (typeof base !== 'string' || typeof source !== 'string') {
    return 'the mount was recorded without its base directory (before mounts were confined); connect again';
  }
  if (!isAbsolute(base) || (await realpath(base).catch(() => undefined)) !== base) {
    return `the mount base ${base} is not an absolute directory path without symlinks`;
  }
  const below = relative(base, source);
  const segments = below.split(sep);
  if (below.startsWith('..') || isAbsolute(below) || segments.length !== DEPTH_BELOW_BASE || segments.some((s) => s === '' || s === '.' || s === '..')) {
    return `the mount source ${source} is not a directory {account}/{service}/{name} below ${base}`;
  }
  let path = base;
  for (const segment of segments) {
    path = join(path, segment);
    const stats = await lstat(path).catch(() => undefined);
    if (!stats) return `the mount source component ${path} does not exist`;
    if (stats.isSymbolicLink()) return `the mount source component ${path} is a symlink`;
    if (!stats.isDirectory()) return `the mount source component ${path} is not a directory`;
  }
  return undefined;
}
