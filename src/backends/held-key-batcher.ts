import type { Kysely } from 'kysely';
import { isDatabaseUnavailable, type Database } from '../database.ts';
import { joinHeldKeys, type HeldKeyJoin, type HeldKeyRequest } from './connection-token.repository.ts';

interface Pending {
  request: HeldKeyRequest;
  resolve: (join: HeldKeyJoin) => void;
  reject: (error: unknown) => void;
}

/** Requests sent in one statement at most: a few kilobytes of parameters. */
const MAX_BATCH = 64;

/**
 * Group commit for connects to held keys. The connects that arrive in one turn
 * of the event loop go to the database together, in one statement
 * (`joinHeldKeys`), sent once that turn has read every request that was
 * waiting (setImmediate); those that arrive while a statement is in flight go
 * together after it. Under load this turns many round trips and commits into a
 * few, which is most of a held-key connect's cost (on PGlite almost all of
 * it: each statement is a commit in berth's own thread, during which no
 * request is read), and without load it adds no more than that one turn.
 *
 * One statement is in flight per process, so this process's own statements
 * never wait on each other's row locks. A batch that fails for a reason other
 * than the database being away is sent again request by request, so that one
 * request the database refuses fails alone.
 */
export class HeldKeyBatcher {
  private queue: Pending[] = [];
  /** A flush is scheduled or running: later requests join its queue. */
  private flushing = false;

  constructor(private readonly db: Kysely<Database>) {}

  join(request: HeldKeyRequest): Promise<HeldKeyJoin> {
    return new Promise((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      if (this.flushing) return;
      this.flushing = true;
      setImmediate(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, MAX_BATCH);
        await this.send(batch);
      }
    } finally {
      this.flushing = false;
    }
  }

  private async send(batch: Pending[]): Promise<void> {
    try {
      const joins = await joinHeldKeys(
        this.db,
        batch.map((pending) => pending.request),
        new Date(),
      );
      batch.forEach((pending, index) => pending.resolve(joins[index]!));
    } catch (error) {
      if (batch.length === 1 || isDatabaseUnavailable(error)) {
        for (const pending of batch) pending.reject(error);
        return;
      }
      for (const pending of batch) await this.send([pending]);
    }
  }
}
