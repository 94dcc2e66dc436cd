# Functions to start and stop the Babelfish TDS server for the live SQL Server tests (sourced).
#
# tds_server_start: when DMF_TEST_MSSQL_URL is unset and ../shared/babelfish/bbf.sh exists,
#   starts Babelfish with it and exports DMF_TEST_MSSQL_URL and DMF_TEST_MSSQL_SERVER=babelfish
#   (dmf-mssql's build.rs then ignores, with their reason, the live tests that need what only
#   SQL Server has). A server that was already running is used and left running.
# tds_server_stop: stops the server if tds_server_start started it.

TDS_BBF_SCRIPT=${TDS_BBF_SCRIPT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/../shared/babelfish/bbf.sh}
TDS_SERVER_STARTED=

tds_server_start() {
  if [ -n "${DMF_TEST_MSSQL_URL:-}" ]; then
    return 0
  fi
  if [ ! -f "$TDS_BBF_SCRIPT" ]; then
    echo "WARNING: no TDS server: $TDS_BBF_SCRIPT not found and DMF_TEST_MSSQL_URL unset;" \
      "the live SQL Server tests will be listed as ignored" >&2
    return 0
  fi
  local url
  if url=$(bash "$TDS_BBF_SCRIPT" status 2>/dev/null); then
    echo "Babelfish already running: using it and leaving it running" >&2
  else
    url=$(bash "$TDS_BBF_SCRIPT" start) || { echo "Babelfish did not start" >&2; return 1; }
    TDS_SERVER_STARTED=1
  fi
  export DMF_TEST_MSSQL_URL=$url DMF_TEST_MSSQL_SERVER=babelfish
  # Its self-signed certificate (bbf.sh makes one when openssl exists), for the TLS live test.
  local certificate="${BBF_ROOT:-/tmp/dmf-bbf}/data/server.crt"
  if [ -z "${DMF_TEST_MSSQL_TLS_CA:-}" ] && [ -r "$certificate" ]; then
    export DMF_TEST_MSSQL_TLS_CA=$certificate
  fi
}

tds_server_stop() {
  if [ -n "$TDS_SERVER_STARTED" ]; then
    bash "$TDS_BBF_SCRIPT" stop >/dev/null 2>&1 || true
    TDS_SERVER_STARTED=
  fi
}
