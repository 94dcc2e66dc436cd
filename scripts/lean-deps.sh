#!/usr/bin/env bash
# Lean dependencies (issue 23 item 7): the `dmf` crate built with its SQLite adapter only pulls
# no HTTP client, no TLS stack, no SQL Server driver and no PostgreSQL driver, and it builds. Run by
# scripts/test; extra arguments (such as --locked) go to cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

# The crates (names only) of the facade's normal dependency tree with FEATURES.
crates() {
  cargo tree "$@" -p dmf --no-default-features -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u
}

lean=$(crates "$@" --features sqlite)
status=0
for crate in reqwest hyper axum rustls tiberius tokio-postgres; do
  if grep -qx "$crate" <<<"$lean"; then
    echo "lean-deps: dmf --no-default-features --features sqlite depends on $crate:" >&2
    cargo tree "$@" -p dmf --no-default-features --features sqlite -e normal -i "$crate" >&2
    status=1
  fi
done
# The check sees what it looks for: each crate is there with the feature that brings it.
grep -qx dmf-sqlite <<<"$lean" || { echo "lean-deps: dmf-sqlite is missing with --features sqlite" >&2; status=1; }
for pair in webhook:reqwest postgres:tokio-postgres mssql:tiberius dashboard:axum; do
  feature=${pair%%:*} crate=${pair#*:}
  if ! crates "$@" --features "sqlite,$feature" | grep -qx "$crate"; then
    echo "lean-deps: --features $feature does not bring $crate: this check would not see it" >&2
    status=1
  fi
done
[ "$status" = 0 ] || exit "$status"
# And the lean build compiles without a warning (the workspace build has every feature on).
log=$(cargo check "$@" -p dmf --no-default-features --features sqlite --lib --quiet --color never 2>&1) || {
  echo "$log" >&2
  exit 1
}
if grep -q '^warning' <<<"$log"; then
  echo "lean-deps: dmf --no-default-features --features sqlite builds with warnings:" >&2
  echo "$log" >&2
  exit 1
fi
echo "lean-deps: dmf with --no-default-features --features sqlite: no reqwest, hyper, axum, rustls, tiberius or tokio-postgres"
# The same for the `dmf` command built for SQLite only.
for banned in reqwest hyper axum rustls tiberius tokio-postgres; do
  if cargo tree "$@" -p dmf-cli --no-default-features --features sqlite -e normal --prefix none 2>/dev/null \
    | grep -q "^$banned v"; then
    echo "lean-deps: dmf-cli with --no-default-features --features sqlite pulls $banned" >&2
    exit 1
  fi
done
log=$(cargo check "$@" -p dmf-cli --no-default-features --features sqlite --quiet --color never 2>&1) || {
  echo "$log" >&2
  exit 1
}
if grep -q '^warning' <<<"$log"; then
  echo "lean-deps: dmf-cli --no-default-features --features sqlite builds with warnings:" >&2
  echo "$log" >&2
  exit 1
fi
echo "lean-deps: the dmf command with --no-default-features --features sqlite: no network client, no other driver"
