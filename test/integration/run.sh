#!/bin/sh
# run.sh - the integration and conformance suites (node --test), run by
# `make check` (automake TESTS, with POLLGATE_BUILDDIR and POLLGATE_SRCDIR
# set to absolute paths) or by hand from anywhere (both default to the
# repository root above this script).
#
# Exit status: node's, or 77 (automake SKIP) when test/node_modules is
# missing - unless POLLGATE_REQUIRE_INTEGRATION=1, then that is an error.
# Binaries under test can be overridden with POLLGATE_BIN / WSC_PROBE_BIN.

here=$(cd "$(dirname "$0")" && pwd) || exit 1
root=$(cd "$here/../.." && pwd) || exit 1
POLLGATE_SRCDIR=${POLLGATE_SRCDIR:-$root}
POLLGATE_BUILDDIR=${POLLGATE_BUILDDIR:-$POLLGATE_SRCDIR}
export POLLGATE_SRCDIR POLLGATE_BUILDDIR

if [ ! -d "$POLLGATE_SRCDIR/test/node_modules" ]; then
    if [ "${POLLGATE_REQUIRE_INTEGRATION:-0}" = 1 ]; then
        echo "run.sh: $POLLGATE_SRCDIR/test/node_modules is missing: run 'npm ci' in $POLLGATE_SRCDIR/test" >&2
        exit 1
    fi
    echo "run.sh: SKIP: $POLLGATE_SRCDIR/test/node_modules is missing (run 'npm ci' in test/ to enable the integration tests)"
    exit 77
fi

if ! command -v node >/dev/null 2>&1; then
    echo "run.sh: node not found (Node.js >= 20 is needed)" >&2
    exit 1
fi

# --test-force-exit: a test whose cleanup failed must not keep the run alive;
# --test-timeout: no single test may hang the suite.
exec node --test --test-concurrency=2 --test-force-exit --test-timeout=180000 \
    "$POLLGATE_SRCDIR"/test/integration/*.test.mjs
