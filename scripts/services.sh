#!/usr/bin/env bash
# Installs and starts what the integration tests need, on 127.0.0.1 only.
# Idempotent: safe to run again; already-installed pieces are kept.
# Used by developers and by .ci/run.
#
#   scripts/services.sh            install + start everything
#   scripts/services.sh env        print the environment the tests read (eval "$(scripts/services.sh env)")
#
# Today: a Python venv with the reference OpenSSF `model-signing` package
# (the interoperability oracle). Later work adds PostgreSQL, Prometheus,
# Alertmanager, MLflow, moto and Chromium here.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${AEGIS_SERVICES_DIR:-$ROOT/.services}"
VENV="$STATE/venv"
MODEL_SIGNING_VERSION="1.1.1"

log() { printf '[services] %s\n' "$*" >&2; }

python_venv() {
  if [ -x "$VENV/bin/model_signing" ] && "$VENV/bin/python" -c "import model_signing, OpenSSL" 2>/dev/null \
     && [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("model-signing"))')" = "$MODEL_SIGNING_VERSION" ]; then
    log "python venv ready ($VENV)"
    return
  fi
  log "creating python venv in $VENV"
  mkdir -p "$STATE"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
  # model-signing 1.1.x imports pyOpenSSL for the certificate method without declaring it.
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "model-signing==$MODEL_SIGNING_VERSION" "pyopenssl>=24"
  "$VENV/bin/python" -c "import model_signing, OpenSSL" >/dev/null
  log "installed model-signing $MODEL_SIGNING_VERSION"
}

print_env() {
  echo "export AEGIS_MODEL_SIGNING_BIN=$VENV/bin/model_signing"
}

case "${1:-up}" in
  up)
    python_venv
    print_env > "$STATE/env.sh"
    log "done; environment in $STATE/env.sh"
    ;;
  env)
    print_env
    ;;
  *)
    echo "usage: $0 [up|env]" >&2
    exit 2
    ;;
esac
