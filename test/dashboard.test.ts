// The dashboard end to end: Vite builds it into a scratch directory, a real
// berth serves it, and Debian's Chromium (driven by playwright-core) signs in,
// watches a real backend start, reads its logs and memory, and terminates it.
// Screenshots go to a temporary directory; with UPDATE_SCREENSHOTS=1 they
// replace docs/dashboard/*.png (ids and times differ on every run, so a plain
// `npm test` leaves the clone as it was).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Router from '@koa/router';
import Koa from 'koa';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BerthContextExtras, BerthState } from '../src/context.ts';
import { dashboardController } from '../src/dashboard/dashboard.controller.ts';
import { serveBanner } from '../src/serve-banner.ts';
import { apiClient, errorBodyMatching, type ApiClient } from './support/api.ts';
import { createTestService, waitForStatus } from './support/backends.ts';
import { ADMIN_TOKEN, TestBerth } from './support/berth.ts';
import { createTestDocker } from './support/docker.ts';
import { ensureTestImage } from './support/test-image.ts';

const run = promisify(execFile);
const ROOT = new URL('../', import.meta.url).pathname;
const BUILD = new URL('../node_modules/.cache/berth-dashboard-test/', import.meta.url).pathname;
const VITE = new URL('../node_modules/vite/bin/vite.js', import.meta.url).pathname;
const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === '1' ? new URL('../docs/dashboard/', import.meta.url).pathname : join(tmpdir(), 'berth-dashboard-screenshots');
const CHROMIUM = '/usr/bin/chromium';
// No background traffic: this machine's network is closed, and tests talk to 127.0.0.1 only.
const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const ACCOUNT = 'acme';
const docker = createTestDocker();

