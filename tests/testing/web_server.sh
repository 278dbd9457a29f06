# Shell helpers for the tests that run an HTTP server binary with
# //examples:hello_web's command line (`SERVER SOCKET_PATH`: prints
# "listening on SOCKET_PATH" once it listens; on SIGTERM removes the socket
# file and exits 0) against real peers. Sourced by tests/web_*_test.sh,
# which must `set -euo pipefail` first.
#
# Every wait is a poll with a deadline; every process started here is
# recorded in WEB_PIDS, and web_cleanup (installed as the EXIT trap by
# web_setup) kills what is still running and removes the work directories.

WEB_PIDS=()
WEB_DIRS=()

# Creates WEB_TMP (logs, configs: under $TEST_TMPDIR) and WEB_SOCKDIR (a
# short path under /tmp: $TEST_TMPDIR can be longer than the 107 bytes a
# socket path may have), and installs the cleanup trap.
web_setup() {
  WEB_TMP=$(mktemp -d "${TEST_TMPDIR:-/tmp}/web.XXXXXX")
  WEB_SOCKDIR=$(mktemp -d /tmp/rkt-web.XXXXXX)
  WEB_DIRS+=("$WEB_TMP" "$WEB_SOCKDIR")
  trap web_cleanup EXIT
}

# SIGTERM first, so that nginx's master reaps its worker (a worker killed
# after its master would be left to init as a zombie); SIGKILL for what is
# still running 5 s later.
web_cleanup() {
  local p live=()
  for p in "${WEB_PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p" 2>/dev/null || true
      live+=("$p")
    fi
  done
  for p in "${live[@]}"; do
    web_poll 5 eval "! web_alive $p" || kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "${WEB_DIRS[@]}"
}

web_fail() {
  echo "FAIL: $*" >&2
  local log
  for log in "$WEB_TMP"/*.log; do
    if [[ -s $log ]]; then
      echo "--- $log" >&2
      tail -20 "$log" >&2
    fi
  done
  exit 1
}

# Runs "$@" every 20 ms until it succeeds, for at most $1 seconds.
web_poll() {
  local deadline=$((SECONDS + $1))
  shift
  while ((SECONDS < deadline)); do
    "$@" && return 0
    sleep 0.02
  done
  return 1
}

web_alive() { kill -0 "$1" 2>/dev/null; }

# The pids of the children of $1, one per line (from /proc; no procps).
web_children() { cat /proc/"$1"/task/*/children 2>/dev/null | tr -s ' ' '\n' | sed '/^$/d'; }

# The inodes of the sockets process $1 holds open, sorted, one per line.
web_socket_inodes() {
  local fd
  for fd in /proc/"$1"/fd/*; do
    readlink "$fd" 2>/dev/null || true
  done | sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p' | sort -n
}

_web_listening() { grep -qxF "listening on $2" "$1" 2>/dev/null; }

# Starts the server binary $1 on socket $2 and waits (30 s at most) for its
# "listening on" line; sets WEB_SERVER_PID.
web_start_server() {
  local server=$1 sock=$2
  "$server" "$sock" >"$WEB_TMP/server.log" 2>&1 &
  WEB_SERVER_PID=$!
  WEB_PIDS+=("$WEB_SERVER_PID")
  web_poll 30 eval "_web_listening '$WEB_TMP/server.log' '$sock' || ! web_alive $WEB_SERVER_PID" ||
    web_fail "no 'listening on $sock' line within 30 s"
  web_alive "$WEB_SERVER_PID" || web_fail "the server exited at start"
  [[ -S "$sock" ]] || web_fail "no socket file at $sock"
}

# Stops the server with SIGTERM; fails unless it exits 0 within 10 s and
# has removed its socket file $1.
web_stop_server() {
  local sock=$1 rc=0
  kill -TERM "$WEB_SERVER_PID"
  web_poll 10 eval "! web_alive $WEB_SERVER_PID" || web_fail "server still running 10 s after SIGTERM"
  wait "$WEB_SERVER_PID" || rc=$?
  ((rc == 0)) || web_fail "server exit status $rc after SIGTERM"
  [[ ! -e "$sock" ]] || web_fail "server left its socket file $sock"
}
