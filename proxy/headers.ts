import type { IncomingHttpHeaders } from 'node:http';

const VERIFIED_PREFIX = 'x-verified-';

/** Every header berth sets on a proxied request (verifiedHeaders below sets those it has values for). */
export const VERIFIED_HEADER_NAMES = ['x-verified-username', 'x-verified-user-data', 'x-verified-secret', 'x-verified-backend'] as const;

/** Name/value pairs set on every request of one token; computed once, when the token is cached. */
export type VerifiedHeaders = ReadonlyArray<readonly [name: string, value: string]>;

/** The `x-verified-*` headers of one connection token. A header is left out when connect gave no value for it. */
export function verifiedHeaders(token: {
  backendId: string;
  username: string | null;
  auth: Record<string, unknown> | null;
  secretToken: string;
}): VerifiedHeaders {
  const headers: Array<[string, string]> = [];
  if (token.username !== null) headers.push(['x-verified-username', textHeaderValue(token.username)]);
  if (token.auth !== null) headers.push(['x-verified-user-data', jsonHeaderValue(token.auth)]);
  headers.push(['x-verified-secret', token.secretToken]);
  headers.push(['x-verified-backend', token.backendId]);
  return headers;
}

/**
 * Prepares a request's headers for the backend, in place: drops hop-by-hop
 * headers (unless the request is an upgrade, which needs them), drops every
 * `x-verified-*` header the client sent, then sets the token's own.
 */
export function prepareHeaders(headers: IncomingHttpHeaders, verified: VerifiedHeaders, clientAddress: string | undefined, upgrade: boolean): void {
  if (!upgrade) dropHopByHop(headers);
  // Node lowercases names, so this catches every spelling of the prefix.
  for (const name in headers) {
    if (name.charCodeAt(0) === 120 /* x */ && isVerifiedName(name)) delete headers[name];
  }
  for (const [name, value] of verified) headers[name] = value;
  if (clientAddress !== undefined) {
    const forwarded = headers['x-forwarded-for'];
    headers['x-forwarded-for'] = forwarded ? `${forwarded}, ${clientAddress}` : clientAddress;
  }
}

/**
 * `x-verified-…`, also spelled with underscores: CGI-style servers (WSGI, Rack,
 * PHP) turn `X_Verified_Username` into the same variable as `X-Verified-Username`.
 */
function isVerifiedName(name: string): boolean {
  if (name.length <= VERIFIED_PREFIX.length) return false;
  for (let i = 1; i < VERIFIED_PREFIX.length; i++) {
    const c = name.charCodeAt(i);
    const expected = VERIFIED_PREFIX.charCodeAt(i);
    if (c !== expected && !(expected === 45 /* - */ && c === 95) /* _ */) return false;
  }
  return true;
}

/** Headers that describe one connection, not the request (RFC 9110 §7.6.1). */
function dropHopByHop(headers: IncomingHttpHeaders): void {
  const connection = headers.connection;
  if (connection !== undefined) {
    for (const listed of connection.split(',')) {
      const name = listed.trim().toLowerCase();
      if (name !== '' && name !== 'close' && name !== 'keep-alive') delete headers[name];
    }
    delete headers.connection;
  }
  delete headers['keep-alive'];
  delete headers['proxy-connection'];
  delete headers.upgrade;
}

/**
 * JSON with every character outside printable ASCII escaped as \uXXXX: still
 * the same JSON value, and always a valid header value.
 */
function jsonHeaderValue(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Header values travel as bytes: a username goes out as its UTF-8 bytes
 * (RFC 9110 obs-text; Node writes a string one latin1 byte per character).
 * Control characters can never be part of a header, so they become U+FFFD
 * rather than break every request of the token.
 */
function textHeaderValue(value: string): string {
  const safe = value.replace(/[\u0000-\u0008\u000a-\u001f\u007f]/g, '\ufffd');
  return Buffer.from(safe, 'utf8').toString('latin1');
}
