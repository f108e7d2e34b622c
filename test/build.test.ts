// `npm run build` (tsconfig.build.json) emits JavaScript that runs without tsx:
// built here into a scratch directory inside the clone, so that the packages
// resolve and a developer's own dist/ is left alone.
import { execFile } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VERSION } from '../src/version.ts';

const run = promisify(execFile);
const ROOT = new URL('../', import.meta.url).pathname;
const OUT = new URL('../node_modules/.cache/berth-build-test/', import.meta.url).pathname;
const TSC = new URL('../node_modules/typescript/bin/tsc', import.meta.url).pathname;

describe('the compiled build', () => {
  beforeAll(async () => {
    await rm(OUT, { recursive: true, force: true });
    await run(process.execPath, [TSC, '-p', 'tsconfig.build.json', '--outDir', OUT], { cwd: ROOT });
  }, 300_000);
  afterAll(() => rm(OUT, { recursive: true, force: true }));

  it('rewrites every relative `.ts` import to `.js`', async () => {
    const files = (await readdir(OUT, { recursive: true })).filter((file) => file.endsWith('.js'));
    expect(files).toContain('src/main.js');
    const leftovers: string[] = [];
    for (const file of files) {
      const text = await readFile(`${OUT}${file}`, 'utf8');
      if (/(?:from|import)\s*\(?\s*['"]\.{1,2}\/[^'"]*\.ts['"]/.test(text)) leftovers.push(file);
    }
    expect(leftovers).toEqual([]);
  });

  it('runs `berth --help` and `--version` with plain node', async () => {
    // Without tsx's loader a stray TypeScript import would fail here.
    const help = await run(process.execPath, [`${OUT}src/main.js`, '--help'], { cwd: ROOT });
    expect(help.stdout).toMatch(/^Usage: berth /);
    expect(help.stdout).toContain('serve');
    expect(help.stderr).toBe('');
    const version = await run(process.execPath, [`${OUT}src/main.js`, '--version'], { cwd: ROOT });
    expect(version.stdout.trim()).toBe(VERSION);
  });
});
