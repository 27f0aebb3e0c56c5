#!/usr/bin/env bash
# Installs and starts what the integration tests need, on 127.0.0.1 only.
# Idempotent: safe to run again; already-installed pieces are kept.
# Used by developers and by .ci/run.
#
#   scripts/services.sh            install + start everything
#   scripts/services.sh env        print the environment the tests read (eval "$(scripts/services.sh env)")
#   scripts/services.sh kserve     the KServe venv for `npm run bench -- serve` (optional)
#
# Today: a Python venv with the reference OpenSSF `model-signing` package
# (the interoperability oracle) and moto (an S3 server), PostgreSQL from
# Debian, and cosign built from the Go module proxy (oracle for detached
# archive signatures), Prometheus and Alertmanager from Debian (alert rules and
# their integration test), an MLflow tracking server in the venv. Later work adds Chromium here.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${AEGIS_SERVICES_DIR:-$ROOT/.services}"
VENV="$STATE/venv"
MODEL_SIGNING_VERSION="1.1.1"
MOTO_VERSION="5.2.5"
# Fixed ports sit below 32768, outside Linux's ephemeral range (ip_local_port_range 32768-60999): a
# port in that range can be taken by any outgoing connection's local end, and a test that binds it
# later (the Alertmanager webhook) then fails with EADDRINUSE.
MOTO_PORT="${AEGIS_MOTO_PORT:-5077}"
PG_PORT="${AEGIS_PG_PORT:-25432}"
MLFLOW_VERSION="3.17.2"
MLFLOW_PORT="${AEGIS_MLFLOW_PORT:-25000}"

log() { printf '[services] %s\n' "$*" >&2; }

# daemon_start NAME ANSWERS_FN CMD...: starts CMD detached (log $STATE/NAME.log, pid $STATE/NAME.pid)
# unless its pid file names a live process, then waits up to 60s for ANSWERS_FN.
daemon_start() {
  local name="$1" answers="$2"; shift 2
  local pidfile="$STATE/$name.pid" logfile="$STATE/$name.log"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    log "$name (pid $(cat "$pidfile")) is already starting"
  else
    log "starting $name (log: $logfile)"
    setsid "$@" >>"$logfile" 2>&1 </dev/null &
    echo $! >"$pidfile"
  fi
  for _ in $(seq 1 120); do
    if "$answers"; then return; fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      log "$name exited; last lines of $logfile:"
      tail -n 20 "$logfile" >&2
      return 1
    fi
    sleep 0.5
  done
  log "$name did not answer within 60s; see $logfile"
  return 1
}

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

# moto's S3 server (in the venv) for the store integration tests (src/store/s3/s3.itest.ts).
moto_answers() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$MOTO_PORT/moto-api/" 2>/dev/null; }

moto_s3() {
  if moto_answers; then
    log "moto already answers on 127.0.0.1:$MOTO_PORT"
    return
  fi
  if [ ! -x "$VENV/bin/moto_server" ] \
     || [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null)" != "$MOTO_VERSION" ]; then
    log "installing moto[server] $MOTO_VERSION into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  fi
  daemon_start moto moto_answers "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
  log "moto ready on 127.0.0.1:$MOTO_PORT"
}

# MLflow tracking server (in the venv) for the tracking integration tests (src/tracking/mlflow/mlflow.itest.ts):
# sqlite backend store and proxied artifacts (--serve-artifacts, mlflow-artifacts:/ URIs) under $STATE/mlflow.
# mlflow-skinny (the client/server code without the ML libraries) plus only what `mlflow server` imports at
# start (ranges from the full `mlflow` package's requirements): ~350 MB instead of the full package's ~850 MB.
# No --allowed-hosts/--cors flags: MLflow 3's security middleware already allows localhost/127.0.0.1 Host
# headers. MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false: no huey job consumers (GenAI jobs; not used here).
mlflow_answers() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$MLFLOW_PORT/health" 2>/dev/null; }

