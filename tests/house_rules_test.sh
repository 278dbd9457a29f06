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

for f in "${files[@]}"; do
  case "$f" in
    *.png | *.jpg) continue ;;
  esac
  checked=$((checked + 1))
  top=${f%%/*}
  if [[ "$f" == */* ]]; then
    # internal/ reach-ins: an include of X/internal/... from outside X/.
    while IFS= read -r line; do
      target=$(sed -E 's|.*#include "([^"]+)".*|\1|' <<<"$line")
      owner=${target%%/internal/*}
      if [[ "$f" != "$owner"/* ]]; then
        echo "$f: includes $target, internal to $owner/"
        failures=$((failures + 1))
      fi
    done < <(grep -E '#include "[^"]*/internal/' "$f" || true)
  fi
  if grep -nE "$outside_shared|$outside_work|$outside_docs" "$f" >/dev/null; then
    grep -nE "$outside_shared|$outside_work|$outside_docs" "$f" |
      sed "s|^|$f:|; s|$| (a path outside the repository)|"
    failures=$((failures + 1))
  fi
done

if [[ $checked -lt 50 ]]; then
  echo "only $checked files were checked: the data filegroups are incomplete"
  exit 1
fi
echo "$checked files checked, $failures offences"
[[ $failures -eq 0 ]]
