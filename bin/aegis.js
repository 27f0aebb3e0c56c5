#!/usr/bin/env node
// Entry point of the `aegis` command. The code is compiled to dist/ by `npm run build` (run by `npm ci` via `prepare`).
const [major] = process.versions.node.split('.').map(Number);
if (major < 22) {
  process.stderr.write(`aegis needs Node.js 22 or newer (this is ${process.version}). Run it through npm (npx aegis …), which uses the project's Node 24.\n`);
  process.exit(2);
}
// Cache compiled code between runs (Node >= 22.1): start-up is most of a short command's time.
const { enableCompileCache } = await import('node:module');
enableCompileCache?.();
const { main } = await import('../dist/cli/main.js');
await main(process.argv);
