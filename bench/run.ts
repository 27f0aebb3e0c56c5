/**
 * `npm run bench -- <name> [args]`: runs one benchmark. Each prints its figures
 * as a ratio to a baseline measured in the same run on the same data.
 */
const BENCHES: Record<string, () => Promise<{ main: (args: string[]) => Promise<void> }>> = {
  hash: () => import('./hash.js'),
  fetch: () => import('./fetch.js'),
  backup: () => import('./backup.js'),
  serve: () => import('./serve.js'),
  gateway: () => import('./gateway.js'),
  rollout: () => import('./rollout.js'),
  loadgen: () => import('./loadgen.js'),
  drift: () => import('./drift.js'),
  alerts: () => import('./alerts.js'),
  verify: () => import('./verify.js'),
};

const [name, ...args] = process.argv.slice(2);
if (!name || !(name in BENCHES)) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(BENCHES).join('|')}> [options]\n`);
  process.exit(2);
}
const bench = await BENCHES[name]!();
await bench.main(args);
