import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';

describe('configuration', () => {
  it('has the documented defaults', () => {
    expect(loadConfig({})).toEqual({
      apiPort: 8080,
      proxyPort: 9090,
      bind: '127.0.0.1',
      publicApiUrl: 'http://127.0.0.1:8080',
      publicProxyUrl: 'http://127.0.0.1:9090',
      proxyDomain: undefined,
      databaseUrl: undefined,
      dataDir: './.berth',
      dashboardDir: new URL('../dist/dashboard/', import.meta.url).pathname,
      adminToken: undefined,
      startupTimeoutMs: 300_000,
      imagePrefix: '',
      rateLimit: 1200,
      rateLimitWindowMs: 60_000,
      logLevel: 'info',
      mountBaseDir: undefined,
      terminationGraceMs: 10_000,
      sweepIntervalMs: 1000,
      logRetentionMs: 7 * 24 * 3600 * 1000,
      backendRetentionMs: 7 * 24 * 3600 * 1000,
      proxyWaitMs: 30_000,
      proxyEdge: undefined,
      proxyLeaseMs: 30_000,
      nodeName: expect.any(String),
      nodeAddress: '127.0.0.1',
      nodeLeaseMs: 30_000,
      reconcileIntervalMs: 5000,
      warmTimeoutMs: 30_000,
      // The connection cap's default depends on the open-files limit of the process: pinned below.
      listenerLimits: { headerTimeoutMs: 30_000, idleTimeoutMs: 60_000, maxConnections: expect.any(Number), maxConnectionsPerClient: expect.any(Number) },
      allowedRegistries: [],
      backendNetwork: 'berth-backends',
      pidsLimit: 512,
      containerLogMaxBytes: 10 * 1024 * 1024,
      containerLogMaxFiles: 3,
      defaultMemoryBytes: 1024 ** 3,
      defaultCpuPercent: 100,
      maxMemoryBytes: 8 * 1024 ** 3,
      maxCpuPercent: 100 * availableParallelism(),
      maxBackendsPerAccount: 100,
    });
  });

  it('reads the registry allow-list as lowercase hosts, and keeps each default within its ceiling', () => {
    expect(loadConfig({ BERTH_ALLOWED_REGISTRIES: ' Registry.Example.com:5000, localhost ,' }).allowedRegistries).toEqual(['registry.example.com:5000', 'localhost']);
    expect(() => loadConfig({ BERTH_ALLOWED_REGISTRIES: 'a/b' })).toThrow(/BERTH_ALLOWED_REGISTRIES/);
    expect(() => loadConfig({ BERTH_DEFAULT_MEMORY_BYTES: String(2 * 1024 ** 3), BERTH_MAX_MEMORY_BYTES: String(1024 ** 3) })).toThrow(/BERTH_DEFAULT_MEMORY_BYTES must not exceed/);
    expect(() => loadConfig({ BERTH_MAX_CPU_PERCENT: '50' })).toThrow(/BERTH_DEFAULT_CPU_PERCENT must not exceed/);
    expect(loadConfig({ BERTH_DEFAULT_MEMORY_BYTES: '0', BERTH_DEFAULT_CPU_PERCENT: '0' })).toMatchObject({ defaultMemoryBytes: 0, defaultCpuPercent: 0 });
  });

  it('caps connections per listener at 10,000 or a quarter of the open-files limit, and per client at 1000', () => {
    const { maxConnections, maxConnectionsPerClient } = loadConfig({}).listenerLimits;
    expect(maxConnections).toBeLessThanOrEqual(10_000);
    expect(maxConnectionsPerClient).toBe(Math.min(1000, maxConnections));
    expect(loadConfig({ BERTH_MAX_CONNECTIONS: '50' }).listenerLimits).toMatchObject({ maxConnections: 50, maxConnectionsPerClient: 50 });
    expect(() => loadConfig({ BERTH_MAX_CONNECTIONS: '50', BERTH_MAX_CONNECTIONS_PER_CLIENT: '51' })).toThrow(
      new ConfigError('BERTH_MAX_CONNECTIONS_PER_CLIENT', 'must not exceed BERTH_MAX_CONNECTIONS (50)'),
    );
    expect(() => loadConfig({ BERTH_HEADER_TIMEOUT_SECONDS: '301' })).toThrow(/BERTH_HEADER_TIMEOUT_SECONDS/);
  });

  it('derives public URLs from the bind address and ports, and trims a trailing slash', () => {
    const config = loadConfig({ BERTH_BIND: '::1', BERTH_API_PORT: '1', BERTH_PUBLIC_PROXY_URL: 'https://p.example.com/' });
    expect(config.publicApiUrl).toBe('http://[::1]:1');
    expect(config.publicProxyUrl).toBe('https://p.example.com');
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ BERTH_API_PORT: '', DATABASE_URL: '' }).apiPort).toBe(8080);
  });

  it('turns the nginx edge on with its binary and workers', () => {
    expect(loadConfig({ BERTH_PROXY_EDGE: 'nginx' }).proxyEdge).toEqual({ binary: undefined, workers: 1 });
    expect(loadConfig({ BERTH_PROXY_EDGE: 'nginx', BERTH_PROXY_NGINX: '/opt/nginx', BERTH_PROXY_WORKERS: '2' }).proxyEdge).toEqual({ binary: '/opt/nginx', workers: 2 });
    expect(loadConfig({ BERTH_PROXY_EDGE: 'off', BERTH_PROXY_WORKERS: '2' }).proxyEdge).toBeUndefined();
  });

  it('is frozen', () => {
    expect(Object.isFrozen(loadConfig({}))).toBe(true);
  });

  it.each([
    ['BERTH_API_PORT', 'eighty'],
    ['BERTH_PROXY_PORT', '70000'],
    ['BERTH_BIND', 'not an address'],
    ['BERTH_PUBLIC_API_URL', 'ftp://x'],
    ['BERTH_PROXY_DOMAIN', 'bad domain'],
    ['DATABASE_URL', 'mysql://x'],
    ['BERTH_ADMIN_TOKEN', 'short.x'],
    ['BERTH_STARTUP_TIMEOUT_SECONDS', '-1'],
    ['BERTH_IMAGE_PREFIX', 'Upper/'],
    ['BERTH_RATE_LIMIT', '0'],
    ['BERTH_LOG_LEVEL', 'loud'],
    ['BERTH_PROXY_WAIT_SECONDS', '0'],
    ['BERTH_PROXY_EDGE', 'haproxy'],
    ['BERTH_PROXY_NGINX', 'nginx'],
    ['BERTH_PROXY_WORKERS', '0'],
  ])('names %s when its value %j is bad', (variable, value) => {
    let error: unknown;
    try {
      loadConfig({ [variable]: value });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(variable);
    expect((error as ConfigError).message).toMatch(new RegExp(`^invalid configuration: ${variable} .*\\(got "${value.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}"\\)$`));
    expect((error as ConfigError).message).not.toContain('\n');
  });
});
