#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) in build-fuzz/ and runs each for a bounded
# time: scripts/fuzz.sh [SECONDS_PER_TARGET (default 30)] [TARGET...]
# First every target replays its regression inputs (tests/fuzz/regress/<target>/, the inputs
# that once crashed it); then it fuzzes from its seed corpus (tests/fuzz/corpus/<target>/, never
# written to: new inputs go to build-fuzz/corpus/<target>/). Any finding (a crash, a sanitizer
# report, a leak, a timeout, an allocation over the limit) fails the script, and the input
# that caused it is left in build-fuzz/artifacts/<target>/: add it to regress/<target>/ with the
# fix. One worker per target, under nice; PX_FUZZ_JOBS targets at a time (default: one per
# core this process may use), each for its full SECONDS; about SECONDS + 10 s per round of
# PX_FUZZ_JOBS targets.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config jsonl dataset ckpt tokenizer rollout bpe safetensors)
src=$PWD/tests/fuzz
build=$PWD/build-fuzz

echo "== build the fuzz targets (clang, libFuzzer, ASan + UBSan) in build-fuzz"
mkdir -p "$build"
CC=${FUZZ_CC:-clang} cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DPROXIMA_WERROR=ON \
  -DPROXIMA_FUZZ=ON -DPROXIMA_BUILD_TESTS=OFF >"$build/configure.log" 2>&1 \
  || { cat "$build/configure.log" >&2; exit 1; }
# The cores this process may use: nproc alone would count OMP_NUM_THREADS (and OMP_THREAD_LIMIT)
# as a limit, and scripts/test.sh sets OMP_NUM_THREADS=1 for the tests.
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
nice -n 10 cmake --build "$build" -j"$cores" --target "${targets[@]/#/fuzz_}" >"$build/build.log" 2>&1 \
  || { cat "$build/build.log" >&2; exit 1; }

# As for the sanitizer tests (tests/CMakeLists.txt): MPI and HDF5 keep a few allocations until
# exit by design. The scratch files go to a private directory in memory where there is one.
export OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1 OMPI_MCA_mca_base_component_disable_dlclose=1
export ASAN_OPTIONS=fast_unwind_on_malloc=0:detect_leaks=1
export LSAN_OPTIONS=suppressions=$src/../lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
[ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm

# One target: its regression inputs, then SECONDS of fuzzing; the log in artifacts/<t>/fuzz.log,
# the exit status (0: no finding) in artifacts/<t>/status.
fuzz_one() {
  local t=$1 exe=$build/tests/fuzz/fuzz_$1 log=$build/artifacts/$1/fuzz.log
  local -a regress flags
  mapfile -t regress < <(find "$src/regress/$t" -type f ! -name '.*' ! -name 'README*' | sort)
  flags=(-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=20 -artifact_prefix="$build/artifacts/$t/")
  if ! { [ ${#regress[@]} -eq 0 ] || "$exe" "${flags[@]}" "${regress[@]}"; } >"$log" 2>&1 ||
     ! nice -n 10 "$exe" "${flags[@]}" -max_total_time="$seconds" -print_final_stats=1 \
       "$build/corpus/$t" "$src/corpus/$t" >>"$log" 2>&1; then
    echo 1 >"$build/artifacts/$t/status"
  else
    echo 0 >"$build/artifacts/$t/status"
  fi
}

jobs=${PX_FUZZ_JOBS:-$cores}
[ "$jobs" -ge 1 ] 2>/dev/null || jobs=1
running=0
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t" "$build/artifacts/$t"
  rm -f "$build/artifacts/$t/status"
  echo "== fuzz $t: $(find "$src/regress/$t" -type f ! -name '.*' ! -name 'README*' | wc -l) regression inputs, then ${seconds}s from $(ls "$src/corpus/$t" | wc -l) seeds"
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  fuzz_one "$t" &
  running=$((running + 1))
done
wait

failed=()
for t in "${targets[@]}"; do
  log=$build/artifacts/$t/fuzz.log
  if [ "$(cat "$build/artifacts/$t/status" 2>/dev/null)" != 0 ]; then
    tail -n 60 "$log"
    echo "fuzz $t: FAILED (log: $log, input: $build/artifacts/$t/)"
    failed+=("$t")
  else
    echo "fuzz $t: $(grep -E "^stat::number_of_executed_units|^#[0-9]+.*DONE" "$log" | tail -n 1 || true)"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in ${failed[*]}"
  exit 1
fi
echo "fuzz: no findings in ${targets[*]}"
