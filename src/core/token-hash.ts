import { createHash } from 'node:crypto';

/**
 * What the database keeps of a connection token: its SHA-256, hex. The API
 * stores it at connect, and the proxy and the ready page look tokens up by it,
 * so a read of the database (a backup, a replica, a leaked dump) yields no
 * usable URL. Tokens are 32 random nanoid characters (192 bits), so a plain
 * hash is enough: there is nothing to guess, and no salt or slow hash would
 * add to that. Migration 0006 computes the same value in SQL.
 */
export function hashConnectionToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
