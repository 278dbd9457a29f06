#!/usr/bin/env bash
# The HTTP benchmark of issue 11 in one command: rkt's //examples:hello_web,
# the C baseline (bench/http_canned.c), Go's net/http (peers/hello.go),
# Racket's web server (peers/hello.rkt), nginx returning the 14 bytes itself,
# and nginx in front of the C baseline and of rkt (upstream keep-alive; a
# deployment row, not a server to rank), all on Unix sockets under the same
# load, in interleaved rounds:
#   h2load --h1 -B unix:PATH -c 64 -t 1 -D 5 --warm-up-time 1 --log-file=...
# Prints one table (also written to bench/http_compare.txt).
#   bench/http_compare.sh
#   ./bazelw run -c opt //bench:http_compare
#   ROUNDS=5 SERVERS="c go" bench/http_compare.sh
# Settings (environment): ROUNDS (3), DURATION (5 s measured), WARMUP (1 s),
# CONNS (64), MEMCONNS (1000), SERVERS (c rkt go racket nginx nginx-c
# nginx-rkt), RKT_SERVER (a binary to use for the rkt rows instead of
# building //examples:hello_web).
#
# Figures, per run, each server fresh:
# - req/s: h2load's rate over the measured phase (warm-up excluded);
# - p50/p99: from h2load's per-request log (measured phase only);
# - CPU/1000: utime+stime of the server's whole process tree (nginx: master
#   and worker; nginx-in-front rows: nginx and the upstream server), sampled
#   every 50 ms and interpolated at the first request's start and the last
#   response's end in the log, so over the measured window only, divided by
#   the requests in that window (bench/http_measure.py);
# - KiB/conn: the tree's VmRSS before and after MEMCONNS keep-alive
#   connections that each made one request and stay open, divided by
#   MEMCONNS (not measured for the nginx-in-front rows).
# Every column is the median over the rounds; the ratios (x C) are medians
# of the per-round ratios to the C baseline of the same round.
# Servers whose binary or toolchain is missing are skipped with a note.
# Exit status: 1 if any run failed or a server did not shut down cleanly.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-64}
MEMCONNS=${MEMCONNS:-1000}
SERVERS=${SERVERS:-"c rkt go racket nginx nginx-c nginx-rkt"}

# Under `bazel run` the script runs from its runfiles; work from the
# workspace in both cases.
if [[ -n "${BUILD_WORKSPACE_DIRECTORY:-}" ]]; then
  cd "$BUILD_WORKSPACE_DIRECTORY"
else
  cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
fi
ROOT=$PWD
OUT_TXT=$ROOT/bench/http_compare.txt
MEASURE=$ROOT/bench/http_measure.py

