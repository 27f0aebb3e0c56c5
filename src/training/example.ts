import { fileURLToPath } from 'node:url';

/** The example model shipped in the repository (trained by `aegis train`, see examples/training). */
export const EXAMPLE_MODEL = fileURLToPath(new URL('../../examples/model_registry/example_multimodal/0.1', import.meta.url));

/** The example request bodies (POST /infer and OIP v2). */
export const EXAMPLE_REQUEST = fileURLToPath(new URL('../../examples/requests/example_multimodal.json', import.meta.url));
export const EXAMPLE_OIP_REQUEST = fileURLToPath(new URL('../../examples/requests/example_multimodal.oip.json', import.meta.url));
