#!/usr/bin/env bash
# Check that release binaries can run on gcr.io/distroless/cc-debian12: every
# shared library `ldd` lists must be one of the glibc, libgcc_s and libstdc++
# libraries that image provides (a statically linked binary needs none). The
# image also carries OpenSSL 3, but our binaries are meant to use rustls, so a
# libssl or libcrypto dependency fails the check too.
# Prints what each binary needs; exits 1 if anything is outside the set or not
# found, 2 on bad usage. Run it on the architecture the binaries were built for.
#
# Usage: deploy/tests/check_binary_libs.sh BINARY...
# e.g.   deploy/tests/check_binary_libs.sh target/release/sync-function target/release/audit-function

set -euo pipefail

# Sonames the runtime image provides (glibc's, libgcc_s, libstdc++), and the
# kernel's vDSO, which is no file at all.
ALLOWED=(
  linux-vdso.so.1
  ld-linux-x86-64.so.2
  ld-linux-aarch64.so.1
  libc.so.6
  libm.so.6
  libpthread.so.0
  libdl.so.2
  librt.so.1
  libgcc_s.so.1
  libstdc++.so.6
)

if (($# == 0)); then
  sed -n '2,/^$/{s/^# \{0,1\}//p}' "$0" >&2
  exit 2
fi
command -v ldd >/dev/null || {
  echo "ldd not found" >&2
  exit 2
}

allowed() {
  local lib
  for lib in "${ALLOWED[@]}"; do
    [[ $1 == "${lib}" ]] && return 0
  done
  return 1
}

bad=0
for binary in "$@"; do
  if [[ ! -f ${binary} ]]; then
    echo "${binary}: no such file"
    bad=1
    continue
  fi
  # ldd exits non-zero for static binaries ("not a dynamic executable").
  output=$(ldd "${binary}" 2>&1) || true
  if grep -qE 'not a dynamic executable|statically linked' <<<"${output}"; then
    echo "${binary}: statically linked, needs no shared library"
    continue
  fi
  echo "${binary} needs:"
  while read -r first second third _; do
    [[ -n ${first} ]] || continue
    # Lines look like "libc.so.6 => /lib/.../libc.so.6 (0x...)",
    # "linux-vdso.so.1 (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)" or
    # "libfoo.so.1 => not found".
    soname=$(basename "${first}")
    if [[ ${second} == '=>' && ${third} == not ]]; then
      echo "  ${soname}  NOT FOUND"
      bad=1
    elif allowed "${soname}"; then
      echo "  ${soname}  ok"
    else
      echo "  ${soname}  NOT IN distroless/cc-debian12"
      bad=1
    fi
  done <<<"${output}"
done

if ((bad)); then
  echo "FAIL: a binary needs a library the runtime image does not have"
  exit 1
fi
echo "OK: every library needed is in distroless/cc-debian12"