mlflow_server() {
  if mlflow_answers; then
    log "MLflow already answers on 127.0.0.1:$MLFLOW_PORT"
    return
  fi
  if [ ! -x "$VENV/bin/mlflow" ] \
     || [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mlflow-skinny"))' 2>/dev/null)" != "$MLFLOW_VERSION" ] \
     || ! "$VENV/bin/python" -c "import flask, flask_cors, alembic, sqlalchemy, aiohttp, pandas" 2>/dev/null; then
    log "installing mlflow-skinny $MLFLOW_VERSION and the server's dependencies into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "mlflow-skinny==$MLFLOW_VERSION" \
      "flask<4" "flask-cors<7" "alembic<2,!=1.10.0" "sqlalchemy>=1.4,<3" "aiohttp>=3.7,<4" "numpy<3" "pandas<4"
  fi
  mkdir -p "$STATE/mlflow/artifacts"
  # cd: the server writes nothing into the caller's directory.
  (cd "$STATE/mlflow" && MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false daemon_start mlflow mlflow_answers \
    "$VENV/bin/mlflow" server --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 \
    --backend-store-uri "sqlite:///$STATE/mlflow/mlflow.db" --serve-artifacts --artifacts-destination "$STATE/mlflow/artifacts")
  log "MLflow ready on 127.0.0.1:$MLFLOW_PORT"
}

# PostgreSQL for the database integration tests (src/registry/registry.itest.ts): a
# throw-away cluster on 127.0.0.1:$PG_PORT only (no Unix socket), trust auth for the
# `postgres` role, fsync off. As root, it runs as the `postgres` OS user (postgres
# refuses to run as root), so its folder must be reachable by that user: $STATE/pg
# when it is, else /tmp/aegis-pg-$PG_PORT (e.g. when the repo is under /root).
pg_bin_dir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return; fi
  done
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then dirname "$(readlink -f "$(command -v pg_ctl)")"; return; fi
  return 1
}

# Root runs PostgreSQL's programs as the postgres user; anyone else as themselves.
as_postgres_prefix() { if [ "$(id -u)" = 0 ]; then echo "runuser -u postgres --"; fi; }

