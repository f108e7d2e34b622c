import { createHash, timingSafeEqual } from 'node:crypto';
import { customAlphabet, nanoid } from 'nanoid';

const newTokenId = customAlphabet('0123456789abcdefghijklmnopqrstuvwxyz', 12);

export interface MintedToken {
  id: string;
  secret: string;
  /** What the client sends: `<id>.<secret>`. */
  token: string;
}

export function mintToken(): MintedToken {
  const id = newTokenId();
  const secret = nanoid(32);
  return { id, secret, token: `${id}.${secret}` };
}

export function parseToken(token: string): { id: string; secret: string } | undefined {
  const match = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/.exec(token);
  return match ? { id: match[1]!, secret: match[2]! } : undefined;
}

/**
 * Secrets are 190 random bits, so a plain SHA-256 is enough: there is nothing
 * to brute-force that a slow password hash would protect.
 */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function secretMatches(secret: string, secretHash: string): boolean {
  const actual = Buffer.from(hashSecret(secret), 'hex');
  const expected = Buffer.from(secretHash, 'hex');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
