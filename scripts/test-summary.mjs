#!/usr/bin/env node
// Prints "<label>: N passed, N failed, N skipped" from a Vitest JSON report (for CI logs).
// A test file that failed to run (e.g. a service down) counts as failed.
import { readFileSync } from 'node:fs';
const [label, file] = process.argv.slice(2);
const r = JSON.parse(readFileSync(file, 'utf8'));
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
const failed = (r.numFailedTests ?? 0) + (r.numFailedTestSuites ?? 0);
console.log(`${label}: ${r.numPassedTests} passed, ${failed} failed, ${skipped} skipped`);
if (r.numTotalTests === 0) {
  console.error(`${label}: no test ran`);
  process.exit(1);
}
