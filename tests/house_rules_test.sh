#!/usr/bin/env bash
# The house rules that a grep can check, run over every source file of the
# repository (the data of //tests:house_rules_test):
#   - a folder's internal/ headers are included only from that folder;
#   - no file refers to a path outside the repository (the shared folder
#     beside it, the machine's work directory, or a document of that
#     shared folder by name).
# Prints each offence and exits 1 if there is any.
set -uo pipefail

cd "${TEST_SRCDIR:?}/${TEST_WORKSPACE:?}" || exit 2

failures=0
checked=0

# Files come from the data filegroups; list them from the runfiles tree.
mapfile -t files < <(find -L . -path ./external -prune -o -type f -print | sed 's|^\./||' | sort)

# Spelled in pieces, so that this file does not match its own patterns.
outside_shared="\.\./sha""red"
outside_work="/wo""rk/"
outside_docs="DES""IGN\.md|STY""LE\.md|OFFLINE-BA""ZEL|HTTP-FA""CTS|notes-from-so""urce"

# Two greps over all the files at once (one process each, not one per
# file: the test stays fast on a loaded machine).
checked_files=()
for f in "${files[@]}"; do
  case "$f" in
    *.png | *.jpg) continue ;;
  esac
  checked_files+=("$f")
done
checked=${#checked_files[@]}

# internal/ reach-ins: an include of X/internal/... from outside X/.
reach_ins=$(grep -HE '#include "[^"]*/internal/' "${checked_files[@]}" |
  awk -F: '{
    file = $1
    line = substr($0, length(file) + 2)
    match(line, /#include "[^"]+"/)
    target = substr(line, RSTART + 10, RLENGTH - 11)
    owner = target
    sub(/\/internal\/.*/, "", owner)
    if (file !~ /\// || index(file, owner "/") == 1) next
    print file ": includes " target ", internal to " owner "/"
  }')
if [[ -n "$reach_ins" ]]; then
  echo "$reach_ins"
  failures=$((failures + $(wc -l <<<"$reach_ins")))
fi

outside=$(grep -HnE "$outside_shared|$outside_work|$outside_docs" "${checked_files[@]}" || true)
if [[ -n "$outside" ]]; then
  sed 's|$| (a path outside the repository)|' <<<"$outside"
  failures=$((failures + $(cut -d: -f1 <<<"$outside" | sort -u | wc -l)))
fi

if [[ $checked -lt 50 ]]; then
  echo "only $checked files were checked: the data filegroups are incomplete"
  exit 1
fi
echo "$checked files checked, $failures offences"
[[ $failures -eq 0 ]]
