#!/usr/bin/env bash
# demo_smoke.sh - the quick start's first command, run as a user runs it:
# `contrib/dev.sh demo` (conf/pollgate.ini in front of the demo chat
# upstream), used with curl as the README shows, then stopped with Ctrl-C.
#
# Checked: "ready:" is printed; the admin listener answers GET /health; a
# native session on /chat receives the demo upstream's "joined" broadcast,
# and a message it sends comes back broadcast; Ctrl-C (SIGINT to the whole
# process group, as a terminal sends it) ends the demo with status 0 and no
# shell error ("unbound variable"), and leaves nothing listening on the
# demo's ports or running; so does pollgate stopping on its own (a second
# run, SIGTERM to pollgate alone).
#
# Run by `contrib/dev.sh test` after the release build (so `demo` builds
# nothing). The demo's ports are fixed (8080 and 9090 from
# conf/pollgate.ini, 9000 for the upstream): when one is taken, it fails
# saying so (stop what holds it, or leave the check out with
# SKIP_DEMO_SMOKE=1). Whatever ends this script (a failure, Ctrl-C, a CI
# timeout) ends the demo too. Exit status 0 pass, 1 fail.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${DEMO_SMOKE_LOG:-$(mktemp /tmp/pollgate-demo-smoke.XXXXXX)}"
mkdir -p "$(dirname "$OUT")"
GW=127.0.0.1:8080
ADMIN=127.0.0.1:9090
UP=127.0.0.1:9000

listening() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
# Running: exists and is not a zombie (kill -0 succeeds on a zombie).
alive() { [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }
# group_pids PGID [COMM]: the live processes of a process group (from /proc,
# procps may not be installed), optionally only those named COMM.
group_pids() {
    local f st pid comm
    for f in /proc/[0-9]*/stat; do
        st="$(cat "$f" 2>/dev/null)" || continue
        pid="${st%% *}"
        comm="${st#*(}"; comm="${comm%)*}"
        set -- "$1" "${2:-}" ${st##*) }
        # after the name: state ppid pgrp ...
        [ "$5" = "$1" ] && [ "$3" != Z ] && { [ -z "$2" ] || [ "$comm" = "$2" ]; } &&
            echo "$pid"
    done
}
fail() {
    echo "demo smoke: FAIL: $*" >&2
    echo "----- contrib/dev.sh demo output ($OUT)" >&2
    cat "$OUT" >&2
    exit 1
}
# The demo runs in a process group of its own, which a Ctrl-C or a
# timeout's signal to ours does not reach: end it on every way out.
pgid=
cleanup() { if [ -n "$pgid" ]; then kill -KILL -- "-$pgid" 2>/dev/null; fi; pgid=; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

for p in $GW $ADMIN $UP; do
    if listening "$p"; then
        echo "demo smoke: FAIL: $p is in use, and the demo's ports are fixed:" \
             "stop what listens there, or set SKIP_DEMO_SMOKE=1" >&2
        exit 1
    fi
done

# start_demo: `contrib/dev.sh demo` in a process group of its own (job
# control), so that SIGINT can go to all of it as Ctrl-C in a terminal does;
# returns once it printed "ready:" and the admin listener answers /health
# (pollgate's loop runs: its signal handlers are in place).
start_demo() {
    : >"$OUT"
    set -m
    # SIGINT back to its default, as for a command typed at a terminal:
    # started from a background job (CI runners, nohup ... &) this script
    # inherits SIGINT ignored, which a shell cannot trap or reset, and the
    # demo would ignore the Ctrl-C.
    env --default-signal=INT "$ROOT/contrib/dev.sh" demo </dev/null >>"$OUT" 2>&1 &
    pgid=$!
    set +m
    local code=
    for _ in $(seq 600); do
        if grep -q 'ready: http://' "$OUT"; then
            code="$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://$ADMIN/health")"
            [ "$code" = 200 ] && return 0
        fi
        alive "$pgid" || fail "the demo exited before it was ready"
        sleep 0.1
    done
    fail "not ready within 60 s (last GET /health: '${code:-none}')"
}

# end_demo WHAT: wait (at most 60 s) for the demo to end after WHAT; it must
# end with status 0, no shell error, nothing listening, nothing left.
end_demo() {
    for _ in $(seq 600); do
        alive "$pgid" || break
        sleep 0.1
    done
    alive "$pgid" && fail "still running 60 s after $1"
    wait "$pgid"
    local rc=$?
    [ "$rc" = 0 ] || fail "exit status $rc after $1, want 0"
    if grep -n -E 'unbound variable|command not found|line [0-9]+:' "$OUT" >&2; then
        fail "shell errors in the output after $1 (above)"
    fi
    for p in $GW $ADMIN $UP; do
        listening "$p" && fail "$p still listening after $1"
    done
    # pgid was the demo's process group: nothing of it may be left.
    local left
    left="$(group_pids "$pgid")"
    if [ -n "$left" ]; then
        for p in $left; do tr '\0' ' ' <"/proc/$p/cmdline" >&2; echo >&2; done
        fail "processes of the demo left after $1: $left"
    fi
    pgid=
}

start_demo
open="$(curl -s --max-time 10 -X POST "http://$GW/chat/sessions")"
id="$(printf '%s' "$open" | sed -n 's/.*"session":"\([A-Za-z0-9_-]*\)".*/\1/p')"
[ -n "$id" ] || fail "POST /chat/sessions answered '$open'"

# The upstream broadcasts "userN joined" to everyone when a client connects,
# so the session's first poll has it (held until it arrives, at most 10 s).
poll="$(curl -s --max-time 10 "http://$GW/chat/sessions/$id/poll?ack=0")"
case "$poll" in
    *'"seq":1'*joined*) ;;
    *) fail "first poll answered '$poll', want seq 1 with the 'joined' broadcast" ;;
esac

sent="$(curl -s --max-time 10 -X POST -H 'Content-Type: text/plain' \
    -d 'hello from the demo smoke' "http://$GW/chat/sessions/$id/send")"
[ "$sent" = '{"ack":null}' ] || fail "send answered '$sent'"
poll="$(curl -s --max-time 10 "http://$GW/chat/sessions/$id/poll?ack=1")"
case "$poll" in
    *'"seq":2'*'hello from the demo smoke'*) ;;
    *) fail "second poll answered '$poll', want seq 2 with the message sent" ;;
esac

# Ctrl-C, with the session still open (a browser tab left open).
t0=$(date +%s%N)
kill -INT -- "-$pgid"
end_demo "Ctrl-C"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))

# pollgate stopped on its own (here by SIGTERM to it alone): the demo must
# stop the upstream too and end cleanly. This is where the EXIT trap runs
# after cmd_demo has returned, so it cannot use the function's locals.
start_demo
gw_pid="$(group_pids "$pgid" pollgate)"
[ -n "$gw_pid" ] || fail "no pollgate process in the demo's process group"
kill -TERM "$gw_pid"
end_demo "SIGTERM to pollgate alone"

echo "demo smoke: PASS (ready and /health 200, session $(printf '%.8s' "$id") got the broadcast and its own message; Ctrl-C ended everything in $ms ms, status 0; pollgate stopping alone ended the demo cleanly)"
[ -z "${DEMO_SMOKE_LOG:-}" ] && rm -f "$OUT"
exit 0
