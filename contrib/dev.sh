#!/usr/bin/env bash
# contrib/dev.sh - one entry point for people and CI.
#
#   contrib/dev.sh demo   install what is missing, build, start the demo
#                         upstream and pollgate with conf/pollgate.ini
#   contrib/dev.sh test   install what is missing, build with ASan/UBSan,
#                         run every test (unit, integration, browser, fuzz
#                         smoke, a 60 s chaos soak on a release build,
#                         the quick start's `demo` with curl and Ctrl-C,
#                         distcheck); exits non-zero on any failure.
#                         SKIP_SOAK=1 / SKIP_DEMO_SMOKE=1 / SKIP_DISTCHECK=1
#                         leave those out;
#                         SOAK_DURATION / SOAK_SESSIONS size the soak
#   contrib/dev.sh deps   only install what is missing
#
# Installing is idempotent: packages already present are not touched and
# apt-get/npm are not run at all when nothing is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build"
JOBS="$(nproc 2>/dev/null || echo 2)"

BUILD_PKGS="gcc make autoconf automake libtool pkg-config libevent-dev
  libssl-dev libjansson-dev libhttp-parser-dev openssl
  ca-certificates curl"
# chromium: the browser tests (test/browser), driven by npm playwright-core
# systemd, supervisor, haproxy, nginx-light, slowhttptest: the contrib/ files
# and the slow-client test exercised by test/integration; iproute2: ss, which
# shows the listening sockets' accept queues (listen_backlog.test.mjs)
TEST_PKGS="libcmocka-dev clang libclang-rt-14-dev chromium systemd supervisor slowhttptest haproxy nginx-light logrotate iproute2"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_ensure() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
            missing+=("$p")
    done
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        missing+=(nodejs npm)
    fi
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
}

