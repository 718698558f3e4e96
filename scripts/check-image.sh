#!/usr/bin/env bash
# Prove the Dockerfile builds the three function images, without a container
# engine: scripts/lib/dockerfile_replay.py copies the build context with
# .dockerignore applied and carries out the Dockerfile's stages in order
# (planner, builder, runtime) in scratch roots under target/image-check, once
# with --build-arg FUNCTION=sync, once with FUNCTION=audit and once with
# FUNCTION=capture. Each run must
# leave the runtime stage's ENTRYPOINT as an executable that is the real
# function (it links sync_http; cargo-chef's stand-in would not) and needs no
# library beyond the distroless image's (deploy/tests/check_binary_libs.sh).
#
# The cargo target directories are kept in target/image-check, so a
# second run rebuilds only the workspace's own crates; a cold one builds every
# dependency in release mode (minutes). A replay whose inputs (Dockerfile,
# context after .dockerignore, build arguments, toolchain) are unchanged since
# its last success is not carried out again, as Docker's layer cache would not;
# --force replays anyway.
#
# --self-test also checks that the replay notices what it must:
#   - a workspace member added to the copied context (and to Cargo.lock) is
#     built through with no change to the Dockerfile;
#   - FUNCTION outside sync|audit|capture fails at the Dockerfile's own check;
#   - a Dockerfile that lists the members by hand (the pre-cargo-chef one,
#     scripts/testdata/Dockerfile.member-list) fails once a member is added.
#
# Usage: scripts/check-image.sh [--self-test] [--force] [--dockerfile FILE]
# Needs the tools from scripts/tools.sh. Ends with "N passed, N failed".

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/tools.sh
source "${root}/scripts/lib/tools.sh"

SELF_TEST=0
FORCE=()
DOCKERFILE="${root}/Dockerfile"
WORK="${root}/target/image-check"
# One cargo target directory for every FUNCTION (a real build has one layer
# cache per image): cargo names each compiled crate by its features too, so
# what the functions build alike is built once, and what they build with
# different features sits side by side instead of being rebuilt at a switch.
cargo_target() { printf '%s/cargo-target' "${WORK}"; }
FUNCTIONS=(sync audit capture)
# The images this machine stands in for when it carries out a RUN.
HOST_IMAGE='rust:[0-9.]+-bookworm'
# The throwaway member the self-test adds.
EXTRA_MEMBER=crates/zz-image-check-extra

while [ $# -gt 0 ]; do
  case "$1" in
    --self-test) SELF_TEST=1 ;;
    --force) FORCE=(--force) ;;
    --dockerfile)
      DOCKERFILE=$(realpath "$2")
      shift
      ;;
    *)
      sed -n '2,/^$/{s/^# \{0,1\}//p}' "$0" >&2
      exit 2
      ;;
  esac
  shift
done

require_tools python
if ! command -v cargo-chef >/dev/null 2>&1; then
  echo "cargo-chef is not on PATH: run scripts/tools.sh first" >&2
  exit 1
fi

# The image's toolchain should be the one the replay (and the tests) use.
image_rust=$(sed -n 's/^ARG RUST_VERSION=\([0-9.]*\)[[:space:]]*$/\1/p' "${DOCKERFILE}")
host_rust=$(rustc --version | awk '{print $2}')
if [ -n "${image_rust}" ] && [ "${image_rust}" != "${host_rust}" ]; then
  echo "WARNING: the Dockerfile builds with Rust ${image_rust}, this machine has ${host_rust}" >&2
fi

passed=0
failed=0
pass() {
  passed=$((passed + 1))
  echo "ok    $1"
}
fail() {
  failed=$((failed + 1))
  echo "FAIL  $1"
}

# replay FUNCTION CONTEXT DOCKERFILE LOG: run the replay with that FUNCTION,
# output to LOG (and to stdout), leaving the entrypoint's path in
# ${WORK}/entrypoint.
replay() {
  local function=$1 context=$2 dockerfile=$3 logfile=$4
  rm -f "${WORK}/entrypoint"
  "${TOOLS_BIN}/python" "${root}/scripts/lib/dockerfile_replay.py" \
    --dockerfile "${dockerfile}" --context "${context}" --work "${WORK}/replay" \
    --cargo-target "$(cargo_target "${function}")" --host-image "${HOST_IMAGE}" \
    --print-entrypoint "${WORK}/entrypoint" "${FORCE[@]}" --build-arg "FUNCTION=${function}" \
    2>&1 | tee "${logfile}"
}

