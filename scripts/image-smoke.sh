#!/usr/bin/env bash
# scripts/image-smoke.sh: the container image's contents, run without a container engine. Lays out
# the runtime stage (scripts/image-layout.sh: compiled code, examples, production dependencies only)
# in a temporary folder and, from another folder with a fresh AEGIS_HOME, runs what the image runs:
# `aegis up` with the example model answering an inference request, then `aegis db backup` and
# `aegis db drill` on the embedded database. Fails if the image would miss a file or a dependency.
set -euo pipefail
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE="${NODE:-$SRC/node_modules/.bin/node}"
[ -x "$NODE" ] || NODE="$(command -v node)"
WORK="$(mktemp -d)"
UP_PID=""
cleanup() { [ -n "$UP_PID" ] && kill "$UP_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
log() { printf '[image-smoke] %s\n' "$*" >&2; }

PATH="$(dirname "$NODE"):$PATH" "$SRC/scripts/image-layout.sh" "$WORK/app"
log "runtime layout: $(du -sh "$WORK/app" | cut -f1) ($(ls "$WORK/app/node_modules" | wc -l) top-level production packages)"
[ ! -e "$WORK/app/node_modules/vitest" ] || { log "devDependencies were installed"; exit 1; }

mkdir -p "$WORK/run"
cd "$WORK/run"
export AEGIS_HOME="$WORK/home" AEGIS_LOG_LEVEL=warn NODE_ENV=production
aegis() { "$NODE" "$WORK/app/bin/aegis.js" "$@"; }

aegis --version >/dev/null
aegis up --port 0 --control-port 0 --json >"$WORK/up.out" 2>"$WORK/up.err" &
UP_PID=$!
for _ in $(seq 1 120); do
  grep -q '^{' "$WORK/up.out" 2>/dev/null && break
  kill -0 "$UP_PID" 2>/dev/null || { log "aegis up exited:"; cat "$WORK/up.err" >&2; exit 1; }
  sleep 0.5
done
URL="$("$NODE" -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").split("\n").find(x=>x.startsWith("{"));if(!l)process.exit(1);console.log(JSON.parse(l).url)' "$WORK/up.out")" || { log "aegis up printed no ready line:"; cat "$WORK/up.err" >&2; exit 1; }
code="$(curl -s -o "$WORK/infer.json" -w '%{http_code}' "$URL/infer" -H 'content-type: application/json' -d @"$WORK/app/examples/requests/example_multimodal.json")"
[ "$code" = 200 ] || { log "POST $URL/infer: HTTP $code: $(cat "$WORK/infer.json")"; exit 1; }
log "aegis up served the example model: $(head -c 120 "$WORK/infer.json")"
kill -TERM "$UP_PID"; wait "$UP_PID" || true; UP_PID=""

aegis db backup --json >"$WORK/backup.json"
aegis db drill --from latest --json >"$WORK/drill.json"
"$NODE" -e 'for (const f of process.argv.slice(1)) { const r = JSON.parse(require("fs").readFileSync(f, "utf8")); if (r.ok !== true) { console.error(f, JSON.stringify(r)); process.exit(1); } }' "$WORK/backup.json" "$WORK/drill.json"
log "ok: aegis up, inference, db backup and db drill ran from the image layout"
