#!/usr/bin/env bash
# The customer demo end to end on dirty data: ROWS generated legacy customers (about 2 % dirty,
# 0.5 % duplicate emails refused by the target's UNIQUE constraint) migrated by the
# customer_migration example into SQLite and into PostgreSQL, with batches of 1,000 and 10,000.
#
#   bash benches/customer_migration.sh [ROWS] [RUNS]      (defaults: 1000000 rows, 3 runs)
#
# DMF_BENCH_PARTS picks the targets: `sqlite`, `pg` or both (the default: "sqlite pg").
# DMF_BENCH_BATCHES the batch sizes (default: "1000 10000").
# DMF_BENCH_PG_URL names a PostgreSQL server (default: $DMF_TEST_PG_URL, see dev-env.sh) on which
# the script creates, and drops again, the database `dmf_bench_customers`.
#
# Builds the example in release mode and generates the legacy SQLite file once (seed 42). Each
# timed run starts from a fresh copy of it and a new target (an empty SQLite file, or the
# PostgreSQL database dropped and created: the demo creates its `customers` table with 50
# customers already migrated, which the run skips), then runs
#   customer_migration --source sqlite://COPY --target TARGET --rows ROWS --batch-size B
# timed as a whole process by /usr/bin/time: wall seconds and peak RSS. Rows/s is ROWS over the
# wall time, so it counts everything the process does: opening both databases, pre-flight,
# extracting, transforming, validating, loading with the undo log, the run record and the
# reject quarantine. Prints every run as it ends (with the demo's counts), then a table of
# medians.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "customer_migration.sh: $*" >&2; exit 1; }
ROWS=${1:-1000000}
RUNS=${2:-3}
[[ $ROWS =~ ^[1-9][0-9]*$ ]] || die "ROWS must be a whole number above 0, got '$ROWS'"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a whole number above 0, got '$RUNS'"
PARTS=${DMF_BENCH_PARTS:-sqlite pg}
BATCHES=${DMF_BENCH_BATCHES:-1000 10000}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
WORK=${DMF_BENCH_DIR:-$TARGET_DIR/bench-customer-migration}
BIN=$TARGET_DIR/release/examples/customer_migration

cargo build --release --example customer_migration >&2
mkdir -p "$WORK"
TEMPLATE=$WORK/legacy-$ROWS.db
if [[ ! -f $TEMPLATE ]]; then
  echo "generating $ROWS legacy customers into $TEMPLATE (once)" >&2
  rm -rf "$WORK/gen" && mkdir -p "$WORK/gen"
  "$BIN" --dir "$WORK/gen" --rows "$ROWS" --batch-size 10000 > /dev/null
  mv "$WORK/gen/legacy.db" "$TEMPLATE"
  rm -rf "$WORK/gen"
fi

PG_URL=${DMF_BENCH_PG_URL:-${DMF_TEST_PG_URL:-}}
export PGOPTIONS="--client-min-messages=warning"
pg_db_url() { # the server URL with its database replaced by dmf_bench_customers
  local url=$1 scheme rest authority
  scheme=${url%%://*}; rest=${url#*://}; authority=${rest%%/*}; authority=${authority%%\?*}
  echo "$scheme://$authority/dmf_bench_customers"
}

declare -A WALLS RSSES
one_run() { # part batch run
  local part=$1 batch=$2 run=$3 dir=$WORK/run target
  rm -rf "$dir" && mkdir -p "$dir"
  cp "$TEMPLATE" "$dir/legacy.db"
  case $part in
    sqlite) target="sqlite://$dir/modern.db" ;;
    pg)
      [[ -n $PG_URL ]] || die "no PostgreSQL server: set DMF_BENCH_PG_URL (or source /work/dev-env.sh)"
      psql -q -X "$PG_URL" -c "DROP DATABASE IF EXISTS dmf_bench_customers" -c "CREATE DATABASE dmf_bench_customers" >/dev/null
      target=$(pg_db_url "$PG_URL") ;;
  esac
  local out=$dir/out.txt timing=$dir/time.txt
  /usr/bin/time -f "%e %M" -o "$timing" "$BIN" --dir "$dir" --source "sqlite://$dir/legacy.db" --target "$target" \
    --rows "$ROWS" --batch-size "$batch" > "$out" 2> "$dir/err.txt" || { cat "$dir/err.txt" "$out" >&2; die "$part batch $batch run $run failed"; }
  local wall rss
  read -r wall rss < "$timing"
  WALLS[$part,$batch]+="$wall "
  RSSES[$part,$batch]+="$rss "
  printf '%-6s batch %6s run %s: %7.2f s  %9.0f rows/s  peak RSS %6.1f MiB  %s\n' "$part" "$batch" "$run" "$wall" \
    "$(echo "$ROWS / $wall" | bc -l)" "$(echo "$rss / 1024" | bc -l)" "$(grep -m1 '^counts:' "$out" | cut -d';' -f1)"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
minmax() { tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%s-%s", lo, hi}'; }

for run in $(seq 1 "$RUNS"); do
  for part in $PARTS; do
    for batch in $BATCHES; do
      one_run "$part" "$batch" "$run"
    done
  done
done
[[ " $PARTS " == *" pg "* ]] && psql -q -X "$PG_URL" -c "DROP DATABASE IF EXISTS dmf_bench_customers" >/dev/null

echo
echo "customer_migration, $ROWS rows, median of $RUNS runs (wall time of the whole process; source: SQLite)"
printf '| target | batch | wall s (min-max) | rows/s | peak RSS MiB (max) |\n|---|---|---|---|---|\n'
for part in $PARTS; do
  for batch in $BATCHES; do
    wall=$(echo "${WALLS[$part,$batch]}" | median)
    printf '| %s | %s | %.2f (%s) | %.0f | %.1f |\n' "$part" "$batch" "$wall" "$(echo "${WALLS[$part,$batch]}" | minmax)" \
      "$(echo "$ROWS / $wall" | bc -l)" "$(echo "$(echo "${RSSES[$part,$batch]}" | tr ' ' '\n' | sort -g | tail -1) / 1024" | bc -l)"
  done
done
