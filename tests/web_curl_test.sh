#!/bin/bash
# curl against examples/hello_web, over a Unix socket file and an abstract
# socket name: GET, HEAD, POST, keep-alive reuse across several URLs,
# chunked upload, Expect: 100-continue, a malformed request, an oversized
# header; and hello_web's contract (its one "listening on" line, a stale
# socket file replaced, exit 0 on SIGTERM and SIGINT with the file removed),
# also with 2 server threads.
set -u
HELLO="$TEST_SRCDIR/$TEST_WORKSPACE/examples/hello_web"
[ -x "$HELLO" ] || HELLO="$(pwd)/examples/hello_web"
if ! command -v curl >/dev/null; then
  echo "curl is not installed: skipped"
  exit 0
fi
T=$(mktemp -d /tmp/rkt_web_curl.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT
FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
expect_eq() { [ "$1" == "$2" ] || fail "$3: expected [$2], got [$1]"; }
expect_grep() { grep -q -- "$1" "$2" || { fail "$3: no [$1] in $2:"; cat "$2"; }; }

# Starts hello_web on $1 (further arguments passed on); waits (bounded) for
# its "listening on" line.
start_hello() {
  "$HELLO" "$@" >"$T/out" 2>"$T/err" &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 1 200); do
    [ -s "$T/out" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
  done
  expect_eq "$(cat "$T/out")" "listening on $1" "hello_web's first line"
}
# Signals hello_web and waits (bounded) for its exit status.
stop_hello() {
  kill "-$1" "$PID"
  for _ in $(seq 1 200); do kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
  wait "$PID"
  expect_eq "$?" 0 "hello_web's exit status after SIG$1"
}

run_cases() {  # $@: curl's socket option
  local C=(curl -sS --max-time 20 "$@")
  expect_eq "$("${C[@]}" http://localhost/any/path)" "Hello, World!" "GET"
  "${C[@]}" -I http://localhost/ >"$T/head"
  expect_grep "HTTP/1.1 200 OK" "$T/head" "HEAD status"
  expect_grep "Content-Length: 14" "$T/head" "HEAD length"
  expect_grep "Content-Type: text/plain" "$T/head" "HEAD type"
  head -c 100000 /dev/urandom >"$T/body"
  "${C[@]}" --data-binary @"$T/body" -H 'Content-Type: application/x-test' \
    -D "$T/post.h" -o "$T/post" http://localhost/echo
  cmp -s "$T/post" "$T/body" || fail "POST echo differs"
  expect_grep "Content-Type: application/x-test" "$T/post.h" "POST echoes the type"
  "${C[@]}" -v http://localhost/1 http://localhost/2 http://localhost/3 >"$T/many" 2>"$T/many.v"
  expect_eq "$(grep -c 'Hello, World!' "$T/many")" 3 "three GETs"
  # curl 7.88 never reuses an abstract-socket connection ("is still name
  # resolving, can't reuse"): check reuse on socket files only.
  if [ "$1" == "--unix-socket" ]; then
    expect_eq "$(grep -c 'Re-using existing connection' "$T/many.v")" 2 "keep-alive reuse"
  fi
  "${C[@]}" -H 'Transfer-Encoding: chunked' --data-binary @"$T/body" -o "$T/chunked" \
    http://localhost/up
  cmp -s "$T/chunked" "$T/body" || fail "chunked upload echo differs"
  "${C[@]}" -v -H 'Expect: 100-continue' --data-binary @"$T/body" -o "$T/cont" \
    http://localhost/up 2>"$T/cont.v"
  expect_grep "< HTTP/1.1 100 Continue" "$T/cont.v" "Expect: 100-continue"
  cmp -s "$T/cont" "$T/body" || fail "100-continue echo differs"
  expect_eq "$("${C[@]}" -o /dev/null -w '%{http_code}' -X 'NOT-A-METHOD' http://localhost/)" \
    400 "malformed request"
  expect_eq "$("${C[@]}" -o /dev/null -w '%{http_code}' -H "X-Big: $(head -c 9000 /dev/zero | tr '\0' v)" \
    http://localhost/)" 431 "oversized header"
}

# A socket file, with a stale one in the way first.
SOCK="$T/hello.sock"
python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$SOCK"
[ -S "$SOCK" ] || fail "could not make a stale socket file"
start_hello "$SOCK"
run_cases --unix-socket "$SOCK"
stop_hello TERM
[ -e "$SOCK" ] && fail "socket file left behind"

# An abstract name; stopped with SIGINT.
NAME="rkt-web-curl-$$-$RANDOM"
start_hello "@$NAME"
run_cases --abstract-unix-socket "$NAME"
stop_hello INT

# Two server threads (hello_web SOCKET_PATH 2): the second is an OS thread
# named "web thread 1"; the same cases pass; SIGTERM stops both.
SOCK2="$T/hello2.sock"
start_hello "$SOCK2" 2
grep -qx "web thread 1" /proc/"$PID"/task/*/comm || fail "hello_web $SOCK2 2: no 'web thread 1'"
run_cases --unix-socket "$SOCK2"
stop_hello TERM
[ -e "$SOCK2" ] && fail "socket file left behind (2 threads)"

if [ -s "$T/err" ]; then fail "hello_web wrote to stderr:"; cat "$T/err"; fi
[ "$FAILS" -eq 0 ] && echo PASS
exit "$FAILS"
