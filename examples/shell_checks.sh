# Shared by the examples' shell tests (echo_test.sh, restart_test.sh), which
# source it after setting WORK, the folder of their logs:
#   fail MESSAGE...  prints FAIL and every non-empty $WORK/*.log, exits 1
#   poll CMD...      runs CMD every 20 ms until it succeeds, for at most 30 s

fail() {
  echo "FAIL: $*" >&2
  for log in "$WORK"/*.log; do [[ -s $log ]] && { echo "--- $log" >&2; cat "$log" >&2; }; done
  exit 1
}

poll() {
  local i
  for ((i = 0; i < 1500; i++)); do
    "$@" && return 0
    sleep 0.02
  done
  return 1
}
