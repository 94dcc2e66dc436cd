#!/usr/bin/env bash
# Browser test of `dmf serve`: one `dmf sync` process fills a SQLite target, then `dmf serve`
# (another process) serves the dashboard over that target's control tables, and headless
# Chromium loads the page: every table of the run must show completed at 100 %, and the run's
# totals must match the API's. Installs Debian's chromium when missing. Exits non-zero on any
# failure.
#
#   bash dmf-cli/scripts/serve-browser-test.sh
#
# SERVE_PORT chooses the port (default 18766).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
port="${SERVE_PORT:-18766}"
base="http://127.0.0.1:$port"

fail() { echo "serve-browser-test: FAILED: $*" >&2; exit 1; }
step() { echo "serve-browser-test: $*"; }

# --- Chromium, from Debian's packages (scripts/chromium.sh) ---------------------------------
source "$root/scripts/chromium.sh"
chromium_ensure

step "building dmf"
cargo build --quiet -p dmf-cli --bin dmf
dmf="$target_dir/debug/dmf"
[[ -x "$dmf" ]] || fail "no dmf binary at $dmf"

work="$(mktemp -d)"
serve_pid=""
cleanup() {
    if [[ -n "$serve_pid" ]] && kill -0 "$serve_pid" 2>/dev/null; then
        kill -INT "$serve_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$serve_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Two SQLite files of one schema; the source holds 300 customers and 900 orders.
python3 - "$work" <<'PY'
import sqlite3, sys
schema = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers (id), total REAL);
"""
for name in ("prod.db", "test.db"):
    db = sqlite3.connect(f"{sys.argv[1]}/{name}")
    db.executescript(schema)
    if name == "prod.db":
        db.executemany("INSERT INTO customers VALUES (?, ?)", [(i, f"customer {i}") for i in range(1, 301)])
        db.executemany("INSERT INTO orders VALUES (?, ?, ?)", [(i, 1 + i % 300, i * 1.5) for i in range(1, 901)])
    db.commit()
PY

step "syncing with one dmf process"
env -u DMF_SOURCE_URL -u DMF_TARGET_URL -u DMF_CONFIG "$dmf" sync --source "sqlite://$work/prod.db" \
    --target "sqlite://$work/test.db" >"$work/sync.out" 2>&1 || { cat "$work/sync.out" >&2; fail "dmf sync failed"; }

if curl -s -o /dev/null "$base/healthz"; then
    fail "port $port is already in use (set SERVE_PORT)"
fi
step "serving its runs with another: dmf serve on $base"
env -u DMF_DASHBOARD_TOKEN "$dmf" serve --target "sqlite://$work/test.db" --bind "127.0.0.1:$port" \
    >"$work/serve.out" 2>"$work/serve.err" &
serve_pid=$!
for _ in $(seq 300); do
    curl -s -o /dev/null "$base/healthz" && break
    kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.err" >&2; fail "dmf serve exited early"; }
    sleep 0.1
done
curl -sf -o /dev/null "$base/healthz" || fail "dmf serve did not come up on $base"

read -r run status read_total < <(curl -sf "$base/api/runs" | python3 -c '
import json, sys
run = json.load(sys.stdin)["runs"][0]
print(run["id"], run["status"], run["totals"]["read"])')
[[ "$status" == completed ]] || fail "the API shows run $run as $status, not completed"
mapfile -t migrations < <(curl -sf "$base/api/migrations" | python3 -c '
import json, sys
for m in json.load(sys.stdin)["migrations"]:
    print(m["name"])')
[[ " ${migrations[*]} " == *" customers "* && " ${migrations[*]} " == *" orders "* ]] \
    || fail "the API lists migrations '${migrations[*]}', not customers and orders"

step "dumping the page's DOM"
timeout 120 "${chrome[@]}" --user-data-dir="$work/profile" --dump-dom "$base/" \
    >"$work/dom.html" 2>"$work/chromium.log" || { tail -20 "$work/chromium.log" >&2; fail "chromium --dump-dom failed"; }

check() { grep -qF -- "$1" "$work/dom.html" || { echo "--- DOM ---" >&2; cat "$work/dom.html" >&2; fail "$2"; }; }
for name in "${migrations[@]}"; do
    check "data-migration=\"$name\" data-status=\"completed\" data-percent=\"100\"" "table $name is not shown completed at 100 %"
done
check "id=\"run-totals\" data-run=\"$run\"" "the summary of run $run is not shown"
read_text="$(LC_ALL=C.UTF-8 python3 -c "print(f'{$read_total:,}')")"
check "<li data-count=\"read\"><b>$read_text</b> read</li>" "the summary does not show $read_text rows read"
check "<div id=\"notice\" class=\"notice\" role=\"alert\" hidden=\"\">" "the page shows an error notice"
step "the page shows ${migrations[*]} completed at 100 % and run $run: $read_text read"
echo "serve-browser-test: 1 passed, 0 failed"
