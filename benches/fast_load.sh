#!/usr/bin/env bash
# The fastest correct load into an existing schema: DMF's `full` sync beside the tools a person
# would otherwise use, on the same rows, in the same run.
#
#   bash benches/fast_load.sh [CUSTOMERS] [RUNS]      (defaults: 1000000 customers, 3 runs)
#
# DMF_BENCH_PARTS picks the parts to run: `pg`, `sqlite` or both (the default: "pg sqlite").
#
# PostgreSQL -> PostgreSQL. Starts a throwaway cluster (scripts/pg-cluster.sh) unless
# DMF_BENCH_PG_URL names a server (a superuser: the script creates databases, and the fast path
# needs SET on session_replication_role). Builds the dmf command in release mode and
# fills `bench_src` with CUSTOMERS customers (PK, UNIQUE email) and 3 x CUSTOMERS orders (PK, FK
# to customers, index on customer_id): an existing schema, as a test database has one.
# `bench_dst` has the same schema. Every timed run starts from an emptied target (TRUNCATE, DROP
# SCHEMA dmf, CHECKPOINT), and the variants take turns run by run (run 1 of each, then run 2, ...)
# so that the machine's drift spreads over all of them:
#   pipe          psql binary COPY pipe, table by table, parents first, into the existing schema
#                 (FK checked row by row: the baseline the ratios are taken against)
#   pipe, no FK   the same pipe, the target's psql with session_replication_role = replica: no
#                 per-row FK check, every index kept (a reference, not a correct load: the floor
#                 of any load that keeps the target's indexes and skips the FK triggers)
#   fast path     dmf sync --mode full --no-verify --no-undo (FK checks skipped while
#                 loading, then proved by one set-based query per FK; its defaults: --jobs and
#                 --range-readers the number of cores, parents and children loading together)
#   per-row       the same with --fk-checks per-row (parents first; large tables in key ranges)
#   jobs 1        the fast path with --jobs 1 (one table at a time, one reader per table)
#   pgcopydb      pgcopydb copy table-data (Debian's package, installed when available)
# Each run is timed as a whole process by /usr/bin/time: wall seconds, client CPU (user + sys)
# and peak RSS, which is the largest single process of the command's tree (for the pipe: the
# largest psql process; the PostgreSQL server's own memory is not counted for any variant) and,
# with the throwaway cluster, the CPU of the server backends that ended during the run (the
# postmaster's reaped children: the sessions that read, wrote and checked; not the checkpointer).
# The peak anonymous memory of the command's process (RssAnon, sampled every 50 ms: RSS without
# the file pages of the binary and libraries) is shown beside it.
# Autovacuum is off for the bench tables so that a vacuum of one run's rows does not run into
# the next run.
# After each run the target is compared with the source by an order-independent fingerprint
# (row count and the sum of a 64-bit hash of every row's text, per table); a difference fails
# the script. The fast path is also run RUNS times on DMF_BENCH_SMALL customers (default 200000;
# a fifth of CUSTOMERS when that is smaller) to show whether its peak RSS grows with the data:
# a sample of the large set (every CUSTOMERS / DMF_BENCH_SMALL-th customer and its orders), so
# that the two differ in row count only, not in row width.
#
# SQLite -> SQLite. The same tables and rows in SQLite files: `sqlite3 target.db "ATTACH
# 'source.db' AS s; INSERT INTO customers SELECT * FROM s.customers; ..."` (the sqlite3 shell
# keeps foreign_keys off, its default) beside dmf sync --mode full --no-verify --no-undo,
# each from a fresh copy of the empty target, compared by SHA3 of every table read in key order.
# The SQLite fast path is also run RUNS times on DMF_BENCH_SMALL customers, as for PostgreSQL.
#
# Prints every run as it ends, then one table per part: median wall seconds (min-max), rows/s,
# the ratio to the baseline, median client CPU, peak RSS and whether every target was equal;
# then each variant's ratio to the baseline run by run (against the baseline run of its round).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "fast_load.sh: $*" >&2; exit 1; }
CUSTOMERS=${1:-1000000}
RUNS=${2:-3}
[[ $CUSTOMERS =~ ^[1-9][0-9]*$ ]] || die "CUSTOMERS must be a whole number above 0, got '$CUSTOMERS'"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a whole number above 0, got '$RUNS'"
SMALL=${DMF_BENCH_SMALL:-200000}
PARTS=${DMF_BENCH_PARTS:-pg sqlite}
part_on() { [[ " $PARTS " == *" $1 "* ]]; }
part_on pg || part_on sqlite || die "DMF_BENCH_PARTS must name pg, sqlite or both, got '$PARTS'"
[ "$SMALL" -lt "$CUSTOMERS" ] || SMALL=$((CUSTOMERS / 5 > 0 ? CUSTOMERS / 5 : 1))
# The small set is every STEP-th customer of the large one, with their orders: ids run over the
# same range, so names, e-mails and notes are as long as the large set's and its rows as wide.
# Numbered 1..SMALL, they would be a digit shorter: peak RSS would then compare width as well as
# row count (1% narrower pages, some 50 KiB less at the peak).
STEP=$((CUSTOMERS / SMALL))
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/dmf-target}

