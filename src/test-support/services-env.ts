/**
 * Setup file of the integration project: loads the environment written by
 * scripts/services.sh (.services/env.sh: `export NAME=value` lines) so the
 * suites find the services without the caller sourcing it. Variables already
 * set win (CI or a developer can point the tests elsewhere).
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const file = process.env.AEGIS_SERVICES_ENV ?? fileURLToPath(new URL('../../.services/env.sh', import.meta.url));
if (existsSync(file)) {
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^export\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    for (const assignment of m[1]!.split(/\s+/)) {
      const eq = assignment.indexOf('=');
      if (eq <= 0) continue;
      const name = assignment.slice(0, eq);
      if (process.env[name] === undefined) process.env[name] = assignment.slice(eq + 1);
    }
  }
}
