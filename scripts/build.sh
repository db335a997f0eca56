#!/usr/bin/env bash
# Configures and builds Proxima: scripts/build.sh [BUILD_DIR] [extra cmake arguments...]
# BUILD_DIR defaults to build/. Warnings are errors here: the code builds clean with -Wall -Wextra.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
mkdir -p "$dir"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DPROXIMA_WERROR=ON "$@" >"$dir/configure.log" 2>&1 \
  || { cat "$dir/configure.log" >&2; exit 1; }
# nproc counts OMP_NUM_THREADS (and OMP_THREAD_LIMIT) as a limit, and scripts/test.sh sets
# OMP_NUM_THREADS=1 for the tests: without them it counts the cores this process may use.
cmake --build "$dir" -j"$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)"
