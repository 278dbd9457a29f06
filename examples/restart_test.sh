#!/usr/bin/env bash
# The example servers in production conditions (issue 12):
# - after kill -9, `echo PATH` and `hello_web PATH` start again on the same
#   path (replace_stale) and serve;
# - a second server on the path of a live one fails and leaves the live one
#   serving;
# - SIGHUP stops them as SIGTERM does: exit 0, socket file removed
#   (unlink_on_close);
# - hello_web serves on a socket passed by systemd-socket-activate (when the
#   machine has it).
# Every wait polls for a condition, with a bound; no speed is asserted.
set -euo pipefail

ECHO=$PWD/$1
HELLO=$PWD/$2
LOAD=$PWD/$3
WORK=$(mktemp -d /tmp/rkt-restart.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# fail, poll
source "$PWD/examples/shell_checks.sh"

echo_serves() { "$LOAD" --path "$1" --probe >/dev/null 2>&1; }
hello_serves() {
  [[ "$(curl -sS --max-time 5 --unix-socket "$1" http://localhost/ 2>/dev/null)" == "Hello, World!" ]]
}

# check_restart NAME BINARY SERVES-FN: start, kill -9, start again, refuse
# a second, stop with SIGHUP.
check_restart() {
  local name=$1 bin=$2 serves=$3 sock=$WORK/$1.sock pid rc
  "$bin" "$sock" >"$WORK/$name-1.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  poll "$serves" "$sock" || fail "$name: does not serve on $sock"
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  [[ -S $sock ]] || fail "$name: kill -9 left no socket file (the test needs a stale one)"

  "$bin" "$sock" >"$WORK/$name-2.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  poll "$serves" "$sock" || fail "$name: no restart over the stale socket file"

  rc=0
  "$bin" "$sock" >"$WORK/$name-3.log" 2>&1 || rc=$?
  ((rc == 1)) || fail "$name: a second server on a live path exited $rc"
  grep -q "a listener answers on the socket file" "$WORK/$name-3.log" ||
    fail "$name: the second server's error does not say why"
  "$serves" "$sock" || fail "$name: the live server stopped serving"

  kill -HUP "$pid"
  rc=0
  wait "$pid" || rc=$?
  ((rc == 0)) || fail "$name: exit status $rc after SIGHUP"
  [[ ! -e $sock ]] || fail "$name: left its socket file after SIGHUP"
  rm -f "$WORK"/"$name"-*.log
}

check_restart echo "$ECHO" echo_serves
check_restart hello_web "$HELLO" hello_serves

# --- hello_web under systemd-socket-activate --------------------------------
if command -v systemd-socket-activate >/dev/null; then
  sock=$WORK/activated.sock
  systemd-socket-activate -l "$sock" --fdname=web "$HELLO" "$WORK/unused.sock" \
    >"$WORK/activated.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  poll test -S "$sock" || fail "systemd-socket-activate: no socket at $sock"
  hello_serves "$sock" || fail "activated hello_web: no answer"
  grep -q "listening on systemd socket web" "$WORK/activated.log" ||
    fail "activated hello_web: did not take the passed socket"
  [[ ! -e $WORK/unused.sock ]] || fail "activated hello_web: bound SOCKET_PATH too"
  kill -TERM "$pid"
  rc=0
  wait "$pid" || rc=$?
  ((rc == 0)) || fail "activated hello_web: exit status $rc after SIGTERM"
else
  echo "systemd-socket-activate is not installed: activation not checked"
fi
echo PASS
