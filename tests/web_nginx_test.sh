#!/usr/bin/env bash
# nginx (Debian's) in front of an HTTP server on a Unix socket, the usual
# deployment: nginx listens on a free loopback port with its own config in
# $TEST_TMPDIR (daemon off, user root, every temp path inside) and proxies
# through `upstream { server unix:PATH; keepalive 4; }` with HTTP/1.1 and
# an empty Connection header, so that its upstream connection stays open.
# Checks, with curl:
#   - several GETs, on one client connection and then on a second one, all
#     200 with the 14-byte body, over ONE upstream connection (the server's
#     socket inodes do not change);
#   - POST echo through nginx (only for a server that echoes: hello_web);
#   - a clean shutdown: nginx exits 0 on SIGQUIT with its worker gone, the
#     server exits 0 on SIGTERM and removes its socket file, nothing is left.
# Usage (from the BUILD file): web_nginx_test.sh SERVER_BINARY KIND, KIND
# "canned" (//bench:http_canned: no echo) or "full" (//examples:hello_web).
set -euo pipefail

SERVER=$PWD/$1
KIND=$2
# shellcheck source=tests/testing/web_server.sh
source tests/testing/web_server.sh

command -v nginx >/dev/null || web_fail "nginx is not installed (./bazelw installs Debian's nginx)"
command -v curl >/dev/null || web_fail "curl is not installed"

web_setup
APP_SOCK=$WEB_SOCKDIR/app.sock
web_start_server "$SERVER" "$APP_SOCK"
listener_inode=$(web_socket_inodes "$WEB_SERVER_PID")
[[ $(wc -l <<<"$listener_inode") == 1 ]] || web_fail "server holds more than its listening socket at start"

# A token in a response header tells our nginx from anything else that may
# answer on the port.
TOKEN=rkt-$$-$RANDOM
NGINX_DIR=$WEB_TMP/nginx
mkdir -p "$NGINX_DIR/tmp"

# Writes the config for loopback port $1.
write_conf() {
  cat >"$NGINX_DIR/nginx.conf" <<EOF
daemon off; master_process on; worker_processes 1; user root;
error_log $NGINX_DIR/error.log info; pid $NGINX_DIR/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $NGINX_DIR/tmp/body; proxy_temp_path $NGINX_DIR/tmp/proxy;
  fastcgi_temp_path $NGINX_DIR/tmp/fastcgi; uwsgi_temp_path $NGINX_DIR/tmp/uwsgi;
  scgi_temp_path $NGINX_DIR/tmp/scgi;
  upstream app { server unix:$APP_SOCK; keepalive 4; }
  server {
    listen 127.0.0.1:$1;
    add_header X-Rkt-Test $TOKEN;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
}

ours() { curl -s -o /dev/null -D - --max-time 2 "http://127.0.0.1:$PORT/" | grep -q "X-Rkt-Test: $TOKEN"; }

# A port that is free now may be taken before nginx binds it: on "Address
# already in use" try another (nginx retries a bind for 2.5 s first).
NGINX_PID=
for attempt in 1 2 3 4 5 6 7 8; do
  PORT=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
  write_conf "$PORT"
  : >"$NGINX_DIR/error.log"
  nginx -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" -e "$NGINX_DIR/error.log" \
    >"$WEB_TMP/nginx.log" 2>&1 &
  NGINX_PID=$!
  WEB_PIDS+=("$NGINX_PID")
  if web_poll 20 eval "ours || ! web_alive $NGINX_PID" && web_alive "$NGINX_PID"; then
    break
  fi
  if web_alive "$NGINX_PID"; then web_fail "nginx runs but does not answer on port $PORT"; fi
  wait "$NGINX_PID" || true
  grep -q "Address already in use" "$NGINX_DIR/error.log" ||
    { cat "$NGINX_DIR/error.log" >&2; web_fail "nginx did not start"; }
  echo "port $PORT in use; attempt $attempt" >&2
  NGINX_PID=
done
[[ -n "$NGINX_PID" ]] || web_fail "no free loopback port in 8 attempts"
mapfile -t WORKERS < <(web_children "$NGINX_PID")
((${#WORKERS[@]} == 1)) || web_fail "expected one nginx worker, found ${#WORKERS[@]}"
WEB_PIDS+=("${WORKERS[@]}")
echo "nginx on 127.0.0.1:$PORT (master $NGINX_PID, worker ${WORKERS[0]}) -> unix:$APP_SOCK"

BASE=http://127.0.0.1:$PORT
HELLO=$'Hello, World!\n'

# The probes above went through nginx too: the upstream connection exists.
conn_set=$(web_socket_inodes "$WEB_SERVER_PID")
[[ $(wc -l <<<"$conn_set") == 2 ]] ||
  web_fail "expected the listener and one upstream connection, server holds: $(echo $conn_set)"

# Three GETs on one client connection: bodies and statuses in order.
out=$(curl -sS --max-time 10 -w '[%{http_code} %{num_connects}]\n' \
  "$BASE/a" "$BASE/b?x=1" "$BASE/c/d")
expected="${HELLO}[200 1]
${HELLO}[200 0]
${HELLO}[200 0]"
[[ "$out" == "$expected" ]] || web_fail "three GETs on one connection gave: $out"
echo "ok: three GETs through nginx on one client connection"

# A second client connection, two more GETs.
out=$(curl -sS --max-time 10 -w '[%{http_code}]\n' "$BASE/e" "$BASE/f")
[[ "$out" == "${HELLO}[200]
${HELLO}[200]" ]] || web_fail "two GETs on a second connection gave: $out"
echo "ok: two GETs through nginx on a second client connection"

if [[ "$KIND" == full ]]; then
  body="posted through nginx $TOKEN"
  out=$(curl -sS --max-time 10 -w '[%{http_code}]' --data-binary "$body" "$BASE/echo")
  [[ "$out" == "${body}[200]" ]] || web_fail "POST echo gave: $out"
  echo "ok: POST echo through nginx"
else
  echo "SKIP: POST echo through nginx needs hello_web (the canned baseline does not echo)"
fi

now=$(web_socket_inodes "$WEB_SERVER_PID")
[[ "$now" == "$conn_set" ]] ||
  web_fail "nginx did not keep one upstream connection: sockets were $(echo $conn_set), now $(echo $now)"
echo "ok: every request went over one keep-alive upstream connection"

if grep -E '\[(alert|crit|emerg|error)\]' "$NGINX_DIR/error.log"; then
  web_fail "nginx logged errors"
fi

# Shutdown: nginx first (graceful), then the server.
kill -QUIT "$NGINX_PID"
web_poll 10 eval "! web_alive $NGINX_PID" || web_fail "nginx still running 10 s after SIGQUIT"
rc=0
wait "$NGINX_PID" || rc=$?
((rc == 0)) || web_fail "nginx exit status $rc after SIGQUIT"
web_poll 10 eval "! web_alive ${WORKERS[0]}" || web_fail "nginx worker ${WORKERS[0]} outlived its master"
# With nginx gone the server holds its listener only.
web_poll 10 eval '[[ "$(web_socket_inodes "$WEB_SERVER_PID")" == "$listener_inode" ]]' ||
  web_fail "the upstream connection was not closed after nginx exited"
web_stop_server "$APP_SOCK"
[[ -z "$(ls -A "$WEB_SOCKDIR")" ]] || web_fail "files left in the socket directory: $(ls -A "$WEB_SOCKDIR")"
echo "ok: clean shutdown (nginx, its worker and the server exited 0; no socket file left)"
