// Malformed input of every shape, against the API and the proxy of a running
// berth: no answer is a 5xx, and every 4xx is berth's JSON error body. Seeded,
// so that a failure names the request that reproduces it.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from './support/api.ts';
import { createTestService } from './support/backends.ts';
import { ADMIN_TOKEN, TestBerth } from './support/berth.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 20261201);
const API_REQUESTS = 2500;
const PROXY_REQUESTS = 500;
const docker = createTestDocker();

/** mulberry32: small, fast and good enough to pick cases. */
function randomSource(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ROUTES: Array<[string, string]> = [
  ['POST', '/v2/service/{account}/{service}/connect'],
  ['POST', '/v2/service/{account}/{service}/{name}/connect'],
  ['POST', '/v2/service/{account}/{service}/update'],
  ['POST', '/v2/service/{account}/{service}/{name}/update'],
  ['POST', '/v2/account/{account}/service'],
  ['GET', '/v2/account/{account}/services'],
  ['GET', '/v2/service/{account}/{service}'],
  ['GET', '/v2/service/{account}/{service}/images'],
  ['GET', '/v2/service/{account}/{service}/backends'],
  ['GET', '/v2/account/{account}/backends'],
  ['POST', '/v2/service/{account}/{service}/delete'],
  ['GET', '/v2/backend/{id}'],
  ['GET', '/v2/backend/{id}/status'],
  ['POST', '/v2/backend/{id}/terminate'],
  ['GET', '/v2/backend/{id}/logs/stream?follow=false'],
  ['POST', '/v2/accounts'],
  ['POST', '/v2/account/{account}/tokens'],
  ['DELETE', '/v2/account/{account}/tokens/{id}'],
  ['GET', '/service/{account}/{service}/image-name'],
  ['GET', '/auth'],
  ['GET', '/ready/{id}/{name}'],
];
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'TRACE'];

function cases(random: () => number) {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const weirdStrings = [
    '', ' ', 'a\u0000b', '\u0000', 'x'.repeat(300), 'x'.repeat(70_000), '../../etc', '.', '..', '/', '/etc/passwd', 'acme/app/x',
    '\ud800', '😀', '%00', '\r\nX-Injected: 1', '<script>', 'sha256:' + 'f'.repeat(64), '127.0.0.1:35500/x', 'A'.repeat(64), '-1', '1e309',
  ];
  // A lone surrogate cannot be encoded: send the bytes of one, which are not UTF-8 either.
  const encode = (text: string) => {
    try {
      return encodeURIComponent(text).slice(0, 2000) || 'a';
    } catch {
      return '%ED%A0%80';
    }
  };
  const weirdSegment = () => pick(['zzz', encode(pick(weirdStrings)), '%00', '%2e%2e', '%E0%A4%A', 'UPPER', 'a'.repeat(80)]);
  // Mostly names that exist, so that requests get past routing and auth to the checks behind them.
  const segment = (name: string) => (random() < 0.3 ? weirdSegment() : (VALID_SEGMENTS[name] ?? 'acme'));
  const deep = (depth: number, open: string, close: string) => open.repeat(depth) + close.repeat(depth);
  const value = (level = 0): unknown => {
    switch (Math.floor(random() * (level > 3 ? 6 : 9))) {
      case 0: return pick(weirdStrings);
      case 1: return pick([0, -1, 1.5, 2 ** 53, -(2 ** 60), 1e308, 200, 6 * 1024 * 1024]);
      case 2: return pick([true, false, null]);
      case 3: return pick(weirdStrings).slice(0, 50);
      case 4: return {};
      case 5: return [];
      case 6: return [value(level + 1), value(level + 1)];
      default: {
        const object: Record<string, unknown> = {};
        for (let i = 0; i < 1 + Math.floor(random() * 4); i++) object[pick([...FIELDS, ...weirdStrings.slice(0, 5)])] = value(level + 1);
        return object;
      }
    }
  };
  /** A valid body with one field, anywhere in it, replaced by something odd. */
  const mutated = (): unknown => {
    const body = structuredClone(pick(VALID_BODIES)) as Record<string, unknown>;
    const holders: Array<[Record<string, unknown>, string]> = [];
    const walk = (node: Record<string, unknown>) => {
      for (const [name, child] of Object.entries(node)) {
        holders.push([node, name]);
        if (child && typeof child === 'object' && !Array.isArray(child)) walk(child as Record<string, unknown>);
      }
    };
    walk(body);
    const [holder, name] = pick(holders);
    if (random() < 0.2) holder[`${name}\u0000`] = 1;
    else holder[name] = random() < 0.5 ? pick(weirdStrings) : value();
    return body;
  };
  const body = (): string | undefined => {
    switch (Math.floor(random() * 10)) {
      case 0: return undefined;
      case 1: return pick(['{', 'nul\u0000l', '[1,2', '"x"', 'null', '1', '{"a":}', '\ufeff{}']);
      case 2: return `{"auth":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}`;
      case 3: return deep(50_000, '[', ']');
      case 4: return JSON.stringify(value());
      default: return JSON.stringify(mutated());
    }
  };
  return { pick, segment, body, value };
}

