import { defineConfig } from 'vitest/config';

/**
 * Files that emulate a network of their own and time it: the multi-host lab's
 * switch is a userspace process that delays every frame by the sites' round
 * trips, and the probes' 1 s timeouts are measured across it. Beside two other
 * files' processes on two cores, its 12–45 ms links stretched to 500–900 ms
 * (probes timed out, endpoints fell): they run after the rest, one at a time.
 */
const ALONE = ['test/multihost.test.ts'];

export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.mjs'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'shared',
          include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: ALONE,
          // Most black-box files wait on sockets, timers and child processes rather than compute: three
          // at a time on two cores (vitest's default here would be one) keeps the suite within minutes.
          maxWorkers: 3,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: { name: 'alone', include: ALONE, maxWorkers: 1, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
