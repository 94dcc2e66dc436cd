# Sourced by the browser tests (dmf-dashboard/scripts/browser-test.sh,
# dmf-cli/scripts/serve-browser-test.sh): Debian's chromium, installed when missing, and the
# headless command line they load pages with (the array `chrome`). Needs a `fail` function.

chromium_ensure() {
  if ! command -v chromium >/dev/null 2>&1; then
    echo "installing chromium (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
  fi
  command -v chromium >/dev/null 2>&1 || fail "chromium is not installed"
}

# shellcheck disable=SC2034 # used by the scripts that source this file
chrome=(chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
        --disable-background-networking --disable-component-update --disable-sync
        --hide-scrollbars --window-size=1366,1000 --virtual-time-budget=10000)
