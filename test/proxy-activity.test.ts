import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/core/logger.ts';
import { ActivityTracker, type ActivityReport } from '../proxy/activity.ts';

function trackerWithSink() {
  const writes: string[][] = [];
  const reports: ActivityReport[] = [];
  const removed: string[] = [];
  let failNext = false;
  const sink = {
    async recordActivity(report: ActivityReport) {
      if (failNext) {
        failNext = false;
        throw new Error('database down');
      }
      reports.push(report);
      if (report.touched.length > 0) writes.push([...report.touched].sort());
    },
    async removeProxy(proxyId: string) {
      removed.push(proxyId);
    },
  };
  // A long interval: the test flushes by hand.
  const tracker = new ActivityTracker(sink, createLogger('silent'), 60_000);
  return { tracker, writes, reports, removed, failNextWrite: () => (failNext = true) };
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

  it('writes what is left when it stops, then leaves the proxies table', async () => {
    const { tracker, writes, removed } = trackerWithSink();
    tracker.start();
    tracker.begin('a');
    await tracker.stop();
    expect(writes.at(-1)).toEqual(['a']);
    expect(removed).toEqual([tracker.proxyId]);
  });

  it('reports a heartbeat with the open connections on every flush, idle or not', async () => {
    const { tracker, reports } = trackerWithSink();
    await tracker.flush();
    tracker.begin('a');
    tracker.begin('a');
    await tracker.flush();
    tracker.end('a');
    tracker.end('a');
    await tracker.flush();
    expect(reports.map((report) => [...report.open])).toEqual([[], [['a', 2]], []]);
    expect(new Set(reports.map((report) => report.proxyId))).toEqual(new Set([tracker.proxyId]));
  });
});