postgres_server() {
  local bin home data logfile
  if ! bin="$(pg_bin_dir)"; then
    [ "$(id -u)" = 0 ] || { log "PostgreSQL is not installed: install the postgresql package (needs root)"; return 1; }
    log "installing PostgreSQL (Debian package postgresql)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin="$(pg_bin_dir)" || { log "postgresql installed, but no initdb/pg_ctl under /usr/lib/postgresql/*/bin"; return 1; }
  fi
  if "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
    log "PostgreSQL already answers on 127.0.0.1:$PG_PORT"
    return
  fi
  home="$STATE"
  mkdir -p "$home"
  if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$home"; then
    home="/tmp/aegis-pg-$PG_PORT"
    log "the postgres user cannot reach $STATE; using $home instead"
    mkdir -p "$home"
    chmod 755 "$home"
  fi
  data="$home/pg"
  logfile="$home/pg.log"
  if [ ! -f "$data/PG_VERSION" ]; then
    log "creating a PostgreSQL cluster in $data"
    mkdir -p "$data"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$data"; fi
    chmod 700 "$data"
    (cd / && $(as_postgres_prefix) "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C >/dev/null)
    printf '%s\n' "fsync = off" "synchronous_commit = off" "full_page_writes = off" >>"$data/postgresql.conf"
  elif [ "$(cat "$data/PG_VERSION")" != "$("$bin/postgres" -V | awk '{print $3}' | cut -d. -f1)" ]; then
    log "$data holds a PostgreSQL $(cat "$data/PG_VERSION") cluster but $bin is another major version; delete $data and rerun"
    return 1
  fi
  touch "$logfile"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$logfile"; fi
  if (cd / && $(as_postgres_prefix) "$bin/pg_ctl" -D "$data" status >/dev/null); then
    log "PostgreSQL in $data is already starting"
  else
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT (log: $logfile)"
    # -W: do not wait here (the loop below does); setsid: detach from this script's session.
    if ! (cd / && setsid -w $(as_postgres_prefix) "$bin/pg_ctl" -D "$data" -l "$logfile" -W -o "-h 127.0.0.1 -p $PG_PORT -k ''" start >/dev/null </dev/null); then
      log "pg_ctl could not start PostgreSQL; last lines of $logfile:"
      tail -n 20 "$logfile" >&2
      return 1
    fi
  fi
  for _ in $(seq 1 120); do
    if "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then log "PostgreSQL ready on 127.0.0.1:$PG_PORT"; return; fi
    sleep 0.5
  done
  log "PostgreSQL did not answer on 127.0.0.1:$PG_PORT within 60s; last lines of $logfile:"
  tail -n 20 "$logfile" >&2
  return 1
}

# cosign, the oracle for `model.tar.gz.sig` (cosign verify-blob). Built once into $STATE/bin.
COSIGN_VERSION="v2.4.1"
cosign_bin() {
  if [ -x "$STATE/bin/cosign" ] && "$STATE/bin/cosign" version 2>/dev/null | grep -q "${COSIGN_VERSION#v}"; then
    log "cosign ready ($STATE/bin/cosign)"
    return
  fi
  if ! command -v go >/dev/null; then
    log "go is not installed: cannot build cosign (the cosign interoperability test will fail)"
    return 1
  fi
  log "building cosign $COSIGN_VERSION (a few minutes, once)"
  mkdir -p "$STATE/bin"
  GOBIN="$STATE/bin" GOFLAGS=-mod=mod go install "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_VERSION"
}

# wrk (Debian package), the baseline of `npm run bench -- loadgen` (closed-loop saturation; Debian has no wrk2).
wrk_bin() {
  if command -v wrk >/dev/null; then log "wrk ready ($(command -v wrk))"; return; fi
  if [ "$(id -u)" != 0 ]; then log "wrk is not installed (only the loadgen benchmark needs it): apt-get install wrk"; return; fi
  log "installing wrk (Debian package wrk)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || log "could not install wrk; the loadgen benchmark will lack its baseline"
}

# pg_dump / pg_restore (Debian postgresql-client) for `aegis db backup|restore` and its tests; the
# postgresql package above brings them, this covers machines whose server is elsewhere.
pg_client() {
  local bin
  if command -v pg_dump >/dev/null && command -v pg_restore >/dev/null; then log "pg_dump ready ($(command -v pg_dump))"; return; fi
  if bin="$(pg_bin_dir)" && [ -x "$bin/pg_dump" ] && [ -x "$bin/pg_restore" ]; then log "pg_dump ready ($bin/pg_dump)"; return; fi
  [ "$(id -u)" = 0 ] || { log "pg_dump is not installed: install the postgresql-client package (needs root)"; return 1; }
  log "installing pg_dump/pg_restore (Debian package postgresql-client)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null
}

# promtool (Debian package prometheus) for the alert-rule tests (deploy/prometheus/*.test.yaml).
promtool_bin() {
  if command -v promtool >/dev/null; then log "promtool ready ($(command -v promtool))"; return; fi
  [ "$(id -u)" = 0 ] || { log "promtool is not installed: install the prometheus package (needs root)"; return 1; }
  log "installing promtool (Debian package prometheus)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
}

# Prometheus and Alertmanager (Debian packages prometheus, prometheus-alertmanager) for the alert
# integration tests (test/alerts.itest.ts), on 127.0.0.1 only; logs and pid files in $STATE.
# Prometheus loads the repo's rule files (deploy/prometheus/*-rules.yaml) and $PROM_DIR/rules.d/*.yaml,
# scrapes every 1s the targets listed in the file_sd files $PROM_DIR/targets.json (AEGIS_PROM_FILE_SD)
# and $PROM_DIR/targets.d/*.json (AEGIS_PROM_FILE_SD_DIR: one file per test, re-read within 1s),
# evaluates rules every 1s and sends alerts to the Alertmanager, whose default receiver is a webhook
# to AEGIS_ALERTMANAGER_WEBHOOK_URL (a test listens there when it wants the notifications).
# `curl -X POST $PROMETHEUS_URL/-/reload` re-reads edited rule files; rerunning this script does too.
PROM_PORT="${AEGIS_PROMETHEUS_PORT:-29090}"
AM_PORT="${AEGIS_ALERTMANAGER_PORT:-29093}"
AM_WEBHOOK_PORT="${AEGIS_ALERT_WEBHOOK_PORT:-29094}"
PROM_DIR="$STATE/prometheus"
AM_DIR="$STATE/alertmanager"

prom_answers() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$PROM_PORT/-/ready" 2>/dev/null; }
am_answers() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$AM_PORT/-/ready" 2>/dev/null; }


prometheus_pkgs() {
  if command -v prometheus >/dev/null && command -v promtool >/dev/null && command -v prometheus-alertmanager >/dev/null; then return; fi
  [ "$(id -u)" = 0 ] || { log "Prometheus/Alertmanager are not installed: apt-get install prometheus prometheus-alertmanager (needs root)"; return 1; }
  log "installing Prometheus and Alertmanager (Debian packages prometheus, prometheus-alertmanager)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus prometheus-alertmanager >/dev/null
}

alertmanager_server() {
  mkdir -p "$AM_DIR/data"
  # The bearer token Alertmanager sends with its webhooks (http_config.authorization), as a production
  # receiver would require; made once and kept. A receiver configured without a token ignores it.
  if [ ! -s "$AM_DIR/webhook.token" ]; then
    (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$AM_DIR/webhook.token")
  fi
  cat >"$AM_DIR/alertmanager.yml.tmp" <<EOF
# Written by scripts/services.sh (rewritten on every run).
route:
  receiver: aegis-test-webhook
  group_by: [alertname, model, version]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: aegis-test-webhook
    webhook_configs:
      - url: "http://127.0.0.1:$AM_WEBHOOK_PORT/alertmanager"
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: "$AM_DIR/webhook.token"
EOF
  if ! amtool check-config "$AM_DIR/alertmanager.yml.tmp" >/dev/null 2>&1; then
    amtool check-config "$AM_DIR/alertmanager.yml.tmp" >&2 || true
    log "the Alertmanager config $AM_DIR/alertmanager.yml.tmp is invalid"
    return 1
  fi
  mv "$AM_DIR/alertmanager.yml.tmp" "$AM_DIR/alertmanager.yml"
  if am_answers; then
    curl -fsS -o /dev/null --max-time 5 -X POST "http://127.0.0.1:$AM_PORT/-/reload" || log "Alertmanager on 127.0.0.1:$AM_PORT did not reload its config"
    log "Alertmanager already answers on 127.0.0.1:$AM_PORT"
    return
  fi
  # --cluster.listen-address= (empty): no gossip cluster, no port opened beyond the web one.
  daemon_start alertmanager am_answers prometheus-alertmanager --config.file="$AM_DIR/alertmanager.yml" \
    --storage.path="$AM_DIR/data" --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address= \
    --web.external-url="http://127.0.0.1:$AM_PORT/"
  log "Alertmanager ready on 127.0.0.1:$AM_PORT (webhook receiver http://127.0.0.1:$AM_WEBHOOK_PORT/alertmanager)"
}

prometheus_server() {
  mkdir -p "$PROM_DIR/data" "$PROM_DIR/rules.d" "$PROM_DIR/targets.d"
  [ -f "$PROM_DIR/targets.json" ] || echo '[]' >"$PROM_DIR/targets.json"
  cat >"$PROM_DIR/prometheus.yml.tmp" <<EOF
# Written by scripts/services.sh (rewritten on every run).
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - "$ROOT/deploy/prometheus/*-rules.yaml"
  - "$PROM_DIR/rules.d/*.yaml"
scrape_configs:
  - job_name: aegis
    file_sd_configs:
      - files: ["$PROM_DIR/targets.json", "$PROM_DIR/targets.d/*.json"]
        refresh_interval: 1s
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:$AM_PORT"]
EOF
  if ! promtool check config "$PROM_DIR/prometheus.yml.tmp" >/dev/null 2>&1; then
    promtool check config "$PROM_DIR/prometheus.yml.tmp" >&2 || true
    log "the Prometheus config or a rule file it loads is invalid (see above)"
    return 1
  fi
  mv "$PROM_DIR/prometheus.yml.tmp" "$PROM_DIR/prometheus.yml"
  if prom_answers; then
    if ! curl -fsS --max-time 2 "http://127.0.0.1:$PROM_PORT/api/v1/status/flags" | grep -qF "\"config.file\":\"$PROM_DIR/prometheus.yml\""; then
      log "a Prometheus that is not ours answers on 127.0.0.1:$PROM_PORT: stop it or set AEGIS_PROMETHEUS_PORT"
      return 1
    fi
    curl -fsS -o /dev/null --max-time 10 -X POST "http://127.0.0.1:$PROM_PORT/-/reload" || { log "Prometheus did not reload; see $STATE/prometheus.log"; return 1; }
    log "Prometheus already answers on 127.0.0.1:$PROM_PORT (config reloaded)"
    return
  fi
  # --web.enable-lifecycle: POST /-/reload; --rules.alert.resend-delay=1s: firing alerts reach Alertmanager at once.
  daemon_start prometheus prom_answers prometheus --config.file="$PROM_DIR/prometheus.yml" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --web.external-url="http://127.0.0.1:$PROM_PORT/" \
    --storage.tsdb.path="$PROM_DIR/data" --storage.tsdb.retention.time=1d \
    --web.enable-lifecycle --rules.alert.resend-delay=1s
  log "Prometheus ready on 127.0.0.1:$PROM_PORT (targets: $PROM_DIR/targets.json, $PROM_DIR/targets.d/*.json)"
}

# KServe's Python model server, for `npm run bench -- serve` only (not needed by the tests).
kserve_venv() {
  local v="$STATE/kserve-venv"
  if [ -x "$v/bin/python" ] && "$v/bin/python" -c "import kserve, onnxruntime" 2>/dev/null; then
    log "kserve venv ready ($v)"
    return
  fi
  log "creating the kserve venv in $v (benchmark baseline)"
  python3 -m venv "$v"
  "$v/bin/pip" install --quiet --disable-pip-version-check "kserve==0.21.0" "onnxruntime" "numpy"
}

print_env() {
  echo "export AEGIS_MODEL_SIGNING_BIN=$VENV/bin/model_signing"
  echo "export AEGIS_TEST_S3_ENDPOINT=http://127.0.0.1:$MOTO_PORT"
  echo "export AEGIS_COSIGN_BIN=$STATE/bin/cosign"
  echo "export AEGIS_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  echo "export AEGIS_PROMTOOL_BIN=$(command -v promtool || echo promtool)"
  echo "export PROMETHEUS_URL=http://127.0.0.1:$PROM_PORT"
  echo "export ALERTMANAGER_URL=http://127.0.0.1:$AM_PORT"
  echo "export AEGIS_PROM_FILE_SD=$PROM_DIR/targets.json"
  echo "export AEGIS_PROM_FILE_SD_DIR=$PROM_DIR/targets.d"
  echo "export AEGIS_PROM_RULES_DIR=$PROM_DIR/rules.d"
  echo "export AEGIS_ALERTMANAGER_WEBHOOK_URL=http://127.0.0.1:$AM_WEBHOOK_PORT/alertmanager"
  echo "export AEGIS_ALERTMANAGER_WEBHOOK_TOKEN=$(cat "$AM_DIR/webhook.token")"
  echo "export AEGIS_TEST_MLFLOW_URL=http://127.0.0.1:$MLFLOW_PORT"
}

case "${1:-up}" in
  up)
    python_venv
    moto_s3
    mlflow_server
    postgres_server
    pg_client
    promtool_bin
    prometheus_pkgs
    alertmanager_server
    prometheus_server
    cosign_bin
    wrk_bin
    print_env > "$STATE/env.sh"
    log "done; environment in $STATE/env.sh"
    ;;
  env)
    print_env
    ;;
  kserve)
    kserve_venv
    ;;
  down)
    # Stops what `up` started from this checkout (e.g. before another checkout starts its own on the same ports).
    for pidfile in "$STATE"/*.pid; do
      [ -f "$pidfile" ] || continue
      pid="$(cat "$pidfile")"
      if kill -0 "$pid" 2>/dev/null; then
        log "stopping $(basename "$pidfile" .pid) (pid $pid)"
        kill "$pid" 2>/dev/null || true
      fi
      rm -f "$pidfile"
    done
    if bin="$(pg_bin_dir 2>/dev/null)"; then
      for data in "$STATE/pg" "/tmp/aegis-pg-$PG_PORT/pg"; do
        [ -f "$data/postmaster.pid" ] || continue
        (cd / && $(as_postgres_prefix) "$bin/pg_ctl" -D "$data" -m fast stop >/dev/null 2>&1) && log "stopped PostgreSQL ($data)" || true
      done
    fi
    ;;
  *)
    echo "usage: $0 [up|down|env|kserve]" >&2
    exit 2
    ;;
esac