describe('the dashboard without a browser', () => {
  it('says how to build it when berth runs from a clone that was never built', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'berth-no-dashboard-'));
    const router = new Router<BerthState, BerthContextExtras>();
    dashboardController(router, empty);
    const server = new Koa<BerthState, BerthContextExtras>().use(router.routes()).listen(0, '127.0.0.1');
    try {
      await new Promise((resolve) => server.once('listening', resolve));
      const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/dashboard/backends`);
      expect(response.status).toBe(503);
      expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(await response.text()).toContain('<code>npm run build</code>');
    } finally {
      server.close();
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('is named in the serve banner', () => {
    const banner = serveBanner({ role: 'all', version: '1.0.0', apiUrl: 'http://127.0.0.1:8080', proxyUrl: 'http://127.0.0.1:9090', generatedAdminToken: undefined, adminTokenConfigured: true });
    expect(banner).toContain('  dashboard        http://127.0.0.1:8080/dashboard  (sign in with a token)\n');
    expect(serveBanner({ role: 'proxy', version: '1.0.0', apiUrl: 'http://a', proxyUrl: 'http://b', generatedAdminToken: undefined, adminTokenConfigured: true })).not.toContain('dashboard');
  });
});

// .ci/run installs Chromium, so in CI a missing browser fails instead of skipping.
describe.skipIf(!existsSync(CHROMIUM) && !process.env.CI)('the dashboard in Chromium, against a real berth', () => {
  let berth: TestBerth;
  let api: ApiClient;
  let profile: string;
  let browser: BrowserContext;
  let page: Page;
  const cspViolations: string[] = [];

  beforeAll(async () => {
    await rm(BUILD, { recursive: true, force: true });
    await Promise.all([
      run(process.execPath, [VITE, 'build', '--config', 'src/dashboard/vite.config.ts', '--outDir', BUILD], { cwd: ROOT }),
      ensureTestImage(docker),
      mkdir(SCREENSHOTS, { recursive: true }),
    ]);
    berth = await TestBerth.start({ database: { kind: 'pglite' }, env: { BERTH_DASHBOARD_DIR: BUILD, BERTH_TERMINATION_GRACE_SECONDS: '2' } });
    api = await createTestService(berth, ACCOUNT);
    profile = await mkdtemp(join(tmpdir(), 'berth-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1280, height: 820 },
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.on('console', (message) => {
      if (/Content[- ]Security[- ]Policy/i.test(message.text())) cspViolations.push(message.text());
    });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
    await berth?.stop();
    await rm(BUILD, { recursive: true, force: true });
  });

  const shoot = (name: string) => page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });

  it('serves the built files with their types, long caching for hashed assets, the app for its pages, and JSON 404s', async () => {
    const index = await fetch(`${berth.apiUrl}/dashboard`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(index.headers.get('cache-control')).toBe('no-cache');
    expect(index.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await index.text();

    const deepLink = await fetch(`${berth.apiUrl}/dashboard/backends/abc123`);
    expect(deepLink.status).toBe(200);
    expect(await deepLink.text()).toBe(html);

    const assets = await readdir(join(BUILD, 'assets'));
    const script = assets.find((file) => file.endsWith('.js'));
    const style = assets.find((file) => file.endsWith('.css'));
    expect(html).toContain(`/dashboard/assets/${script}`);
    for (const [file, type] of [
      [script, 'text/javascript; charset=utf-8'],
      [style, 'text/css; charset=utf-8'],
    ]) {
      const asset = await fetch(`${berth.apiUrl}/dashboard/assets/${file}`);
      expect(asset.status).toBe(200);
      expect(asset.headers.get('content-type')).toBe(type);
      expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    }

    for (const missing of ['/dashboard/assets/nope-123.js', '/dashboard/favicon.ico', '/dashboard/assets/..%2Findex.html']) {
      const response = await fetch(`${berth.apiUrl}${missing}`);
      expect(response.status, missing).toBe(404);
      expect(response.headers.get('content-type')).toBe('application/json');
      expect(await response.json()).toEqual(errorBodyMatching(404, 'not_found_error', 'asset_not_found', { details: { path: expect.any(String) } }));
    }
  });

  it('signs in with a token, refusing a wrong one', async () => {
    await page.goto(`${berth.apiUrl}/dashboard/`);
    await page.getByLabel('Token').fill('nosuch.token-that-is-wrong');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').waitFor();
    await shoot('sign-in');
    await page.getByLabel('Token').fill(ADMIN_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Backends' }).waitFor();
    expect(await page.locator('header .who').textContent()).toBe('admin');
  });

  let backendId: string;

  it('shows a new backend in the table and follows it live from scheduled to ready', async () => {
    // Each status the row's badge shows, in order, as the browser rendered it.
    await page.evaluate(() => {
      const seen: Record<string, string[]> = {};
      (window as unknown as { seenStatuses: typeof seen }).seenStatuses = seen;
      new MutationObserver(() => {
        for (const row of document.querySelectorAll<HTMLElement>('tr[data-backend-id]')) {
          const status = row.querySelector('.badge')?.textContent ?? '';
          const list = (seen[row.dataset.backendId!] ??= []);
          if (list[list.length - 1] !== status) list.push(status);
        }
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    const connected = await api.post(`/v2/service/${ACCOUNT}/echo/connect`, { key: 'room-42', spawn: { executable: { env: { APP_STARTUP_DELAY_MS: '4000', APP_LOG_EVERY_MS: '1000' } } } });
    expect(connected.status).toBe(200);
    backendId = connected.body.backend_id as string;

    const row = page.locator(`tr[data-backend-id="${backendId}"]`);
    await row.locator('[data-status="ready"]').waitFor({ timeout: 30_000 });
    const seen = await page.evaluate((id) => (window as unknown as { seenStatuses: Record<string, string[]> }).seenStatuses[id], backendId);
    // The row showed up before the app listened, and changed to ready without a reload.
    expect(seen!.length).toBeGreaterThan(1);
    expect(seen![0]).not.toBe('ready');
    expect(seen![seen!.length - 1]).toBe('ready');
    expect(await row.locator('.trail').textContent()).toMatch(/^scheduled → .*ready$/);
    expect(await row.locator('td').nth(2).textContent()).toBe('room-42');
    expect(await row.locator('td').nth(4).textContent()).toBe((await nodeName())!);
    await shoot('backends');

    // The filters: another status hides it, its service shows it.
    await page.locator('select[name="status"]').selectOption('terminated');
    await row.waitFor({ state: 'detached' });
    await page.locator('select[name="status"]').selectOption('ready');
    await page.locator('select[name="service"]').selectOption(`${ACCOUNT}/echo`);
    await row.locator('[data-status="ready"]').waitFor();
    await page.locator('select[name="service"]').selectOption('');
    await page.locator('select[name="status"]').selectOption('');
  });

  it('shows the backend with its status history, its logs with time and stream, and a memory chart that fills', async () => {
    await page.locator(`tr[data-backend-id="${backendId}"] a`).click();
    await page.waitForURL(`**/dashboard/backends/${backendId}`);
    const history = page.locator('ol.history li');
    await history.locator('[data-status="ready"]').waitFor();
    // `loading` only when the image had to be pulled, which the test image never needs.
    expect(await history.evaluateAll((items) => items.map((item) => item.getAttribute('data-status')))).toEqual(['scheduled', 'starting', 'waiting', 'ready']);

    const stderrLine = page.locator('.logs tr.log', { hasText: 'stderr hello' });
    const listening = page.locator('.logs tr.log', { hasText: 'listening on 8080' });
    await stderrLine.waitFor();
    await listening.waitFor();
    expect(await stderrLine.locator('.stream').textContent()).toBe('stderr');
    expect(await listening.locator('.stream').textContent()).toBe('stdout');
    expect(await listening.locator('.time').textContent()).toMatch(/^\d\d:\d\d:\d\d\.\d{3}$/);

    await page.waitForFunction(() => Number(document.querySelector('[data-testid="memory-chart"]')?.getAttribute('data-points')) >= 5, undefined, { timeout: 20_000 });
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="cpu-chart"]')?.getAttribute('data-points')) >= 4, undefined, { timeout: 20_000 });
    expect(await page.locator('[data-testid="memory-chart"] path.series').count()).toBe(1);
    await shoot('backend');
  });

  it('terminates the backend from its page and shows it end', async () => {
    await page.getByRole('button', { name: 'Terminate' }).click();
    await page.getByRole('button', { name: 'Yes, terminate' }).click();
    const terminated = page.locator('ol.history li[data-status="terminated"]');
    await terminated.waitFor({ timeout: 30_000 });
    expect(await terminated.textContent()).toContain('external');
    await page.locator('h1 [data-status="terminated"]').waitFor();
    expect(await page.getByRole('button', { name: 'Terminate' }).isDisabled()).toBe(true);
    expect((await waitForStatus(api, backendId, 'terminated')).termination_reason).toBe('external');
    await shoot('backend-terminated');

    // Back in the table, the row has followed it to the end.
    await page.getByRole('link', { name: 'Backends' }).click();
    await page.locator(`tr[data-backend-id="${backendId}"] [data-status="terminated"]`).waitFor();
  });

  it('lists accounts and services with their image repository, environments and images', async () => {
    await page.getByRole('link', { name: 'Accounts & services' }).click();
    const service = page.locator(`article[data-account="${ACCOUNT}"] [data-service="echo"]`);
    await service.waitFor();
    expect(await service.textContent()).toContain('berth-test/app');
    expect(await service.locator('table').first().textContent()).toContain('latest');
    await service.locator('text=berth-test/app:latest').waitFor();
    await shoot('accounts');
  });

  it('lists the nodes and drains one and makes it ready again', async () => {
    await page.getByRole('link', { name: 'Nodes' }).click();
    const name = (await nodeName())!;
    const row = page.locator(`tr[data-node="${name}"]`);
    await row.locator('[data-status="ready"]').waitFor();
    expect(await row.textContent()).toContain('127.0.0.1');
    await row.getByRole('button', { name: 'Drain' }).click();
    await row.locator('[data-status="draining"]').waitFor();
    expect((await apiClient(berth.apiUrl, ADMIN_TOKEN).get('/v2/nodes')).body.nodes[0].status).toBe('draining');
    await row.getByRole('button', { name: 'Ready' }).click();
    await row.locator('[data-status="ready"]').waitFor();
    await shoot('nodes');
  });

  it('ran with no Content Security Policy violation', () => {
    expect(cspViolations).toEqual([]);
  });

  async function nodeName(): Promise<string | undefined> {
    return (await apiClient(berth.apiUrl, ADMIN_TOKEN).get('/v2/nodes')).body.nodes[0]?.name as string | undefined;
  }
});
