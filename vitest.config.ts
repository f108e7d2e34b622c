import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Integration tests start real containers and a real PostgreSQL.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Suites share one Docker engine and clean up berth-managed containers.
    fileParallelism: false,
  },
});