const VALID_SEGMENTS: Record<string, string> = { account: 'acme', service: 'echo', name: 'default', id: 'abcdefghij' };
const VALID_BODIES: unknown[] = [
  {
    key: 'k',
    user: 'u',
    auth: { a: 1, b: { c: 'd' } },
    spawn: { tag: 'latest', max_idle_seconds: 5, executable: { env: { A: 'b' }, resource_limits: { memory_limit_bytes: 100_000_000 } } },
  },
  { key: 'k', spawn: false, auth: { a: 'b' } },
  { name: 'svc', image: 'acme/svc' },
  { image_tag: 'latest' },
  { hard: true },
];
const FIELDS = ['key', 'user', 'auth', 'spawn', 'tag', 'cluster', 'executable', 'mount', 'env', 'resource_limits', 'memory_limit_bytes',
  'cpu_period_percent', 'cpu_period', 'max_idle_seconds', 'lifetime_limit_seconds', 'name', 'image', 'image_tag', 'hard', 'PORT', 'A'];

interface Answer {
  status: number;
  contentType: string | undefined;
  body: string;
}

/** Raw node:http, so that any bytes go out as given (fetch refuses some methods and headers). */
function send(base: string, method: string, path: string, body: string | undefined, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const url = new URL(base);
    const req = request(
      { host: url.hostname, port: url.port, method, path, headers: { ...headers, ...(body !== undefined ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } : {}) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.setTimeout(15_000, () => req.destroy(new Error(`no answer to ${method} ${path.slice(0, 200)}`)));
    req.on('error', reject);
    req.end(body);
  });
}

function problem(answer: Answer, method: string): string | undefined {
  if (answer.status >= 500) return `a ${answer.status}`;
  if (answer.status < 400 || method === 'HEAD') return undefined;
  if (answer.contentType === 'text/html; charset=utf-8') return undefined; // the ready page's own 404
  if (answer.contentType !== 'application/json') return `content type ${answer.contentType}`;
  try {
    const parsed = JSON.parse(answer.body) as { error?: { status?: number; code?: string; id?: string } };
    if (parsed.error?.status !== answer.status || typeof parsed.error.code !== 'string' || typeof parsed.error.id !== 'string') return 'not the error body';
  } catch {
    return 'a body that is not JSON';
  }
  return undefined;
}

