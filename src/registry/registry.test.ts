import { describe } from 'vitest';
import { MEMORY, openDb } from '../db/index.js';
import { registrySuite } from './registry.suite.js';

// The registry contract on the embedded driver (in-memory PGlite, one instance for the suite).
describe('registry on PGlite', () => {
  registrySuite(() => openDb({ url: MEMORY }));
});
