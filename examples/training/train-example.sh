#!/usr/bin/env sh
# Regenerates the example datasets (v1 and the shifted v2) and the example
# model examples/model_registry/example_multimodal/0.1 from v1.
# Everything is seeded: a run on an unchanged tree leaves `git status` clean.
set -eu
cd "$(dirname "$0")/../.."

npm run build --silent   # the aegis command runs the compiled CLI in dist/

node bin/aegis.js dataset generate --out examples/datasets/example_multimodal/v1 --version v1
node bin/aegis.js dataset generate --out examples/datasets/example_multimodal/v2 --version v2
node bin/aegis.js train --dataset examples/datasets/example_multimodal/v1 \
  --out examples/model_registry/example_multimodal/0.1
