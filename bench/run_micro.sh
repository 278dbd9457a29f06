#!/usr/bin/env bash
# Runs every microbenchmark in bench/ with the flags bench/RESULTS.md was
# measured with, and prints the machine and the results (mean, median,
# stddev and cv of 5 repetitions; RESULTS.md quotes medians). Extra
# arguments go to each benchmark binary, e.g.
#   bench/run_micro.sh --benchmark_filter=RoundTrip
#   bench/run_micro.sh --benchmark_format=json
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGETS=(switch_bench channel_bench port_bench socket_bench)
FLAGS=(--benchmark_repetitions=5 --benchmark_report_aggregates_only=true)

echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- evt ports socket 2>/dev/null && [ -z "$(git ls-files --others --exclude-standard evt ports socket 2>/dev/null)" ] || echo ' (evt/, ports/ or socket/ modified)')"
echo "nproc:   $(nproc)"
echo "cpu:     $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg)"

for t in "${TARGETS[@]}"; do
  echo
  echo "=== ./bazelw run -c opt //bench:$t -- ${FLAGS[*]} $*"
  ./bazelw run -c opt "//bench:$t" -- "${FLAGS[@]}" "$@"
done
