import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.ts';
import { ActivityTracker } from '../proxy/activity.ts';

function trackerWithSink() {
  const writes: string[][] = [];
  let failNext = false;
  const sink = {
    async recordActivity(ids: readonly string[]) {
      if (failNext) {
        failNext = false;
        throw new Error('database down');
      }
      writes.push([...ids].sort());
    },
  };
  // A long interval: the test flushes by hand.
  const tracker = new ActivityTracker(sink, createLogger('silent'), 60_000);
  return { tracker, writes, failNextWrite: () => (failNext = true) };
}

describe('proxy activity', () => {
  it('writes every backend seen or still open in one batch per flush, and nothing when idle', async () => {
    const { tracker, writes } = trackerWithSink();
    tracker.begin('a');
    tracker.end('a');
    tracker.begin('b');
    tracker.begin('b');
    tracker.end('b');
    await tracker.flush();
    expect(writes).toEqual([['a', 'b']]);

    // Only b is still open: it stays active, a does not.
    await tracker.flush();
    expect(writes.at(-1)).toEqual(['b']);
    expect(tracker.openCount('b')).toBe(1);

    // Closing is the last activity; after that, nothing more is written.
    tracker.end('b');
    await tracker.flush();
    expect(writes.at(-1)).toEqual(['b']);
    await tracker.flush();
    expect(writes).toHaveLength(3);
  });

  it('keeps what a failed write lost for the next flush', async () => {
    const { tracker, writes, failNextWrite } = trackerWithSink();
    tracker.begin('a');
    tracker.end('a');
    failNextWrite();
    await tracker.flush();
    expect(writes).toEqual([]);
    await tracker.flush();
    expect(writes).toEqual([['a']]);
  });

  it('writes what is left when it stops', async () => {
    const { tracker, writes } = trackerWithSink();
    tracker.start();
    tracker.begin('a');
    await tracker.stop();
    expect(writes).toEqual([['a']]);
  });
});
