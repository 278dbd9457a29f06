#!/usr/bin/env bash
# The Unix-socket echo benchmark of docs/PERFORMANCE.md in one
# command: the C epoll baseline (bench/epoll_echo.c), rkt (//examples:echo),
# Go (peers/echo.go) and Racket (peers/echo.rkt) under the same load
# generator (bench/echo_load.cc), 64-byte ping-pong, each server fresh for
# each connection count. Prints one table, with every ratio taken against
# the epoll server at the same C in the same round, and writes it to
# bench/echo_compare.txt and a plot to bench/echo_compare.png.
#   bench/echo_compare.sh
#   CONNS="1 100" SECONDS=5 WARMUP=1 SERVERS="epoll go" bench/echo_compare.sh
#   REPEAT=5 bench/echo_compare.sh
# REPEAT=N runs N rounds of every server at each C, the servers of a round
# back to back so that drift on a shared machine falls on all of them; the
# table then gives medians, each ratio being the median of the per-round
# ratios, with their range. SERVERS may also name rkt-thp: the rkt binary
# with glibc's malloc on transparent huge pages
# (GLIBC_TUNABLES=glibc.malloc.hugetlb=1), a deployment knob.
# A server whose binary or toolchain is missing is skipped with a note.
# Exit status: 1 if any run failed or a server did not shut down cleanly.
set -euo pipefail

# SECONDS is bash's clock; it counts as set only when it came from the
# environment (then it is exported).
if [[ "$(declare -p SECONDS)" == "declare -ix"* ]]; then T=$SECONDS; else T=10; fi
CONNS=${CONNS:-"1 100 1000"}
WARMUP=${WARMUP:-2}
REPEAT=${REPEAT:-1}
SERVERS=${SERVERS:-"epoll rkt go racket"}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
OUT_TXT=$ROOT/bench/echo_compare.txt
OUT_PNG=$ROOT/bench/echo_compare.png

WORK=$(mktemp -d -t echo_compare.XXXXXX)
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

NOTES=()
note() { NOTES+=("$*"); echo "note: $*" >&2; }
FAILED=0

# C=1000 needs 1000 descriptors in the server and in echo_load; servers
# inherit this limit.
ulimit -n "$(ulimit -Hn)"
max_c=$(tr ' ' '\n' <<<"$CONNS" | sort -n | tail -1)
if (( $(ulimit -n) < max_c + 32 )); then
  note "open-file limit $(ulimit -n) is too low for C=$max_c"
fi