# npm ci only when node_modules is missing or older than the lockfile.
npm_ensure() {
    local dir="$1"
    if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
       [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        log "npm ci in ${dir#$ROOT/}"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

autogen() {
    if [ ! -x "$ROOT/configure" ] || [ "$ROOT/configure.ac" -nt "$ROOT/configure" ] ||
       [ "$ROOT/Makefile.am" -nt "$ROOT/Makefile.in" ]; then
        log "autogen"
        "$ROOT/autogen.sh" >/dev/null 2>&1 || "$ROOT/autogen.sh"
    fi
}

# build DIR [configure args...]: out-of-tree build in $BUILD/DIR
build() {
    local dir="$BUILD/$1"; shift
    autogen
    mkdir -p "$dir"
    if [ ! -f "$dir/Makefile" ] || [ "$ROOT/configure" -nt "$dir/Makefile" ]; then
        log "configure ${dir#$ROOT/} $*"
        (cd "$dir" && "$ROOT/configure" --quiet "$@")
    fi
    log "make ${dir#$ROOT/}"
    make -C "$dir" -j"$JOBS" >/dev/null
}

cmd_deps() {
    apt_ensure $BUILD_PKGS $TEST_PKGS
    npm_ensure "$ROOT/test"
    npm_ensure "$ROOT/contrib/demo"
}

cmd_demo() {
    apt_ensure $BUILD_PKGS
    npm_ensure "$ROOT/contrib/demo"
    build release CFLAGS="-O2 -g"
    local conf="${POLLGATE_CONF:-$ROOT/conf/pollgate.ini}"
    log "starting the demo upstream on 127.0.0.1:9000"
    node "$ROOT/contrib/demo/upstream.mjs" --port 9000 &
    local up=$!
    # Expand the pids now: the EXIT trap runs after this function's locals
    # are gone (set -u would stop it with "unbound variable").
    trap "kill $up 2>/dev/null; wait $up 2>/dev/null" EXIT
    trap 'exit 0' INT TERM
    # wait until the upstream listens (bounded)
    for _ in $(seq 50); do
        (exec 3<>/dev/tcp/127.0.0.1/9000) 2>/dev/null && break
        sleep 0.1
    done
    log "starting pollgate -c ${conf#$ROOT/} (Ctrl-C stops both)"
    "$BUILD/release/gateway/pollgate" -c "$conf" &
    local gw=$!
    trap "kill $gw $up 2>/dev/null; wait $gw $up 2>/dev/null" EXIT
    local listen
    listen="$(sed -n 's/^[[:space:]]*listen[[:space:]]*=[[:space:]]*\([^[:space:];]*\).*/\1/p' "$conf" | head -1)"
    # the first listen is [gateway]'s, a second one [admin]'s (if set)
    local admin
    admin="$(sed -n 's/^[[:space:]]*listen[[:space:]]*=[[:space:]]*\([^[:space:];]*\).*/\1/p' "$conf" | sed -n 2p)"
    # Ready once pollgate answers HTTP (its loop runs): the port accepts
    # connections as soon as it is bound, earlier than that.
    for _ in $(seq 100); do
        [ "$(curl -s --max-time 1 -o /dev/null -w '%{http_code}' "http://$listen/" 2>/dev/null)" != 000 ] && break
        kill -0 "$gw" 2>/dev/null || { log "pollgate did not start (see above)"; exit 1; }
        sleep 0.1
    done
    log "ready: http://$listen/${admin:+  (health: http://$admin/health, metrics: http://$admin/metrics)}"
    wait $gw
}

cmd_test() {
    cmd_deps
    build asan --enable-asan
    log "make check (ASan + UBSan)"
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    export POLLGATE_REQUIRE_INTEGRATION=1
    if ! make -C "$BUILD/asan" -j"$JOBS" check; then
        for f in $(find "$BUILD/asan/test" -name '*.log' 2>/dev/null); do
            grep -q '^:test-result: \(FAIL\|ERROR\)' "${f%.log}.trs" 2>/dev/null &&
                { echo "----- $f"; tail -n 200 "$f"; }
        done
        exit 1
    fi
    cat "$BUILD"/asan/test/unit/*.log "$BUILD"/asan/test/integration/*.log \
        "$BUILD"/asan/test/browser/*.log 2>/dev/null |
        grep -E '^(# (tests|pass|fail)|\[  (PASSED|FAILED)  \])' || true
    log "fuzz smoke (libFuzzer, ${FUZZ_SECONDS:-20}s per target)"
    build fuzz CC=clang --enable-fuzzing
    for t in "$BUILD"/fuzz/test/fuzz/fuzz_*; do
        [ -x "$t" ] || continue
        local name seeds dict
        name="$(basename "$t")"
        seeds="$ROOT/test/fuzz/seeds/${name#fuzz_}"
        dict="$ROOT/test/fuzz/${name#fuzz_}.dict"
        local corpus="$BUILD/fuzz/corpus-${name#fuzz_}"
        mkdir -p "$corpus"
        "$t" -max_total_time="${FUZZ_SECONDS:-20}" -print_final_stats=1 \
            -artifact_prefix="$BUILD/fuzz/$name-" \
            $( [ -f "$dict" ] && echo "-dict=$dict" ) "$corpus" \
            $( [ -d "$seeds" ] && echo "$seeds" ) 2>"$BUILD/fuzz/$name.log" ||
            { tail -n 60 "$BUILD/fuzz/$name.log"; exit 1; }
        grep -h 'stat::number_of_executed_units' "$BUILD/fuzz/$name.log" |
            sed "s/^/$name: /"
    done
    if [ "${SKIP_SOAK:-0}" != 1 ]; then
        # the chaos soak, short version, on a release build (ASan would
        # mostly measure itself at 2,000 sessions on a small machine)
        log "soak (${SOAK_DURATION:-60}s, ${SOAK_SESSIONS:-2000} sessions, release build)"
        build release CFLAGS="-O2 -g"
        SOAK_DURATION="${SOAK_DURATION:-60}" make -C "$BUILD/release" soak \
            >"$BUILD/release/soak.log" 2>&1 ||
            { tail -n 80 "$BUILD/release/soak.log"; exit 1; }
        sed -n '/^pollgate soak:/,/^SOAK PASSED/p' "$BUILD/release/soak.log"
    fi
    if [ "${SKIP_DEMO_SMOKE:-0}" != 1 ]; then
        # the quick start's first command as a user runs it, then Ctrl-C
        # (built first: the smoke gives `demo` 60 s to be ready)
        build release CFLAGS="-O2 -g"
        log "quick start smoke (contrib/dev.sh demo, curl, Ctrl-C)"
        DEMO_SMOKE_LOG="$BUILD/release/demo_smoke.log" \
            "$ROOT/test/tools/demo_smoke.sh" || exit 1
    fi
    if [ "${SKIP_DISTCHECK:-0}" != 1 ]; then
        log "make distcheck"
        build dist
        # (the distributed tree has no node_modules: integration tests skip there)
        POLLGATE_REQUIRE_INTEGRATION=0 make -C "$BUILD/dist" distcheck >"$BUILD/dist/distcheck.log" 2>&1 ||
            { tail -n 80 "$BUILD/dist/distcheck.log"; exit 1; }
    fi
    log "all tests passed"
    # One plain closing line over every runner's counts.
    cat "$BUILD"/asan/test/unit/*.log "$BUILD"/asan/test/integration/*.log \
        "$BUILD"/asan/test/browser/*.log 2>/dev/null | awk '
        /^# pass [0-9]+$/ { p += $3 }
        /^# fail [0-9]+$/ { f += $3 }
        /^\[  PASSED  \] [0-9]+ test/ { p += $4 }
        /^\[  FAILED  \] [0-9]+ test/ { f += $4 }
        END { printf "%d passed, %d failed\n", p, f }'
}

case "${1:-}" in
    demo) cmd_demo ;;
    test) cmd_test ;;
    deps) cmd_deps ;;
    *) echo "usage: $0 demo|test|deps" >&2; exit 2 ;;
esac
