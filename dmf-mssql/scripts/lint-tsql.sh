#!/usr/bin/env bash
# Parses every T-SQL statement dmf-mssql generates with a second parser: sqlfluff's `tsql`
# dialect (parse only: no style rules). sqlparser's MsSqlDialect, used by the unit tests, is
# lenient (it accepts LIMIT, `::`, RETURNING…); sqlfluff is strict, so a statement that only
# passes because sqlparser is lenient fails here.
#
#   bash dmf-mssql/scripts/lint-tsql.sh [extra cargo test flags, e.g. --locked]
#
# 1. installs sqlfluff with pip when the pinned version is missing (idempotent, quiet);
# 2. runs the dump test, which writes one .sql file per generated statement into a temp dir
#    (`DMF_TSQL_DUMP_DIR`: `parsed/`, and `golden/` for those held by exact text);
# 3. parses them all: any unparsable statement fails the script, naming the file. The
#    `golden/` statements (BACKUP, RESTORE, ALTER DATABASE) are parsed too, but only
#    reported: sqlfluff cannot parse BACKUP and RESTORE VERIFYONLY either, so those are held by
#    exact-text tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/dmf-target}

SQLFLUFF_VERSION=4.5.0
PYTHON=${PYTHON:-python3}
if [ "$("$PYTHON" -m sqlfluff version 2>/dev/null || true)" != "$SQLFLUFF_VERSION" ]; then
  echo "== installing sqlfluff $SQLFLUFF_VERSION"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "sqlfluff==$SQLFLUFF_VERSION"
fi

dump=$(mktemp -d)
trap 'rm -rf "$dump"' EXIT
echo "== dumping the generated statements"
DMF_TSQL_DUMP_DIR="$dump" cargo test -p dmf-mssql --lib "$@" -- --exact sql::corpus::dump_statements_for_a_second_parser --quiet

# Parse every file whatever its size (sqlfluff skips files over 20 kB by default).
printf '[sqlfluff]\ndialect = tsql\nlarge_file_skip_byte_limit = 0\n' > "$dump/.sqlfluff"

shopt -s nullglob
statements=("$dump"/parsed/*.sql)
golden=("$dump"/golden/*.sql)
if [ "${#statements[@]}" -lt 40 ]; then
  echo "expected the dump to hold every generated statement, found only ${#statements[@]} files" >&2
  exit 1
fi

parses() {
  "$PYTHON" -m sqlfluff parse --dialect tsql --format none "$1" >/dev/null 2>&1
}

echo "== sqlfluff (tsql) parsing ${#statements[@]} statements"
if ! parses "$dump/parsed"; then
  failed=0
  for file in "${statements[@]}"; do
    if ! parses "$file"; then
      echo "-- sqlfluff cannot parse $(basename "$file"):" >&2
      cat "$file" >&2
      "$PYTHON" -m sqlfluff parse --dialect tsql "$file" 2>&1 | grep -E "PRS|unparsable" | head -5 >&2 || true
      failed=$((failed + 1))
    fi
  done
  echo "$failed of ${#statements[@]} statements do not parse as T-SQL" >&2
  exit 1
fi

unparsed=()
for file in "${golden[@]}"; do
  if ! parses "$file"; then
    unparsed+=("$(basename "$file" .sql)")
  fi
done
echo "== held by exact text (beyond sqlparser, or sqlparser-parsed but beyond sqlfluff's grammar): ${#golden[@]} statements; sqlfluff cannot parse ${#unparsed[@]} of them either: ${unparsed[*]:-none}"
echo "sqlfluff: ${#statements[@]} passed, 0 failed"
