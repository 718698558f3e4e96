#!/usr/bin/env bash
# Lint what cargo does not: hadolint on the Dockerfile, shellcheck on every
# shell script under scripts/, deploy/ and .ci/, found by extension (.sh,
# .bash) or by a sh/bash shebang, so a new script cannot be missed, and no
# import cycle between the files of any crate (scripts/lib/module_cycles.py).
# Uses the pinned tools scripts/tools.sh installs. Prints each file checked;
# exits 1 if any check reports anything.
#
# Usage: scripts/lint.sh

set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/tools.sh
source "${root}/scripts/lib/tools.sh"
require_tools hadolint shellcheck python
cd "${root}"

status=0
echo "hadolint $("${TOOLS_BIN}/hadolint" --version | awk '{print $NF}'): Dockerfile"
"${TOOLS_BIN}/hadolint" Dockerfile || status=1

# is_shell FILE: a .sh/.bash name, or a first line such as #!/bin/sh,
# #!/usr/bin/env bash or #!/bin/bash -e.
is_shell() {
  local first
  case "$1" in
    *.sh | *.bash) return 0 ;;
  esac
  IFS= read -r first <"$1" 2>/dev/null || return 1
  [[ ${first} =~ ^#![[:space:]]*(/usr)?/bin/(env[[:space:]]+)?(ba|da|k)?sh([[:space:]]|$) ]]
}

scripts=()
while IFS= read -r -d '' file; do
  is_shell "${file}" && scripts+=("${file}")
done < <(find scripts deploy .ci -type f -print0 | sort -z)
if [ "${#scripts[@]}" -eq 0 ]; then
  echo "no shell scripts found under scripts/, deploy/ and .ci/" >&2
  exit 1
fi
echo "shellcheck $("${TOOLS_BIN}/shellcheck" --version | sed -n 's/^version: //p'): ${scripts[*]}"
# -x follows `source`; the source= directives name paths from the repository root.
"${TOOLS_BIN}/shellcheck" -x "${scripts[@]}" || status=1

# Each crate's files layered, none using one that uses it back; the checker
# first proves on fake crates that it still tells a cycle from none.
"${TOOLS_BIN}/python" scripts/lib/module_cycles.py --self-test || status=1
"${TOOLS_BIN}/python" scripts/lib/module_cycles.py . || status=1

if [ "${status}" -eq 0 ]; then
  echo "lint: OK (Dockerfile, ${#scripts[@]} shell scripts, module cycles)"
else
  echo "lint: FAILED" >&2
fi
exit "${status}"
