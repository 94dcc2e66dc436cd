# Functions to start and stop a throwaway PostgreSQL cluster (sourced, not run).
#
# pg_cluster_start: initdb into a fresh temp dir, start `postgres` on a free loopback port with
#   TLS on (certificates made by scripts/test-certs.sh in $PG_CLUSTER_DIR/tls), export
#   DMF_TEST_PG_URL (superuser `postgres`, database `postgres`, `sslmode=disable`: the tests
#   that cut or inspect the wire need plain bytes) and PG_CLUSTER_PID, and for the TLS tests
#   DMF_TEST_PG_TLS_URL (superuser `dmf_tls`, who may log in over TLS only; no ssl keys: each
#   test adds its own) and DMF_TEST_PG_TLS_DIR (the certificates).
#
# pg_hba.conf, first match wins:
#   hostssl   dmf_cert from 127.0.0.1: cert (the client certificate's CN is the role)
#   hostnossl dmf_cert, dmf_tls: reject (PostgreSQL's own refusal of a connection without TLS)
#   hostssl   dmf_tls: scram-sha-256 (so SCRAM with channel binding runs over TLS)
#   then initdb's lines: trust for everyone else, with or without TLS.
# pg_cluster_stop: stop it by its PID and remove the temp dir.
# Installs Debian's postgresql package when no PostgreSQL binaries are found.

pg_bin_dir() {
  local dir
  for dir in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

pg_as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_cluster_start() {
  local bin
  if ! bin=$(pg_bin_dir); then
    echo "PostgreSQL binaries not found: installing Debian's postgresql package" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
    bin=$(pg_bin_dir)
  fi
  PG_CLUSTER_DIR=$(mktemp -d /tmp/dmf-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then chown postgres: "$PG_CLUSTER_DIR"; fi
  PG_CLUSTER_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  pg_as_owner "$bin/initdb" -D "$PG_CLUSTER_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$PG_CLUSTER_DIR/initdb.log" 2>&1 \
    || { cat "$PG_CLUSTER_DIR/initdb.log" >&2; return 1; }
  # TLS: the test CA, PostgreSQL's certificate (its key owned by the server's user, as
  # PostgreSQL demands), and the client certificates it accepts (signed by the same CA).
  local here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  bash "$here/test-certs.sh" "$PG_CLUSTER_DIR/tls" || return 1
  local file
  for file in server.crt server.key ca.crt; do
    cp "$PG_CLUSTER_DIR/tls/$file" "$PG_CLUSTER_DIR/data/$file"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$PG_CLUSTER_DIR/data/$file"; fi
    chmod 600 "$PG_CLUSTER_DIR/data/$file"
  done
  local hba="$PG_CLUSTER_DIR/data/pg_hba.conf"
  {
    echo "hostssl   all dmf_cert        127.0.0.1/32 cert"
    echo "hostnossl all dmf_cert,dmf_tls 127.0.0.1/32 reject"
    echo "hostssl   all dmf_tls         127.0.0.1/32 scram-sha-256"
    cat "$hba"
  } >"$hba.new" && mv "$hba.new" "$hba"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$hba"; fi
  pg_as_owner "$bin/pg_ctl" -D "$PG_CLUSTER_DIR/data" -l "$PG_CLUSTER_DIR/server.log" -w -t 60 start \
    -o "-p $PG_CLUSTER_PORT -k $PG_CLUSTER_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c ssl_ca_file=ca.crt" \
    >/dev/null || { cat "$PG_CLUSTER_DIR/server.log" >&2; return 1; }
  # The postmaster's own PID (first line of postmaster.pid), to stop it by PID.
  PG_CLUSTER_PID=$(head -n 1 "$PG_CLUSTER_DIR/data/postmaster.pid")
  export PG_CLUSTER_PID PG_CLUSTER_DIR PG_CLUSTER_PORT
  # The TLS tests' roles: dmf_tls (superuser, TLS only, by password), dmf_cert (cert auth).
  pg_as_owner "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_CLUSTER_DIR" -p "$PG_CLUSTER_PORT" -U postgres -d postgres \
    -c "CREATE ROLE dmf_tls LOGIN SUPERUSER PASSWORD 'dmf-tls-secret'" -c "CREATE ROLE dmf_cert LOGIN" >/dev/null \
    || return 1
  export DMF_TEST_PG_URL="postgres://postgres@127.0.0.1:$PG_CLUSTER_PORT/postgres?sslmode=disable"
  export DMF_TEST_PG_TLS_URL="postgres://dmf_tls:dmf-tls-secret@localhost:$PG_CLUSTER_PORT/postgres"
  export DMF_TEST_PG_TLS_DIR="$PG_CLUSTER_DIR/tls"
}

pg_cluster_stop() {
  if [ -n "${PG_CLUSTER_PID:-}" ] && kill -0 "$PG_CLUSTER_PID" 2>/dev/null; then
    kill -INT "$PG_CLUSTER_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 100); do
      kill -0 "$PG_CLUSTER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$PG_CLUSTER_PID" 2>/dev/null || true
  fi
  if [ -n "${PG_CLUSTER_DIR:-}" ]; then rm -rf "$PG_CLUSTER_DIR"; fi
}
