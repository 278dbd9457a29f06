#!/usr/bin/env bash
# rkt's //examples:hello_web with 1 server thread against 2, on the same two
# cores (docs/MULTICORE.md, "Measuring on this 2-core machine"), in
# interleaved rounds:
#   1t: hello_web SOCK 1 pinned to core 0 (taskset -c 0); h2load pinned to
#       core 1: the server has one core, the load generator the other;
#   2t: hello_web SOCK 2, server thread 0 (the main thread) pinned to core 0
#       and server thread 1 ("web thread 1") to core 1, h2load unpinned:
#       the server may use both cores but shares them with h2load;
#   1u: hello_web SOCK 1 and h2load, neither pinned (a control: on a loaded
#       machine a pinned process cannot flee a busy core, which alone can
#       move the rates).
# h2load --h1 -B unix:SOCK -c CONNS -t 1 -D DURATION --warm-up-time WARMUP
# Connections are kept alive: h2load's timed mode (-D) stops a client whose
# connection the server closes instead of reconnecting, so a new connection
# per request cannot be measured this way.
# On 2 cores this cannot show scaling: the honest figures are CPU per
# request (does the second thread cost anything?) and latency.
#   bench/http_threads.sh
#   ROUNDS=5 CONFIGS="1t 1u 2t" bench/http_threads.sh
# Settings (environment): ROUNDS (5), DURATION (5 s measured), WARMUP (1 s),
# CONNS (64), CONFIGS ("1t 2t"), CORES ("0 1": the two cores
# used), RKT_SERVER (a hello_web binary to use instead of building
# //examples:hello_web -c opt).
# Figures per run, as bench/http_compare.sh takes them (bench/http_measure.py):
# req/s (h2load, measured phase), p50/p99 (h2load's log), CPU s/1000
# requests (utime+stime of the server process over the measured window).
# Also per run: each server thread's share of the server's CPU (from
# /proc/PID/task/TID/stat, over the whole run), which shows whether the
# second thread served. Every column is the median over the rounds.
# Exit status: 1 if any run failed or the server did not stop cleanly.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-64}
CONFIGS=${CONFIGS:-"1t 2t"}
read -r CORE0 CORE1 <<<"${CORES:-0 1}"

if [[ -n "${BUILD_WORKSPACE_DIRECTORY:-}" ]]; then
  cd "$BUILD_WORKSPACE_DIRECTORY"
else
  cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
fi
ROOT=$PWD
MEASURE=$ROOT/bench/http_measure.py
PYTHON=/usr/bin/python3
[[ -x $PYTHON ]] || PYTHON=$(command -v python3)
command -v h2load >/dev/null || { echo "h2load (Debian nghttp2-client) is required" >&2; exit 1; }
command -v taskset >/dev/null || { echo "taskset (util-linux) is required" >&2; exit 1; }

WORK=$(mktemp -d -t http_threads.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n "${RKT_SERVER:-}" ]]; then
  cp "$RKT_SERVER" "$WORK/hello_web"
else
  echo "building //examples:hello_web (-c opt)" >&2
  ./bazelw build -c opt //examples:hello_web >&2
  cp "$(./bazelw info -c opt bazel-bin 2>/dev/null)/examples/hello_web" "$WORK/hello_web"
fi
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

poll_for() {
  local deadline=$((SECONDS + $1))
  shift
  while ((SECONDS < deadline)); do
    "$@" && return 0
    sleep 0.05
  done
  return 1
}
alive() { kill -0 "$1" 2>/dev/null; }

# utime+stime ticks of one task.
task_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/task/$2/stat" 2>/dev/null || echo 0; }

