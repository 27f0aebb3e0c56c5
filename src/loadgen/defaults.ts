import { fileURLToPath } from 'node:url';

/**
 * The example model's `POST /infer` request body, shipped with the repository
 * (examples/requests/example_multimodal.json). Resolved from this file, so it
 * works from src/ (tsx, vitest) and from the compiled dist/ alike.
 */
export function defaultPayloadPath(): string {
  return fileURLToPath(new URL('../../examples/requests/example_multimodal.json', import.meta.url));
}
