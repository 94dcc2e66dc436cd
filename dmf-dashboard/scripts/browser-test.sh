#!/usr/bin/env bash
# Browser test of the dashboard page: runs the dashboard_demo example (a SQLite migration served
# with the dashboard on 127.0.0.1), waits for its run to complete, then loads the page in
# headless Chromium and checks, in the DOM the page's script built, that every migration shows
# 100 % and that the run's summary counts match the API. Saves a screenshot to
# ${CARGO_TARGET_DIR:-target}/dashboard-screenshot.png, copies it to target/ in the checkout (the
# CI artifact, wherever the build directory is), and to dmf-dashboard/docs/screenshot.png
# with --update-docs). Installs Debian's chromium when missing. Exits non-zero on any failure.
#
#   bash dmf-dashboard/scripts/browser-test.sh [--update-docs]
#
# DASHBOARD_PORT chooses the port (default 18765).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
port="${DASHBOARD_PORT:-18765}"
base="http://127.0.0.1:$port"
update_docs=false
[[ "${1:-}" == "--update-docs" ]] && update_docs=true

fail() { echo "browser-test: FAILED: $*" >&2; exit 1; }
step() { echo "browser-test: $*"; }

# --- Chromium, from Debian's packages (scripts/chromium.sh) ---------------------------------
source "$root/scripts/chromium.sh"
chromium_ensure

# --- the demo --------------------------------------------------------------------------------
step "building the dashboard_demo example"
cargo build --quiet -p dmf-dashboard --example dashboard_demo
demo="$target_dir/debug/examples/dashboard_demo"
[[ -x "$demo" ]] || fail "no demo binary at $demo"

work="$(mktemp -d)"
demo_pid=""
cleanup() {
    if [[ -n "$demo_pid" ]] && kill -0 "$demo_pid" 2>/dev/null; then
        kill -INT "$demo_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$demo_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$demo_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

if curl -s -o /dev/null "$base/healthz"; then
    fail "port $port is already in use (set DASHBOARD_PORT)"
fi
token="browser-test-$RANDOM$RANDOM"
step "starting the demo on $base"
DMF_DASHBOARD_TOKEN="$token" "$demo" --dashboard "127.0.0.1:$port" --dir "$work/data" \
    >"$work/demo.out" 2>"$work/demo.err" &
demo_pid=$!

# Wait for the server, then for the run to complete (it takes a few seconds on purpose).
for _ in $(seq 300); do
    curl -s -o /dev/null "$base/healthz" && break
    kill -0 "$demo_pid" 2>/dev/null || { cat "$work/demo.err" >&2; fail "the demo exited early"; }
    sleep 0.1
done
curl -sf -o /dev/null "$base/healthz" || fail "the dashboard did not come up on $base"
status=""
for _ in $(seq 600); do
    status="$(curl -sf "$base/api/runs" | python3 -c 'import json,sys; r=json.load(sys.stdin)["runs"]; print(r[0]["status"] if r else "none")')"
    [[ "$status" == "running" || "$status" == "none" ]] || break
    sleep 0.2
done
[[ "$status" == "completed" ]] || { cat "$work/demo.out" "$work/demo.err" >&2; fail "the run ended '$status', not completed"; }
step "run completed"

# What the page must show, from the API.
read -r run read_total rejected_total < <(curl -sf "$base/api/runs" | python3 -c '
import json, sys
run = json.load(sys.stdin)["runs"][0]
print(run["id"], run["totals"]["read"], run["totals"]["rejected"])')
mapfile -t migrations < <(curl -sf "$base/api/migrations" | python3 -c '
import json, sys
for m in json.load(sys.stdin)["migrations"]:
    print(m["name"])')
[[ ${#migrations[@]} -gt 0 ]] || fail "no migration registered"

# The token from the environment opens the mutating routes; no token does not.
code="$(curl -s -o /dev/null -w '%{http_code}' -X POST "$base/api/runs/$run/cancel")"
[[ "$code" == 401 ]] || fail "cancel without a token answered $code, not 401"
code="$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $token" "$base/api/runs/$run/cancel")"
[[ "$code" == 409 ]] || fail "cancel of a completed run with the token answered $code, not 409"

# --- the page in headless Chromium --------------------------------------------------------------

step "dumping the page's DOM"
timeout 120 "${chrome[@]}" --user-data-dir="$work/profile-dom" --dump-dom "$base/" \
    >"$work/dom.html" 2>"$work/chromium-dom.log" || { tail -20 "$work/chromium-dom.log" >&2; fail "chromium --dump-dom failed"; }

check() { grep -qF -- "$1" "$work/dom.html" || { echo "--- DOM ---" >&2; cat "$work/dom.html" >&2; fail "$2"; }; }
for name in "${migrations[@]}"; do
    check "data-migration=\"$name\" data-status=\"completed\" data-percent=\"100\"" "migration $name is not shown completed at 100 %"
done
check "· 100 %" "no progress bar text reads 100 %"
check "id=\"run-totals\" data-run=\"$run\"" "the summary of run $run is not shown"
read_text="$(LC_ALL=C.UTF-8 python3 -c "print(f'{$read_total:,}')")"
rejected_text="$(LC_ALL=C.UTF-8 python3 -c "print(f'{$rejected_total:,}')")"
check "<li data-count=\"read\"><b>$read_text</b> read</li>" "the summary does not show $read_text rows read"
check "<li data-count=\"rejected\"><b>$rejected_text</b> rejected</li>" "the summary does not show $rejected_text rejects"
check "id=\"reject-samples\"" "no reject samples are shown"
check "<div id=\"notice\" class=\"notice\" role=\"alert\" hidden=\"\">" "the page shows an error notice"
step "the page shows ${migrations[*]} at 100 % and run $run: $read_text read, $rejected_text rejected"

shot="$target_dir/dashboard-screenshot.png"
mkdir -p "$target_dir"
step "taking a screenshot"
timeout 120 "${chrome[@]}" --user-data-dir="$work/profile-shot" --screenshot="$shot" "$base/" \
    >"$work/chromium-shot.log" 2>&1 || { tail -20 "$work/chromium-shot.log" >&2; fail "chromium --screenshot failed"; }
[[ -s "$shot" ]] || fail "no screenshot at $shot"
if $update_docs; then
    cp "$shot" "$root/dmf-dashboard/docs/screenshot.png"
    step "copied to dmf-dashboard/docs/screenshot.png"
fi
mkdir -p "$root/target"
if [[ "$shot" != "$root/target/dashboard-screenshot.png" ]]; then
    cp "$shot" "$root/target/dashboard-screenshot.png"
fi
step "screenshot: $shot (copy in $root/target/dashboard-screenshot.png)"
echo "browser-test: 1 passed, 0 failed"
