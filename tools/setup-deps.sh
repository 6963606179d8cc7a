#!/usr/bin/env bash
# Installs the Debian 12 packages kslab needs to build, test and benchmark.
# Run it as `bash tools/setup-deps.sh`, as root or not: when not root it
# runs apt-get through sudo itself (and only when a package is missing).
# Safe to run again.  The real programs the tests run (python3, bash, perl,
# git, xz, gcc, sort, awk) are here too: a test fails, not skips, where one
# of them is missing.
set -euo pipefail
PKGS=(build-essential cmake pkg-config g++ clang clang-format cppcheck
      libclang-rt-14-dev libcmocka-dev libbenchmark-dev
      libjemalloc-dev libjemalloc2 libmimalloc-dev libgoogle-perftools-dev
      libunwind-dev
      gnuplot-nox python3 xz-utils git valgrind coreutils
      bash perl)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo > /dev/null; then
            echo "kslab: missing packages: ${missing[*]}; not root and no sudo: run this as root" >&2
            exit 1
        fi
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "kslab: dependencies installed"
