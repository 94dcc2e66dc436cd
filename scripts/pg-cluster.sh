# Functions to start and stop a throwaway PostgreSQL cluster (sourced, not run).
#
# pg_cluster_start: initdb into a fresh temp dir, start `postgres` on a free loopback port,
#   export DMF_TEST_PG_URL (superuser `postgres`, database `postgres`) and PG_CLUSTER_PID.
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
  pg_as_owner "$bin/pg_ctl" -D "$PG_CLUSTER_DIR/data" -l "$PG_CLUSTER_DIR/server.log" -w -t 60 start \
    -o "-p $PG_CLUSTER_PORT -k $PG_CLUSTER_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    >/dev/null || { cat "$PG_CLUSTER_DIR/server.log" >&2; return 1; }
  # The postmaster's own PID (first line of postmaster.pid), to stop it by PID.
  PG_CLUSTER_PID=$(head -n 1 "$PG_CLUSTER_DIR/data/postmaster.pid")
  export PG_CLUSTER_PID PG_CLUSTER_DIR PG_CLUSTER_PORT
  export DMF_TEST_PG_URL="postgres://postgres@127.0.0.1:$PG_CLUSTER_PORT/postgres"
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