# Debian packages this script needs, installed when missing (root, as on our machines).
apt_updated=
apt_install() { # package: prints nothing, fails when apt cannot install it
  [ "$(id -u)" = 0 ] || return 1
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$apt_updated" ]; then apt-get update -qq >/dev/null 2>&1 || true; apt_updated=1; fi
  apt-get install -y -qq "$1" >/dev/null 2>&1
}
[ -x /usr/bin/time ] || apt_install time || die "/usr/bin/time is missing (Debian package 'time')"
command -v python3 >/dev/null || die "python3 is needed to print the tables"
command -v sqlite3 >/dev/null || apt_install sqlite3 || die "sqlite3 is missing (Debian package 'sqlite3')"
if part_on pg && ! command -v pgcopydb >/dev/null; then
  apt_install pgcopydb || echo "pgcopydb: not installed and Debian's package could not be installed: that variant is skipped" >&2
fi
have_pgcopydb=$(command -v pgcopydb >/dev/null && echo 1 || true)

work=$(mktemp -d /tmp/dmf-fast-load.XXXXXX)
source scripts/pg-cluster.sh
started_cluster=
cleanup() {
  if [ -n "$started_cluster" ]; then pg_cluster_stop; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if part_on pg && [ -z "${DMF_BENCH_PG_URL:-}" ]; then
  echo "starting a throwaway PostgreSQL cluster..."
  pg_cluster_start
  started_cluster=1
  # The cluster has TLS on; the benchmark measures loads, not encryption: plain connections for
  # psql, pg_dump and DMF alike (all read PGSSLMODE).
  export PGSSLMODE=disable
  DMF_BENCH_PG_URL=${DMF_TEST_PG_URL%%\?*}
fi
DMF_BENCH_PG_URL=${DMF_BENCH_PG_URL:-}
! part_on pg || command -v psql >/dev/null || die "psql is missing (Debian package 'postgresql-client')"
base=${DMF_BENCH_PG_URL%/*}
src="$base/bench_src" dst="$base/bench_dst" src_small="$base/bench_src_small" dst_small="$base/bench_dst_small"

echo "building dmf (release)..."
cargo build --release -p dmf-cli --bin dmf --quiet || die "cargo build --release -p dmf-cli failed"
sync_bin="$CARGO_TARGET_DIR/release/dmf"

# --- PostgreSQL --------------------------------------------------------------------------------
pg_schema="
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL UNIQUE,
  balance numeric(12,2) NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers (id),
  total numeric(12,2) NOT NULL, placed_at timestamptz NOT NULL, note text);
CREATE INDEX orders_customer_id ON orders (customer_id);
ALTER TABLE customers SET (autovacuum_enabled = false);
ALTER TABLE orders SET (autovacuum_enabled = false);"

pg_create() { # source_url target_url customers [step]: ids step, 2 x step, ... (see bench_rows)
  local db step=${4:-1}
  for db in "${1##*/}" "${2##*/}"; do
    psql -qX -v ON_ERROR_STOP=1 "$DMF_BENCH_PG_URL" -c "SET client_min_messages = warning" \
      -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  done
  psql -qX -v ON_ERROR_STOP=1 "$1" -c "$pg_schema"
  psql -qX -v ON_ERROR_STOP=1 "$2" -c "$pg_schema"
  psql -qX -v ON_ERROR_STOP=1 "$1" \
    -c "INSERT INTO customers SELECT i, 'Customer ' || i, 'c' || i || '@example.com', (i % 100000) / 100.0,
          timestamptz '2020-01-01' + i * interval '1 second'
          FROM generate_series(1, $3::bigint) g, LATERAL (SELECT g * $step AS i) id" \
    -c "INSERT INTO orders SELECT i, $step * (1 + (g * 7919) % $3), (i % 5000) / 10.0,
          timestamptz '2021-01-01' + i * interval '1 second', CASE WHEN g % 3 = 0 THEN NULL ELSE 'note ' || i END
          FROM generate_series(1, 3 * $3::bigint) g, LATERAL (SELECT g * $step AS i) id" \
    -c "VACUUM ANALYZE" -c "CHECKPOINT"
}
pg_fingerprint() { # url: "customers count:hash-sum orders count:hash-sum", independent of row order
  psql -AtX -v ON_ERROR_STOP=1 "$1" -c "
    SELECT (SELECT count(*) || ':' || coalesce(sum(hashtextextended(t::text, 0)), 0) FROM customers t)
      || ' ' || (SELECT count(*) || ':' || coalesce(sum(hashtextextended(t::text, 0)), 0) FROM orders t)"
}
pg_reset() { # url: an empty target with no DMF control tables, its dirty pages written out
  psql -qX -v ON_ERROR_STOP=1 "$1" -c "SET client_min_messages = warning" -c "TRUNCATE customers, orders" \
    -c "DROP SCHEMA IF EXISTS dmf CASCADE" -c "CHECKPOINT"
}

pipe() { # source_url target_url [PGOPTIONS of the target session]
  local table
  for table in customers orders; do
    psql -qX -v ON_ERROR_STOP=1 "$1" -c "COPY $table TO STDOUT (FORMAT binary)" \
      | PGOPTIONS=${3:-} psql -qX -v ON_ERROR_STOP=1 "$2" -c "COPY $table FROM STDIN (FORMAT binary)"
  done
}
export -f pipe

results="$work/results"
clock_ticks=$(getconf CLK_TCK)
server_ticks() { # CPU ticks of the throwaway cluster's ended backends (postmaster's cutime + cstime)
  if [ -n "$started_cluster" ]; then awk '{ print $16 + $17 }' "/proc/$PG_CLUSTER_PID/stat" 2>/dev/null || echo -
  else echo -; fi
}
failed=
# measure PART VARIANT RUN CHECK EXPECTED COMMAND...: times COMMAND, checks the target with
# CHECK (a fingerprint function and its argument, one word each), appends
# "PART|VARIANT|RUN|wall|max_rss_kib|cpu|server_cpu|equal|max_anon_kib" to $results; the command's output goes
# to a log.
# peak_anon PID: while PID (/usr/bin/time) runs, samples its child's RssAnon every 50 ms (pure
# bash, no process per sample); prints the highest, in KiB. Anonymous memory is what the process
# allocated (heap, stacks, mapped buffers), without the file pages of its binary and libraries
# that RSS also counts: those vary from run to run with the code paths the kernel faulted in.
peak_anon() {
  local timer=$1 child="" peak=0 key value _
  while kill -0 "$timer" 2>/dev/null; do
    [ -n "$child" ] || child=$(pgrep -P "$timer" 2>/dev/null | head -n 1 || true)
    if [ -n "$child" ] && [ -r "/proc/$child/status" ]; then
      while read -r key value _; do
        if [ "$key" = RssAnon: ] && [ "$value" -gt "$peak" ]; then peak=$value; fi
      done <"/proc/$child/status" 2>/dev/null || true
    fi
    sleep 0.05
  done
  echo "$peak"
}

# Every measured command runs with address-space randomisation off (setarch -R, when the machine
# allows it): the kernel maps a binary's code 64 KiB around each page it faults in, so with its
# load address drawn anew each run the same code left up to 0.6 MiB more or less of it resident
# (at the peak, 10 runs of dmf sync: 10.05-10.66 MiB; with a fixed address 10.35-10.36).
no_aslr=()
if setarch "$(uname -m)" -R true 2>/dev/null; then no_aslr=(setarch "$(uname -m)" -R); fi
measure() {
  local part=$1 variant=$2 run=$3 check=$4 expected=$5; shift 5
  local log="$work/$part.${variant// /_}.$run.log" timing="$work/time" status=0 verdict ticks_before
  ticks_before=$(server_ticks)
  /usr/bin/time -f "%e %M %U %S" -o "$timing" "${no_aslr[@]}" "$@" >"$log" 2>&1 &
  local timer=$! anon; anon=$(peak_anon "$timer")
  wait "$timer" || status=$?
  # Let the backends of the command's sessions finish exiting before reading their CPU.
  local server=- ticks_after; sleep 0.3; ticks_after=$(server_ticks)
  [ "$ticks_before" = - ] || [ "$ticks_after" = - ] || [ "$part" = sqlite ] \
    || server=$(python3 -c "print(f'{($ticks_after - $ticks_before) / $clock_ticks:.2f}')")
  if [ "$status" != 0 ]; then
    echo "$variant (run $run) failed with exit status $status; its output, then /usr/bin/time's:" >&2
    tail -n 20 "$log" "$timing" >&2
    df -h "$work" >&2
    if [ -n "$started_cluster" ]; then tail -n 5 "$PG_CLUSTER_DIR/server.log" >&2 || true; fi
    verdict=failed
    failed=1
  elif [ "$(${check% *} "${check#* }")" = "$expected" ]; then
    verdict=yes
  else
    echo "$variant (run $run): the target differs from the source" >&2
    verdict=DIFFERS
    failed=1
  fi
  local wall=nan rss=0 user=0 sys=0 figures
  if figures=$(grep -E '^[0-9.]+ [0-9]+ [0-9.]+ [0-9.]+$' "$timing" | tail -n 1); then
    read -r wall rss user sys <<<"$figures"
  fi
  local cpu; cpu=$(python3 -c "print(f'{$user + $sys:.2f}')")
  echo "$part|$variant|$run|$wall|$rss|$cpu|$server|$verdict|$anon" >>"$results"
  printf '  run %s  %-28s %7.2f s  %7.1f MiB  (anonymous %5.1f MiB)  equal: %s\n' "$run" "$variant" "$wall" \
    "$(python3 -c "print($rss / 1024)")" "$(python3 -c "print($anon / 1024)")" "$verdict"
}

if part_on pg; then
echo "filling bench_src: $CUSTOMERS customers, $((3 * CUSTOMERS)) orders..."
pg_create "$src" "$dst" "$CUSTOMERS"
pg_expected=$(pg_fingerprint "$src")
echo "PostgreSQL: $(psql -AtX "$src" -c "SHOW server_version"); source fingerprint $pg_expected"

sync=("$sync_bin" sync --source "$src" --target "$dst" --mode full --no-verify --no-undo)
variants=("pipe" "pipe, no FK" "fast path" "per-row" "jobs 1")
[ -n "$have_pgcopydb" ] && variants+=("pgcopydb") || echo "pgcopydb not available: that variant is skipped"
for run in $(seq 1 "$RUNS"); do
  echo "PostgreSQL run $run of $RUNS (load $(cut -d' ' -f1-3 /proc/loadavg)):"
  for variant in "${variants[@]}"; do
    pg_reset "$dst" || die "could not empty bench_dst before the $variant run (is the server still up?)"
    case $variant in
      pipe) measure pg "$variant" "$run" "pg_fingerprint $dst" "$pg_expected" bash -c 'pipe "$0" "$1"' "$src" "$dst" ;;
      "pipe, no FK")
        measure pg "$variant" "$run" "pg_fingerprint $dst" "$pg_expected" \
          bash -c 'pipe "$0" "$1" "-c session_replication_role=replica"' "$src" "$dst" ;;
      "fast path") measure pg "$variant" "$run" "pg_fingerprint $dst" "$pg_expected" "${sync[@]}" ;;
      per-row) measure pg "$variant" "$run" "pg_fingerprint $dst" "$pg_expected" "${sync[@]}" --fk-checks per-row ;;
      "jobs 1") measure pg "$variant" "$run" "pg_fingerprint $dst" "$pg_expected" "${sync[@]}" --jobs 1 ;;
      pgcopydb)
        measure pg "$variant" "$run" "pg_fingerprint $dst" "$pg_expected" \
          pgcopydb copy table-data --source "$src" --target "$dst" --dir "$work/pgcopydb.$run" ;;
    esac
  done
