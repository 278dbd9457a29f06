#!/usr/bin/env bash
# //examples:echo cleans up after itself:
# - `echo PATH` serves, and on SIGTERM exits 0 and removes its socket file;
# - the demo, sent SIGINT (or SIGTERM) alone in the middle of a run, exits
#   128 + the signal and leaves no child process and no socket directory.
# No speed is measured or asserted; every wait polls for a condition, with
# a bound.
set -euo pipefail

ECHO=$PWD/examples/echo
LOAD=$PWD/bench/echo_load
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

fail() {
  echo "FAIL: $*" >&2
  for log in "$WORK"/*.log; do [[ -s $log ]] && { echo "--- $log" >&2; cat "$log" >&2; }; done
  exit 1
}

# Runs "$@" every 20 ms until it succeeds, for at most 30 s.
poll() {
  local i
  for ((i = 0; i < 1500; i++)); do
    "$@" && return 0
    sleep 0.02
  done
  return 1
}

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
