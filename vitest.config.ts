import { defineConfig } from 'vitest/config';

// Two projects: `unit` (fast, no system services; `npm test`) and
// `integration` (real services started by scripts/services.sh; `npm run test:integration`).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          env: { AEGIS_LOG_LEVEL: 'error' },
          include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'integration',
          env: { AEGIS_LOG_LEVEL: 'error' },
          include: ['src/**/*.itest.ts', 'test/**/*.itest.ts'],
          setupFiles: ['src/test-support/services-env.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
