#!/usr/bin/env bash
# clang-tidy with the checked-in .clang-tidy over every .c file of src/ and io/ (and the headers
# they include from include/proxima, src/ and io/), two files at a time; any finding fails.
# scripts/tidy.sh [BUILD_DIR]: BUILD_DIR (default build/) holds the compile_commands.json that
# configuring writes (CMakeLists.txt sets CMAKE_EXPORT_COMPILE_COMMANDS). Prints only the files
# with findings. tests/ and benchmarks/ are not checked.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
if [ ! -f "$dir/compile_commands.json" ]; then
  echo "tidy: no $dir/compile_commands.json: run scripts/build.sh $dir first" >&2
  exit 1
fi
# Each file's output is held until its run ends, so the two runs' findings do not interleave.
one='out=$(clang-tidy -p "$0" --quiet "$1" 2>&1) || { printf "%s\n" "$out"; exit 1; }'
if ! git ls-files -z 'src/*.c' 'io/*.c' | xargs -0 -n1 -P2 sh -c "$one" "$dir"; then
  echo "tidy: clang-tidy found the problems above (.clang-tidy says which checks and why)" >&2
  exit 1
fi
echo "tidy: clean"