# check_function NAME CONTEXT DOCKERFILE: replay with FUNCTION=NAME and check
# the binary the runtime stage would start.
check_function() {
  local function=$1 context=$2 dockerfile=$3 label=$4 log started binary
  log="${WORK}/replay-${function}.log"
  started=${SECONDS}
  if ! replay "${function}" "${context}" "${dockerfile}" "${log}"; then
    fail "${label}: the Dockerfile's stages replay with FUNCTION=${function} (log: ${log})"
    return 0
  fi
  echo "replay with FUNCTION=${function} took $((SECONDS - started)) s"
  binary=$(cat "${WORK}/entrypoint")
  mkdir -p "${WORK}/out"
  cp "${binary}" "${WORK}/out/${function}-function"
  binary="${WORK}/out/${function}-function"
  if grep -aqF sync_http "${binary}"; then
    pass "${label}: FUNCTION=${function} gives the real ${function}-function as ENTRYPOINT"
  else
    fail "${label}: FUNCTION=${function}: ENTRYPOINT ${binary} is not the real function (no sync_http in it)"
  fi
  if bash "${root}/deploy/tests/check_binary_libs.sh" "${binary}"; then
    pass "${label}: ${function}-function needs only what distroless/cc-debian12 has"
  else
    fail "${label}: ${function}-function needs a library distroless/cc-debian12 lacks"
  fi
}

mkdir -p "${WORK}"
if "${TOOLS_BIN}/python" "${root}/scripts/lib/dockerfile_replay.py" --test-dockerignore; then
  pass "the replay reads .dockerignore patterns as Docker does"
else
  fail "the replay reads .dockerignore patterns as Docker does"
fi
for function in "${FUNCTIONS[@]}"; do
  check_function "${function}" "${root}" "${DOCKERFILE}" "Dockerfile"
done

if ((SELF_TEST)); then
  # A context with one more workspace member: a library with an explicit
  # bench target, the kind of declaration the old hand-made stubs had to know.
  extra="${WORK}/extra-context"
  rm -rf "${extra}"
  mkdir -p "${extra}"
  # Copied whole (target/ and .local/ aside): the replay applies .dockerignore.
  tar -C "${root}" --exclude=./target --exclude=./.local --exclude=./.git -cf - . | tar -C "${extra}" -xf -
  mkdir -p "${extra}/${EXTRA_MEMBER}/src" "${extra}/${EXTRA_MEMBER}/benches"
  cat >"${extra}/${EXTRA_MEMBER}/Cargo.toml" <<EOF
[package]
name = "$(basename "${EXTRA_MEMBER}")"
version.workspace = true
edition.workspace = true
publish = false

[[bench]]
name = "extra"
harness = false
EOF
  echo '//! A member added by scripts/check-image.sh --self-test.' >"${extra}/${EXTRA_MEMBER}/src/lib.rs"
  echo 'fn main() {}' >"${extra}/${EXTRA_MEMBER}/benches/extra.rs"
  sed -i "s|^members = \[|members = [\n    \"${EXTRA_MEMBER}\",|" "${extra}/Cargo.toml"
  # The member enters Cargo.lock; nothing else in it changes.
  (cd "${extra}" && cargo update --workspace --offline --quiet)
  if grep -qF "name = \"$(basename "${EXTRA_MEMBER}")\"" "${extra}/Cargo.lock"; then
    pass "self-test: the extra member is in the copied workspace and its Cargo.lock"
  else
    fail "self-test: the extra member did not reach the copied Cargo.lock"
  fi
  check_function sync "${extra}" "${DOCKERFILE}" "self-test, one more member"

  log="${WORK}/replay-bad-function.log"
  if replay bogus "${root}" "${DOCKERFILE}" "${log}" >/dev/null; then
    fail "self-test: FUNCTION=bogus is refused"
  elif grep -qF "FUNCTION must be sync, audit or capture (got 'bogus')" "${log}"; then
    pass "self-test: FUNCTION=bogus is refused by the Dockerfile's check"
  else
    fail "self-test: FUNCTION=bogus failed, but not at the Dockerfile's check (log: ${log})"
  fi

  log="${WORK}/replay-member-list.log"
  if replay sync "${extra}" "${root}/scripts/testdata/Dockerfile.member-list" "${log}" >/dev/null; then
    fail "self-test: a Dockerfile listing the members by hand fails when one is added"
  elif grep -qF "failed to load manifest for workspace member" "${log}"; then
    pass "self-test: a Dockerfile listing the members by hand fails when one is added: $(grep -m1 -F 'failed to load manifest' "${log}")"
  else
    fail "self-test: the hand-listed Dockerfile failed for another reason (log: ${log})"
  fi
  rm -rf "${extra}"
fi

echo "${passed} passed, ${failed} failed"
[ "${failed}" -eq 0 ]