done

echo "fast path at $SMALL customers (peak RSS against data size):"
pg_create "$src_small" "$dst_small" "$SMALL" "$STEP"
small_expected=$(pg_fingerprint "$src_small")
for run in $(seq 1 "$RUNS"); do
  pg_reset "$dst_small"
  measure pg-small "fast path" "$run" "pg_fingerprint $dst_small" "$small_expected" \
    "$sync_bin" sync --source "$src_small" --target "$dst_small" --mode full --no-verify --no-undo
done
fi

# --- SQLite ------------------------------------------------------------------------------------
# Timestamps are stored in the text form DMF writes, so that a copy through DMF is byte-equal.
if part_on sqlite; then
sqlite_schema="
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE,
  balance NUMERIC(12,2) NOT NULL, created_at TIMESTAMP NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers (id),
  total NUMERIC(12,2) NOT NULL, placed_at TIMESTAMP NOT NULL, note TEXT);
CREATE INDEX orders_customer_id ON orders (customer_id);"
lite_src="$work/source.db" lite_empty="$work/empty.db" lite_dst="$work/target.db"
sqlite_fingerprint() { # file: SHA3 of each table read in key order (values and their storage types)
  sqlite3 -bail "$1" "SELECT hex(sha3_query('SELECT * FROM customers ORDER BY id')) || ' ' ||
    hex(sha3_query('SELECT * FROM orders ORDER BY id'))"
}
sqlite_fill() { # file customers [step]: a copy of the empty schema holding the bench rows
  local step=${3:-1}
  cp "$lite_empty" "$1"
  sqlite3 -bail "$1" "
    WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < $2), c(n, i) AS (SELECT n, n * $step FROM g)
    INSERT INTO customers SELECT i, 'Customer ' || i, 'c' || i || '@example.com', (i % 100000) / 100.0,
      datetime('2020-01-01', '+' || i || ' seconds') || '.000000' FROM c;
    WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 3 * $2), o(n, i) AS (SELECT n, n * $step FROM g)
    INSERT INTO orders SELECT i, $step * (1 + (n * 7919) % $2), (i % 5000) / 10.0,
      datetime('2021-01-01', '+' || i || ' seconds') || '.000000',
      CASE WHEN n % 3 = 0 THEN NULL ELSE 'note ' || i END FROM o;
    ANALYZE;"
}
echo "filling SQLite source: $CUSTOMERS customers, $((3 * CUSTOMERS)) orders..."
sqlite3 -bail "$lite_empty" "$sqlite_schema"
sqlite_fill "$lite_src" "$CUSTOMERS"
lite_expected=$(sqlite_fingerprint "$lite_src")
attach="ATTACH '$lite_src' AS s; INSERT INTO customers SELECT * FROM s.customers;
  INSERT INTO orders SELECT * FROM s.orders;"
