#!/usr/bin/env bash
# Every set-up step, then the whole test suite: installs missing packages, checks the layout of
# the C sources (clang-format, .clang-format) and that every include points down the layers
# (scripts/layers.py), builds Proxima (Release, warnings as errors),
# lints src/ and io/ with clang-tidy (.clang-tidy; it reads the build's compile_commands.json)
# and runs every CTest test, then builds again with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs the unit, MPI and CLI suites there,
# then builds the libFuzzer targets (clang) and fuzzes each for a bounded time (scripts/fuzz.sh;
# PX_FUZZ_SECONDS per target, default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

echo "== clang-format: every tracked .c and .h file as .clang-format lays it out"
git ls-files -z '*.c' '*.h' | xargs -0 clang-format --dry-run --Werror

echo "== layers: every include of src/, io/ and include/ points down (README, Development)"
/usr/bin/python3 scripts/layers.py

echo "== build (Release)"
scripts/build.sh build

echo "== clang-tidy: src/ and io/ as .clang-tidy checks them (scripts/tidy.sh)"
scripts/tidy.sh build

echo "== test (Release)"
(cd build && ctest --output-on-failure -j2)

echo "== build with AddressSanitizer + UndefinedBehaviorSanitizer and test"
scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug -DPROXIMA_SANITIZE=ON
(cd build-asan && ctest --output-on-failure -j2 -L 'unit|mpi|cli')

echo "== fuzz (libFuzzer, ASan + UBSan): regression inputs, then ${PX_FUZZ_SECONDS:-30}s per target"
scripts/fuzz.sh "${PX_FUZZ_SECONDS:-30}"
