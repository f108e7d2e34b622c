#!/usr/bin/env node
// Runs berth's TypeScript sources directly (tsx), so `npx berth …` works from a clone without a build.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