WORK=$(mktemp -d -t http_compare.XXXXXX)
PIDS=()  # every process started by this script that may still run
# SIGTERM first, so that an nginx master reaps its worker; SIGKILL for what
# still runs 3 s later.
cleanup() {
  local p i
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for ((i = 0; i < 30; i++)); do
      kill -0 "$p" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

NOTES=()
note() { NOTES+=("$*"); echo "note: $*" >&2; }
FAILED=0

ulimit -n "$(ulimit -Hn)"
if (( $(ulimit -n) < MEMCONNS + 64 )); then
  note "open-file limit $(ulimit -n) is too low for $MEMCONNS connections"
fi

# --- tools -----------------------------------------------------------------
# Bench-only packages, installed here rather than by ./bazelw so that CI
# does not pay for them. nginx must not start as a system service: a
# policy-rc.d that refuses every start is in place while apt runs.
missing=()
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v go >/dev/null || missing+=(golang-go)
command -v nginx >/dev/null || missing+=(nginx)
if (( ${#missing[@]} )); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "installing ${missing[*]}" >&2
    made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
      made_policy=1
    fi
    if ! { apt-get update -qq &&
           DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } \
         >"$WORK/apt.log" 2>&1; then
      note "apt-get install ${missing[*]} failed: $(tail -1 "$WORK/apt.log")"
    fi
    if (( made_policy )); then rm -f /usr/sbin/policy-rc.d; fi
  else
    note "not root: cannot install ${missing[*]}"
  fi
fi
command -v h2load >/dev/null || { echo "h2load (Debian nghttp2-client) is required" >&2; exit 1; }
# Debian's python3 first: a version manager's shim (pyenv) on PATH costs
# most of a second per call.
PYTHON=/usr/bin/python3
[[ -x $PYTHON ]] || PYTHON=$(command -v python3) || { echo "python3 is required" >&2; exit 1; }

echo "building //bench:http_canned (-c opt)" >&2
./bazelw build -c opt //bench:http_canned
BIN=$(./bazelw info -c opt bazel-bin 2>/dev/null)
# Copies, so that a build elsewhere cannot swap a binary mid-run.
cp "$BIN/bench/http_canned" "$WORK/http_canned"

declare -A CMD
CMD[c]="$WORK/http_canned"
if [[ -n "${RKT_SERVER:-}" ]]; then
  cp "$RKT_SERVER" "$WORK/hello_web"
  CMD[rkt]="$WORK/hello_web"
  note "rkt rows run RKT_SERVER=$RKT_SERVER, not a fresh //examples:hello_web"
elif [[ " $SERVERS " == *" rkt "* || " $SERVERS " == *" nginx-rkt "* ]]; then
  if ./bazelw build -c opt //examples:hello_web; then
    cp "$BIN/examples/hello_web" "$WORK/hello_web"
    CMD[rkt]="$WORK/hello_web"
  else
    note "rkt: //examples:hello_web failed to build; rkt rows skipped"
    FAILED=1
  fi
fi
if [[ " $SERVERS " == *" go "* ]]; then
  if command -v go >/dev/null; then
    # Standard library only, offline; the build cache persists between runs.
    if (cd bench/peers &&
        GO111MODULE=off GOPATH="$WORK/gopath" \
        GOCACHE="${GOCACHE:-/tmp/rkt-http-compare-gocache}" \
        go build -o "$WORK/go_hello" hello.go); then
      CMD[go]="$WORK/go_hello"
    else
      note "go: bench/peers/hello.go failed to build; skipped"
      FAILED=1
    fi
  else
    note "go: no go toolchain (Debian golang-go); skipped"
  fi
fi
if [[ " $SERVERS " == *" racket "* ]]; then
  cp bench/peers/hello.rkt "$WORK/hello.rkt"
  if command -v racket >/dev/null && raco make "$WORK/hello.rkt"; then
    CMD[racket]="racket $WORK/hello.rkt"
  else
    note "racket: racket 8.7 with web-server-lib not available; skipped"
  fi
fi
if command -v nginx >/dev/null; then
  CMD[nginx]=nginx
  [[ -n "${CMD[c]:-}" ]] && CMD[nginx-c]=nginx
  [[ -n "${CMD[rkt]:-}" ]] && CMD[nginx-rkt]=nginx
else
  note "nginx: not installed (Debian nginx); nginx rows skipped"
fi

RAN=()  # servers that have a command, in table order
for s in $SERVERS; do
  if [[ -n "${CMD[$s]:-}" ]]; then RAN+=("$s"); fi
done

# --- servers ---------------------------------------------------------------
# Every start sets TREE_ROOTS (the pids whose process trees are "the
# server") and STOP_LIST (pid:socket pairs, stopped in order).
TREE_ROOTS=()
STOP_LIST=()

# Runs "$@" every 50 ms until it succeeds, for at most $1 seconds.
poll_for() {
  local deadline=$((SECONDS + $1)) ; shift
  while (( SECONDS < deadline )); do
    "$@" && return 0
    sleep 0.05
  done
  return 1
}
alive() { kill -0 "$1" 2>/dev/null; }
listening_line() { grep -qxF "listening on $2" "$1" 2>/dev/null; }
answers() { curl -sf -o /dev/null --max-time 2 --unix-socket "$1" http://localhost/; }

# Starts app server $1 (c, rkt, go, racket) on socket $2 with its log in $3
# and waits (30 s at most) for its "listening on" line. Sets APP_PID (also
# when it fails, so that the caller can stop what was started).
start_app() {
  local kind=$1 sock=$2 log=$3
  # shellcheck disable=SC2086  # CMD[racket] is "racket FILE"
  ${CMD[$kind]} "$sock" >"$log" 2>&1 &
  APP_PID=$!
  PIDS+=("$APP_PID")
  if ! poll_for 30 eval "listening_line '$log' '$sock' || ! alive $APP_PID"; then
    note "$kind: no 'listening on' line within 30 s"
    return 1
  fi
  if ! alive "$APP_PID"; then
    note "$kind: exited at start: $(tail -1 "$log")"
    return 1
  fi
}

# Writes an nginx config into directory $1 that listens on $2 and either
# returns the 14 bytes itself ($3 empty) or proxies to the upstream socket
# $3 over keep-alive connections.
nginx_conf() {
  local d=$1 sock=$2 upstream=$3 location upstream_block=""
  if [[ -z "$upstream" ]]; then
    location='default_type text/plain; return 200 "Hello, World!\n";'
  else
    upstream_block="upstream app { server unix:$upstream; keepalive 64; keepalive_requests 1000000; }"
    location='proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";'
  fi
  mkdir -p "$d/tmp"
  cat >"$d/nginx.conf" <<EOF
daemon off; master_process on; worker_processes 1; user root;
error_log $d/error.log warn; pid $d/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 75s;
  client_body_temp_path $d/tmp/body; proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi; uwsgi_temp_path $d/tmp/uwsgi; scgi_temp_path $d/tmp/scgi;
  $upstream_block
  server {
    listen unix:$sock backlog=511;
    location / { $location }
  }
}
EOF
}

# Starts server $1 in directory $2 on $2/s.sock; sets TREE_ROOTS and
# STOP_LIST. Fails with a note if it does not come up.
start_server() {
  local kind=$1 d=$2 sock=$2/s.sock pid app="" upstream=""
  TREE_ROOTS=()
  STOP_LIST=()
  case $kind in
    c | rkt | go | racket)
      start_app "$kind" "$sock" "$d/server.log" || { STOP_LIST=("$APP_PID:$sock"); return 1; }
      TREE_ROOTS=("$APP_PID")
      STOP_LIST=("$APP_PID:$sock")
      ;;
    nginx | nginx-c | nginx-rkt)
      if [[ $kind != nginx ]]; then
        upstream=$d/app.sock
        start_app "${kind#nginx-}" "$upstream" "$d/app.log" ||
          { STOP_LIST=("$APP_PID:$upstream"); return 1; }
        app=$APP_PID
        TREE_ROOTS=("$app")
      fi
      nginx_conf "$d" "$sock" "$upstream"
      nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" >"$d/server.log" 2>&1 &
      pid=$!
      PIDS+=("$pid")
      TREE_ROOTS+=("$pid")
      # nginx first, so that it closes its upstream connections before the
      # upstream server is told to stop.
      STOP_LIST=("$pid:$sock" ${app:+"$app:$upstream"})
      if ! poll_for 30 eval "answers '$sock' || ! alive $pid" || ! alive "$pid"; then
        note "$kind: nginx did not answer on $sock: $(tail -1 "$d/error.log" 2>/dev/null)"
        return 1
      fi
      ;;
  esac
  if ! answers "$sock"; then
    note "$kind: no 200 on $sock"
    return 1
  fi
}

# Stops everything in STOP_LIST with SIGTERM; fails unless each exits 0
# within 10 s and its socket file is gone.
stop_server() {
  local kind=$1 entry pid sock rc ok=0
  for entry in "${STOP_LIST[@]}"; do
    pid=${entry%%:*}
    sock=${entry#*:}
    kill -TERM "$pid" 2>/dev/null || true
    if ! poll_for 10 eval "! alive $pid"; then
      note "$kind: pid $pid still running 10 s after SIGTERM; killed"
      kill -KILL "$pid" 2>/dev/null || true
      ok=1
    fi
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    if (( rc != 0 )); then note "$kind: pid $pid exit status $rc after SIGTERM"; ok=1; fi
    if [[ -e "$sock" ]]; then note "$kind: left its socket file $sock"; ok=1; fi
  done
  STOP_LIST=()
  return $ok
}

field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }

# --- runs ------------------------------------------------------------------
declare -A RPS P50 P99 CPU KPC
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
START_TIME=$SECONDS
for ((round = 1; round <= ROUNDS; round++)); do
  for s in "${RAN[@]}"; do
    d=$(mktemp -d -p "$WORK" "$s-$round.XXXXXX")
    echo "=== $s, round $round of $ROUNDS (load $(cut -d' ' -f1 /proc/loadavg))" >&2
    if ! start_server "$s" "$d"; then
      FAILED=1
      stop_server "$s" || true
      continue
    fi
    mapfile -t tree < <("$PYTHON" "$MEASURE" tree "${TREE_ROOTS[@]}")
    "$PYTHON" "$MEASURE" sample "$d/cpu.samples" "${tree[@]}" &
    sampler=$!
    PIDS+=("$sampler")
    # The first sample before h2load starts.
    poll_for 10 test -s "$d/cpu.samples" || note "$s round $round: no CPU sample"
    if timeout $((DURATION + WARMUP + 30)) h2load --h1 -B "unix:$d/s.sock" \
         -c "$CONNS" -t 1 -D "$DURATION" --warm-up-time "$WARMUP" \
         --log-file="$d/lat.log" http://localhost/ >"$d/h2load.out" 2>&1; then
      kill -TERM "$sampler"  # it writes one last sample
      wait "$sampler" || true
      rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$d/h2load.out")
      reqline=$(grep '^requests:' "$d/h2load.out" || true)
      echo "  $reqline" >&2
      if ! [[ "$reqline" =~ \ 0\ failed,\ 0\ errored,\ 0\ timeout ]]; then
        note "$s round $round: h2load saw failures: $reqline"
        FAILED=1
      fi
      if r=$("$PYTHON" "$MEASURE" report "$d/lat.log" "$d/cpu.samples"); then
        echo "  $rps req/s; $r" >&2
        RPS[$s,$round]=${rps%.*}
        P50[$s,$round]=$(field p50_ms "$r")
        P99[$s,$round]=$(field p99_ms "$r")
        CPU[$s,$round]=$(field cpu_per_1000 "$r")
        if [[ "$(field non2xx "$r")" != 0 ]]; then
          note "$s round $round: $(field non2xx "$r") responses were not 2xx"
          FAILED=1
        fi
      else
        note "$s round $round: no figures from the h2load log"
        FAILED=1
      fi
    else
      kill -TERM "$sampler" 2>/dev/null || true
      wait "$sampler" || true
      note "$s round $round: h2load failed: $(tail -1 "$d/h2load.out")"
      FAILED=1
    fi
    if [[ $s != nginx-* ]]; then
      # The whole tree again: nginx's worker, for one, is a child.
      mapfile -t tree < <("$PYTHON" "$MEASURE" tree "${TREE_ROOTS[@]}")
      if m=$("$PYTHON" "$MEASURE" conns "$d/s.sock" "$MEMCONNS" "${tree[@]}" 2>"$d/conns.err"); then
        echo "  $m" >&2
        KPC[$s,$round]=$(field kib_per_conn "$m")
      else
        note "$s round $round: $MEMCONNS connections failed: $(tail -1 "$d/conns.err")"
        FAILED=1
      fi
    fi
    stop_server "$s" || FAILED=1
  done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$((SECONDS - START_TIME))

# --- report ----------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
# The median of the numbers after the first argument, printed with the
# printf format $1 (mean of the middle two for an even count); "-" when
# there are none.
median() {
  local fmt=$1
  shift
  if (( $# == 0 )); then echo -; return; fi
  printf '%s\n' "$@" | sort -g | awk -v fmt="$fmt" '{ v[NR] = $1 }
    END { m = int((NR + 1) / 2); x = (NR % 2) ? v[m] : (v[m] + v[m + 1]) / 2;
          printf fmt, x }'
}
# Values of array $1 for server $2 over the rounds that produced one.
runs_of() {
  local -n arr=$1
  local r
  for ((r = 1; r <= ROUNDS; r++)); do
    if [[ -n "${arr[$2,$r]:-}" ]]; then echo "${arr[$2,$r]}"; fi
  done
}
# Per-round ratios of array $1 between server $2 and the C baseline.
ratios_of() {
  local -n arr=$1
  local r
  for ((r = 1; r <= ROUNDS; r++)); do
    if [[ -n "${arr[$2,$r]:-}" && -n "${arr[c,$r]:-}" ]]; then
      ratio "${arr[$2,$r]}" "${arr[c,$r]}"
      echo
    fi
  done
}
label() {
  case $1 in
    c) echo "C epoll canned reply (baseline)" ;;
    rkt) echo "rkt //examples:hello_web" ;;
    go) echo "Go net/http" ;;
    racket) echo "Racket serve + unix unit" ;;
    nginx) echo "nginx return 200, 1 worker" ;;
    nginx-c) echo "deployment: nginx -> C baseline" ;;
    nginx-rkt) echo "deployment: nginx -> rkt" ;;
  esac
}
{
  echo "# bench/http_compare.sh: h2load --h1 -B unix:PATH -c $CONNS -t 1 -D $DURATION --warm-up-time $WARMUP; $ROUNDS interleaved round(s), each server fresh"
  echo "# date $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), nproc $(nproc), load average $LOAD_START at start, $LOAD_END at end, ${ELAPSED} s of runs"
  echo "# medians over the rounds; x C = median of the per-round ratios to the C baseline; range = lowest-highest req/s"
  echo "# CPU/1000 = server process tree's CPU seconds per 1000 requests over h2load's measured window; KiB/conn = RSS growth with $MEMCONNS idle keep-alive connections / $MEMCONNS"
  printf '| %-32s | %8s | %-15s | %5s | %6s | %6s | %6s | %8s | %6s | %8s |\n' \
    server 'req/s' range 'x C' 'p50 ms' 'p99 ms' 'p99 xC' 'CPU/1000' 'CPU xC' 'KiB/conn'
  printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' -- --: -- --: --: --: --: --: --: --:
  for s in $SERVERS; do
    if [[ -z "${CMD[$s]:-}" ]]; then
      printf '| %-32s | %8s |\n' "$(label "$s")" "skipped"
      continue
    fi
    mapfile -t r < <(runs_of RPS "$s")
    if (( ${#r[@]} == 0 )); then
      printf '| %-32s | %8s |\n' "$(label "$s")" "failed"
      continue
    fi
    range=$(printf '%s\n' "${r[@]}" | sort -n | sed -n '1p;$p' | paste -sd-)
    printf '| %-32s | %8s | %-15s | %5s | %6s | %6s | %6s | %8s | %6s | %8s |\n' \
      "$(label "$s")" "$(median %d "${r[@]}")" "$range" \
      "$(median %.2f $(ratios_of RPS "$s"))" \
      "$(median %.2f $(runs_of P50 "$s"))" "$(median %.2f $(runs_of P99 "$s"))" \
      "$(median %.2f $(ratios_of P99 "$s"))" \
      "$(median %.4f $(runs_of CPU "$s"))" "$(median %.2f $(ratios_of CPU "$s"))" \
      "$(median %.2f $(runs_of KPC "$s"))"
  done
  for n in "${NOTES[@]}"; do echo "# note: $n"; done
} >"$OUT_TXT"
echo
cat "$OUT_TXT"
exit "$FAILED"
