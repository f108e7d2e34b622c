import { z } from 'zod';
import type { BerthContext } from '../context.ts';
import { principalOf } from '../http/auth.ts';
import { parseInput } from '../http/validation.ts';
import type { Backend } from './backend.service.ts';

export const BACKEND_ID = z.string().regex(/^[a-z0-9]{1,64}$/, 'must be a backend id (lowercase letters and digits)');

export function backendIdParam(ctx: BerthContext): string {
  return parseInput(BACKEND_ID, ctx.params.id, 'backend_id');
}

/** The backend named in the path, after checking the caller may act on its account. */
export async function authorizedBackend(ctx: BerthContext): Promise<Backend> {
  const backend = await ctx.deps.backends.requireBackend(backendIdParam(ctx));
  await ctx.deps.accounts.authorize(principalOf(ctx), backend.accountName);
  return backend;
}
