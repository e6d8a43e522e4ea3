#!/bin/sh
# run.sh - the browser suite (node --test, headless Chromium driven by npm
# playwright-core): pollgate's demo page and client, and sockjs-client on
# every transport, with window.WebSocket removed. Run by `make check`
# (automake TESTS, with POLLGATE_BUILDDIR and POLLGATE_SRCDIR set to absolute
# paths) or by hand from anywhere (both default to the repository root above
# this script).
#
# Exit status: node's, or 77 (automake SKIP) when test/node_modules (with
# playwright-core and sockjs-client) or Chromium is missing - unless
# POLLGATE_REQUIRE_INTEGRATION=1, then that is an error.
# Overrides: POLLGATE_BIN (binary under test), POLLGATE_CHROMIUM (default
# /usr/bin/chromium), POLLGATE_OUTPUT_DIR (screenshots; default
# $POLLGATE_BUILDDIR/test/output).

here=$(cd "$(dirname "$0")" && pwd) || exit 1
root=$(cd "$here/../.." && pwd) || exit 1
POLLGATE_SRCDIR=${POLLGATE_SRCDIR:-$root}
POLLGATE_BUILDDIR=${POLLGATE_BUILDDIR:-$POLLGATE_SRCDIR}
POLLGATE_CHROMIUM=${POLLGATE_CHROMIUM:-/usr/bin/chromium}
export POLLGATE_SRCDIR POLLGATE_BUILDDIR POLLGATE_CHROMIUM

missing() {
    if [ "${POLLGATE_REQUIRE_INTEGRATION:-0}" = 1 ]; then
        echo "run.sh: $1: $2" >&2
        exit 1
    fi
    echo "run.sh: SKIP: $1 ($2 to enable the browser tests)"
    exit 77
}

modules="$POLLGATE_SRCDIR/test/node_modules"
for m in ws playwright-core sockjs-client; do
    [ -d "$modules/$m" ] ||
        missing "$modules/$m is missing" "run 'npm ci' in $POLLGATE_SRCDIR/test"
done
[ -x "$POLLGATE_CHROMIUM" ] ||
    missing "$POLLGATE_CHROMIUM is missing" "run 'apt-get install chromium'"

if ! command -v node >/dev/null 2>&1; then
    echo "run.sh: node not found (Node.js >= 20 is needed)" >&2
    exit 1
fi

# One file at a time: each drives its own Chromium and gateways.
# --test-force-exit: a failed cleanup must not leave the run hanging.
exec node --test --test-concurrency=1 --test-force-exit \
    "$POLLGATE_SRCDIR"/test/browser/*.test.mjs
