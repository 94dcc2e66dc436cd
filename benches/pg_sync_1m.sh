#!/usr/bin/env bash
# 1M-row PostgreSQL -> PostgreSQL sync with DMF beside a psql binary COPY pipe of the same rows.
#
#   bash benches/pg_sync_1m.sh [ROWS] [RUNS]        (defaults: 1000000 rows, 3 runs)
#   COPY_FORMAT=text bash benches/pg_sync_1m.sh      (DMF's COPY format: binary, the default, or text)
#
# Starts a throwaway PostgreSQL cluster (scripts/pg-cluster.sh) unless DMF_BENCH_PG_URL names a
# server (superuser). Builds the sync_database example in release mode, fills `bench_src` with
# ROWS customers and ROWS orders (FK to customers), then for each run empties `bench_dst` and
# times, whole process, with /usr/bin/time: (1) the psql binary COPY pipe, table by table,
# parents first; (2) `sync_database --mode full`. Each target is checked equal to the source by
# an order-independent fingerprint (md5 of the sorted row texts). Prints every run, then the
# medians, rows/s, the ratio DMF / pipe and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
RUNS=${2:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/dmf-target}
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

source scripts/pg-cluster.sh
if [ -z "${DMF_BENCH_PG_URL:-}" ]; then
  pg_cluster_start
  trap pg_cluster_stop EXIT
  DMF_BENCH_PG_URL=$DMF_TEST_PG_URL
fi
base=${DMF_BENCH_PG_URL%/*}
src="$base/bench_src"
dst="$base/bench_dst"

cargo build --release --example sync_database >/dev/null
sync_bin="$CARGO_TARGET_DIR/release/examples/sync_database"

schema="
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL UNIQUE,
  balance numeric(12,2) NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers (id),
  total numeric(12,2) NOT NULL, placed_at timestamptz NOT NULL, note text);"
psql -q "$DMF_BENCH_PG_URL" -c "DROP DATABASE IF EXISTS bench_src" -c "DROP DATABASE IF EXISTS bench_dst" \
  -c "CREATE DATABASE bench_src" -c "CREATE DATABASE bench_dst"
psql -q "$src" -c "$schema"
psql -q "$dst" -c "$schema"
echo "filling bench_src with $ROWS customers and $ROWS orders..."
psql -q -v ON_ERROR_STOP=1 "$src" -c "INSERT INTO customers SELECT g, 'Customer ' || g, 'c' || g || '@example.com',
    (g % 100000) / 100.0, timestamptz '2020-01-01' + g * interval '1 second' FROM generate_series(1, $ROWS) g" \
  -c "INSERT INTO orders SELECT g, 1 + (g::bigint * 7919) % $ROWS, (g % 5000) / 10.0,
    timestamptz '2021-01-01' + g * interval '1 second', CASE WHEN g % 3 = 0 THEN NULL ELSE 'note ' || g END
    FROM generate_series(1, $ROWS) g" -c "ANALYZE"

fingerprint() {
  psql -At "$1" -c "SELECT (SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM customers t)
    || (SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM orders t)"
}
expected=$(fingerprint "$src")
reset_target() {
  psql -q "$dst" -c "TRUNCATE customers, orders" -c "DROP SCHEMA IF EXISTS dmf CASCADE" -c "CHECKPOINT"
}
measure() { # label, command...: prints "label wall_seconds max_rss_kib"
  local label=$1; shift
  local out; out=$(mktemp)
  /usr/bin/time -f "%e %M" -o "$out" "$@" >/dev/null 2>"$out.err" || { cat "$out.err" >&2; return 1; }
  [ "$(fingerprint "$dst")" = "$expected" ] || { echo "$label: target differs from source" >&2; return 1; }
  echo "$label $(cat "$out")"
}
pipe() {
  psql -q "$src" -c "COPY customers TO STDOUT (FORMAT binary)" | psql -q "$dst" -c "COPY customers FROM STDIN (FORMAT binary)"
  psql -q "$src" -c "COPY orders TO STDOUT (FORMAT binary)" | psql -q "$dst" -c "COPY orders FROM STDIN (FORMAT binary)"
}
export -f pipe
export src dst

results=$(mktemp)
for run in $(seq 1 "$RUNS"); do
  reset_target
  measure pipe bash -c pipe | tee -a "$results"
  reset_target
  measure dmf "$sync_bin" --source "$src" --target "$dst" --mode full --batch-size 10000 --jobs 2 --no-verify \
    --copy-format "${COPY_FORMAT:-binary}" | tee -a "$results"
done

python3 - "$results" "$ROWS" <<'PY'
import statistics, sys
rows = 2 * int(sys.argv[2])
runs = {}
for line in open(sys.argv[1]):
    label, wall, rss = line.split()
    runs.setdefault(label, []).append((float(wall), int(rss)))
med = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
for label, values in runs.items():
    rss = max(r for _, r in values) / 1024
    print(f"{label:5} median {med[label]:7.2f} s  {rows / med[label]:>10,.0f} rows/s  peak RSS {rss:6.1f} MiB  runs {[w for w, _ in values]}")
print(f"DMF / pipe: {med['dmf'] / med['pipe']:.2f}x")
PY
