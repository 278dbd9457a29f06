#!/usr/bin/env bash
# Racket 8.7 as a client of an HTTP server on a Unix socket: two requests
# (three with a POST echo for hello_web) on one connection opened with
# http-conn-open over unix-socket-connect's ports (tests/web_racket_client.rkt),
# then a clean shutdown: the server exits 0 on SIGTERM and removes its
# socket file.
# Usage (from the BUILD file): web_racket_client_test.sh SERVER_BINARY KIND,
# KIND "canned" (//bench:http_canned: no echo) or "full" (hello_web).
set -euo pipefail

SERVER=$PWD/$1
KIND=$2
CLIENT=$PWD/tests/web_racket_client.rkt
# shellcheck source=tests/testing/web_server.sh
source tests/testing/web_server.sh

command -v racket >/dev/null || web_fail "racket is not installed (./bazelw installs Debian's racket)"

web_setup
SOCK=$WEB_SOCKDIR/app.sock
web_start_server "$SERVER" "$SOCK"

# Racket starts in about a second, several under load: bounded by 60 s.
rc=0
timeout 60 racket "$CLIENT" "$SOCK" "$KIND" || rc=$?
((rc == 0)) || web_fail "the Racket client failed (exit status $rc)"

web_stop_server "$SOCK"
[[ -z "$(ls -A "$WEB_SOCKDIR")" ]] || web_fail "files left in the socket directory: $(ls -A "$WEB_SOCKDIR")"
echo "ok: clean shutdown"