for run in $(seq 1 "$RUNS"); do
  echo "SQLite run $run of $RUNS (load $(cut -d' ' -f1-3 /proc/loadavg)):"
  cp "$lite_empty" "$lite_dst"
  measure sqlite "sqlite3 ATTACH" "$run" "sqlite_fingerprint $lite_dst" "$lite_expected" sqlite3 -bail "$lite_dst" "$attach"
  cp "$lite_empty" "$lite_dst"
  measure sqlite "fast path" "$run" "sqlite_fingerprint $lite_dst" "$lite_expected" \
    "$sync_bin" sync --source "sqlite://$lite_src" --target "sqlite://$lite_dst" --mode full --no-verify --no-undo
done
echo "SQLite fast path at $SMALL customers (peak RSS against data size):"
sqlite_fill "$lite_src" "$SMALL" "$STEP"
small_expected=$(sqlite_fingerprint "$lite_src")
for run in $(seq 1 "$RUNS"); do
  cp "$lite_empty" "$lite_dst"
  measure sqlite-small "fast path" "$run" "sqlite_fingerprint $lite_dst" "$small_expected" \
    "$sync_bin" sync --source "sqlite://$lite_src" --target "sqlite://$lite_dst" --mode full --no-verify --no-undo
done
fi

# --- Report ------------------------------------------------------------------------------------
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average now $(cut -d' ' -f1-3 /proc/loadavg)"
echo "Which path the dmf sync runs took (their pre-flight line):"
for variant in "fast path" "per-row" "jobs 1"; do
  part_on pg || break
  line=$(grep -h -m 1 "^FK checks:" "$work/pg.${variant// /_}.1.log" 2>/dev/null || echo "(not printed)")
  printf '  PostgreSQL %-10s %s\n' "$variant:" "$line"
