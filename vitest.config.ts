import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['test/global-setup.mjs'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    // Most black-box files wait on sockets, timers and child processes rather than compute: three at
    // a time on two cores (vitest's default here would be one) keeps the suite within minutes.
    maxWorkers: 3,
  },
});
