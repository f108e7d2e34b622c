/**
 * Where a backend's `spawn.executable.mount` lives on the host.
 *
 * Every mount is a directory `{base}/{account}/{service}/{name}`, where `base`
 * is BERTH_MOUNT_BASE_DIR and `name` is ONE path segment: a flat name such as
 * `notes` or `room-1`, or, for `mount: true`, one berth derives from the key
 * (or the backend id when there is no key). Berth makes every directory on
 * that path itself, one segment at a time, and refuses any that is a symlink.
 *
 * One segment is what keeps the tree safe from the containers that use it: a
 * container sees only its own leaf, and no leaf is an ancestor of another
 * mount's source, so no container can write to a directory on the path of
 * another mount and swap a component of it for a symlink. The components above
 * the leaves belong to berth; the scheduler checks them once more, without
 * following symlinks, right before it hands the path to the engine
 * (scheduler/mount-check.ts).
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import type { BindMount } from '../../scheduler/engine.ts';
import { BerthError, ValidationError } from '../core/errors.ts';

/** Where a mounted directory appears inside the container. */
export const MOUNT_TARGET = '/data';

const PARAM = 'body.spawn.executable.mount';
/** NAME_MAX of Linux file systems: a longer name fails with ENAMETOOLONG. */
const MAX_NAME_BYTES = 255;
/** No ":" or ",": Docker's bind syntax `source:target[:options]` would read them as separators. */
const NAME_CHARACTERS = /^[A-Za-z0-9_.-]+$/;

export interface MountOwner {
  accountName: string;
  serviceName: string;
  key: string | undefined;
  backendId: string;
}

/**
 * The directory to mount for a connect, made if new: `true` gives the backend
 * one of its own (per key when there is one), a string names one of the
 * service's mounts. Undefined or `false` means no mount.
 */
export async function resolveMount(
  baseDir: string | undefined,
  mount: string | boolean | undefined,
  owner: MountOwner,
): Promise<BindMount | null> {
  if (mount === undefined || mount === false) return null;
  if (!baseDir) {
    throw new ValidationError(PARAM, 'mounts are disabled on this berth: set BERTH_MOUNT_BASE_DIR to allow them', 'mounts_disabled');
  }
  const name = mount === true ? ownMountName(owner) : checkMountName(mount);
  const base = await realpath(baseDir).catch((error: unknown) => {
    throw new BerthError(500, 'internal_error', 'mount_base_missing', 'BERTH_MOUNT_BASE_DIR does not exist on this host', { cause: error });
  });
  const serviceDir = join(base, owner.accountName, owner.serviceName);
  await makeBerthDirectory(join(base, owner.accountName));
  await makeBerthDirectory(serviceDir);
  const source = join(serviceDir, name);
  await makeMountDirectory(source, name);
  return { base, source, target: MOUNT_TARGET };
}

/** A name the tenant chose: one plain segment, refused with a 400 otherwise. */
function checkMountName(name: string): string {
  const refuse = (code: string, why: string) => new ValidationError(PARAM, `"${PARAM}" ${why}`, code);
  if (name.includes('\0')) throw refuse('invalid_mount_name', 'may not contain a NUL byte');
  if (name.startsWith('/')) {
    throw refuse('mount_outside_base', "must name a directory of the service's own, not an absolute path");
  }
  if (name.split(/[\\/]/).some((segment) => segment === '.' || segment === '..')) {
    throw refuse('mount_outside_base', 'may not be or contain "." or ".."');
  }
  if (/[\\/]/.test(name)) {
    throw refuse('invalid_mount_name', 'must be one flat name such as "notes", without "/": each mount is a directory of its own');
  }
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw refuse('invalid_mount_name', `may be at most ${MAX_NAME_BYTES} bytes long`);
  if (!NAME_CHARACTERS.test(name)) throw refuse('invalid_mount_name', 'may contain only letters, digits, ".", "_" and "-"');
  return name;
}

/** `mount: true`: the key in base64url (as before), hashed when that would be too long a name. */
function ownMountName(owner: MountOwner): string {
  if (owner.key === undefined) return owner.backendId;
  const encoded = Buffer.from(owner.key).toString('base64url');
  if (encoded.length <= MAX_NAME_BYTES) return encoded;
  return `key-sha256-${createHash('sha256').update(owner.key).digest('base64url')}`;
}

/** The account's and the service's directories: only berth writes there, so anything odd is the host's doing. */
async function makeBerthDirectory(path: string): Promise<void> {
  const problem = await makeDirectory(path);
  if (problem) {
    throw new BerthError(500, 'internal_error', 'mount_tree_unsafe', `a directory above the mount ${problem}; refusing to mount through it`);
  }
}

async function makeMountDirectory(path: string, name: string): Promise<void> {
  const problem = await makeDirectory(path);
  if (problem) throw new ValidationError(PARAM, `"${PARAM}" names "${name}", which ${problem}; berth mounts only directories it made`, 'mount_outside_base');
}

/**
 * Makes one directory (its parent exists and was checked) and says what is
 * wrong with it, if anything: a symlink is never followed, so one planted
 * there is reported instead of leading elsewhere.
 */
async function makeDirectory(path: string): Promise<string | undefined> {
  try {
    await mkdir(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENAMETOOLONG') throw new ValidationError(PARAM, `"${PARAM}" makes a path longer than this host allows`, 'invalid_mount_name');
    if (code !== 'EEXIST') throw error;
  }
  const stats = await lstat(path);
  if (stats.isSymbolicLink()) return 'is a symlink';
  if (!stats.isDirectory()) return 'exists and is not a directory';
  return undefined;
}