describe('fuzzing the API and the proxy', () => {
  let berth: TestBerth;
  let account: ApiClient;

  beforeAll(async () => {
    await ensureTestImage(docker);
    // A cap of two live backends keeps the odd well-formed connect from filling the machine: the rest get 429.
    berth = await TestBerth.start({ database: { kind: 'pglite' }, env: { BERTH_MAX_BACKENDS_PER_ACCOUNT: '2', BERTH_RATE_LIMIT: '100000' } });
    account = await createTestService(berth, 'acme');
  });
  afterAll(async () => {
    await berth?.stop();
  });

  it.each([
    ['a NUL in key', { key: 'a\u0000b' }, 'body.key'],
    ['a NUL in user', { user: 'a\u0000b' }, 'body.user'],
    ['a NUL in an auth value', { auth: { a: { b: 'x\u0000' } } }, 'body.auth.a.b'],
    ['a NUL in an auth name', { auth: { 'a\u0000': 1 } }, 'body.auth'],
    // Sent as text: JSON.stringify of such a value would overflow this test's own stack.
    ['auth nested 100,000 deep', `{"auth":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}`, `body.auth${'.a'.repeat(32)}`],
    ['a NUL in an env name', { spawn: { executable: { env: { 'A\u0000': 'b' } } } }, 'body.spawn.executable.env.A\u0000'],
    ['a NUL in an env value', { spawn: { executable: { env: { A: 'b\u0000' } } } }, 'body.spawn.executable.env.A'],
    ['a NUL in a mount', { spawn: { executable: { mount: 'a\u0000' } } }, 'body.spawn.executable.mount'],
    ['a 300-character mount', { spawn: { executable: { mount: 'm'.repeat(300) } } }, 'body.spawn.executable.mount'],
  ])('refuses %s with a 400 naming the field', async (_, body, param) => {
    const response =
      typeof body === 'string'
        ? await account.request('POST', '/v2/service/acme/echo/connect', { rawBody: body, headers: { 'Content-Type': 'application/json' } })
        : await account.post('/v2/service/acme/echo/connect', body);
    expect(response.status, response.text).toBe(400);
    expect(response.body.error.details).toEqual({ param });
  });

  it(`answers ${API_REQUESTS} malformed API requests without a 5xx, every 4xx a JSON error (seed ${SEED})`, async () => {
    const random = randomSource(SEED);
    const { pick, segment, body } = cases(random);
    const failures: string[] = [];
    const tokens = [`Bearer ${ADMIN_TOKEN}`, `Bearer ${account.token}`, 'Bearer x.y', 'Basic abc', `Bearer ${'a'.repeat(5000)}.b`];
    for (let i = 0; i < API_REQUESTS && failures.length < 10; i++) {
      const [routeMethod, template] = pick(ROUTES);
      const method = random() < 0.8 ? routeMethod : pick(METHODS);
      const path = template.replace(/\{(\w+)\}/g, (_, name: string) => segment(name));
      const payload = method === 'GET' || method === 'HEAD' ? undefined : body();
      const answer = await send(berth.apiUrl, method, path, payload, { Authorization: pick(tokens) });
      const wrong = problem(answer, method);
      if (wrong) failures.push(`${method} ${path.slice(0, 120)} ${payload?.slice(0, 120) ?? ''} → ${wrong}: ${answer.body.slice(0, 300)}`);
    }
    expect(failures).toEqual([]);
  });

  it(`answers ${PROXY_REQUESTS} malformed proxy requests without a 5xx other than a held backend's 503 (seed ${SEED})`, async () => {
    const random = randomSource(SEED + 1);
    const { pick, segment, body } = cases(random);
    const failures: string[] = [];
    for (let i = 0; i < PROXY_REQUESTS && failures.length < 10; i++) {
      const method = pick(METHODS);
      const path = `/${segment('token')}/${segment('x')}?${segment('x')}`;
      const headers: Record<string, string> = random() < 0.3 ? { 'X-Verified-Username': 'mallory', Host: pick(['evil.example', 'localhost', 'a'.repeat(200)]) } : {};
      const answer = await send(berth.proxyUrl, method, path, method === 'GET' || method === 'HEAD' ? undefined : body(), headers);
      const wrong = problem(answer, method);
      if (wrong) failures.push(`${method} ${path.slice(0, 120)} → ${wrong}: ${answer.body.slice(0, 300)}`);
    }
    expect(failures).toEqual([]);
  });
});
