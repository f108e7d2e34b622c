import { z } from 'zod';
import { BACKEND_STATUSES } from '../core/backend-status.ts';
import { ERROR_TYPES } from '../core/errors.ts';

// Answers are built by hand in the controllers, not parsed; these describe them
// for the document, and test/openapi.test.ts checks real answers against them.

/** Every error, from every route (errors.ts `errorBody`). */
export const ERROR_BODY = z.strictObject({
  error: z.strictObject({
    message: z.string(),
    type: z.enum(ERROR_TYPES),
    code: z.string().describe('machine-readable, e.g. account_mismatch'),
    status: z.number().int().describe('the HTTP status'),
    id: z.string().describe('the request id; the same id is in berth’s log line'),
    details: z.record(z.string(), z.unknown()).optional().describe('e.g. `param`: the field at fault'),
  }),
});

export const OK_RESPONSE = z.strictObject({ status: z.literal('ok') });

export const CONNECT_RESPONSE = z.strictObject({
  backend_id: z.string(),
  spawned: z.boolean().describe('true when this call started the backend'),
  status: z.enum(BACKEND_STATUSES),
  token: z.string().describe('the connection token in `url`'),
  url: z.string().describe('`{proxy}/{token}/`: where browsers connect'),
  secret_token: z.string().describe('also sent to the backend as x-verified-secret'),
  status_url: z.string(),
  ready_url: z.string().describe('an HTML page that redirects to `url` once the backend is ready'),
});
