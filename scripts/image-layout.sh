#!/usr/bin/env bash
# scripts/image-layout.sh DEST: lays out what the container image runs, in DEST: the compiled
# code (dist/, which `npm ci` or `npm run build` made), bin/, the examples `aegis up` serves, and the
# production dependencies only (npm ci --omit=dev, no install scripts). The Dockerfile's runtime
# stage is exactly this folder; scripts/image-smoke.sh runs it here, where no container engine is.
set -euo pipefail
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:?usage: scripts/image-layout.sh DEST}"
[ -f "$SRC/dist/cli/main.js" ] || { echo "image-layout: $SRC/dist is not built: run npm ci (or npm run build) first" >&2; exit 1; }
mkdir -p "$DEST"
cp "$SRC/package.json" "$SRC/package-lock.json" "$SRC/.npmrc" "$DEST/"
rm -rf "$DEST/bin" "$DEST/dist" "$DEST/examples"
cp -R "$SRC/bin" "$SRC/dist" "$SRC/examples" "$DEST/"
(cd "$DEST" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
# onnxruntime-node ships its native library for every OS and CPU (about 220 MB this platform never
# loads): keep this platform's only.
ORT="$DEST/node_modules/onnxruntime-node/bin"
if [ -d "$ORT" ]; then
  plat="$(node -p process.platform)" arch="$(node -p process.arch)"
  for d in "$ORT"/napi-v*/*; do [ "$(basename "$d")" = "$plat" ] || rm -rf "$d"; done
  for d in "$ORT"/napi-v*/"$plat"/*; do [ "$(basename "$d")" = "$arch" ] || rm -rf "$d"; done
  ls "$ORT"/napi-v*/"$plat/$arch"/*.node >/dev/null 2>&1 || { echo "image-layout: onnxruntime-node has no binary for $plat/$arch" >&2; exit 1; }
fi
