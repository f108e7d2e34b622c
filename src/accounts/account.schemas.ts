import { z } from 'zod';
import { NAME } from '../http/validation.ts';

export const CREATE_ACCOUNT_BODY = z.strictObject({ name: NAME });
/** Minting a token takes no fields; an empty object (or no body) is the whole request. */
export const CREATE_TOKEN_BODY = z.strictObject({});
export const TOKEN_ID = z.string().regex(/^[a-z0-9]{1,64}$/, 'must be a token id (lowercase letters and digits)');
