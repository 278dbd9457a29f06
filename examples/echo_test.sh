#!/usr/bin/env bash
# //examples:echo cleans up after itself:
# - `echo PATH` serves, and on SIGTERM exits 0 and removes its socket file;
# - `echo PATH 2` (two OS threads) does the same with connections open on
#   both threads, closing them all and leaving no descriptor open;
# - the demo, sent SIGINT (or SIGTERM) alone in the middle of a run, exits
#   128 + the signal and leaves no child process and no socket directory.
# No speed is measured or asserted; every wait polls for a condition, with
# a bound.
set -euo pipefail

ECHO=$PWD/examples/echo
LOAD=$PWD/bench/echo_load
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# fail, poll
source "$PWD/examples/shell_checks.sh"

# The pid of the child of $1 whose command name is $2 (no procps needed).
child_named() {
  local c
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    if [[ "$(cat /proc/"$c"/comm 2>/dev/null)" == "$2" ]]; then
      echo "$c"
      return 0
    fi
  done
  return 1
}

# --- echo PATH ---------------------------------------------------------------
sock=$WORK/echo.sock
"$ECHO" "$sock" >"$WORK/serve.log" 2>&1 &
pid=$!
poll "$LOAD" --path "$sock" --probe 2>/dev/null || fail "echo PATH: no echo on $sock"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
((rc == 0)) || fail "echo PATH: exit status $rc after SIGTERM"
[[ ! -e $sock ]] || fail "echo PATH: left its socket file"

# --- echo PATH 2: two accept loops, one per OS thread -------------------------
# Every connection echoes; one SIGTERM closes the connections of both
# threads (a client holding some open sees EOF on each) and the listener,
# and the process exits 0 having found no descriptor of its serving left
# open (it checks /proc/self/fd itself and exits 1 otherwise).
sock=$WORK/echo2.sock
"$ECHO" "$sock" 2 >"$WORK/serve2.log" 2>&1 &
pid=$!
poll "$LOAD" --path "$sock" --probe 2>/dev/null || fail "echo PATH 2: no echo on $sock"
# Two OS threads of its own; TSan's runtime starts one more of its own once
# a program starts a thread, so this counts at least, not exactly.
threads=$(ls /proc/"$pid"/task | wc -l)
((threads >= 2)) || fail "echo PATH 2: $threads OS threads, not 2"
# The warm-up and window are bounds, not timings: under TSan each new green
# thread costs about 20 ms, and every connection must be served in the window.
"$LOAD" --path "$sock" --connections 64 --seconds 3 --warmup 2 >"$WORK/load2.log" 2>&1 ||
  fail "echo PATH 2: echo_load failed"
min_rts=$(sed -n 's/^RESULT .*min_conn_rts=\([0-9]*\).*/\1/p' "$WORK/load2.log")
((${min_rts:-0} >= 1)) || fail "echo PATH 2: a connection made no round trip"
# Holds 32 connections, each after one echo; prints "ready", then exits 0
# once every one of them has reached EOF (30 s bound).
/usr/bin/python3 - "$sock" >"$WORK/holder.log" 2>&1 <<'PY' &
import socket, sys
conns = []
for i in range(32):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(sys.argv[1])
    msg = b"ping %d" % i
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        got += s.recv(64)
    assert got == msg, got
    conns.append(s)
print("ready", flush=True)
for s in conns:
    while s.recv(64):
        pass
    s.close()
print("all closed", flush=True)
PY
holder=$!
poll grep -q ready "$WORK/holder.log" || fail "echo PATH 2: the holding client did not get its echoes"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
((rc == 0)) || fail "echo PATH 2: exit status $rc after SIGTERM"
rc=0
wait "$holder" || rc=$?
((rc == 0)) || fail "echo PATH 2: the holding client failed ($rc)"
grep -q "all closed" "$WORK/holder.log" || fail "echo PATH 2: connections not closed"
[[ ! -e $sock ]] || fail "echo PATH 2: left its socket file"
# The per-thread counts, for the log (which thread accepted is the kernel's
# and the listener's business, not asserted).
grep "connections accepted per thread" "$WORK/serve2.log" || fail "echo PATH 2: no per-thread line"

# --- the demo, interrupted -----------------------------------------------------
# Starts the demo, waits until it has a child named $2 (echo_load: a run is
# under way; epoll_echo: the C server's run), sends signal $1 to the demo
# only, and checks what it leaves.
interrupt_demo() {
  local sig=$1 child=$2 pid child_pid sock_dir c rc=0
  "$ECHO" >"$WORK/demo.log" 2>&1 &
  pid=$!
  poll child_named "$pid" "$child" >/dev/null || fail "demo: no $child child"
  child_pid=$(child_named "$pid" "$child")
  # Every child names a socket in the demo's directory on its command line.
  sock_dir=$(tr '\0' '\n' </proc/"$child_pid"/cmdline | grep '/rkt-echo-' | head -1 | xargs dirname)
  [[ -d $sock_dir ]] || fail "demo: no socket directory found"
  local children
  children=$(cat /proc/"$pid"/task/*/children)
  kill "-$sig" "$pid"
  wait "$pid" || rc=$?
  ((rc == 128 + $(kill -l "$sig"))) || fail "demo: exit status $rc after SIG$sig"
  for c in $children; do
    if kill -0 "$c" 2>/dev/null; then
      kill -KILL "$c" 2>/dev/null || true
      fail "demo: child $c ($(cat /proc/"$c"/comm 2>/dev/null)) still running after SIG$sig"
    fi
  done
  [[ ! -e $sock_dir ]] || fail "demo: left $sock_dir after SIG$sig"
  grep -q "interrupted (SIG$sig)" "$WORK/demo.log" || fail "demo: no 'interrupted' line"
}

interrupt_demo INT echo_load
interrupt_demo TERM epoll_echo
echo PASS