# --- tools -----------------------------------------------------------------
missing=()
command -v go >/dev/null || missing+=(golang-go)
command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
command -v racket >/dev/null || missing+=(racket)
if (( ${#missing[@]} )); then
  echo "installing ${missing[*]}" >&2
  if ! { apt-get update -qq &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } \
       >"$WORK/apt.log" 2>&1; then
    note "apt-get install ${missing[*]} failed: $(tail -1 "$WORK/apt.log")"
  fi
fi

echo "building //bench:epoll_echo //bench:echo_load (-c opt)" >&2
./bazelw build -c opt //bench:epoll_echo //bench:echo_load
BIN=$(./bazelw info -c opt bazel-bin 2>/dev/null)
# Copies, so a build elsewhere cannot swap a binary mid-run.
cp "$BIN/bench/epoll_echo" "$BIN/bench/echo_load" "$WORK/"
LOAD=$WORK/echo_load

declare -A CMD
CMD[epoll]="$WORK/epoll_echo"
if [[ " $SERVERS " == *" rkt "* || " $SERVERS " == *" rkt-thp "* ]]; then
  if ./bazelw query //examples:echo >/dev/null 2>&1; then
    if ./bazelw build -c opt //examples:echo; then
      cp "$BIN/examples/echo" "$WORK/rkt_echo"
      CMD[rkt]="$WORK/rkt_echo"
      CMD[rkt-thp]="$WORK/rkt_echo"
    else
      note "rkt: //examples:echo failed to build; skipped"
      FAILED=1
    fi
  else
    note "rkt: no target //examples:echo yet; skipped"
  fi
fi
if [[ " $SERVERS " == *" go "* ]]; then
  if command -v go >/dev/null; then
    # Standard library only, offline; the cache persists between runs.
    if (cd bench/peers &&
        GO111MODULE=off GOPATH="$WORK/gopath" \
        GOCACHE="${GOCACHE:-/tmp/rkt-echo-compare-gocache}" \
        go build -o "$WORK/go_echo" echo.go); then
      CMD[go]="$WORK/go_echo"
    else
      note "go: bench/peers/echo.go failed to build; skipped"
      FAILED=1
    fi
  else
    note "go: no go toolchain (Debian golang-go); skipped"
  fi
fi
if [[ " $SERVERS " == *" racket "* ]]; then
  if racket -l racket/base -l racket/unix-socket -e 1 >/dev/null 2>&1; then
    CMD[racket]=racket
  else
    note "racket: racket with racket/unix-socket not available; skipped"
  fi
fi

# --- runs ------------------------------------------------------------------
declare -A RPS P50 P99 KPC SCPU LCPU
RAN=()  # servers that have a command, in table order
for s in $SERVERS; do [[ -n "${CMD[$s]:-}" ]] && RAN+=("$s"); done

# Starts server $1 on socket $2; sets SERVER_PID. Fails if it does not
# echo within 30 s.
start_server() {
  local log=$3
  if [[ $1 == racket ]]; then
    racket "$ROOT/bench/peers/echo.rkt" "$2" >"$log" 2>&1 &
  elif [[ $1 == rkt-thp ]]; then
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 "${CMD[$1]}" "$2" >"$log" 2>&1 &
  else
    "${CMD[$1]}" "$2" >"$log" 2>&1 &
  fi
  SERVER_PID=$!
  local i
  for ((i = 0; i < 300; i++)); do
    if "$LOAD" --path "$2" --probe 2>/dev/null; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  return 1
}

# Stops the server with SIGTERM; fails unless it exits 0 within 10 s and
# removes its socket file $2.
stop_server() {
  local name=$1 sock=$2 i rc=0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    note "$name: still running 10 s after SIGTERM; killed"
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    return 1
  fi
  wait "$SERVER_PID" || rc=$?
  SERVER_PID=""
  if (( rc != 0 )); then note "$name: exit status $rc after SIGTERM"; return 1; fi
  if [[ -e "$sock" ]]; then note "$name: left its socket file behind"; return 1; fi
}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

for c in $CONNS; do
 for ((round = 1; round <= REPEAT; round++)); do
  for s in "${RAN[@]}"; do
    d=$(mktemp -d -p "$WORK" "$s-$c.XXXXXX")
    sock=$d/echo.sock
    echo "=== $s, C=$c, round $round of $REPEAT" >&2
    if ! start_server "$s" "$sock" "$d/server.log"; then
      note "$s: server did not come up: $(tail -1 "$d/server.log")"
      FAILED=1
      stop_server "$s" "$sock" || true
      continue
    fi
    if "$LOAD" --path "$sock" --connections "$c" --seconds "$T" \
         --warmup "$WARMUP" --server-pid "$SERVER_PID" >"$d/load.log" 2>&1; then
      sed -n '2,$p' "$d/load.log" | grep -v '^RESULT' >&2 || true
      r=$(grep '^RESULT' "$d/load.log")
      RPS[$s,$c,$round]=$(field rps "$r")
      P50[$s,$c,$round]=$(field p50_us "$r")
      P99[$s,$c,$round]=$(field p99_us "$r")
      KPC[$s,$c,$round]=$(field kib_per_conn "$r")
      SCPU[$s,$c,$round]=$(field server_cpu "$r")
      LCPU[$s,$c,$round]=$(field client_cpu "$r")
      if [[ "$(field min_conn_rts "$r")" == 0 ]]; then
        note "$s C=$c: a connection had no round trip while measured (starved)"
      fi
    else
      note "$s C=$c: echo_load failed: $(tail -1 "$d/load.log")"
      FAILED=1
    fi
    stop_server "$s" "$sock" || FAILED=1
  done
 done
done

# --- report ----------------------------------------------------------------
ratio() { if [[ -n "$1" && -n "$2" ]]; then awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; else echo "-"; fi; }
# The median of the numbers given (mean of the middle two for an even
# count); empty when there are none.
median() {
  (( $# )) || return 0
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
    END { m = int((NR + 1) / 2); if (NR % 2) x = v[m]; else x = (v[m] + v[m + 1]) / 2;
          if (x == int(x)) printf "%d", x; else printf "%.2f", x }'
}
# Values of array $1 for server $2 at C=$3 over the rounds that produced one.
runs_of() {
  local -n arr=$1
  local r
  for ((r = 1; r <= REPEAT; r++)); do
    [[ -n "${arr[$2,$3,$r]:-}" ]] && echo "${arr[$2,$3,$r]}"
  done
}
# Per-round ratios of array $1 between server $2 and epoll at C=$3.
ratios_of() {
  local -n arr=$1
  local r
  for ((r = 1; r <= REPEAT; r++)); do
    [[ -n "${arr[$2,$3,$r]:-}" && -n "${arr[epoll,$3,$r]:-}" ]] &&
      ratio "${arr[$2,$3,$r]}" "${arr[epoll,$3,$r]}" && echo
  done
}
# The medians, keyed by server,C, that the table and the plot show.
declare -A M_RPS M_P50 M_P99 M_KPC M_SCPU M_LCPU M_RATIO M_P99X RANGE
for c in $CONNS; do
  for s in "${RAN[@]}"; do
    M_RPS[$s,$c]=$(median $(runs_of RPS "$s" "$c"))
    M_P50[$s,$c]=$(median $(runs_of P50 "$s" "$c"))
    M_P99[$s,$c]=$(median $(runs_of P99 "$s" "$c"))
    M_KPC[$s,$c]=$(median $(runs_of KPC "$s" "$c"))
    M_SCPU[$s,$c]=$(median $(runs_of SCPU "$s" "$c"))
    M_LCPU[$s,$c]=$(median $(runs_of LCPU "$s" "$c"))
    rs=($(ratios_of RPS "$s" "$c"))
    M_RATIO[$s,$c]=$(median "${rs[@]}")
    M_P99X[$s,$c]=$(median $(ratios_of P99 "$s" "$c"))
    RANGE[$s,$c]=-
    if (( ${#rs[@]} > 1 )); then
      RANGE[$s,$c]=$(printf '%s\n' "${rs[@]}" | sort -g | sed -n '1p;$p' | paste -sd-)
    fi
  done
done
{
  echo "# bench/echo_compare.sh: ${RAN[*]}; C = $CONNS; ${T} s measured after ${WARMUP} s warmup; 64-byte ping-pong; $REPEAT round(s)"
  echo "# date $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# ratios are against epoll at the same C in the same round; srv and load are cores used while measured"
  if (( REPEAT > 1 )); then
    echo "# every column is the median over the rounds; ratio and p99 x are medians of the per-round ratios, range the lowest-highest ratio"
  fi
  echo "# KiB/conn = (server VmRSS with all C connections live - before they connect) / C;"
  echo "# at small C a garbage-collected heap's drift swamps it"
  printf '%-7s %5s %11s %6s %9s %9s %9s %6s %9s %5s %5s\n' \
    server C 'rt/s' ratio range 'p50 us' 'p99 us' 'p99 x' 'KiB/conn' 'srv' 'load'
  for c in $CONNS; do
    for s in "${RAN[@]}"; do
      if [[ -z "${M_RPS[$s,$c]:-}" ]]; then
        printf '%-7s %5s %11s\n' "$s" "$c" failed
        continue
      fi
      printf '%-7s %5s %11s %6s %9s %9s %9s %6s %9s %5s %5s\n' "$s" "$c" \
        "${M_RPS[$s,$c]}" "${M_RATIO[$s,$c]:--}" "${RANGE[$s,$c]}" \
        "${M_P50[$s,$c]}" "${M_P99[$s,$c]}" "${M_P99X[$s,$c]:--}" \
        "${M_KPC[$s,$c]}" "${M_SCPU[$s,$c]}" "${M_LCPU[$s,$c]}"
    done
  done
  for n in "${NOTES[@]}"; do echo "# note: $n"; done
} >"$OUT_TXT"
echo
cat "$OUT_TXT"

if command -v gnuplot >/dev/null && (( ${#RAN[@]} )); then
  plots_rps=() plots_p99=()
  for s in "${RAN[@]}"; do
    for c in $CONNS; do
      [[ -n "${M_RPS[$s,$c]:-}" ]] && echo "$c ${M_RPS[$s,$c]} ${M_P99[$s,$c]}"
    done | sort -n >"$WORK/$s.dat"
    if [[ -s "$WORK/$s.dat" ]]; then
      plots_rps+=("'$WORK/$s.dat' using 1:2 with linespoints title '$s'")
      plots_p99+=("'$WORK/$s.dat' using 1:3 with linespoints title '$s'")
    fi
  done
  if (( ${#plots_rps[@]} )); then
    join() { local IFS=,; echo "$*"; }
    gnuplot <<EOF || note "gnuplot failed; no $OUT_PNG"
set terminal pngcairo size 1100,450
set output '$OUT_PNG'
set multiplot layout 1,2 title "Unix-socket echo, 64-byte ping-pong, ${T} s per run, median of ${REPEAT}"
set logscale x
set xlabel 'connections'
set key top left
set ylabel 'round trips/s'
set yrange [0:*]
plot $(join "${plots_rps[@]}")
set logscale y
set yrange [*:*]
set ylabel 'p99 latency (us)'
plot $(join "${plots_p99[@]}")
unset multiplot
EOF
    [[ -s "$OUT_PNG" ]] && echo "wrote $OUT_TXT and $OUT_PNG"
  fi
else
  note "no gnuplot: no plot"
  echo "wrote $OUT_TXT"
fi
exit "$FAILED"