FAILED=0
declare -A RPS P50 P99 CPU SHARE
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for ((round = 1; round <= ROUNDS; round++)); do
  for cfg in $CONFIGS; do
    d=$(mktemp -d -p "$WORK" "$cfg-$round.XXXXXX")
    sock=$d/s.sock
    echo "=== $cfg, round $round of $ROUNDS (load $(cut -d' ' -f1 /proc/loadavg))" >&2
    case $cfg in
      1t) taskset -c "$CORE0" "$WORK/hello_web" "$sock" 1 >"$d/server.log" 2>&1 &
          h2pin=(taskset -c "$CORE1") ;;
      2t) "$WORK/hello_web" "$sock" 2 >"$d/server.log" 2>&1 &
          h2pin=() ;;
      1u) "$WORK/hello_web" "$sock" 1 >"$d/server.log" 2>&1 &
          h2pin=() ;;
      *) echo "unknown configuration $cfg" >&2; exit 2 ;;
    esac
    pid=$!
    PIDS+=("$pid")
    if ! poll_for 30 grep -qxF "listening on $sock" "$d/server.log"; then
      echo "note: $cfg round $round: no 'listening on' line" >&2
      FAILED=1
      kill -KILL "$pid" 2>/dev/null || true
      continue
    fi
    # Server threads by name: the main thread is server thread 0.
    tids=()
    for t in /proc/"$pid"/task/*; do
      case "$(cat "$t/comm")" in
        hello_web) tids[0]=${t##*/} ;;
        "web thread 1") tids[1]=${t##*/} ;;
      esac
    done
    if [[ $cfg == 2t ]]; then
      if [[ -z "${tids[1]:-}" ]]; then
        echo "note: $cfg round $round: no 'web thread 1' task" >&2
        FAILED=1
      else
        taskset -pc "$CORE0" "${tids[0]}" >/dev/null
        taskset -pc "$CORE1" "${tids[1]}" >/dev/null
      fi
    fi
    declare -a before=()
    for i in "${!tids[@]}"; do before[i]=$(task_ticks "$pid" "${tids[i]}"); done
    "$PYTHON" "$MEASURE" sample "$d/cpu.samples" "$pid" &
    sampler=$!
    PIDS+=("$sampler")
    poll_for 10 test -s "$d/cpu.samples" || echo "note: no CPU sample" >&2
    h2args=(--h1 -B "unix:$sock" -c "$CONNS" -t 1 -D "$DURATION" --warm-up-time "$WARMUP"
            --log-file="$d/lat.log")
    if timeout $((DURATION + WARMUP + 30)) "${h2pin[@]}" h2load "${h2args[@]}" \
         http://localhost/ >"$d/h2load.out" 2>&1; then
      kill -TERM "$sampler"
      wait "$sampler" || true
      rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$d/h2load.out")
      reqline=$(grep '^requests:' "$d/h2load.out" || true)
      echo "  $reqline" >&2
      if ! [[ "$reqline" =~ \ 0\ failed,\ 0\ errored,\ 0\ timeout ]]; then
        echo "note: $cfg round $round: h2load saw failures" >&2
        FAILED=1
      fi
      r=$("$PYTHON" "$MEASURE" report "$d/lat.log" "$d/cpu.samples")
      field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$r"; }
      RPS[$cfg,$round]=${rps%.*}
      P50[$cfg,$round]=$(field p50_ms)
      P99[$cfg,$round]=$(field p99_ms)
      CPU[$cfg,$round]=$(field cpu_per_1000)
      shares=""
      total=0
      declare -a used=()
      for i in "${!tids[@]}"; do
        used[i]=$(($(task_ticks "$pid" "${tids[i]}") - before[i]))
        total=$((total + used[i]))
      done
      for i in "${!tids[@]}"; do
        shares+="$(awk -v a="${used[i]}" -v t="$total" 'BEGIN { printf "%.0f", t ? 100 * a / t : 0 }')% "
      done
      SHARE[$cfg,$round]=${shares% }
      echo "  $rps req/s; $r; CPU share per server thread: ${SHARE[$cfg,$round]}" >&2
    else
      kill -TERM "$sampler" 2>/dev/null || true
      wait "$sampler" || true
      echo "note: $cfg round $round: h2load failed: $(tail -1 "$d/h2load.out")" >&2
      FAILED=1
    fi
    kill -TERM "$pid"
    if ! poll_for 10 eval "! alive $pid"; then
      echo "note: $cfg round $round: still running 10 s after SIGTERM" >&2
      kill -KILL "$pid" 2>/dev/null || true
      FAILED=1
    fi
    rc=0
    wait "$pid" || rc=$?
    ((rc == 0)) || { echo "note: $cfg round $round: exit status $rc" >&2; FAILED=1; }
    [[ ! -e $sock ]] || { echo "note: $cfg round $round: socket file left" >&2; FAILED=1; }
  done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

median() {
  local fmt=$1
  shift
  if (($# == 0)); then echo -; return; fi
  printf '%s\n' "$@" | sort -g | awk -v fmt="$fmt" '{ v[NR] = $1 }
    END { m = int((NR + 1) / 2); x = (NR % 2) ? v[m] : (v[m] + v[m + 1]) / 2; printf fmt, x }'
}
runs_of() {
  local -n arr=$1
  local r
  for ((r = 1; r <= ROUNDS; r++)); do
    if [[ -n "${arr[$2,$r]:-}" ]]; then echo "${arr[$2,$r]}"; fi
  done
}
echo
echo "hello_web, 1 vs 2 server threads; commit $COMMIT; $(uname -sr); $(nproc) cores"
echo "h2load -c $CONNS -t 1 -D $DURATION --warm-up-time $WARMUP;" \
     "$ROUNDS rounds; load average $LOAD_START at start, $LOAD_END at end"
echo
echo "| config | req/s | p50 ms | p99 ms | CPU s/1000 req | CPU share per server thread (each round) |"
echo "|---|--:|--:|--:|--:|--|"
for cfg in $CONFIGS; do
  mapfile -t v < <(runs_of RPS "$cfg")
  rps=$(median "%.0f" "${v[@]}")
  mapfile -t v < <(runs_of P50 "$cfg")
  p50=$(median "%.2f" "${v[@]}")
  mapfile -t v < <(runs_of P99 "$cfg")
  p99=$(median "%.2f" "${v[@]}")
  mapfile -t v < <(runs_of CPU "$cfg")
  cpu=$(median "%.4f" "${v[@]}")
  shares=""
  for ((r = 1; r <= ROUNDS; r++)); do shares+="${SHARE[$cfg,$r]:--}; "; done
  case $cfg in
    1t) label="1 thread, pinned to core $CORE0; h2load on core $CORE1" ;;
    2t) label="2 threads, one per core; h2load unpinned" ;;
    1u) label="1 thread, unpinned; h2load unpinned" ;;
  esac
  echo "| $label | $rps | $p50 | $p99 | $cpu | ${shares%; } |"
done
exit $FAILED