done
! part_on sqlite || printf '  SQLite     %-10s %s\n' "fast path:" \
  "$(grep -h -m 1 "^FK checks:" "$work/sqlite.fast_path.1.log" 2>/dev/null || echo "(not printed)")"
python3 - "$results" "$CUSTOMERS" "$SMALL" "$RUNS" <<'PY'
import statistics, sys
path, customers, small, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
parts = {}
for line in open(path):
    part, variant, run, wall, rss, cpu, server, equal, anon = line.rstrip("\n").split("|")
    server = None if server == "-" else float(server)
    parts.setdefault(part, {}).setdefault(variant, []).append(
        (float(wall), int(rss), float(cpu), server, equal, run, int(anon)))

def timed(v):
    """A run that ended with a wall time (it may still have left a target that differs)."""
    return v[4] != "failed" and v[0] == v[0]

def verdict(values):
    return "yes" if all(v[4] == "yes" for v in values) else "/".join(v[4] for v in values)

def table(part, title, baseline, rows):
    if part not in parts:
        return
    print(f"\n{title}: {rows:,} rows ({rows // 4:,} customers + {3 * rows // 4:,} orders), median of {runs} runs")
    servers = any(v[3] is not None for values in parts.get(part, {}).values() for v in values)
    server_head = " server CPU s |" if servers else ""
    print(f"| variant | wall s, median (min-max) | rows/s | x {baseline} | client CPU s |{server_head} peak RSS MiB | equal |")
    print("|---|---|---|---|---|" + ("---|" if servers else "") + "---|---|")
    variants = parts.get(part, {})
    base_walls = [v[0] for v in variants.get(baseline, []) if timed(v)]
    base = statistics.median(base_walls) if base_walls else None
    for variant, values in variants.items():
        walls = [v[0] for v in values if timed(v)]
        if not walls:
            print(f"| {variant} | failed | | | | | | |")
            continue
        med = statistics.median(walls)
        ratio = f"{med / base:.2f}" if base else "-"
        rss = max(v[1] for v in values) / 1024
        cpu = statistics.median(v[2] for v in values)
        server = ""
        if servers:
            known = [v[3] for v in values if v[3] is not None]
            server = f" {statistics.median(known):.2f} |" if known else " - |"
        equal = verdict(values)
        print(f"| {variant} | {med:.2f} ({min(walls):.2f}-{max(walls):.2f}) | {rows / med:,.0f} | {ratio} "
              f"| {cpu:.2f} |{server} {rss:.1f} | {equal} |")
    # On a noisy machine the ratio of each run to the baseline of the same round says more than
    # the ratio of the medians: the variants of one round ran back to back.
    base_by_run = {v[5]: v[0] for v in variants.get(baseline, []) if timed(v)}
    print(f"\nx {baseline}, run by run (each run against the {baseline} run of its round):")
    for variant, values in variants.items():
        if variant == baseline:
            continue
        paired = [v[0] / base_by_run[v[5]] for v in values if timed(v) and v[5] in base_by_run]
        if paired:
            print(f"  {variant:<14} " + " ".join(f"{r:.3f}" for r in paired) + f"  (median {statistics.median(paired):.3f})")

