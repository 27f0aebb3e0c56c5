import { AegisError } from '../errors.js';

/** The AegisError `p` rejects with; fails the test if it resolves or rejects with anything else. */
export async function failure(p: Promise<unknown>): Promise<AegisError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof AegisError) return err;
    throw err;
  }
  throw new Error('expected an AegisError');
}
