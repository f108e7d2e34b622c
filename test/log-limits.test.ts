import { once } from 'node:events';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_LOG_LINE_BYTES } from '../scheduler/docker/container-logs.ts';
import { LineSplitter } from '../scheduler/line-splitter.ts';
import { DockerLogParser, type ParsedLogLine } from '../scheduler/docker/log-frames.ts';
import { eventStreamBuffers } from '../src/http/sse.ts';
import { storableText } from '../src/logs/log.repository.ts';
import type { ApiClient } from './support/api.ts';
import { createTestService, waitForStatus } from './support/backends.ts';
import { TestBerth } from './support/berth.ts';
import { createTestDocker } from './support/docker.ts';
import { readSse } from './support/sse.ts';
import { ensureTestImage } from './support/test-image.ts';

const docker = createTestDocker();
const TIMESTAMP_TEXT = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/;

/** One frame of `docker logs` output: stream type, three zero bytes, the payload's length, the payload. */
function frame(stream: 1 | 2, payload: string | Buffer): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

function parse(bytes: Buffer, chunkSize: number, maxLineBytes = MAX_LOG_LINE_BYTES): ParsedLogLine[] {
  const lines: ParsedLogLine[] = [];
  const parser = new DockerLogParser((line) => lines.push(line), { maxLineBytes });
  for (let at = 0; at < bytes.length; at += chunkSize) parser.write(bytes.subarray(at, at + chunkSize));
  parser.end();
  return lines;
}

describe('log lines from the engine', () => {
  // Regression: a 32 MB line cost 38 s of CPU, the pending text being searched and copied again for every chunk.
  it('splits a 32 MB line in linear time, keeping only its first bytes and counting the rest', () => {
    const lines: Array<[string, number]> = [];
    const splitter = new LineSplitter((line, dropped) => lines.push([line, dropped]), { keepBlank: true, maxLineBytes: 16 * 1024 });
    const chunk = Buffer.alloc(64 * 1024, 'y');
    const started = performance.now();
    for (let i = 0; i < 512; i++) splitter.write(chunk);
    splitter.write('\nnext\n');
    const elapsed = performance.now() - started;
    expect(lines).toEqual([
      ['y'.repeat(16 * 1024), 32 * 1024 * 1024 - 16 * 1024],
      ['next', 0],
    ]);
    expect(elapsed).toBeLessThan(2000);
  });

  it('cuts a long line before a multi-byte character rather than through it', () => {
    const lines: Array<[string, number]> = [];
    const splitter = new LineSplitter((line, dropped) => lines.push([line, dropped]), { keepBlank: true, maxLineBytes: 4 });
    splitter.write(Buffer.from('abcé and more\n'));
    expect(lines).toEqual([['abc', 11]]);
  });

  // Regression: the engine's 16 KiB partial frames each carry a timestamp, which ended up inside stored lines.
  it('joins the partial frames of a long line without their timestamps, whatever the chunking', () => {
    const first = 'a'.repeat(16 * 1024);
    const bytes = Buffer.concat([
      frame(1, `2025-01-02T03:04:05.123456789Z ${first}`),
      frame(2, '2025-01-02T03:04:05.500000000Z on stderr\n'),
      frame(1, `2025-01-02T03:04:06.000000000Z ${'b'.repeat(100)}\n`),
      frame(1, '2025-01-02T03:04:07.000000000Z  two spaces kept\n'),
      frame(1, '2025-01-02T03:04:08.000000000Z \n'),
    ]);
    for (const chunkSize of [1, 7, 4096, bytes.length]) {
      const whole = parse(bytes, chunkSize, 64 * 1024);
      expect(whole.map(({ stream, line }) => [stream, line])).toEqual([
        ['stderr', 'on stderr'],
        ['stdout', first + 'b'.repeat(100)],
        ['stdout', ' two spaces kept'],
        ['stdout', ''],
      ]);
      // A line is dated by its first piece.
      expect(whole[1]!.time.toISOString()).toBe('2025-01-02T03:04:05.123Z');
      // Its nanoseconds too: a line the engine hands out again after a rotation is known by them.
      expect(whole[1]!.nanos).toBe(456_789);
    }
    const cut = parse(bytes, 4096);
    expect(cut[1]!.line).toBe(`${first} … [truncated 100 bytes]`);
    expect(cut.some(({ line }) => TIMESTAMP_TEXT.test(line))).toBe(false);
  });

  it('turns invalid UTF-8 into U+FFFD, and the store replaces NUL and lone surrogates', () => {
    const bytes = frame(1, Buffer.concat([Buffer.from('2025-01-02T03:04:05Z bad '), Buffer.from([0xff, 0x00, 0x41]), Buffer.from('\n')]));
    const [line] = parse(bytes, 3);
    expect(line!.line).toBe('bad \uFFFD\u0000A');
    expect(storableText(line!.line)).toBe('bad \uFFFD\uFFFDA');
    expect(storableText('x\uD800y\uDC00z\uD83D\uDE00')).toBe('x\uFFFDy\uFFFDz\uD83D\uDE00');
  });
});

/** A client of the logs stream that sends its request and then reads nothing until told. */
async function stalledReader(apiUrl: string, backendId: string, token: string): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port: Number(new URL(apiUrl).port) });
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.pause();
  socket.write(`GET /v2/backend/${backendId}/logs/stream HTTP/1.1\r\nHost: berth\r\nAuthorization: Bearer ${token}\r\n\r\n`);
  return socket;
}