rows = 4 * customers
table("pg", "PostgreSQL -> PostgreSQL, into the existing schema (PK, UNIQUE, FK, index)", "pipe", rows)

def rss_against_size(part, title):
    small_runs = parts.get(part + "-small", {}).get("fast path")
    big_runs = parts.get(part, {}).get("fast path")
    if not (small_runs and big_runs):
        return
    def peaks(values, i):
        peaks = [v[i] / 1024 for v in values]
        return f"median {statistics.median(peaks):.1f} MiB (max {max(peaks):.1f})"
    small_equal = verdict(small_runs)
    print(f"\n{title} fast path peak RSS, {len(small_runs)} runs each: {peaks(small_runs, 1)} at {small:,} customers "
          f"(median {statistics.median(v[0] for v in small_runs):.2f} s, equal: {small_equal}), "
          f"{peaks(big_runs, 1)} at {customers:,} customers")
    print(f"{title} fast path peak anonymous memory (RSS without file pages), sampled every 50 ms: "
          f"{peaks(small_runs, 6)} at {small:,} customers, {peaks(big_runs, 6)} at {customers:,} customers")

rss_against_size("pg", "PostgreSQL")
table("sqlite", "SQLite -> SQLite (sqlite3 runs with foreign_keys off, its default)", "sqlite3 ATTACH", rows)
rss_against_size("sqlite", "SQLite")
PY

[ -z "$failed" ] || die "at least one run failed or left a target that differs from its source (see above)"
