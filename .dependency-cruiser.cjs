// `npm run lint` part two: the house's one-way stairs. Roles (dns, control,
// api, probe, balancer, sim, status, metrics, cli) → core (steer, health,
// config, snapshot, geo, prompt, dnssec) → db. src/log.ts is shared by all. See ARCHITECTURE.md.
const CORE = '^src/(steer|health|config|snapshot|geo|prompt|dnssec)/';
const DB = '^src/db/';
const SHARED = '^src/log\\.ts$';
const TEST_ONLY = [
  '^test/',
  '^bench/',
  '\\.test\\.ts$',
  '\\.case\\.ts$',
  '^src/api/testing\\.ts$',
  '^src/dns/fixtures\\.ts$',
  '^src/steer/fixtures\\.ts$',
  '^src/geo/test-mmdb-writer\\.ts$',
  '^src/health/harness\\.ts$',
];

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'An import cycle: move the shared type or function to a module of its own.', from: {}, to: { circular: true } },
    {
      name: 'core-imports-no-role',
      severity: 'error',
      comment: 'Core (steer, health, config, snapshot, geo, prompt) is what roles share: it may use core, db and the logger, never a role.',
      from: { path: CORE, pathNot: TEST_ONLY },
      to: { path: '^src/', pathNot: [CORE, DB, SHARED] },
    },
    {
      name: 'db-imports-nothing-above',
      severity: 'error',
      comment: 'db stores what it is given: it may use db and the logger, and the types of the documents it stores (config/schema), nothing else.',
      from: { path: DB, pathNot: TEST_ONLY },
      to: { path: '^src/', pathNot: [DB, SHARED, '^src/config/schema\\.ts$'] },
    },
    {
      name: 'db-uses-only-config-types',
      severity: 'error',
      comment: 'db may name the configuration types; the rules that check them are given to the store (config/rules.ts).',
      from: { path: DB, pathNot: TEST_ONLY },
      to: { path: '^src/config/schema\\.ts$', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'no-test-code-in-production',
      severity: 'error',
      comment: "Production code never imports tests, their helpers and fixtures, or benchmarks.",
      from: { path: '^src/', pathNot: TEST_ONLY },
      to: { path: TEST_ONLY },
    },
    { name: 'no-unresolvable', severity: 'error', from: {}, to: { couldNotResolve: true } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
  },
};
