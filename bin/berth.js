#!/usr/bin/env node
// Runs the compiled build (`npm run build`, dist/) when it is there and not older
// than the sources; otherwise the TypeScript sources through tsx, so that
// `npx berth …` works from a clone without a build and never runs stale code.
import { readdirSync, statSync } from 'node:fs';

const root = new URL('../', import.meta.url);
const compiled = new URL('dist/src/main.js', root);

/** A few hundred stats, about a millisecond: far less than loading tsx. */
function buildIsCurrent() {
  let builtAt;
  try {
    builtAt = statSync(compiled).mtimeMs;
  } catch {
    return false;
  }
  for (const dir of ['src', 'scheduler', 'proxy']) {
    let entries;
    try {
      entries = readdirSync(new URL(dir, root), { recursive: true });
    } catch {
      continue; // An image ships dist/ without sources.
    }
    for (const entry of entries) {
      if (entry.endsWith('.ts') && statSync(new URL(`${dir}/${entry}`, root)).mtimeMs > builtAt) return false;
    }
  }
  return true;
}

if (buildIsCurrent()) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/main.ts');
}
