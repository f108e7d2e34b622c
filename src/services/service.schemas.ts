import { z } from 'zod';
import { NAME } from '../http/validation.ts';

const PATH_COMPONENT = '[a-z0-9]+(?:[._-]+[a-z0-9]+)*';
/** A Docker repository name without tag: optional registry host, then path components. */
export const REPOSITORY = z
  .string()
  .max(255)
  .regex(new RegExp(`^(?:[a-z0-9.-]+(?::\\d+)?/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`), 'must be a Docker repository name such as "acme/chat"');

/** A Docker tag, or an image digest written `sha256:<64 hex>`. */
export const IMAGE_TAG = z
  .string()
  .regex(/^(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|sha256:[a-f0-9]{64})$/, 'must be a Docker tag (letters, digits, "_", ".", "-"; at most 128) or "sha256:<64 hex digits>"');

/** Linux capabilities Docker knows; all are dropped, and the admin may give some back per service. */
export const CAPABILITIES = [
  'AUDIT_CONTROL', 'AUDIT_READ', 'AUDIT_WRITE', 'BLOCK_SUSPEND', 'BPF', 'CHECKPOINT_RESTORE', 'CHOWN', 'DAC_OVERRIDE',
  'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'IPC_LOCK', 'IPC_OWNER', 'KILL', 'LEASE', 'LINUX_IMMUTABLE', 'MAC_ADMIN',
  'MAC_OVERRIDE', 'MKNOD', 'NET_ADMIN', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_RAW', 'PERFMON', 'SETFCAP', 'SETGID',
  'SETPCAP', 'SETUID', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_CHROOT', 'SYS_MODULE', 'SYS_NICE', 'SYS_PACCT', 'SYS_PTRACE',
  'SYS_RAWIO', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'SYSLOG', 'WAKE_ALARM',
] as const;

const USER_OR_ID = '(?:[a-z_][a-z0-9_-]{0,31}|[0-9]{1,10})';

/** Container settings only the admin token may set; each is optional. */
const CONTAINER_SETTINGS = {
  user: z
    .string()
    .regex(new RegExp(`^${USER_OR_ID}(?::${USER_OR_ID})?$`), 'must be "user", "user:group", "uid" or "uid:gid"'),
  read_only_root: z.boolean(),
  cap_add: z
    .array(z.enum(CAPABILITIES, { error: `must be a capability name such as "NET_BIND_SERVICE" (without "CAP_")` }))
    .max(CAPABILITIES.length)
    .transform((caps) => [...new Set(caps)].sort()),
};
export const ADMIN_ONLY_SERVICE_FIELDS = ['user', 'read_only_root', 'cap_add'] as const;

export const CREATE_SERVICE_BODY = z.strictObject({
  name: NAME,
  image: REPOSITORY.optional(),
  user: CONTAINER_SETTINGS.user.optional(),
  read_only_root: CONTAINER_SETTINGS.read_only_root.optional(),
  cap_add: CONTAINER_SETTINGS.cap_add.optional(),
});

/** `POST /v2/service/{account}/{service}/container`: a field left out keeps its value; `user: null` returns to the image's. */
export const CONTAINER_SETTINGS_BODY = z.strictObject({
  user: CONTAINER_SETTINGS.user.nullable().optional(),
  read_only_root: CONTAINER_SETTINGS.read_only_root.optional(),
  cap_add: CONTAINER_SETTINGS.cap_add.optional(),
});

/** Warm containers per node for one environment; each holds memory and a CPU share while it waits. */
export const MAX_WARM_POOL_SIZE = 50;

export const UPDATE_SERVICE_BODY = z
  .strictObject({
    image_tag: IMAGE_TAG.optional(),
    warm_pool_size: z.number().int().min(0).max(MAX_WARM_POOL_SIZE).optional(),
  })
  .refine((body) => body.image_tag !== undefined || body.warm_pool_size !== undefined, { message: 'needs image_tag, warm_pool_size or both', path: ['image_tag'] });