/** Reads a socket (or a fetch body) until `text` has gone by; resolves to the event ids seen. */
async function readUntil(chunks: AsyncIterable<Uint8Array>, text: string): Promise<number[]> {
  const ids: number[] = [];
  let rest = '';
  const decoder = new TextDecoder();
  for await (const chunk of chunks) {
    const events = (rest + decoder.decode(chunk, { stream: true })).split('\n\n');
    rest = events.pop()!;
    for (const event of events) {
      const id = /(?:^|\n)id: (\d+)\ndata: (.*)$/s.exec(event);
      if (!id) continue;
      ids.push(Number(id[1]));
      if (id[2] === text) return ids;
    }
  }
  throw new Error(`the stream ended before "${text}"`);
}

describe('log pipeline limits', () => {
  let berth: TestBerth;
  let api: ApiClient;

  beforeAll(async () => {
    await ensureTestImage(docker);
    berth = await TestBerth.start({ database: { kind: 'pglite' }, env: { BERTH_TERMINATION_GRACE_SECONDS: '1' } });
    api = await createTestService(berth, 'acme');
  });
  afterAll(() => berth?.stop());

  async function readyBackend(): Promise<{ id: string; url: string }> {
    const { backend_id: id, url } = (await api.post('/v2/service/acme/echo/connect', {})).body;
    await waitForStatus(api, id, 'ready');
    return { id, url };
  }

  // Regression: one NUL byte lost its whole batch of up to 500 lines; long lines kept the engine's timestamps inside.
  it('stores a NUL byte, invalid UTF-8 and a 100 kB line from a real container, the long line cut with a marker', async () => {
    const backend = await readyBackend();
    const printed = await fetch(`${backend.url}print?nul=1&invalid=1&bytes=100000&line=100000&marker=print-done`);
    expect(printed.status).toBe(200);
    const auth = { Authorization: `Bearer ${api.token}` };
    let lines: string[] = [];
    for (let tries = 0; tries < 50 && !lines.includes('print-done'); tries++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      lines = (await readSse(`${berth.apiUrl}/v2/backend/${backend.id}/logs/stream?follow=false`, { headers: auth })).events.map((e) => e.data);
    }
    const kept = MAX_LOG_LINE_BYTES;
    expect(lines).toEqual([
      'stderr hello',
      'listening on 8080',
      'nul:before\uFFFDafter',
      'invalid:\uFFFD\uFFFD|\uFFFD\uFFFD\uFFFD|\uFFFD',
      `0:${'x'.repeat(kept - 2)} … [truncated ${100_000 - kept} bytes]`,
      'print-done',
    ]);
    await api.post(`/v2/backend/${backend.id}/terminate`, { hard: true });
  });

  // Regression: four log readers that never read grew berth from 192 MB to 1.4 GB.
  it('holds a bounded buffer for four stalled readers through a 50 MB burst, and a reader that resumes gets every line', async () => {
    const backend = await readyBackend();
    const rssBefore = process.memoryUsage().rss;
    const stalled = await Promise.all(Array.from({ length: 4 }, () => stalledReader(berth.apiUrl, backend.id, api.token!)));
    let peakBuffered = 0;
    let peakRss = rssBefore;
    const sampler = setInterval(() => {
      peakBuffered = Math.max(peakBuffered, eventStreamBuffers().bufferedBytes);
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }, 100);
    try {
      const burst = fetch(`${backend.url}print?bytes=50000000&line=8000&marker=burst-done`, { signal: AbortSignal.timeout(120_000) });
      // A reader that keeps up sees the burst through, so it is stored by the time this returns.
      const active = await fetch(`${berth.apiUrl}/v2/backend/${backend.id}/logs/stream`, { headers: { Authorization: `Bearer ${api.token}` } });
      const activeIds = await readUntil(active.body!, 'burst-done');
      expect((await burst).status).toBe(200);
      // Lines the engine rotated away while berth was behind are gone (BERTH_CONTAINER_LOG_MAX_BYTES × FILES is what it keeps); none are made up.
      expect(activeIds.length).toBeLessThanOrEqual(50_000_000 / 8000 + 3);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const now = eventStreamBuffers();
      console.log(
        `50 MB burst, 4 stalled readers: ${activeIds.length} lines; peak buffered by all streams ${(peakBuffered / 1024).toFixed(0)} KiB, ` +
          `after ${(now.bufferedBytes / 1024).toFixed(0)} KiB in ${now.streams} streams; rss ${(rssBefore / 2 ** 20).toFixed(0)} → peak ${(peakRss / 2 ** 20).toFixed(0)} MiB`,
      );
      // Each stalled stream holds at most about one socket buffer and one line; 4 MiB would be 1/50 of the burst.
      expect(peakBuffered).toBeLessThan(4 * 1024 * 1024);
      expect(now.streams).toBeGreaterThanOrEqual(4);
      expect(peakRss - rssBefore).toBeLessThan(256 * 2 ** 20);

      // Paused, not dropped: a stalled reader that starts reading gets everything, in order.
      const resumed = stalled[0]!;
      resumed.resume();
      expect(await readUntil(resumed, 'burst-done')).toEqual(activeIds);
    } finally {
      clearInterval(sampler);
      for (const socket of stalled) socket.destroy();
    }
    await api.post(`/v2/backend/${backend.id}/terminate`, { hard: true });
  });
});
